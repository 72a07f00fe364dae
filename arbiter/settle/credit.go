package settle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/invalid"
	"github.com/bwxchange/bwx/shared/units"
)

// ErrCreditLimit is the reason a buy is refused: it would take the
// member's exposure above its credit limit, or the exposure is there
// already.
var ErrCreditLimit = errors.New("credit limit reached")

// CreditState is where a member stands against its limit.
type CreditState int

const (
	CreditOK      CreditState = 0
	CreditWarning CreditState = 1 // at or above the warning percentage
	CreditStopped CreditState = 2 // at or above the limit: no new buys
)

func (c CreditState) String() string {
	return [...]string{"ok", "warning", "stopped"}[c]
}

// Credit is a member's exposure against its limit: what it owes and what
// it has committed to buy, each counted at its worst case.
//   - Unpaid: its unpaid balance (what the ledger says it owes, after
//     payments and what it earned selling).
//   - Accrued: the committed charge of its buy trades not yet invoiced,
//     from the end of the last settled period (or the trade's start) to
//     the trade's end, delivered or still to come.
//   - Orders: its open buy orders, each its remaining capacity at its
//     limit price from its start (or now) to its end.
//
// A long commitment counts up to the horizon (Config.CreditHorizonMonths,
// see horizon). A buy is accepted only when the exposure plus the buy's
// own worst case stays within the limit (Standing.Check), so no order, nor
// any sequence of them, takes the exposure past the limit.
type Credit struct {
	ASN            uint32      `json:"asn"`
	Limited        bool        `json:"limited"` // false: no limit applies
	LimitMicros    int64       `json:"limit_micros"`
	UnpaidMicros   int64       `json:"unpaid_micros"`
	AccruedMicros  int64       `json:"accrued_micros"`
	OrdersMicros   int64       `json:"orders_micros"`
	ExposureMicros int64       `json:"exposure_micros"`
	State          CreditState `json:"state"`
}

// SetCreditLimit sets member asn's limit (the operator's command); 0 stops
// all its new buys.
func (s *Settlement) SetCreditLimit(ctx context.Context, asn uint32, limitMicros int64) error {
	if limitMicros < 0 {
		return invalid.New("limit", "must not be negative")
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		return setLimit(ctx, tx, m.ID, limitMicros, store.Micros(s.now()))
	})
	// Whatever the outcome (a failed commit may still have landed), the
	// next check reads the limit from the store.
	s.credit.forgetLimit(asn)
	return err
}

// RecordPayment books a payment by member asn into the ledger; it lowers
// the unpaid balance and so the exposure.
func (s *Settlement) RecordPayment(ctx context.Context, asn uint32, amountMicros int64, memo string) error {
	if amountMicros <= 0 {
		return invalid.New("amount", "must be positive")
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		return insertPayment(ctx, tx, m.ID, amountMicros, memo, store.Micros(s.now()))
	})
}

// Commitment is capacity bought at a price per Mbps per month over
// [Start, End), counted toward the buyer's exposure: a buy trade not yet
// in the store (the book's group commit has it queued), or a buy order at
// its worst case (its remaining capacity at its limit price, from its
// start or now, whichever is later).
type Commitment struct {
	CapacityBps, PriceMicros int64
	Start, End               time.Time
}

// Credit computes member asn's exposure now, from the store.
func (s *Settlement) Credit(ctx context.Context, asn uint32) (Credit, error) {
	return s.creditWith(ctx, asn, nil)
}

