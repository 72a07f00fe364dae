// Package settle turns usage into money (claims 2, 7, 16, 19).
//
// Usage stores the samples agents report. The billing itself is pure:
// Slots groups samples into 5-minute slots with both parties' figures,
// Choose picks the billed figure (the buyer's unless the figures differ by
// more than sampling error allows, then the Policy's), a Biller turns one
// trade's slots, its SLA breaches and its terms into a TradeBill (committed
// charge pro rata by the microsecond, 95th-percentile overage, SLA credit,
// fees) and Invoices nets bills into one Invoice per member and the
// exchange's statement, which balances to zero. UseRule.Events finds
// sustained overuse and underuse. Settlement is the store side: Run writes a
// period's invoices and append-only ledger entries in one transaction,
// Correct writes only differences, and Credit/MayBuy is credit control.
package settle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// Role says which side of a trade reported a sample.
type Role int

const (
	BuyerRole  Role = 1
	SellerRole Role = 2
)

// Sample is the bits/s a party measured for a trade over an interval.
type Sample struct {
	IdempotencyKey string
	TradeID        int64
	Role           Role
	Start, End     time.Time
	Bps            int64
	SampleCount    int64
}

// Usage stores samples.
type Usage struct{ db *store.DB }

// New returns usage over db.
func New(db *store.DB) *Usage { return &Usage{db: db} }

// MaxBatch bounds one report.
const MaxBatch = 10000

func bad(i int, field, format string, args ...any) error {
	return &registry.InvalidError{Field: fmt.Sprintf("samples[%d].%s", i, field), Msg: fmt.Sprintf(format, args...)}
}

// Report stores a batch from reporter, all or nothing. The reporter must be
// the party its role names; a repeated idempotency key is a duplicate.
func (u *Usage) Report(ctx context.Context, reporter uint32, ss []Sample) (accepted, duplicates int, err error) {
	if len(ss) > MaxBatch {
		return 0, 0, &registry.InvalidError{Field: "samples", Msg: fmt.Sprintf("at most %d per report", MaxBatch)}
	}
	for i, s := range ss {
		switch {
		case s.IdempotencyKey == "" || len(s.IdempotencyKey) > 128:
			return 0, 0, bad(i, "idempotency_key", "must be 1..128 characters")
		case s.TradeID <= 0:
			return 0, 0, bad(i, "trade_id", "is required")
		case s.Role != BuyerRole && s.Role != SellerRole:
			return 0, 0, bad(i, "role", "must be buyer or seller")
		case s.Start.IsZero() || !s.End.After(s.Start):
			return 0, 0, bad(i, "interval_end", "must be after interval_start")
		case s.Bps < 0:
			return 0, 0, bad(i, "bits_per_second", "must not be negative")
		case s.SampleCount < 0:
			return 0, 0, bad(i, "sample_count", "must not be negative")
		}
	}
	err = u.db.Tx(ctx, func(tx *sql.Tx) error {
		accepted, duplicates = 0, 0
		r, err := registry.GetMember(ctx, tx, reporter)
		if err != nil {
			return err
		}
		for i, s := range ss {
			var buyer, seller int64
			err := tx.QueryRowContext(ctx, "SELECT buyer_id, seller_id FROM trades WHERE id = ?", s.TradeID).Scan(&buyer, &seller)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if err != nil || (s.Role == BuyerRole && buyer != r.ID) || (s.Role == SellerRole && seller != r.ID) {
				// The same answer for "no such trade" and "not yours".
				return bad(i, "trade_id", "AS%d is not the %s of a trade %d", reporter, map[Role]string{BuyerRole: "buyer", SellerRole: "seller"}[s.Role], s.TradeID)
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO usage_samples (reporter_id, idempotency_key, trade_id, role, start_us, end_us,
				bps, sample_count) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (reporter_id, idempotency_key) DO NOTHING`,
				r.ID, s.IdempotencyKey, s.TradeID, s.Role, store.Micros(s.Start), store.Micros(s.End), s.Bps, s.SampleCount)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				accepted++
			} else {
				duplicates++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err // nothing of the batch was stored
	}
	return accepted, duplicates, nil
}
