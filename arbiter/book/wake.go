package book

import (
	"cmp"
	"container/heap"
	"slices"
	"time"
)

// A resting book must never stay crossed while a trade is possible. An
// operation matches the order it brings; time matches the rest: a sell
// whose start arrives can serve the buys that started earlier (their
// effective start is now too), and a port reservation that ends frees
// capacity. Wake, run before every operation of the Book and by its expiry
// loop, re-matches the resting orders that such an instant concerns.

// wake is one instant at which resting orders may become tradable: the
// start of sell order `order`, or the end of a reservation on port `port`.
type wake struct {
	at    int64 // unix microseconds
	order int64
	port  int64
}

type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

func (e *Engine) wakeAt(w wake) {
	if e.queued[w] {
		return
	}
	e.queued[w] = true
	heap.Push(&e.wakes, w)
}

// wakeDue reports whether Wake at now has anything to re-match: a sweep
// of every resting sell, or a wake instant that has arrived.
func (e *Engine) wakeDue(now time.Time) bool {
	return e.sweepAll || len(e.wakes) > 0 && e.wakes[0].at <= now.UnixMicro()
}

// Wake re-matches the resting orders that time may have made tradable
// since the last operation (see wake), oldest first, each against the
// orders on the other side as if it arrived now; a trade between two
// resting orders takes the price of the one that rested first and starts
// now. It returns what it changed, to be made durable like any operation
// (empty when nothing traded).
func (e *Engine) Wake(now time.Time) *Change {
	now = now.UTC()
	at := now.UnixMicro()
	due := map[int64]*Order{}
	if e.sweepAll {
		e.sweepAll = false
		for _, o := range e.open {
			if o.Spec.Side == Sell {
				due[o.ID] = o
			}
		}
	}
	var ports map[int64]bool
	for len(e.wakes) > 0 && e.wakes[0].at <= at {
		w := heap.Pop(&e.wakes).(wake)
		delete(e.queued, w)
		switch {
		case w.order != 0:
			if o := e.open[w.order]; o != nil {
				due[o.ID] = o
			}
		default:
			if c := e.ports[w.port]; c != nil && c.wokenSet && c.woken == w.at {
				c.wokenSet = false // no longer queued
			}
			if ports == nil {
				ports = map[int64]bool{}
			}
			ports[w.port] = true
		}
	}
	if len(ports) > 0 {
		for _, o := range e.open {
			if m := e.members[o.MemberASN]; m != nil && ports[m.PortID] {
				due[o.ID] = o
			}
		}
	}
	ch := &Change{}
	if len(due) == 0 {
		return ch
	}
	order := make([]*Order, 0, len(due))
	for _, o := range due {
		order = append(order, o)
	}
	slices.SortFunc(order, func(a, b *Order) int { return cmp.Compare(a.Priority, b.Priority) })
	for _, o := range order {
		if e.open[o.ID] != o || o.Remaining() <= 0 || !o.Spec.End.After(now) {
			continue // filled by an earlier one, or over (Expire takes it)
		}
		if e.active(o.MemberASN) != nil {
			continue // its member may no longer trade (CancelMember takes it)
		}
		// A resting buy is checked against its member's credit as a new
		// one would be: it may have been placed before the member reached
		// its limit.
		if o.Spec.Side == Buy && e.CreditCheck != nil && e.CreditCheck(o.MemberASN, nil, now) != nil {
			continue
		}
		e.match(o, now, 0, ch, true)
	}
	return ch
}
