package settle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
)

// Ledger entry kinds (ledger.kind).
const (
	EntryCommitted = 1
	EntryOverage   = 2
	EntryCredit    = 3
	EntryFee       = 4
	EntryPayment   = 5
)

// ErrSettled refuses a second run of a settled period without Correct.
var ErrSettled = errors.New("period already settled")

// ErrNotSettled refuses a correction of a period never settled.
var ErrNotSettled = errors.New("period not settled")

// BreachSource gives the SLA breaches of a trade, the time its path broke
// the trade's quality limits, inside [from, to).
type BreachSource interface {
	Breaches(ctx context.Context, tradeID int64, from, to time.Time) (BreachTimes, error)
}

// BreachTimes are a trade's SLA breaches: Credited were corroborated and
// earn the buyer a credit; Disputed rest on the buyer's word alone and are
// shown, not credited (see QualityBreaches). Each is sorted and merged,
// and they do not overlap.
type BreachTimes struct {
	Credited, Disputed []Interval
}

// GapSource gives the time a trade was not delivered through no fault of
// the buyer, inside [from, to) (arbiter/delivery's record): not charged.
type GapSource interface {
	Gaps(ctx context.Context, tradeID int64, from, to time.Time) ([]Interval, error)
}

// Options configure a Settlement.
type Options struct {
	Config   Config
	Now      func() time.Time // clock.Now by default
	Breaches BreachSource     // nil: no trade breached
	Gaps     GapSource        // nil: every trade delivered all its time
}

// Settlement settles periods into invoices and the ledger, and keeps credit.
type Settlement struct {
	db       *store.DB
	cfg      Config
	now      func() time.Time
	breaches BreachSource
	gaps     GapSource
	credit   creditCache // CheckCreditWith's per-member exposure (credit.go)
	// beforeCommit runs inside the run's transaction after every write;
	// tests make it fail to prove a run is all or nothing.
	beforeCommit func() error
}

// NewSettlement checks o.Config.
func NewSettlement(db *store.DB, o Options) (*Settlement, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = clock.Now
	}
	return &Settlement{db: db, cfg: o.Config, now: o.Now, breaches: o.Breaches, gaps: o.Gaps}, nil
}

// Result is what a run wrote.
type Result struct {
	RunID    int64
	Seq      int // 0 for the first run of the period, then one per correction
	Period   Period
	Policy   Policy
	Invoices []Invoice // every member's invoice for the period as now settled
	Exchange Exchange
	Entries  int        // ledger entries written (for a correction: the differences)
	Use      []UseEvent // sustained overuse and underuse in the period
	// SetAside are the trades that could not be billed, with the reason:
	// one trade never stops a period's settlement for every member. They
	// have no ledger entries; a correction run bills them once they can be.
	SetAside []SetAside
}

// SetAside is a trade left out of a run, and why.
type SetAside struct {
	TradeID int64  `json:"trade_id"`
	Reason  string `json:"reason"`
}

// Run settles period p for the first time: invoices and ledger entries
// commit in one transaction. A period already settled is refused with
// ErrSettled.
func (s *Settlement) Run(ctx context.Context, p Period, policy Policy) (*Result, error) {
	return s.run(ctx, p, policy, false)
}

// Correct settles p again and writes only the differences from what the
// ledger holds for it, as correction entries, and the revised invoices of
// the members whose invoice changed. Nothing changed: Entries is 0 and
// nothing is written.
func (s *Settlement) Correct(ctx context.Context, p Period, policy Policy) (*Result, error) {
	return s.run(ctx, p, policy, true)
}

type entryKey struct {
	member int64 // 0: the exchange
	trade  int64
	kind   int
}

