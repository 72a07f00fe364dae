package federation

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Change is one numbered change of a published book: offers new or
// changed, and ids removed.
type Change struct {
	Seq     int64
	Upserts []Offer
	Removed []int64
}

// Publisher holds this exchange's published book and hands it to peers as
// a snapshot followed by numbered changes. A subscriber that falls behind
// by more than its buffer is dropped (it subscribes again, with a fresh
// snapshot), so a slow peer costs a bounded amount of memory.
type Publisher struct {
	epoch string
	buf   int

	mu   sync.Mutex
	seq  int64
	cur  map[int64]Offer
	subs map[*Subscription]struct{}
}

// Subscription is one peer's feed: the snapshot it started from, then
// Changes. Changes is closed when the publisher dropped the subscriber
// (Lagged) or Close was called.
type Subscription struct {
	Epoch    string
	Seq      int64 // the snapshot is as of this change
	Snapshot []Offer
	Changes  <-chan Change

	ch     chan Change
	p      *Publisher
	lagged bool
}

// NewPublisher returns an empty published book. epoch names this
// generation: subscribers take a snapshot again when it changes (a
// restart numbers changes from zero). buffer bounds the changes queued
// per subscriber.
func NewPublisher(epoch string, buffer int) *Publisher {
	if buffer <= 0 {
		buffer = 256
	}
	return &Publisher{epoch: epoch, buf: buffer, cur: map[int64]Offer{}, subs: map[*Subscription]struct{}{}}
}

// Epoch is this publisher's generation.
func (p *Publisher) Epoch() string { return p.epoch }

// Subscribe starts a feed at the current state.
func (p *Publisher) Subscribe() *Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &Subscription{Epoch: p.epoch, Seq: p.seq, Snapshot: p.sortedLocked(), ch: make(chan Change, p.buf), p: p}
	s.Changes = s.ch
	p.subs[s] = struct{}{}
	return s
}

// Lagged reports whether the publisher dropped s for falling behind
// (valid once Changes is closed).
func (s *Subscription) Lagged() bool {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.lagged
}

// Close ends the feed.
func (s *Subscription) Close() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if _, ok := s.p.subs[s]; ok {
		delete(s.p.subs, s)
		close(s.ch)
	}
}

// Seq is the number of the last change.
func (p *Publisher) Seq() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// Len is how many offers are published.
func (p *Publisher) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cur)
}

// Offers returns the published book, by id.
func (p *Publisher) Offers() []Offer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sortedLocked()
}

func (p *Publisher) sortedLocked() []Offer {
	out := make([]Offer, 0, len(p.cur))
	for _, o := range p.cur {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Offer) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Update replaces the published book with offers (ids unique) and sends
// what differs to the subscribers, as changes of at most
// MaxItemsPerUpdate items each. It returns how many changes it made.
func (p *Publisher) Update(offers []Offer) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[int64]bool, len(offers))
	for _, o := range offers {
		next[o.ID] = true
	}
	var gone []int64
	for id := range p.cur {
		if !next[id] {
			gone = append(gone, id)
		}
	}
	return p.applyLocked(offers, gone)
}

// Patch publishes what a change did to some orders: asked are their ids,
// offers those of them that are open sells now; the others are gone.
func (p *Publisher) Patch(asked []int64, offers []Offer) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	open := make(map[int64]bool, len(offers))
	for _, o := range offers {
		open[o.ID] = true
	}
	var gone []int64
	for _, id := range asked {
		if _, ok := p.cur[id]; ok && !open[id] {
			gone = append(gone, id)
		}
	}
	return p.applyLocked(offers, gone)
}

func (p *Publisher) applyLocked(offers []Offer, gone []int64) int {
	var ups []Offer
	for _, o := range offers {
		if old, ok := p.cur[o.ID]; !ok || !same(old, o) {
			ups = append(ups, o)
		}
	}
	slices.SortFunc(ups, func(a, b Offer) int { return cmp.Compare(a.ID, b.ID) })
	slices.Sort(gone)
	gone = slices.Compact(gone)
	n := 0
	for len(ups)+len(gone) > 0 {
		p.seq++
		ch := Change{Seq: p.seq}
		k := min(len(ups), MaxItemsPerUpdate)
		for _, o := range ups[:k] {
			o.Revision = p.seq
			p.cur[o.ID] = o
			ch.Upserts = append(ch.Upserts, o)
		}
		ups = ups[k:]
		r := min(len(gone), MaxItemsPerUpdate-k)
		for _, id := range gone[:r] {
			delete(p.cur, id)
		}
		ch.Removed, gone = gone[:r:r], gone[r:]
		p.sendLocked(ch)
		n++
	}
	return n
}

func (p *Publisher) sendLocked(ch Change) {
	for s := range p.subs {
		select {
		case s.ch <- ch:
		default:
			s.lagged = true
			delete(p.subs, s)
			close(s.ch)
		}
	}
}

// Dirty collects the orders a book change touched, for the next Patch.
type Dirty struct {
	mu   sync.Mutex
	ids  map[int64]bool
	wake chan struct{}
}

// NewDirty returns an empty set.
func NewDirty() *Dirty { return &Dirty{ids: map[int64]bool{}, wake: make(chan struct{}, 1)} }

// Add marks orders as changed and wakes the feed.
func (d *Dirty) Add(ids ...int64) {
	if len(ids) == 0 {
		return
	}
	d.mu.Lock()
	for _, id := range ids {
		d.ids[id] = true
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

func (d *Dirty) take() []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]int64, 0, len(d.ids))
	for id := range d.ids {
		out = append(out, id)
	}
	clear(d.ids)
	return out
}

// Feed keeps the publisher up to date until ctx ends: read(ids) reads the
// book's open sells among ids, all of them for nil. It reads the whole book
// at the start and every interval (what no order change says: measured
// quality, the registry), and the orders in dirty when woken (coalesced to
// one read per minGap). A failed read leaves the published book as it was
// (a failed read of some orders puts them back).
func (p *Publisher) Feed(ctx context.Context, read func(ctx context.Context, ids []int64) ([]Offer, error), dirty *Dirty,
	interval, minGap time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	all := true
	for {
		var ids []int64
		if !all {
			ids = dirty.take()
		}
		if offers, err := read(ctx, ids); err != nil {
			if ctx.Err() != nil {
				return
			}
			onErr(err)
			dirty.Add(ids...)
		} else if all {
			p.Update(offers)
		} else {
			p.Patch(ids, offers)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			all = true
		case <-dirty.wake:
			all = false
			// Changes come in bursts (a sweep of fills): one read for each.
			select {
			case <-ctx.Done():
				return
			case <-time.After(minGap):
			}
		}
	}
}
