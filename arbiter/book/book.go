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
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/invalid"
)

// ErrNotFound is an unknown order, or one that belongs to another member:
// the two look the same so that nobody learns about other members' orders.
var ErrNotFound = errors.New("not found")

// ErrNotOpen is an order that can no longer change (or is not the caller's).
var ErrNotOpen = errors.New("order is not open")

// Operator is the caller ASN that stands for the exchange operator, who may
// see and cancel every member's orders.
const Operator uint32 = 0

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
	// CreditCheck, if set, is the credit check on a buy (Place, Take, a Modify
	// raising a buy's capacity or price, and a resting buy about to trade).
	// It reads member asn's standing, pending being its buy trades matched
	// but not yet committed (not in the store yet), and returns the check
	// to judge buys by (nil: no limit applies). The check is asked inside
	// the book's serialized section, with the member's open buys as the
	// book holds them, so two buys cannot both pass on the same exposure;
	// CreditCheck itself may be asked before (its store reads then overlap
	// other callers'). An error from either refuses the buy: the book
	// returns it as a *RefusedError.
	CreditCheck func(ctx context.Context, asn uint32, pending []Trade) (BuyCheck, error)
	// Active, if set, says whether a member may trade (see Engine.Active):
	// the registry's check of suspended and removed members. It is asked
	// inside the book's serialized section and must not call the book.
	Active func(asn uint32) error
}

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

	// inflight are the buy trades queued for commit, by buyer: what CreditCheck
	// cannot read from the store yet; bought counts every buy trade made,
	// by buyer, so a check made before taking the lock can tell whether it
	// still holds. Kept only when CreditCheck is set.
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

// Place validates spec, stores the order for member asn and matches it.
// The same non-empty clientID returns the first order and its trades.
func (b *Book) Place(ctx context.Context, asn uint32, spec Spec, clientID string) (Order, []Trade, error) {
	return b.place(ctx, asn, spec, clientID, 0)
}

// Take buys from one sell order only, all or nothing (RFQ). A clear
// ErrOfferGone or ErrOfferChanged says why an offer cannot be taken.
func (b *Book) Take(ctx context.Context, asn uint32, sellID int64, spec Spec, clientID string) (Order, []Trade, error) {
	if spec.Side != Buy {
		return Order{}, nil, invalid.New("spec.side", "taking an offer is a buy")
	}
	if sellID <= 0 {
		return Order{}, nil, invalid.New("offer_order_id", "is required")
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
		e.CreditCheck = b.engineCheck(ctx, pre)
		o, trades, ch, err = e.Place(b.opt.Now(), asn, spec, clientID, only)
		e.CreditCheck = nil
		return ch, err
	})
	var dup *DuplicateError
	if errors.As(err, &dup) {
		// The first order may still be on its way to the disk.
		b.sync()
		if o, err = getOrder(ctx, b.db, asn, dup.ID); err != nil {
			return Order{}, nil, err
		}
		trades, err = orderTrades(ctx, b.db, o.ID)
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
	ts, err := unendedTradesOf(ctx, b.db, asn, now)
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
		e.CreditCheck = b.engineCheck(ctx, nil)
		o, trades, ch, err = e.Modify(b.opt.Now(), asn, id, capacity, price)
		e.CreditCheck = nil
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