func (s *Settlement) run(ctx context.Context, p Period, policy Policy, correct bool) (*Result, error) {
	biller, err := NewBiller(s.cfg, p, policy)
	if err != nil {
		return nil, err
	}
	if end := s.now(); p.End.After(end) {
		return nil, fmt.Errorf("period %s: ends %s, after now (%s): settle a period once it is over", p, p.End.Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	if _, err := s.checkRuns(ctx, s.db, p, correct); err != nil {
		return nil, err
	}
	// Read outside the write transaction: each query sees a snapshot (WAL)
	// and usage reports are not held up by a long computation.
	bills, memberIDs, aside, err := s.bill(ctx, biller, p)
	if err != nil {
		return nil, err
	}
	invs, ex := Invoices(p, bills)
	if ex.Balance != 0 {
		return nil, fmt.Errorf("settle %s: exchange does not balance (%d micro-units): refusing to write", p, ex.Balance)
	}
	res := &Result{Period: p, Policy: policy, Invoices: invs, Exchange: ex, SetAside: aside}
	for _, b := range bills {
		res.Use = append(res.Use, b.Use...)
	}
	want := map[entryKey]int64{}
	for _, b := range bills {
		if b.From.IsZero() {
			continue
		}
		buyer, seller, id := memberIDs[b.Trade.BuyerASN], memberIDs[b.Trade.SellerASN], b.Trade.ID
		add := func(m int64, kind int, v int64) { want[entryKey{m, id, kind}] += v }
		add(buyer, EntryCommitted, -b.Committed)
		add(seller, EntryCommitted, b.Committed)
		add(buyer, EntryOverage, -b.Overage)
		add(seller, EntryOverage, b.Overage)
		add(buyer, EntryCredit, b.Credit)
		add(seller, EntryCredit, -b.Credit)
		add(buyer, EntryFee, -b.BuyerFee)
		add(seller, EntryFee, -b.SellerFee)
		add(0, EntryFee, b.BuyerFee+b.SellerFee)
	}
	exJSON, _ := json.Marshal(ex)
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		seq, err := s.checkRuns(ctx, tx, p, correct)
		if err != nil {
			return err
		}
		have := map[entryKey]int64{}
		prevDocs := map[int64]string{}
		if correct {
			if have, err = periodEntries(ctx, tx, p); err != nil {
				return err
			}
			if prevDocs, err = latestDocs(ctx, tx, p); err != nil {
				return err
			}
		}
		var diffs []runEntry
		for k, v := range want {
			if d := v - have[k]; d != 0 {
				diffs = append(diffs, runEntry{k, d})
			}
		}
		for k, v := range have {
			if _, ok := want[k]; !ok && v != 0 {
				diffs = append(diffs, runEntry{k, -v})
			}
		}
		docs := map[int64]Invoice{}
		for _, inv := range invs {
			docs[memberIDs[inv.ASN]] = inv
		}
		for m := range prevDocs {
			if _, ok := docs[m]; !ok { // no longer on this period's bill
				asn, err := registry.MemberASN(ctx, tx, m)
				if err != nil {
					return err
				}
				docs[m] = Invoice{ASN: asn, Period: p.String(), Start: p.Start.UTC(), End: p.End.UTC(), Lines: []Line{}}
			}
		}
		if correct && len(diffs) == 0 {
			changed := false
			for m, inv := range docs {
				b, _ := json.Marshal(inv)
				changed = changed || string(b) != prevDocs[m]
			}
			if !changed {
				res.Seq = seq - 1
				return nil
			}
		}
		now := store.Micros(s.now())
		runID, err := insertRun(ctx, tx, p, seq, policy, string(exJSON), now)
		if err != nil {
			return err
		}
		res.RunID, res.Seq = runID, seq
		for m, inv := range docs {
			b, _ := json.Marshal(inv)
			if correct && string(b) == prevDocs[m] {
				continue
			}
			if err := insertInvoice(ctx, tx, runID, m, p, inv.Net, string(b)); err != nil {
				return err
			}
		}
		if err := insertRunEntries(ctx, tx, runID, p, correct, now, diffs); err != nil {
			return err
		}
		res.Entries = len(diffs)
		if err := writeDisputes(ctx, tx, runID, bills); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			return s.beforeCommit()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// bill reads the trades delivering in p and their samples, one trade at a
// time, and bills them. Cancelled trades are left out: the store does not
// yet record when a trade was cancelled.
func (s *Settlement) bill(ctx context.Context, b *Biller, p Period) ([]TradeBill, map[uint32]int64, []SetAside, error) {
	pts, err := book.TradesIn(ctx, s.db, p.Start, p.End)
	if err != nil {
		return nil, nil, nil, err
	}
	ids := map[uint32]int64{}
	var trades []Trade
	for _, t := range pts {
		ids[t.BuyerASN], ids[t.SellerASN] = t.BuyerID, t.SellerID
		trades = append(trades, Trade{ID: t.ID, BuyerASN: t.BuyerASN, SellerASN: t.SellerASN, CapacityBps: t.CapacityBps,
			PriceMicros: t.PriceMicros, Start: t.Start, End: t.End})
	}
	stmt, err := s.db.PrepareContext(ctx, samplesOfTrade)
	if err != nil {
		return nil, nil, nil, err
	}
	defer stmt.Close()
	bills := make([]TradeBill, 0, len(trades))
	var aside []SetAside
	var samples []Sample
	for _, t := range trades {
		from, to, _ := clip(t.Start.UnixMicro(), t.End.UnixMicro(), p.Start.UnixMicro(), p.End.UnixMicro())
		samples, err = readSamples(ctx, stmt, t.ID, from, to, samples[:0])
		if err != nil {
			return nil, nil, nil, err
		}
		var breaches BreachTimes
		if s.breaches != nil {
			if breaches, err = s.breaches.Breaches(ctx, t.ID, store.Time(from), store.Time(to)); err != nil {
				return nil, nil, nil, fmt.Errorf("SLA breaches of trade %d: %w", t.ID, err)
			}
		}
		var gaps []Interval
		if s.gaps != nil {
			if gaps, err = s.gaps.Gaps(ctx, t.ID, store.Time(from), store.Time(to)); err != nil {
				return nil, nil, nil, fmt.Errorf("delivery gaps of trade %d: %w", t.ID, err)
			}
		}
		bill, err := b.Bill(t, samples, breaches.Credited, gaps)
		if err != nil {
			aside = append(aside, SetAside{TradeID: t.ID, Reason: err.Error()})
			continue
		}
		bill.noteDisputed(breaches.Disputed, gaps)
		bills = append(bills, bill)
	}
	return bills, ids, aside, nil
}
