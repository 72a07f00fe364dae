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
// Correct writes only differences, and CheckCredit is credit control.
//
// The package owns the usage_samples, ledger, invoices, settlement_runs,
// settlement_disputes and credit_limits tables: each one's SQL is in the
// file named for it (ledger_sql.go, ...). Members, trades and
// measurements it reads through their owners (registry, book, quality).
package settle

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/invalid"
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
type Usage struct {
	db *store.DB
	// Now is the clock that says what is in the future; tests replace it.
	Now func() time.Time
}

// New returns usage over db.
func New(db *store.DB) *Usage { return &Usage{db: db, Now: clock.Now} }

// What a sample may claim. A member reports for its own trades only, and
// only what its and its counterparty's switch ports could carry: no figure
// above the smaller port's capacity plus UsageTolerance, no interval longer
// than MaxSampleInterval or outside the trade's period (with SampleSkew
// either side, and never ending past now plus SampleSkew), and no more
// packet samples than the port could carry packets in the interval at the
// smallest Ethernet frame (MinFrameBits on the wire). Checked against what
// the exchange knows, not the reporter's word, so no member can overflow a
// bill or widen its own error bar past physics.
const (
	UsageTolerance    = 5 // percent above the port capacity (counter and interval-edge error)
	MaxSampleInterval = time.Hour
	SampleSkew        = 5 * time.Minute
	MinFrameBits      = (64 + 20) * 8 // 64-byte frame plus preamble and inter-frame gap
)

// sampleBounds is what a trade's samples may claim.
type sampleBounds struct {
	buyer, seller int64 // member ids
	start, end    time.Time
	maxBps        int64
}

func (b sampleBounds) check(i int, s Sample, now time.Time) error {
	switch {
	case s.End.Sub(s.Start) > MaxSampleInterval:
		return bad(i, "interval_end", "interval %v is longer than %v", s.End.Sub(s.Start), MaxSampleInterval)
	case s.Start.Before(b.start.Add(-SampleSkew)) || s.End.After(b.end.Add(SampleSkew)):
		return bad(i, "interval_start", "interval %s..%s is outside trade %d's period %s..%s", s.Start.UTC().Format(time.RFC3339),
			s.End.UTC().Format(time.RFC3339), s.TradeID, b.start.UTC().Format(time.RFC3339), b.end.UTC().Format(time.RFC3339))
	case s.End.After(now.Add(SampleSkew)):
		return bad(i, "interval_end", "%s is in the future", s.End.UTC().Format(time.RFC3339))
	case s.Bps > b.maxBps:
		return bad(i, "bits_per_second", "%d is more than the trade's ports can carry (%d bits/s, the smaller port plus %d %%)", s.Bps, b.maxBps, UsageTolerance)
	}
	// Packets the port could carry in the interval, in float: the product
	// of a long interval and a fast port overflows int64 nanoseconds.
	if maxCount := float64(b.maxBps) * s.End.Sub(s.Start).Seconds() / MinFrameBits; float64(s.SampleCount) > maxCount {
		return bad(i, "sample_count", "%d is more packets than the trade's ports can carry in %v (%.0f)", s.SampleCount, s.End.Sub(s.Start), maxCount)
	}
	return nil
}

// MaxBatch bounds one report.
const MaxBatch = 10000

func bad(i int, field, format string, args ...any) error {
	return &invalid.Error{Field: fmt.Sprintf("samples[%d].%s", i, field), Msg: fmt.Sprintf(format, args...)}
}

// Validate checks a sample on its own; i is its index in the batch. What
// it may claim of its trade is checked in Report.
func (s Sample) Validate(i int) error {
	switch {
	case s.IdempotencyKey == "" || len(s.IdempotencyKey) > 128:
		return bad(i, "idempotency_key", "must be 1..128 characters")
	case s.TradeID <= 0:
		return bad(i, "trade_id", "is required")
	case s.Role != BuyerRole && s.Role != SellerRole:
		return bad(i, "role", "must be buyer or seller")
	case s.Start.IsZero() || !s.End.After(s.Start):
		return bad(i, "interval_end", "must be after interval_start")
	case s.Bps < 0:
		return bad(i, "bits_per_second", "must not be negative")
	case s.SampleCount < 0:
		return bad(i, "sample_count", "must not be negative")
	}
	return nil
}

// Report stores a batch from reporter, all or nothing. The reporter must be
// the party its role names; a repeated idempotency key is a duplicate.
func (u *Usage) Report(ctx context.Context, reporter uint32, ss []Sample) (accepted, duplicates int, err error) {
	if len(ss) > MaxBatch {
		return 0, 0, &invalid.Error{Field: "samples", Msg: fmt.Sprintf("at most %d per report", MaxBatch)}
	}
	for i, s := range ss {
		if err := s.Validate(i); err != nil {
			return 0, 0, err
		}
	}
	err = u.db.Tx(ctx, func(tx *sql.Tx) error {
		accepted, duplicates = 0, 0
		r, err := registry.GetMember(ctx, tx, reporter)
		if err != nil {
			return err
		}
		now := u.Now()
		trades := map[int64]sampleBounds{}
		accepted, duplicates, err = store.InsertIdempotent(ctx, tx, insertSample, len(ss), func(i int) ([]any, error) {
			s := ss[i]
			b, ok := trades[s.TradeID]
			if !ok {
				t, found, err := book.TradePortsOf(ctx, tx, s.TradeID)
				if err != nil {
					return nil, err
				}
				if found {
					b.buyer, b.seller, b.start, b.end = t.BuyerID, t.SellerID, t.Start, t.End
					port := min(t.BuyerPortBps, t.SellerPortBps)
					if b.maxBps = port + port/100*UsageTolerance; b.maxBps < port {
						b.maxBps = math.MaxInt64 // beyond int64: the bound is int64 itself
					}
					trades[s.TradeID] = b
				}
			}
			if (s.Role == BuyerRole && b.buyer != r.ID) || (s.Role == SellerRole && b.seller != r.ID) {
				// The same answer for "no such trade" and "not yours".
				return nil, bad(i, "trade_id", "AS%d is not the %s of a trade %d", reporter, map[Role]string{BuyerRole: "buyer", SellerRole: "seller"}[s.Role], s.TradeID)
			}
			if err := b.check(i, s, now); err != nil {
				return nil, err
			}
			return []any{r.ID, s.IdempotencyKey, s.TradeID, s.Role, store.Micros(s.Start), store.Micros(s.End), s.Bps, s.SampleCount}, nil
		})
		return err
	})
	if err != nil {
		return 0, 0, err // nothing of the batch was stored
	}
	return accepted, duplicates, nil
}
