package book

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
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
	TradeCreated EventType = 1
	// A trade ended before its agreed end, or was cancelled before it
	// started, because a party was removed (Engine.EndTrades); the event
	// carries the trade as it now stands.
	TradeEnded          EventType = 3
	TradeCancelledEvent EventType = 4 // the trade's status is then TradeCancelled
	OrderAccepted       EventType = 5
	OrderModified       EventType = 6
	OrderCancelled      EventType = 7
	OrderExpired        EventType = 8
	OrderFilled         EventType = 9
	// Settlement's notifications (claim 16 and credit control), appended
	// with AppendEvents: use outside a trade's capacity carries the trade
	// and Use; a credit event carries Credit and neither trade nor order.
	UseOver       EventType = 10
	UseUnder      EventType = 11
	CreditWarning EventType = 12
	CreditStopped EventType = 13
)

func (t EventType) String() string {
	switch t {
	case TradeCreated:
		return "trade_created"
	case TradeEnded:
		return "trade_ended"
	case TradeCancelledEvent:
		return "trade_cancelled"
	case OrderAccepted:
		return "order_accepted"
	case OrderModified:
		return "order_modified"
	case OrderCancelled:
		return "order_cancelled"
	case OrderExpired:
		return "order_expired"
	case OrderFilled:
		return "order_filled"
	case UseOver:
		return "use_over"
	case UseUnder:
		return "use_under"
	case CreditWarning:
		return "credit_warning"
	case CreditStopped:
		return "credit_stopped"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one entry of a member's event log: about a trade, an order, or
// (credit events) the member itself.
type Event struct {
	Seq       int64
	MemberASN uint32
	Type      EventType
	Time      time.Time
	Trade     *Trade
	Order     *Order
	Use       *UseNotice    // UseOver, UseUnder
	Credit    *CreditNotice // CreditWarning, CreditStopped
}

// UseNotice is a sustained run of a trade's use above or below its
// capacity, as settlement found it.
type UseNotice struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	CapacityBps int64     `json:"capacity_bps"`
	PeakBps     int64     `json:"peak_bps"`
	MinBps      int64     `json:"min_bps"`
}

// CreditNotice is where a member stood against its credit limit when its
// credit state changed.
type CreditNotice struct {
	LimitMicros    int64 `json:"limit_micros"`
	UnpaidMicros   int64 `json:"unpaid_micros"`
	AccruedMicros  int64 `json:"accrued_micros"`
	OrdersMicros   int64 `json:"orders_micros"`
	ExposureMicros int64 `json:"exposure_micros"`
}

// RefusedError is a buy the MayBuy check refused (the member is at its
// credit limit) or could not clear; Err is the check's own explanation.
type RefusedError struct {
	ASN uint32
	Err error
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

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
	// MayBuy, if set, is the credit check on a buy (Place, Take, a Modify
	// raising a buy's capacity or price, and a resting buy about to trade).
	// It reads member asn's standing, pending being its buy trades matched
	// but not yet committed (not in the store yet), and returns the check
	// to judge buys by (nil: no limit applies). The check is asked inside
	// the book's serialized section, with the member's open buys as the
	// book holds them, so two buys cannot both pass on the same exposure;
	// MayBuy itself may be asked before (its store reads then overlap
	// other callers'). An error from either refuses the buy: the book
	// returns it as a *RefusedError.
	MayBuy func(ctx context.Context, asn uint32, pending []Trade) (BuyCheck, error)
	// Active, if set, says whether a member may trade (see Engine.Active):
	// the registry's check of suspended and removed members. It is asked
	// inside the book's serialized section and must not call the book.
	Active func(asn uint32) error
}

// BuyCheck judges a buy of a member against its standing, without
// reading the store: openBuys are its open buy orders at their worst case
// (Order.Commitment), buy the buy to add (a new order, or an open one
// modified to spend more, then not among openBuys), nil when one of
// openBuys is about to trade.
type BuyCheck func(openBuys []Commitment, buy *Commitment) error

// Book is the order book: the in-memory engine, serialized, whose every
// change is committed to the store (in batches, one transaction each)
// before its caller hears of it. Reads come from the store and so show
// only what has been acknowledged.
type Book struct {
	db    *store.DB
	opt   Options
	cm    *committer     // used by commitLoop only
	paths *quality.Paths // the quality matrix's answers, when Options.Quality is nil

	// commits and committed count transactions and the changes they
	// carried (batch size; read after Close).
	commits, committed int

	mu  sync.Mutex // serializes the engine; changes are queued in engine order
	eng *Engine
	err error // set when a failed commit left the engine unusable

	// inflight are the buy trades queued for commit, by buyer: what MayBuy
	// cannot read from the store yet; bought counts every buy trade made,
	// by buyer, so a check made before taking the lock can tell whether it
	// still holds. Kept only when MayBuy is set.
	imu      sync.Mutex
	inflight map[uint32][]Trade
	bought   map[uint32]uint64

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

// Start loads the book from the store and starts committing.
func Start(ctx context.Context, db *store.DB, opt Options) (*Book, error) {
	if opt.Now == nil {
		opt.Now = clock.Now
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
	b := &Book{db: db, opt: opt, done: make(chan struct{}), cm: newCommitter(db), inflight: map[uint32][]Trade{}, bought: map[uint32]uint64{}}
	if opt.Quality == nil {
		b.paths = quality.NewPaths(quality.New(db, opt.Now), opt.Freshness)
	}
	b.qcond = sync.NewCond(&b.qmu)
	if err := b.reload(ctx); err != nil {
		return nil, err
	}
	// Reads the recent measurements now rather than in the first order.
	b.refreshQuality(ctx)
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
	// A member suspended or removed while its orders were being cancelled
	// (the arbiter stopped in between) has them cancelled now; they could
	// not trade meanwhile (Engine.Active).
	if err := b.cancelInactive(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Book) cancelInactive(ctx context.Context) error {
	if b.opt.Active == nil {
		return nil
	}
	var asns []uint32
	b.Inspect(func(e *Engine) {
		seen := map[uint32]bool{}
		for _, o := range e.open {
			if !seen[o.MemberASN] {
				seen[o.MemberASN] = true
				asns = append(asns, o.MemberASN)
			}
		}
	})
	for _, asn := range asns {
		if b.opt.Active(asn) != nil {
			if _, err := b.CancelMember(ctx, asn); err != nil {
				return fmt.Errorf("cancelling the orders of AS%d, which may not trade: %w", asn, err)
			}
		}
	}
	return nil
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
	if len(ch.lookups) > 0 {
		p.ready, p.q = make(chan struct{}), b.eng.Quality
	}
	if b.opt.MayBuy != nil && len(ch.Trades) > 0 {
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

// landed drops the batch's trades from inflight.
func (b *Book) landed(batch []*pending) {
	if b.opt.MayBuy == nil {
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

// creditCheck is the engine's check on a buy: MayBuy with the buyer's
// uncommitted trades, then its check with the buyer's open buys; nil when
// no check is configured. pre, if it holds a standing of the same member
// read before the lock was taken, and no buy trade of that member has been
// made since, is used as it is: the store and inflight together then
// still say what they said. Otherwise MayBuy is asked here, under the
// lock. The open buys come from the engine, under the lock: always as
// they stand.
func (b *Book) creditCheck(ctx context.Context, pre *precheck) func(asn uint32, buy *Order, now time.Time) error {
	if b.opt.MayBuy == nil {
		return nil
	}
	return func(asn uint32, buy *Order, now time.Time) error {
		var check BuyCheck
		var err error
		reuse := false
		if pre != nil && pre.asn == asn {
			b.imu.Lock()
			reuse = b.bought[asn] == pre.bought
			b.imu.Unlock()
		}
		if reuse {
			check, err = pre.check, pre.err
		} else {
			_, check, err = b.askMayBuy(ctx, asn)
		}
		if err != nil || check == nil {
			return err
		}
		var add *Commitment
		var except int64
		if buy != nil {
			c := buy.Commitment(now)
			add, except = &c, buy.ID
		}
		if err := check(b.eng.OpenBuys(asn, now, except), add); err != nil {
			return &RefusedError{ASN: asn, Err: err}
		}
		return nil
	}
}

// precheck is a member's standing read before the book's lock.
type precheck struct {
	asn    uint32
	bought uint64
	check  BuyCheck
	err    error
}

// precheckBuy asks MayBuy for asn outside the lock, so that the store
// reads of concurrent buyers overlap instead of queueing behind the lock.
func (b *Book) precheckBuy(ctx context.Context, asn uint32) *precheck {
	if b.opt.MayBuy == nil {
		return nil
	}
	n, check, err := b.askMayBuy(ctx, asn)
	return &precheck{asn: asn, bought: n, check: check, err: err}
}

// askMayBuy snapshots asn's trades in flight (before reading the store,
// so a trade landing in between is counted twice, never missed) and asks
// MayBuy; it returns the buy count the answer is good for.
func (b *Book) askMayBuy(ctx context.Context, asn uint32) (uint64, BuyCheck, error) {
	b.imu.Lock()
	pending := slices.Clone(b.inflight[asn])
	n := b.bought[asn]
	b.imu.Unlock()
	check, err := b.opt.MayBuy(ctx, asn, pending)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return n, check, err // a caller that gave up was not refused
	}
	return n, nil, &RefusedError{ASN: asn, Err: err}
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
	b.eng.MayBuy = b.creditCheck(context.Background(), nil)
	ch := b.eng.Wake(now)
	b.eng.MayBuy = nil
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

// lookup fills in the quality of ch's trades listed in ch.lookups, in the
// trades and in the events that carry them.
func lookup(q QualitySource, ch *Change) {
	for _, i := range ch.lookups {
		t := &ch.Trades[i]
		m := q.Measured(t.BuyerASN, t.SellerASN, t.Prefixes, t.Created)
		if m == nil || m.Samples == 0 {
			continue
		}
		m = m.Recorded()
		t.Quality = m
		for j := range ch.Events {
			if e := ch.Events[j].Trade; e != nil && e.ID == t.ID {
				e.Quality = m
			}
		}
	}
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
	var pre *precheck
	if spec.Side == Buy {
		pre = b.precheckBuy(ctx, asn)
	}
	b.refreshQuality(ctx)
	ch, err := b.apply(func(e *Engine) (*Change, error) {
		var ch *Change
		var err error
		e.MayBuy = b.creditCheck(ctx, pre)
		o, trades, ch, err = e.Place(b.opt.Now(), asn, spec, clientID, only)
		e.MayBuy = nil
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
	if ch != nil {
		trades = ch.Trades // with their quality filled in
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

// CancelMember cancels every resting order of member asn at once, in one
// change, as the operator's suspension or removal of the member asks;
// each cancellation reaches the member's event stream and the route
// server as any cancel does. It returns the orders cancelled.
func (b *Book) CancelMember(ctx context.Context, asn uint32) ([]Order, error) {
	ch, err := b.apply(func(e *Engine) (*Change, error) { return e.CancelMember(b.opt.Now(), asn), nil })
	if err != nil || ch == nil {
		return nil, err
	}
	return ch.Orders, nil
}

// EndMemberTrades ends every trade of member asn that has not ended, at
// now, for reason (Engine.EndTrades: a running trade ends now, one not
// started is cancelled). Settlement bills a trade up to its end, so both
// parties pay and are paid up to this moment and nothing after; the route
// server withdraws the trades (delivery.Loop reacts to the events) and
// both parties' event streams see them end. Call it only once asn may no
// longer trade (Options.Active), so no new trade of asn can be made while
// its trades are read. It returns the trades as they now stand.
func (b *Book) EndMemberTrades(ctx context.Context, asn uint32, reason string) ([]Trade, error) {
	b.sync() // trades matched before asn stopped trading are in the store
	now := b.opt.Now()
	ts, err := queryTrades(ctx, b.db, selectTrade+` WHERE (bm.asn = ? OR sm.asn = ?) AND t.cancelled = 0 AND t.end_us > ?
		AND t.contract_end_us IS NULL ORDER BY t.id`, asn, asn, store.Micros(now))
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, nil
	}
	ch, err := b.apply(func(e *Engine) (*Change, error) { return e.EndTrades(b.opt.Now(), ts, reason), nil })
	if err != nil || ch == nil {
		return nil, err
	}
	return ch.Ended, nil
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
	b.refreshQuality(ctx)
	ch, err := b.apply(func(e *Engine) (*Change, error) {
		var ch *Change
		var err error
		e.MayBuy = b.creditCheck(ctx, nil)
		o, trades, ch, err = e.Modify(b.opt.Now(), asn, id, capacity, price)
		e.MayBuy = nil
		return ch, err
	})
	if errors.Is(err, ErrNotOpen) {
		return Order{}, nil, b.notOpen(ctx, asn, id)
	}
	if err == nil && ch != nil {
		trades = ch.Trades // with their quality filled in
	}
	return o, trades, err
}

// Expire expires the orders whose delivery period is over, after matching
// what time made tradable (Engine.Wake).
func (b *Book) Expire(ctx context.Context) error {
	b.refreshQuality(ctx)
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
			// Expire reads the new measurements first, which also keeps an
			// order after a quiet spell from waiting for a long backlog.
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
	b.refreshQuality(ctx)
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
		q += " AND " + OpenOrders
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

// Trade returns trade id if asn is a party to it (the operator, 0: any);
// ErrNotFound otherwise, the same for "no such trade" and "not yours".
func (b *Book) Trade(ctx context.Context, asn uint32, id int64) (Trade, error) {
	ts, err := queryTrades(ctx, b.db, selectTrade+" WHERE t.id = ? AND (? = 0 OR bm.asn = ? OR sm.asn = ?)", id, asn, asn, asn)
	if err != nil {
		return Trade{}, err
	}
	if len(ts) == 0 {
		return Trade{}, ErrNotFound
	}
	return ts[0], nil
}

// Unended returns every trade not cancelled whose delivery ends after now:
// the running and the scheduled ones (what the route server must know of),
// without reading the whole trade history.
func (b *Book) Unended(ctx context.Context, now time.Time) ([]Trade, error) {
	return queryTrades(ctx, b.db, selectTrade+" WHERE t.cancelled = 0 AND t.end_us > ? ORDER BY t.id", store.Micros(now))
}

// eventBlock is how many sequence numbers the events_member index groups
// ahead of the member (migration 0009): a commit's events share a few index
// pages, and a reader seeks once per block.
const eventBlock = 4096

// eventsInBlock reads one block of a member's events; its seq / 4096 must
// be the index's expression, word for word.
const eventsInBlock = `SELECT seq, type, created_us, trade_id, order_id, detail FROM events
	WHERE seq / 4096 = ? AND member_id = ? AND seq > ? ORDER BY seq LIMIT ?`

type storedEvent struct {
	ev             Event
	trade, orderID *int64
}

// Events returns asn's events after seq, oldest first, at most limit.
func (b *Book) Events(ctx context.Context, asn uint32, after int64, limit int) ([]Event, error) {
	member, err := registry.MemberIDOf(ctx, b.db, asn)
	if (err == nil && member == 0) || limit <= 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var last int64
	if err := b.db.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM events").Scan(&last); err != nil {
		return nil, err
	}
	var rs []storedEvent
	for block := max(after, 0) / eventBlock; block <= last/eventBlock && len(rs) < limit; block++ {
		if rs, err = b.scanEvents(ctx, rs, asn, block, member, after, limit-len(rs)); err != nil {
			return nil, err
		}
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

// scanEvents appends the rows of one block of asn's events (each
// connection keeps the statement prepared).
func (b *Book) scanEvents(ctx context.Context, rs []storedEvent, asn uint32, block, member, after int64, limit int) ([]storedEvent, error) {
	rows, err := b.db.QueryContext(ctx, eventsInBlock, block, member, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r storedEvent
		var us int64
		var detail sql.NullString
		if err := rows.Scan(&r.ev.Seq, &r.ev.Type, &us, &r.trade, &r.orderID, &detail); err != nil {
			return nil, err
		}
		r.ev.MemberASN, r.ev.Time = asn, store.Time(us)
		if err := parseDetail(&r.ev, detail.String); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// LastEventType is the type of asn's latest event among types, which are
// settlement's notices (UseOver and up), or 0 if it has none (settlement
// asks which credit state a member was last told).
func (b *Book) LastEventType(ctx context.Context, asn uint32, types ...EventType) (EventType, error) {
	if len(types) == 0 {
		return 0, nil
	}
	args := []any{asn}
	for _, t := range types {
		if t < UseOver {
			return 0, fmt.Errorf("LastEventType: %v is not a settlement notice", t)
		}
		args = append(args, t)
	}
	var t EventType
	err := b.db.QueryRowContext(ctx, lastNotice(len(types)), args...).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return t, err
}

// lastNotice selects a member's latest event among n types of
// settlement's notices (10 and up): the events_notice index holds them
// alone, and a query names its condition to use it.
func lastNotice(n int) string {
	return `SELECT e.type FROM events e JOIN members m ON m.id = e.member_id
		WHERE m.asn = ? AND e.type >= 10 AND e.type IN (` + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `) ORDER BY e.seq DESC LIMIT 1`
}

// parseDetail fills a stored event's Use or Credit from its detail JSON.
func parseDetail(ev *Event, detail string) error {
	if detail == "" {
		return nil
	}
	var v any
	switch ev.Type {
	case UseOver, UseUnder:
		ev.Use = &UseNotice{}
		v = ev.Use
	case CreditWarning, CreditStopped:
		ev.Credit = &CreditNotice{}
		v = ev.Credit
	default:
		return nil // a detail this build does not know: the event stands without it
	}
	if err := json.Unmarshal([]byte(detail), v); err != nil {
		return fmt.Errorf("event %d: stored detail: %w", ev.Seq, err)
	}
	return nil
}

// AppendEvents adds settlement's notifications to the members' event logs
// through the same group commit as the book's own changes, then hands them
// to Notify (which wakes the members' streams). A use event is appended
// once per member and (trade, kind, start): sending it again is a no-op.
// It returns the events it appended, numbered. See Engine.Notify for what
// each event must carry; a use event's trade must exist and the member
// must be a party to it.
func (b *Book) AppendEvents(ctx context.Context, evs []Event) ([]Event, error) {
	fresh := make([]Event, 0, len(evs))
	keys := map[string]bool{}
	for i, ev := range evs {
		if ev.Trade != nil && ev.Trade.ID > 0 {
			var n int
			err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM trades t JOIN members bm ON bm.id = t.buyer_id
				JOIN members sm ON sm.id = t.seller_id WHERE t.id = ? AND ? IN (bm.asn, sm.asn)`, ev.Trade.ID, ev.MemberASN).Scan(&n)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, invalid(fmt.Sprintf("events[%d].trade", i), "AS%d has no trade %d", ev.MemberASN, ev.Trade.ID)
			}
		}
		if k := dedupKey(ev); k != "" {
			mk := fmt.Sprint(ev.MemberASN, " ", k)
			if keys[mk] {
				continue
			}
			keys[mk] = true
			var n int
			err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM events e JOIN members m ON m.id = e.member_id
				WHERE m.asn = ? AND e.dedup = ?`, ev.MemberASN, k).Scan(&n)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				continue
			}
		}
		fresh = append(fresh, ev)
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	ch, err := b.apply(func(e *Engine) (*Change, error) { return e.Notify(b.opt.Now(), fresh) })
	if err != nil {
		return nil, err
	}
	return ch.Events, nil
}

// matrixQuality asks the quality matrix, which prefers the buyer's own
// measurements of the path and falls back to the exchange's pooled view.
type matrixQuality struct {
	m     *quality.Paths
	fresh time.Duration
}

// refreshQuality makes the measurements stored so far count in the
// matching that follows; it reads the store outside the book's lock.
func (b *Book) refreshQuality(ctx context.Context) {
	if b.paths != nil {
		b.paths.Refresh(ctx) // on failure, answers come from the store, uncached
	}
}

func (q matrixQuality) Measured(buyer, seller uint32, prefixes []netip.Prefix, now time.Time) *Measured {
	c, err := q.m.PathQuality(context.Background(), buyer, seller, prefixes, now.Add(-q.fresh))
	if err != nil || c == nil {
		return nil // unmeasured: fails any quality limit, which is the safe side
	}
	return &Measured{LatencyUs: c.LatencyUs, JitterUs: c.JitterUs, LossPPM: c.LossPPM, ASHops: c.ASHops, Samples: c.Samples,
		Probes: c.Probes, LatencyErrUs: c.LatencyErrUs, JitterErrUs: c.JitterErrUs, LossDispersion: c.LossDispersion, Vantages: c.Vantages}
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