func (s *Settlement) creditWith(ctx context.Context, asn uint32, pending []Commitment) (Credit, error) {
	c := Credit{ASN: asn}
	// From scratch: the report, and the reference the cache (cachedCredit)
	// must equal.
	var id int64
	var limit sql.NullInt64
	var balance, settledThrough int64
	err := s.db.QueryRowContext(ctx, creditSQL, asn).Scan(&id, &limit, &balance, &settledThrough)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("member AS%d: %w", asn, registry.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	c.Limited, c.LimitMicros = s.limitOf(limit)
	c.UnpaidMicros = max(0, -balance)

	now := s.now().UTC()
	h := s.horizonAt(now)
	err = book.EachBuyTrade(ctx, s.db, id, settledThrough, func(t book.BuyRow) {
		c.AccruedMicros = satAdd(c.AccruedMicros, h.charge(t.CapacityBps, t.PriceMicros, t.StartUs, t.EndUs, settledThrough))
	})
	if err != nil {
		return c, err
	}
	c.AccruedMicros = satAdd(c.AccruedMicros, h.sum(pending, settledThrough))

	err = book.EachOpenBuy(ctx, s.db, id, func(o book.BuyRow) {
		c.OrdersMicros = satAdd(c.OrdersMicros, h.charge(o.CapacityBps, o.PriceMicros, max(o.StartUs, now.UnixMicro()), o.EndUs, settledThrough))
	})
	if err != nil {
		return c, err
	}
	creditState(&c, s.cfg.CreditWarnPercent)
	return c, nil
}

// creditState sets c's exposure and its state against the limit.
func creditState(c *Credit, warnPercent int64) {
	c.ExposureMicros = satAdd(satAdd(c.UnpaidMicros, c.AccruedMicros), c.OrdersMicros)
	switch {
	case !c.Limited:
	case c.ExposureMicros >= c.LimitMicros:
		c.State = CreditStopped
	case c.ExposureMicros >= math.MaxInt64/100 || c.ExposureMicros*100 >= c.LimitMicros*warnPercent:
		c.State = CreditWarning
	}
}

// limitOf is the limit that applies to a member whose own is limit:
// its own, else the default, else none.
func (s *Settlement) limitOf(limit sql.NullInt64) (limited bool, micros int64) {
	switch {
	case limit.Valid:
		return true, limit.Int64
	case s.cfg.DefaultCreditLimitMicros > 0:
		return true, s.cfg.DefaultCreditLimitMicros
	}
	return false, 0
}

// horizon is how far commitments count toward exposure, as of one month
// (it changes only when the month does, which keeps the cache valid). A
// commitment in effect now counts up to the end of the current month and
// the months-1 after it; one that starts in a later month counts from its
// start to the end of its first month and the months-1 after that. So a
// ten-year buy counts as at most months calendar months, never as one,
// and a buy for delivery years ahead counts as much as one starting now.
// months 0 counts every commitment to its end.
type horizon struct {
	months int
	next   int64 // start of the month after the current one, µs
	until  int64 // where commitments that start before next stop counting
}

func (s *Settlement) horizonAt(now time.Time) horizon {
	m := MonthOf(now)
	h := horizon{months: s.cfg.CreditHorizonMonths, next: m.End.UnixMicro()}
	if h.months > 0 {
		h.until = m.Start.AddDate(0, h.months, 0).UnixMicro()
	}
	return h
}

// end is where a commitment over [st, en) stops counting.
func (h horizon) end(st, en int64) int64 {
	switch {
	case h.months == 0:
		return en
	case st < h.next:
		return min(en, h.until)
	}
	return min(en, MonthOf(time.UnixMicro(st)).Start.AddDate(0, h.months, 0).UnixMicro())
}

// charge is what a commitment of capBps at price over [st, en) counts
// toward exposure when the periods up to settled are invoiced already.
func (h horizon) charge(capBps, price, st, en, settled int64) int64 {
	if en <= settled {
		return 0
	}
	return committed(capBps, price, max(st, settled), h.end(st, en))
}

// sum is the charge of commitments cs.
func (h horizon) sum(cs []Commitment, settled int64) int64 {
	var total int64
	for _, p := range cs {
		total = satAdd(total, h.charge(p.CapacityBps, p.PriceMicros, store.Micros(p.Start), store.Micros(p.End), settled))
	}
	return total
}

// committed is the committed charge of capBps at price over [from, to),
// month by month (a month's price is for that month's length), rounded
// down at each step and saturating at the largest amount. Rounding down
// keeps it superadditive: a buy's worst case is never less than the sum
// over the trades that fill it and its remainder, so the exposure a check
// allowed cannot grow by rounding as the buy trades. It is a bound for
// credit, not a bill (billing rounds to nearest; the difference is under
// a micro-unit per month).
func committed(capBps, price, from, to int64) int64 {
	if from >= to || capBps <= 0 || price <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(capBps), uint64(price))
	if hi >= 1_000_000 {
		return math.MaxInt64
	}
	monthly, _ := bits.Div64(hi, lo, 1_000_000)
	if monthly > math.MaxInt64 {
		return math.MaxInt64
	}
	var total int64
	for from < to && total < math.MaxInt64 {
		p := MonthOf(time.UnixMicro(from))
		end := min(to, p.End.UnixMicro())
		part := monthly
		if n := p.Micros(); end-from < n {
			// end-from < n: the quotient is below monthly, the divide is safe.
			h, l := bits.Mul64(monthly, uint64(end-from))
			part, _ = bits.Div64(h, l, uint64(n))
		}
		total = satAdd(total, int64(part))
		from = end
	}
	return total
}

