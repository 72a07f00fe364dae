package book

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/store"
)

// ErrNotFound is an unknown order, or one that belongs to another member:
// the two look the same so that nobody learns about other members' orders.
var ErrNotFound = errors.New("not found")

// ErrNotOpen is an order that can no longer change (or is not the caller's).
var ErrNotOpen = errors.New("order is not open")

// Operator is the caller ASN that stands for the exchange operator, who may
// see and cancel every member's orders.
const Operator uint32 = 0

// EventType follows the gRPC contract's numbers.
type EventType int

const (
	TradeCreated   EventType = 1
	OrderAccepted  EventType = 5
	OrderModified  EventType = 6
	OrderCancelled EventType = 7
	OrderExpired   EventType = 8
	OrderFilled    EventType = 9
)

// Event is one entry of a member's event log: about a trade or an order.
type Event struct {
	Seq       int64
	MemberASN uint32
	Type      EventType
	Time      time.Time
	Trade     *Trade
	Order     *Order
}

// Offer is a sell order a buy could take now (claim 24).
type Offer struct {
	Order        Order
	Prefixes     []netip.Prefix
	AvailableBps int64
	Measured     *Measured
}

// Options configure a Book.
type Options struct {
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Notify receives the events of each change after it is committed.
	Notify func([]Event)
	// Quality answers measured path quality; nil: the quality matrix in
	// the same store.
	Quality QualitySource
	// Freshness is how old a measurement may be and still count.
	Freshness time.Duration
	// ExpireEvery is how often orders past their delivery end are expired
	// (0: every second; negative: never, for tests that drive Expire).
	ExpireEvery time.Duration
	// MaxBatch bounds how many changes one commit carries.
	MaxBatch int
}

// Book is the order book: the in-memory engine, serialized, whose every
// change is committed to the store (in batches, one transaction each)
// before its caller hears of it. Reads come from the store and so show
// only what has been acknowledged.
type Book struct {
	db  *store.DB
	opt Options
	cm  *committer // used by commitLoop only

	// commits and committed count transactions and the changes they
	// carried (batch size; read after Close).
	commits, committed int

	mu  sync.Mutex // serializes the engine; changes are queued in engine order
	eng *Engine
	err error // set when a failed commit left the engine unusable

	qmu     sync.Mutex
	qcond   *sync.Cond
	queue   []*pending
	last    *pending
	closing bool
	done    chan struct{}
}

type pending struct {
	ch   *Change
	err  error
	done chan struct{}
}

// Start loads the book from the store and starts committing.
func Start(ctx context.Context, db *store.DB, opt Options) (*Book, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Notify == nil {
		opt.Notify = func([]Event) {}
	}
	if opt.Freshness == 0 {
		opt.Freshness = time.Hour
	}
	if opt.MaxBatch == 0 {
		opt.MaxBatch = 1000
	}
	b := &Book{db: db, opt: opt, done: make(chan struct{}), cm: newCommitter(db)}
	b.qcond = sync.NewCond(&b.qmu)
	if err := b.reload(ctx); err != nil {
		return nil, err
	}
	go b.commitLoop()
	if opt.ExpireEvery >= 0 {
		every := opt.ExpireEvery
		if every == 0 {
			every = time.Second
		}
		go b.expireLoop(every)
	}
	// Orders that ended while the arbiter was down expire now.
	b.Expire(ctx)
	return b, nil
}

func (b *Book) reload(ctx context.Context) error {
	s, err := LoadSnapshot(ctx, b.db, b.opt.Now())
	if err != nil {
		return fmt.Errorf("loading the order book: %w", err)
	}
	e := NewEngine()
	e.Quality = b.opt.Quality
	if e.Quality == nil {
		e.Quality = matrixQuality{quality.New(b.db), b.opt.Freshness}
	}
	e.Restore(s)
	b.eng, b.err = e, nil
	return nil
}

// Close stops committing after the queued changes are written.
func (b *Book) Close() {
	b.qmu.Lock()
	if !b.closing {
		b.closing = true
		b.qcond.Broadcast()
	}
	b.qmu.Unlock()
	<-b.done
}

