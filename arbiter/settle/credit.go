package settle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	// One statement for the member and its standing: the book asks this
	// for every buy, inside its serialized section.
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
	switch {
	case limit.Valid:
		c.Limited, c.LimitMicros = true, limit.Int64
	case s.cfg.DefaultCreditLimitMicros > 0:
		c.Limited, c.LimitMicros = true, s.cfg.DefaultCreditLimitMicros
	}
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
	for _, p := range pending {
		st, en := store.Micros(p.Start), store.Micros(p.End)
		if en > settledThrough {
			c.AccruedMicros += accrued(p.CapacityBps, p.PriceMicros, max(st, settledThrough), min(en, until(st, horizon)))
		}
	}
	c.ExposureMicros = c.UnpaidMicros + c.AccruedMicros
	switch {
	case !c.Limited:
	case c.ExposureMicros >= c.LimitMicros:
		c.State = CreditStopped
	case c.ExposureMicros*100 >= c.LimitMicros*s.cfg.CreditWarnPercent:
		c.State = CreditWarning
	}
	return c, nil
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
func (s *Settlement) MayBuyWith(ctx context.Context, asn uint32, pending []Commitment) error {
	c, err := s.creditWith(ctx, asn, pending)
	if err != nil {
		return err
	}
	if c.State == CreditStopped {
		return &CreditError{Credit: c}
	}
	return nil
}