// satAdd is a+b for non-negative amounts, held at the largest amount
// instead of overflowing.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// CreditError says why a buy is refused; it wraps ErrCreditLimit.
type CreditError struct {
	Credit Credit
	// Buy says a buy was being added (a new order or one raised); its
	// worst case is AddMicros, counted over up to HorizonMonths months
	// (0: its whole term). false: one of the member's open buys was to
	// trade while its exposure is above the limit.
	Buy           bool
	AddMicros     int64
	HorizonMonths int
}

func (e *CreditError) Error() string {
	c := e.Credit
	m := func(v int64) string { return units.Money(v).Exact() }
	figures := fmt.Sprintf("exposure %s (unpaid %s, accrued %s, open buy orders %s)",
		m(c.ExposureMicros), m(c.UnpaidMicros), m(c.AccruedMicros), m(c.OrdersMicros))
	switch {
	case !e.Buy:
		return fmt.Sprintf("AS%d: credit limit exceeded: %s is above the limit %s; its open buy orders do not trade until a payment or the operator raises the limit",
			c.ASN, figures, m(c.LimitMicros))
	case c.State == CreditStopped:
		return fmt.Sprintf("AS%d: credit limit reached: %s of limit %s; new buy orders are refused until a payment or the operator raises the limit",
			c.ASN, figures, m(c.LimitMicros))
	}
	term := "its whole term"
	switch {
	case e.HorizonMonths == 1:
		term = "its term, up to 1 month"
	case e.HorizonMonths > 1:
		term = fmt.Sprintf("its term, up to %d months", e.HorizonMonths)
	}
	return fmt.Sprintf("AS%d: credit limit: this buy would add %s (its capacity at its limit price over %s) to %s: %s, above the limit %s; buy less, for a shorter term or at a lower price, or pay first",
		c.ASN, m(e.AddMicros), term, figures, m(satAdd(c.ExposureMicros, e.AddMicros)), m(c.LimitMicros))
}

func (e *CreditError) Unwrap() error { return ErrCreditLimit }

// Standing is a member's credit as a buy check reads it: unpaid and
// accrued from the store (through the cache) and the trades queued for
// it. Check judges buys against it without reading anything, so the book
// can ask it inside its serialized section with the orders it holds.
type Standing struct {
	Credit  Credit // OrdersMicros is Check's to add
	settled int64
	horizon horizon
	warn    int64
}