// enqueue queues a change for commit; the caller holds b.mu, so the queue
// is in engine order.
func (b *Book) enqueue(ch *Change) *pending {
	p := &pending{ch: ch, done: make(chan struct{})}
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
			chs[i] = p.ch
		}
		err := b.cm.commit(context.Background(), chs)
		b.commits++
		b.committed += len(chs)
		if err != nil {
			b.recover(batch, err)
			continue
		}
		for _, p := range batch {
			close(p.done)
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
	err := fmt.Errorf("not stored, nothing changed: %w", cause)
	for _, p := range append(batch, rest...) {
		p.err = err
		close(p.done)
	}
	if rerr := b.reload(context.Background()); rerr != nil {
		b.err = rerr
	}
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
	ch, err := op(b.eng)
	if err != nil || ch == nil || ch.empty() {
		b.mu.Unlock()
		return ch, err
	}
	p := b.enqueue(ch)
	b.mu.Unlock()
	<-p.done
	if p.err != nil {
		return nil, p.err
	}
	b.opt.Notify(ch.Events)
	return ch, nil
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

// Place validates spec, stores the order for member asn and matches it.
// The same non-empty clientID returns the first order and its trades.
func (b *Book) Place(ctx context.Context, asn uint32, spec Spec, clientID string) (Order, []Trade, error) {
	return b.place(ctx, asn, spec, clientID, 0)
}

// Take buys from one sell order only, all or nothing (RFQ). A clear
// ErrOfferGone or ErrOfferChanged says why an offer cannot be taken.
func (b *Book) Take(ctx context.Context, asn uint32, sellID int64, spec Spec, clientID string) (Order, []Trade, error) {
	if spec.Side != Buy {
		return Order{}, nil, invalid("spec.side", "taking an offer is a buy")
	}
	if sellID <= 0 {
		return Order{}, nil, invalid("offer_order_id", "is required")
	}
	spec.Type = FOK
	return b.place(ctx, asn, spec, clientID, sellID)
}

func (b *Book) place(ctx context.Context, asn uint32, spec Spec, clientID string, only int64) (Order, []Trade, error) {
	var (
		o      Order
		trades []Trade
	)
	_, err := b.apply(func(e *Engine) (*Change, error) {
		var ch *Change
		var err error
		o, trades, ch, err = e.Place(b.opt.Now(), asn, spec, clientID, only)
		return ch, err
	})
	var dup *DuplicateError
	if errors.As(err, &dup) {
		// The first order may still be on its way to the disk.
		b.sync()
		if o, err = getOrder(ctx, b.db, asn, dup.ID); err != nil {
			return Order{}, nil, err
		}
		trades, err = queryTrades(ctx, b.db, selectTrade+" WHERE t.buy_order_id = ? OR t.sell_order_id = ? ORDER BY t.id", o.ID, o.ID)
		return o, trades, err
	}
	if err != nil {
		return Order{}, nil, err
	}
	return o, trades, nil
}

// Cancel cancels an open order of asn (any order for the operator). Trades
// it already made stand.
func (b *Book) Cancel(ctx context.Context, asn uint32, id int64) (Order, error) {
	var o Order
	_, err := b.apply(func(e *Engine) (*Change, error) {
		var ch *Change
		var err error
		o, ch, err = e.Cancel(b.opt.Now(), asn, id)
		return ch, err
	})
	if errors.Is(err, ErrNotOpen) {
		return Order{}, b.notOpen(ctx, asn, id)
	}
	return o, err
}

// notOpen tells "not yours or unknown" (NotFound) from "yours but closed".
func (b *Book) notOpen(ctx context.Context, asn uint32, id int64) error {
	if _, err := getOrder(ctx, b.db, asn, id); err != nil {
		return err
	}
	return fmt.Errorf("order %d: %w", id, ErrNotOpen)
}

// Modify changes an open order's capacity and/or price, then matches it
// again (a better price may now cross).
func (b *Book) Modify(ctx context.Context, asn uint32, id int64, capacity, price *int64) (Order, []Trade, error) {
	var (
		o      Order
		trades []Trade
	)
	_, err := b.apply(func(e *Engine) (*Change, error) {
		var ch *Change
		var err error
		o, trades, ch, err = e.Modify(b.opt.Now(), asn, id, capacity, price)
		return ch, err
	})
	if errors.Is(err, ErrNotOpen) {
		return Order{}, nil, b.notOpen(ctx, asn, id)
	}
	return o, trades, err
}

// Expire expires the orders whose delivery period is over.
func (b *Book) Expire(ctx context.Context) error {
	_, err := b.apply(func(e *Engine) (*Change, error) { return e.Expire(b.opt.Now()), nil })
	return err
}

func (b *Book) expireLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.Expire(context.Background())
		}
	}
}

// RefreshMembers reloads the registry into the engine after members or
// their routes change.
func (b *Book) RefreshMembers(ctx context.Context) error {
	m, err := LoadMembers(ctx, b.db)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eng != nil {
		b.eng.SetMembers(m)
	}
	return nil
}

