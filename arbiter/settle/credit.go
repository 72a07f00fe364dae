package settle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/units"
)

// ErrCreditLimit is the reason a buy is refused: the member's exposure has
// reached its credit limit.
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

// Credit is a member's exposure against its limit. Exposure is its unpaid
// balance (what the ledger says it owes, after payments and what it earned
// selling) plus the committed charges of its buy trades since the last
// settled period, up to the end of the current month, and for a trade that
// starts later, its first month: money it owes or has committed to but has
// not yet been invoiced for. So buys for future delivery count too.
type Credit struct {
	ASN            uint32      `json:"asn"`
	Limited        bool        `json:"limited"` // false: no limit applies
	LimitMicros    int64       `json:"limit_micros"`
	UnpaidMicros   int64       `json:"unpaid_micros"`
	AccruedMicros  int64       `json:"accrued_micros"`
	ExposureMicros int64       `json:"exposure_micros"`
	State          CreditState `json:"state"`
}

// SetCreditLimit sets member asn's limit (the operator's command); 0 stops
// all its new buys.
func (s *Settlement) SetCreditLimit(ctx context.Context, asn uint32, limitMicros int64) error {
	if limitMicros < 0 {
		return invalid("limit", "must not be negative")
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO credit_limits (member_id, limit_micros, updated_us) VALUES (?,?,?)
			ON CONFLICT (member_id) DO UPDATE SET limit_micros = excluded.limit_micros, updated_us = excluded.updated_us`,
			m.ID, limitMicros, store.Micros(s.now()))
		return err
	})
}

// RecordPayment books a payment by member asn into the ledger; it lowers
// the unpaid balance and so the exposure.
func (s *Settlement) RecordPayment(ctx context.Context, asn uint32, amountMicros int64, memo string) error {
	if amountMicros <= 0 {
		return invalid("amount", "must be positive")
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ledger (member_id, kind, amount_micros, memo, created_us) VALUES (?,?,?,?,?)`,
			m.ID, EntryPayment, amountMicros, memo, store.Micros(s.now()))
		return err
	})
}

// Commitment is a buy trade not yet in the store (the book's group commit
// has it queued): its committed charge counts toward the buyer's exposure
// as a stored trade's would.
type Commitment struct {
	CapacityBps, PriceMicros int64
	Start, End               time.Time
}

// Credit computes member asn's exposure now.
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
	err := s.db.QueryRowContext(ctx, `SELECT m.id, (SELECT limit_micros FROM credit_limits WHERE member_id = m.id),
		(SELECT coalesce(sum(amount_micros), 0) FROM ledger WHERE member_id = m.id),
		(SELECT coalesce(max(period_end_us), 0) FROM settlement_runs) FROM members m WHERE m.asn = ?`, asn).
		Scan(&id, &limit, &balance, &settledThrough)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("member AS%d: %w", asn, registry.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	c.Limited, c.LimitMicros = s.limitOf(limit)
	c.UnpaidMicros = max(0, -balance)

	now := s.now().UTC()
	horizon := MonthOf(now).End
	rows, err := s.db.QueryContext(ctx, `SELECT capacity_bps, price_micros, start_us, end_us FROM trades
		WHERE buyer_id = ? AND cancelled = 0 AND end_us > ?`, id, settledThrough)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var capBps, price, st, en int64
		if err := rows.Scan(&capBps, &price, &st, &en); err != nil {
			return c, err
		}
		c.AccruedMicros += accrued(capBps, price, max(st, settledThrough), min(en, until(st, horizon)))
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	c.AccruedMicros += pendingAccrued(pending, settledThrough, horizon)
	s.creditState(&c)
	return c, nil
}

// pendingAccrued is the committed charge of trades not yet stored, counted
// as creditWith counts stored ones.
func pendingAccrued(pending []Commitment, settledThrough int64, horizon time.Time) int64 {
	var total int64
	for _, p := range pending {
		st, en := store.Micros(p.Start), store.Micros(p.End)
		if en > settledThrough {
			total += accrued(p.CapacityBps, p.PriceMicros, max(st, settledThrough), min(en, until(st, horizon)))
		}
	}
	return total
}