// Check decides whether a buy may trade: nil, or a *CreditError wrapping
// ErrCreditLimit. orders are the member's open buy orders at their worst
// case; buy is the buy to add (a new order, or an open one modified to
// spend more, then left out of orders), nil when one of orders is about to
// trade (met by an incoming sell, or woken by time). A buy is refused when
// the exposure is at the limit already, or the buy's worst case would
// take it above; an open order, already counted, trades unless the
// exposure is above the limit (the limit was lowered, an invoice came).
func (st Standing) Check(orders []Commitment, buy *Commitment) error {
	c := st.Credit
	if !c.Limited {
		return nil
	}
	c.OrdersMicros = st.horizon.sum(orders, st.settled)
	creditState(&c, st.warn)
	if buy == nil {
		if c.ExposureMicros > c.LimitMicros {
			return &CreditError{Credit: c}
		}
		return nil
	}
	add := st.horizon.sum([]Commitment{*buy}, st.settled)
	if c.State == CreditStopped || satAdd(c.ExposureMicros, add) > c.LimitMicros {
		return &CreditError{Credit: c, Buy: true, AddMicros: add, HorizonMonths: st.horizon.months}
	}
	return nil
}

// CheckCredit reports whether member asn may buy at all now (its exposure is
// below its limit): nil, or a *CreditError wrapping ErrCreditLimit.
// Existing trades run on regardless. A warning is not an error: read
// Credit to tell the member.
func (s *Settlement) CheckCredit(ctx context.Context, asn uint32) error {
	return s.CheckCreditWith(ctx, asn, nil)
}

// CheckCreditWith is CheckCredit counting pending, asn's buy trades not yet stored.
func (s *Settlement) CheckCreditWith(ctx context.Context, asn uint32, pending []Commitment) error {
	st, err := s.StandingOf(ctx, asn, pending)
	if err != nil {
		return err
	}
	return st.Check(nil, &Commitment{})
}

// StandingOf reads member asn's standing for buy checks, counting pending,
// its buy trades not yet stored. It answers from the member's cached
// exposure (see creditCache): no read when no limit applies (after the
// member's first check), else reads of what changed since its last check. It is safe
// for concurrent use.
func (s *Settlement) StandingOf(ctx context.Context, asn uint32, pending []Commitment) (Standing, error) {
	return s.cachedCredit(ctx, asn, pending)
}

// creditRecomputeEvery is how often a member's cached accrual is computed
// from scratch even when nothing visible by id changed. The one change an
// id range cannot show is a stored trade being cancelled (trades are never
// deleted, and a cancelled trade is never reinstated); until the next
// recompute its charge still counts, which over-counts the exposure: the
// safe side.
const creditRecomputeEvery = 10 * time.Minute

// creditCache keeps, per member with a limit, its exposure as exact sums
// over id ranges: the ledger up to one id, the accrual of its buy trades
// up to another. Both tables only grow by id in commit order (the ledger
// is append-only by trigger and written in immediate transactions; trades
// are numbered by the book's engine, committed batch by batch in that
// order, one transaction each, and never deleted), so every snapshot holds
// every row below its highest id: a row not seen yet has a higher id, and
// reading "id > last seen" misses nothing.
type creditCache struct {
	mu      sync.Mutex
	members map[uint32]*memberCredit

	// limits holds each checked member's id and own limit, by ASN, so
	// that a check of a member without a limit (the common case) reads
	// nothing. An ASN never changes hands (members are never deleted and
	// their ASN is unique), and a limit is written only by SetCreditLimit,
	// which drops the entry (forgetLimit); limitGen counts the drops, so a
	// read that began before one does not put back what it read.
	limits   map[uint32]memberLimit
	limitGen uint64
	// afterLimitRead, set by a test, runs between a limit's read and its
	// caching.
	afterLimitRead func()

	// The reads, prepared on first use (a check is mostly parse time
	// otherwise); database/sql closes them with the database.
	prepMu sync.Mutex
	stmt   atomic.Pointer[creditStmts]

	// Rows the delta readers read and limits read from the store, for
	// tests to see the cache at work.
	ledgerRows, tradeRows, limitReads atomic.Int64
}