// Offers lists the sell orders a buy spec would match now, best first, with
// the capacity each could trade (claim 24).
func (b *Book) Offers(ctx context.Context, asn uint32, spec Spec) ([]Offer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, fmt.Errorf("order book unavailable: %w", b.err)
	}
	return b.eng.Offers(b.opt.Now(), asn, spec)
}

// Get returns one order visible to asn.
func (b *Book) Get(ctx context.Context, asn uint32, id int64) (Order, error) {
	return getOrder(ctx, b.db, asn, id)
}

// Orders lists asn's orders (every member's for the operator with asn 0).
func (b *Book) Orders(ctx context.Context, asn uint32, openOnly bool) ([]Order, error) {
	q := selectOrder + " WHERE (? = 0 OR m.asn = ?)"
	if openOnly {
		q += fmt.Sprintf(" AND o.status = %d", Open)
	}
	return queryOrders(ctx, b.db, q+" ORDER BY o.id", asn, asn)
}

// Trades lists the trades asn is a party to (all for the operator).
func (b *Book) Trades(ctx context.Context, asn uint32, activeOnly bool) ([]Trade, error) {
	q := selectTrade + " WHERE (? = 0 OR bm.asn = ? OR sm.asn = ?)"
	args := []any{asn, asn, asn}
	if activeOnly {
		now := store.Micros(b.opt.Now())
		q += " AND t.cancelled = 0 AND t.start_us <= ? AND t.end_us > ?"
		args = append(args, now, now)
	}
	return queryTrades(ctx, b.db, q+" ORDER BY t.id", args...)
}

// Unended returns every trade not cancelled whose delivery ends after now:
// the running and the scheduled ones (what the route server must know of),
// without reading the whole trade history.
func (b *Book) Unended(ctx context.Context, now time.Time) ([]Trade, error) {
	return queryTrades(ctx, b.db, selectTrade+" WHERE t.cancelled = 0 AND t.end_us > ? ORDER BY t.id", store.Micros(now))
}

// Events returns asn's events after seq, oldest first, at most limit.
func (b *Book) Events(ctx context.Context, asn uint32, after int64, limit int) ([]Event, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT e.seq, e.type, e.created_us, e.trade_id, e.order_id FROM events e
		JOIN members m ON m.id = e.member_id WHERE m.asn = ? AND e.seq > ? ORDER BY e.seq LIMIT ?`, asn, after, limit)
	if err != nil {
		return nil, err
	}
	type row struct {
		ev             Event
		trade, orderID *int64
	}
	var rs []row
	for rows.Next() {
		var r row
		var us int64
		if err := rows.Scan(&r.ev.Seq, &r.ev.Type, &us, &r.trade, &r.orderID); err != nil {
			rows.Close()
			return nil, err
		}
		r.ev.MemberASN, r.ev.Time = asn, store.Time(us)
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(rs))
	for _, r := range rs {
		if r.trade != nil {
			ts, err := queryTrades(ctx, b.db, selectTrade+" WHERE t.id = ?", *r.trade)
			if err != nil || len(ts) != 1 {
				return nil, fmt.Errorf("event %d: trade %d: %v", r.ev.Seq, *r.trade, err)
			}
			r.ev.Trade = &ts[0]
		}
		if r.orderID != nil {
			o, err := getOrder(ctx, b.db, asn, *r.orderID)
			if err != nil {
				return nil, fmt.Errorf("event %d: %w", r.ev.Seq, err)
			}
			r.ev.Order = &o
		}
		out = append(out, r.ev)
	}
	return out, nil
}

// matrixQuality asks the quality matrix, which prefers the buyer's own
// measurements of the path and falls back to the exchange's pooled view.
type matrixQuality struct {
	m     *quality.Matrix
	fresh time.Duration
}

func (q matrixQuality) Measured(buyer, seller uint32, prefixes []netip.Prefix, now time.Time) *Measured {
	c, err := q.m.PathQuality(context.Background(), buyer, seller, prefixes, now.Add(-q.fresh))
	if err != nil || c == nil {
		return nil // unmeasured: fails any quality limit, which is the safe side
	}
	return &Measured{LatencyUs: c.LatencyUs, JitterUs: c.JitterUs, LossPPM: c.LossPPM, ASHops: c.ASHops, Samples: c.Samples}
}

// OpenCount is the number of orders resting in the book.
func (b *Book) OpenCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.eng == nil {
		return 0
	}
	return b.eng.OpenCount()
}

// Inspect runs f on the engine under the book's lock (status and tests).
func (b *Book) Inspect(f func(*Engine)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b.eng)
}
