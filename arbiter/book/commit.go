package book

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
)

type pending struct {
	ch   *Change
	err  error
	done chan struct{}
	// ready, if set, closes when its trades' quality is filled in (looked
	// up outside the lock, by q); the commit waits for it. Whoever comes
	// first, the caller or the commit loop, takes the lookup (claimed):
	// the loop does not wait for a caller that is not running yet.
	ready   chan struct{}
	claimed atomic.Bool
	q       QualitySource
}

// fill looks up ch's trades' quality unless another goroutine has taken
// it, and then waits until it is done.
func (p *pending) fill() {
	if p.ready == nil {
		return
	}
	if p.claimed.CompareAndSwap(false, true) {
		lookup(p.q, p.ch)
		close(p.ready)
	}
	<-p.ready
}

// apply runs one engine operation and waits until its change is durable.
func (b *Book) apply(op func(e *Engine) (*Change, error)) (*Change, error) {
	b.mu.Lock()
	if b.err != nil {
		if err := b.reload(context.Background()); err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("order book unavailable: %w", err)
		}
	}
	b.eng.DeferQuality = true
	// What time made tradable is matched first, as its own change: the
	// operation then sees a book that is not crossed.
	woke := b.wake()
	ch, err := op(b.eng)
	if err != nil || ch == nil || ch.empty() {
		b.mu.Unlock()
		b.settle(woke)
		return ch, err
	}
	p := b.enqueue(ch)
	b.mu.Unlock()
	b.settle(woke)
	// The quality of the path each trade takes is recorded with it (claim
	// 18); looked up here, outside the lock, callers' lookups overlap one
	// another and the matching.
	p.fill()
	<-p.done
	if p.err != nil {
		return nil, p.err
	}
	b.opt.Notify(ch.Events)
	return ch, nil
}

// wake runs the engine's Wake (the caller holds b.mu) and queues its
// change, if any, for commit. It runs before every operation: when time
// has nothing to match, it costs one comparison.
func (b *Book) wake() *pending {
	now := b.opt.Now()
	if !b.eng.wakeDue(now) {
		return nil
	}
	b.eng.CreditCheck = b.engineCheck(context.Background(), nil)
	ch := b.eng.Wake(now)
	b.eng.CreditCheck = nil
	if ch.empty() {
		return nil
	}
	return b.enqueue(ch)
}

// settle waits until a wake's change is durable and tells its members. A
// failed commit has rebuilt the engine from the store (recover), which
// wakes again at the next operation.
func (b *Book) settle(p *pending) {
	if p == nil {
		return
	}
	p.fill()
	<-p.done
	if p.err == nil {
		b.opt.Notify(p.ch.Events)
	}
}

// enqueue queues a change for commit; the caller holds b.mu, so the queue
// is in engine order.
func (b *Book) enqueue(ch *Change) *pending {
	p := &pending{ch: ch, done: make(chan struct{})}
	if len(ch.lookups) > 0 {
		p.ready, p.q = make(chan struct{}), b.eng.Quality
	}
	if b.opt.CreditCheck != nil && len(ch.Trades) > 0 {
		b.imu.Lock()
		for _, t := range ch.Trades {
			b.inflight[t.BuyerASN] = append(b.inflight[t.BuyerASN], t)
			b.bought[t.BuyerASN]++
		}
		b.imu.Unlock()
	}
	b.qmu.Lock()
	b.queue = append(b.queue, p)
	b.last = p
	b.qcond.Signal()
	b.qmu.Unlock()
	return p
}

func (b *Book) commitLoop() {
	defer close(b.done)
	defer b.cm.close()
	for {
		b.qmu.Lock()
		for len(b.queue) == 0 && !b.closing {
			b.qcond.Wait()
		}
		if len(b.queue) == 0 {
			b.qmu.Unlock()
			return
		}
		n := min(len(b.queue), b.opt.MaxBatch)
		batch := append([]*pending(nil), b.queue[:n]...)
		b.queue = b.queue[n:]
		b.qmu.Unlock()

		chs := make([]*Change, len(batch))
		for i, p := range batch {
			p.fill()
			chs[i] = p.ch
		}
		err := b.cm.commit(context.Background(), chs)
		b.commits++
		b.committed += len(chs)
		// Committed trades are in the store now; failed ones never will be.
		b.landed(batch)
		if err != nil {
			b.recover(batch, err)
			continue
		}
		for _, p := range batch {
			close(p.done)
		}
	}
}

// landed drops the batch's trades from inflight.
func (b *Book) landed(batch []*pending) {
	if b.opt.CreditCheck == nil {
		return
	}
	b.imu.Lock()
	defer b.imu.Unlock()
	for _, p := range batch {
		for _, t := range p.ch.Trades {
			ts := b.inflight[t.BuyerASN]
			if ts = without(ts, func(x Trade) bool { return x.ID == t.ID }); len(ts) == 0 {
				delete(b.inflight, t.BuyerASN)
			} else {
				b.inflight[t.BuyerASN] = ts
			}
		}
	}
}

// recover handles a failed commit: the engine applied changes that are not
// durable, so it is rebuilt from the store, and every change queued behind
// the failed ones (built on the same memory) fails too.
func (b *Book) recover(batch []*pending, cause error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.qmu.Lock()
	rest := b.queue
	b.queue = nil
	b.qmu.Unlock()
	for _, p := range rest {
		p.fill() // or wait for its caller, still writing the change
	}
	b.landed(rest)
	err := fmt.Errorf("not stored, nothing changed: %w", cause)
	for _, p := range append(batch, rest...) {
		p.err = err
		close(p.done)
	}
	if rerr := b.reload(context.Background()); rerr != nil {
		b.err = rerr
	}
}

func (b *Book) reload(ctx context.Context) error {
	s, err := LoadSnapshot(ctx, b.db, b.opt.Now())
	if err != nil {
		return fmt.Errorf("loading the order book: %w", err)
	}
	e := NewEngine()
	e.Active = b.opt.Active
	e.Quality = b.opt.Quality
	if e.Quality == nil {
		e.Quality = matrixQuality{b.paths, b.opt.Freshness}
	}
	e.Restore(s)
	b.eng, b.err = e, nil
	return nil
}

// LoadSnapshot reads everything the engine needs to resume.
func LoadSnapshot(ctx context.Context, db *store.DB, now time.Time) (Snapshot, error) {
	var s Snapshot
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if s.Members, err = LoadMembers(ctx, tx); err != nil {
			return err
		}
		if s.Open, err = openOrders(ctx, tx); err != nil {
			return err
		}
		if s.Clients, err = clientOrderIDs(ctx, tx); err != nil {
			return err
		}
		if s.Reservations, err = reservations(ctx, tx, now); err != nil {
			return err
		}
		return lastIDs(ctx, tx, &s)
	})
	return s, err
}

// sync waits until every change queued so far is committed.
func (b *Book) sync() {
	b.mu.Lock()
	b.qmu.Lock()
	p := b.last
	b.qmu.Unlock()
	b.mu.Unlock()
	if p != nil {
		<-p.done
	}
}