// memberLimit is a member's id and its own limit (not Valid: none set).
type memberLimit struct {
	id    int64
	limit sql.NullInt64
}

// limit is member asn's id and own limit, from the cache or else read
// (and kept) with stmt.
func (c *creditCache) limit(ctx context.Context, stmt *sql.Stmt, asn uint32) (memberLimit, error) {
	c.mu.Lock()
	ml, ok := c.limits[asn]
	gen := c.limitGen
	c.mu.Unlock()
	if ok {
		return ml, nil
	}
	c.limitReads.Add(1)
	if err := stmt.QueryRowContext(ctx, asn).Scan(&ml.id, &ml.limit); err != nil {
		return ml, err
	}
	if c.afterLimitRead != nil {
		c.afterLimitRead()
	}
	c.mu.Lock()
	if c.limitGen == gen {
		if c.limits == nil {
			c.limits = map[uint32]memberLimit{}
		}
		c.limits[asn] = ml
	}
	c.mu.Unlock()
	return ml, nil
}

// forgetLimit drops asn's cached limit (SetCreditLimit changed it).
func (c *creditCache) forgetLimit(asn uint32) {
	c.mu.Lock()
	c.limitGen++
	delete(c.limits, asn)
	c.mu.Unlock()
}

// memberCredit is one member's cached sums; mu is held across the reads
// that advance them, so two checks never add the same rows twice.
type memberCredit struct {
	mu   sync.Mutex
	sums creditSums
}

// creditSums is what memberCredit caches.
type creditSums struct {
	memberID int64

	ledgerID int64 // balance sums the member's ledger entries with id <= ledgerID
	balance  int64

	// accrued is the committed charge of the member's buy trades with
	// id <= tradeID, valid only for settled and horizon (the two inputs of
	// horizon.charge besides the trade) and computed from scratch at
	// fullAt.
	valid   bool
	tradeID int64
	accrued int64
	settled int64
	horizon horizon
	fullAt  time.Time
}

type creditStmts struct {
	limit, ledger *sql.Stmt
	trades        *book.BuyTradesAfter
}

// stmts prepares the cache's reads unless done; a failure is not kept,
// the next check tries again.
func (c *creditCache) stmts(ctx context.Context, db *store.DB) (*creditStmts, error) {
	if st := c.stmt.Load(); st != nil {
		return st, nil
	}
	c.prepMu.Lock()
	defer c.prepMu.Unlock()
	if st := c.stmt.Load(); st != nil {
		return st, nil
	}
	var ps [2]*sql.Stmt
	for i, q := range []string{creditLimitSQL, creditLedgerSQL} {
		var err error
		if ps[i], err = db.PrepareContext(ctx, q); err != nil {
			for _, p := range ps[:i] {
				p.Close()
			}
			return nil, err
		}
	}
	trades, err := book.PrepareBuyTradesAfter(ctx, db)
	if err != nil {
		for _, p := range ps {
			p.Close()
		}
		return nil, err
	}
	st := &creditStmts{limit: ps[0], ledger: ps[1], trades: trades}
	c.stmt.Store(st)
	return st, nil
}

func (c *creditCache) member(asn uint32) *memberCredit {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members == nil {
		c.members = map[uint32]*memberCredit{}
	}
	m := c.members[asn]
	if m == nil {
		m = &memberCredit{}
		c.members[asn] = m
	}
	return m
}

// The cache's reads. creditLimitSQL (credit_limits_sql.go) is all a member
// without a limit costs, once (then creditCache.limits answers).
// creditLedgerSQL (ledger_sql.go) reads
// settledThrough and the ledger delta in one statement, so one snapshot:
// the entries a settlement run wrote and the period it settled are seen
// together or not at all. The trades delta (book.BuyTradesAfter) is read
// after it: trades seen in a later snapshot than settledThrough only add
// real charges, never hide one.

