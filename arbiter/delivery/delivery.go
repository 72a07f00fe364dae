// Package delivery decides which trades the route server delivers when:
// a trade is delivered from its start until its end unless cancelled
// (claims 1d, 21). Active is the rule; Loop applies it over time, fed by
// the order book's events and by timers at each start and end, and hands
// the complete active set to a Target (the route server) each time it
// changes. It knows nothing of BGP.
//
// Record keeps what was delivered when, in the deliveries table, whose
// SQL is in deliveries_sql.go.
package delivery

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/shared/clock"
)

// Active returns the trades to deliver at now, by ID: not cancelled and
// now in [Start, End). next is the first instant after now at which that
// set changes by the clock (a start or an end), zero if none will.
func Active(trades []book.Trade, now time.Time) (active []book.Trade, next time.Time) {
	for _, t := range trades {
		if t.Cancelled || !t.End.After(now) || !t.End.After(t.Start) {
			continue
		}
		at := t.End
		if t.Start.After(now) {
			at = t.Start
		} else {
			active = append(active, t)
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	slices.SortFunc(active, func(a, b book.Trade) int { return cmp.Compare(a.ID, b.ID) })
	return active, next
}

// Source lists the trades that may still need delivering: at least every
// trade not cancelled whose end is after now (more is harmless).
type Source interface {
	Trades(ctx context.Context, now time.Time) ([]book.Trade, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, now time.Time) ([]book.Trade, error)

// Trades calls f.
func (f SourceFunc) Trades(ctx context.Context, now time.Time) ([]book.Trade, error) {
	return f(ctx, now)
}

// Target delivers exactly the trades it is given and withdraws the rest.
type Target interface {
	SetActive(ctx context.Context, trades []book.Trade) error
}

// Options tune a Loop.
type Options struct {
	// Now is the clock; nil means clock.Now.
	Now func() time.Time
	// Log receives failures; nil discards.
	Log *slog.Logger
	// RetryEvery is how soon a failed load or SetActive is retried; 0
	// means 5 s.
	RetryEvery time.Duration
}

// Loop keeps a Target's active set right over time.
type Loop struct {
	src Source
	dst Target
	opt Options

	mu     sync.Mutex
	known  map[int64]book.Trade
	reload bool // read the Source again before the next push
	push   bool // push even if the set looks unchanged
	wake   chan struct{}
	pushes uint64 // successful SetActive calls
}

// New makes a Loop; Run runs it.
func New(src Source, dst Target, opt Options) *Loop {
	if opt.Now == nil {
		opt.Now = clock.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.RetryEvery <= 0 {
		opt.RetryEvery = 5 * time.Second
	}
	return &Loop{src: src, dst: dst, opt: opt, known: map[int64]book.Trade{}, reload: true,
		wake: make(chan struct{}, 1)}
}

// Notify takes the order book's events (book.Options.Notify): a new trade
// is added at once, a trade ended early is withdrawn at once; any other
// event that could end a trade early (an order cancelled) makes the loop
// read the Source again. It never blocks.
func (l *Loop) Notify(evs []book.Event) {
	changed := false
	l.mu.Lock()
	for _, e := range evs {
		switch e.Type {
		case book.TradeCreated:
			if e.Trade != nil {
				if _, ok := l.known[e.Trade.ID]; !ok {
					l.known[e.Trade.ID] = *e.Trade
					changed = true
				}
			}
		case book.TradeEnded, book.TradeCancelledEvent:
			// A trade ended early (a party was removed): withdrawn at
			// once, even one made so recently that a reload would keep
			// the copy Notify gave (see step).
			if e.Trade != nil {
				if _, ok := l.known[e.Trade.ID]; ok {
					l.known[e.Trade.ID] = *e.Trade
				}
			}
			l.reload = true
			changed = true
		case book.OrderAccepted, book.OrderModified, book.OrderFilled,
			book.UseOver, book.UseUnder, book.CreditWarning, book.CreditStopped:
			// A resting order changed, or a notice: no trade starts or ends.
		default:
			l.reload = true
			changed = true
		}
	}
	l.mu.Unlock()
	if changed {
		l.poke()
	}
}

// Resync reads the Source again and pushes the active set even if it looks
// unchanged: call it when what the Target derives from a trade changed
// (members, routers, prefix policy).
func (l *Loop) Resync() {
	l.mu.Lock()
	l.reload, l.push = true, true
	l.mu.Unlock()
	l.poke()
}

func (l *Loop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run loads the trades, pushes the active set (so a restarted arbiter
// re-announces exactly the active trades) and keeps it right until ctx
// ends.
func (l *Loop) Run(ctx context.Context) error {
	var last []int64 // IDs last pushed; nil before the first push
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		next, ok := l.step(ctx, &last)
		wait := time.Duration(-1)
		if !ok {
			wait = l.opt.RetryEvery
		}
		if !next.IsZero() {
			d := next.Sub(l.opt.Now())
			if wait < 0 || d < wait {
				wait = max(d, 0)
			}
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.wake:
		case <-tc:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// step brings the Target up to date once; ok is false if it must be
// retried.
func (l *Loop) step(ctx context.Context, last *[]int64) (next time.Time, ok bool) {
	now := l.opt.Now()
	l.mu.Lock()
	reload, force := l.reload, l.push
	l.reload, l.push = false, false
	l.mu.Unlock()
	if reload {
		ts, err := l.src.Trades(ctx, now)
		if err != nil {
			l.opt.Log.Error("delivery: load trades", "error", err)
			l.mu.Lock()
			l.reload, l.push = true, l.push || force
			l.mu.Unlock()
			return time.Time{}, false
		}
		l.mu.Lock()
		// Keep trades announced by Notify meanwhile; the Source wins for
		// the others (it knows of cancellations).
		fresh := make(map[int64]book.Trade, len(ts))
		for _, t := range ts {
			fresh[t.ID] = t
		}
		for id, t := range l.known {
			if _, ok := fresh[id]; !ok && t.Created.After(now.Add(-time.Minute)) {
				fresh[id] = t
			}
		}
		l.known = fresh
		l.mu.Unlock()
	}
	l.mu.Lock()
	all := make([]book.Trade, 0, len(l.known))
	for id, t := range l.known {
		if t.Cancelled || !t.End.After(now) {
			delete(l.known, id) // over for good
			continue
		}
		all = append(all, t)
	}
	l.mu.Unlock()
	active, next := Active(all, now)
	ids := make([]int64, len(active))
	for i, t := range active {
		ids[i] = t.ID
	}
	if *last != nil && !force && slices.Equal(ids, *last) {
		return next, true
	}
	if err := l.dst.SetActive(ctx, active); err != nil {
		l.opt.Log.Error("delivery: set active trades", "trades", len(active), "error", err)
		l.mu.Lock()
		l.push = true
		l.mu.Unlock()
		return next, false
	}
	*last = ids
	l.mu.Lock()
	l.pushes++
	l.mu.Unlock()
	return next, true
}

// Pushes counts the successful SetActive calls so far.
func (l *Loop) Pushes() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pushes
}