// creditState sets c's exposure and its state against the limit.
func (s *Settlement) creditState(c *Credit) {
	c.ExposureMicros = c.UnpaidMicros + c.AccruedMicros
	switch {
	case !c.Limited:
	case c.ExposureMicros >= c.LimitMicros:
		c.State = CreditStopped
	case c.ExposureMicros*100 >= c.LimitMicros*s.cfg.CreditWarnPercent:
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

// until is how far a trade starting at st counts toward exposure: the end
// of the current month, or of its first month if it starts later.
func until(st int64, horizon time.Time) int64 {
	return max(horizon.UnixMicro(), MonthOf(time.UnixMicro(st)).End.UnixMicro())
}

// accrued is the committed charge of [from, to), month by month (a month's
// price is for that month's length).
func accrued(capBps, price, from, to int64) int64 {
	var total int64
	for from < to {
		p := MonthOf(time.UnixMicro(from))
		end := min(to, p.End.UnixMicro())
		total += fraction([]int64{capBps, price, end - from}, []int64{1_000_000, p.Micros()})
		from = end
	}
	return total
}

// CreditError says why a buy is refused; it wraps ErrCreditLimit.
type CreditError struct{ Credit Credit }

func (e *CreditError) Error() string {
	c := e.Credit
	return fmt.Sprintf("AS%d: credit limit reached: exposure %s (unpaid %s, accrued %s) of limit %s; new buy orders are refused until a payment or the operator raises the limit",
		c.ASN, units.Money(c.ExposureMicros).Exact(), units.Money(c.UnpaidMicros).Exact(), units.Money(c.AccruedMicros).Exact(), units.Money(c.LimitMicros).Exact())
}

func (e *CreditError) Unwrap() error { return ErrCreditLimit }

// MayBuy is the check the book (or the API) makes before accepting a buy
// order from member asn: nil, or a *CreditError wrapping ErrCreditLimit.
// Existing trades run on regardless. A warning is not an error: read Credit
// to tell the member.
func (s *Settlement) MayBuy(ctx context.Context, asn uint32) error {
	return s.MayBuyWith(ctx, asn, nil)
}

// MayBuyWith is MayBuy counting pending, asn's buy trades not yet stored.
// It answers from the member's cached exposure (see creditCache): one
// indexed read when no limit applies, else reads of what changed since the
// member's last check. It is safe for concurrent use.
func (s *Settlement) MayBuyWith(ctx context.Context, asn uint32, pending []Commitment) error {
	c, err := s.cachedCredit(ctx, asn, pending)
	if err != nil {
		return err
	}
	if c.State == CreditStopped {
		return &CreditError{Credit: c}
	}
	return nil
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

	// The reads, prepared on first use (a check is mostly parse time
	// otherwise); database/sql closes them with the database.
	prepMu sync.Mutex
	stmt   atomic.Pointer[creditStmts]

	// Rows the delta readers read, for tests to see the cache at work.
	ledgerRows, tradeRows atomic.Int64
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
	// accrued besides the trade) and computed from scratch at fullAt.
	valid   bool
	tradeID int64
	accrued int64
	settled int64
	horizon time.Time
	fullAt  time.Time
}

type creditStmts struct{ limit, ledger, trades *sql.Stmt }

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
	var ps [3]*sql.Stmt
	for i, q := range []string{creditLimitSQL, creditLedgerSQL, creditTradesSQL} {
		var err error
		if ps[i], err = db.PrepareContext(ctx, q); err != nil {
			for _, p := range ps[:i] {
				p.Close()
			}
			return nil, err
		}
	}
	st := &creditStmts{limit: ps[0], ledger: ps[1], trades: ps[2]}
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

// The cache's reads. creditLimitSQL is all a member without a limit
// costs. creditLedgerSQL reads settledThrough and the ledger delta in one
// statement, so one snapshot: the entries a settlement run wrote and the
// period it settled are seen together or not at all. The trades delta is
// read after it: trades seen in a later snapshot than settledThrough only
// add real charges, never hide one.
const (
	creditLimitSQL = `SELECT m.id, cl.limit_micros FROM members m LEFT JOIN credit_limits cl ON cl.member_id = m.id WHERE m.asn = ?`
	// ?1 member id, ?2 last ledger id seen.
	creditLedgerSQL = `SELECT (SELECT coalesce(max(period_end_us), 0) FROM settlement_runs),
		(SELECT coalesce(sum(amount_micros), 0) FROM ledger WHERE member_id = ?1 AND id > ?2),
		(SELECT coalesce(max(id), ?2) FROM ledger WHERE member_id = ?1 AND id > ?2),
		(SELECT count(*) FROM ledger WHERE member_id = ?1 AND id > ?2)`
	creditTradesSQL = `SELECT id, capacity_bps, price_micros, start_us, end_us, cancelled FROM trades WHERE buyer_id = ? AND id > ?`
)

// cachedCredit is creditWith answered from the cache. When no limit
// applies it returns Limited false and no figures: nothing is read beyond
// the member and its limit.
func (s *Settlement) cachedCredit(ctx context.Context, asn uint32, pending []Commitment) (Credit, error) {
	c := Credit{ASN: asn}
	var id int64
	var limit sql.NullInt64
	stmt, err := s.credit.stmts(ctx, s.db)
	if err != nil {
		return c, err
	}
	err = stmt.limit.QueryRowContext(ctx, asn).Scan(&id, &limit)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("member AS%d: %w", asn, registry.ErrNotFound)
	}
	if err != nil {
		return c, err
	}
	if c.Limited, c.LimitMicros = s.limitOf(limit); !c.Limited {
		return c, nil
	}

	now := s.now().UTC()
	horizon := MonthOf(now).End
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
		return c, err
	}
	n.balance += dSum
	s.credit.ledgerRows.Add(dRows)
	if !n.valid || n.settled != settled || !n.horizon.Equal(horizon) || now.Before(n.fullAt) || now.Sub(n.fullAt) >= creditRecomputeEvery {
		n.valid, n.tradeID, n.accrued, n.settled, n.horizon, n.fullAt = true, 0, 0, settled, horizon, now
	}
	rows, err := stmt.trades.QueryContext(ctx, id, n.tradeID)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	var read int64
	for rows.Next() {
		var tid, capBps, price, st, en int64
		var cancelled bool
		if err := rows.Scan(&tid, &capBps, &price, &st, &en, &cancelled); err != nil {
			return c, err
		}
		read++
		n.tradeID = max(n.tradeID, tid)
		if !cancelled && en > settled {
			n.accrued += accrued(capBps, price, max(st, settled), min(en, until(st, horizon)))
		}
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	s.credit.tradeRows.Add(read)
	m.sums = n

	c.UnpaidMicros = max(0, -n.balance)
	c.AccruedMicros = n.accrued + pendingAccrued(pending, settled, horizon)
	s.creditState(&c)
	return c, nil
}