// cachedCredit is creditWith answered from the cache, without the open
// orders (the book holds those: Standing.Check counts them). When no limit
// applies its Credit says Limited false and no figures: nothing is read
// beyond the member and its limit.
func (s *Settlement) cachedCredit(ctx context.Context, asn uint32, pending []Commitment) (Standing, error) {
	st := Standing{Credit: Credit{ASN: asn}, warn: s.cfg.CreditWarnPercent}
	c := &st.Credit
	stmt, err := s.credit.stmts(ctx, s.db)
	if err != nil {
		return st, err
	}
	ml, err := s.credit.limit(ctx, stmt.limit, asn)
	id, limit := ml.id, ml.limit
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("member AS%d: %w", asn, registry.ErrNotFound)
	}
	if err != nil {
		return st, err
	}
	if c.Limited, c.LimitMicros = s.limitOf(limit); !c.Limited {
		return st, nil
	}

	now := s.now().UTC()
	h := s.horizonAt(now)
	m := s.credit.member(asn)
	m.mu.Lock()
	defer m.mu.Unlock()
	// Work on a copy: a failed read leaves the cache as it was.
	n := m.sums
	if n.memberID != id { // first check, or the ASN names another member now
		n = creditSums{memberID: id}
	}
	var settled, dSum, dRows int64
	if err := stmt.ledger.QueryRowContext(ctx, id, n.ledgerID).Scan(&settled, &dSum, &n.ledgerID, &dRows); err != nil {
		return st, err
	}
	n.balance += dSum
	s.credit.ledgerRows.Add(dRows)
	if !n.valid || n.settled != settled || n.horizon != h || now.Before(n.fullAt) || now.Sub(n.fullAt) >= creditRecomputeEvery {
		n.valid, n.tradeID, n.accrued, n.settled, n.horizon, n.fullAt = true, 0, 0, settled, h, now
	}
	var read int64
	err = stmt.trades.Each(ctx, id, n.tradeID, func(t book.BuyRow) {
		read++
		n.tradeID = max(n.tradeID, t.ID)
		if !t.Cancelled {
			n.accrued = satAdd(n.accrued, h.charge(t.CapacityBps, t.PriceMicros, t.StartUs, t.EndUs, settled))
		}
	})
	if err != nil {
		return st, err
	}
	s.credit.tradeRows.Add(read)
	m.sums = n

	c.UnpaidMicros = max(0, -n.balance)
	c.AccruedMicros = satAdd(n.accrued, h.sum(pending, settled))
	creditState(c, st.warn)
	st.settled, st.horizon = settled, h
	return st, nil
}

// BookCreditCheck is the book's credit check (book.Options.CreditCheck):
// the buyer's standing counting its trades still on their way to the
// store, and the check of a buy against it with the buyer's open buys as
// the book holds them.
func (s *Settlement) BookCreditCheck(ctx context.Context, asn uint32, pending []book.Trade) (book.BuyCheck, error) {
	cs := make([]Commitment, len(pending))
	for i, t := range pending {
		cs[i] = Commitment(t.Commitment())
	}
	standing, err := s.StandingOf(ctx, asn, cs)
	if err != nil {
		if ctx.Err() == nil {
			// Not a refusal: say the check itself failed, and no buy passes it.
			return nil, fmt.Errorf("credit check failed, buy not accepted: %w", err)
		}
		return nil, err
	}
	if !standing.Credit.Limited {
		return nil, nil
	}
	return func(open []book.Commitment, buy *book.Commitment) error {
		os := make([]Commitment, len(open))
		for i, c := range open {
			os[i] = Commitment(c)
		}
		if buy == nil {
			return standing.Check(os, nil)
		}
		b := Commitment(*buy)
		return standing.Check(os, &b)
	}, nil
}
