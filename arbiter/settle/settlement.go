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
	credit   creditCache // MayBuyWith's per-member exposure (credit.go)
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
		type entry struct {
			k entryKey
			v int64
		}
		var diffs []entry
		for k, v := range want {
			if d := v - have[k]; d != 0 {
				diffs = append(diffs, entry{k, d})
			}
		}
		for k, v := range have {
			if _, ok := want[k]; !ok && v != 0 {
				diffs = append(diffs, entry{k, -v})
			}
		}
		docs := map[int64]Invoice{}
		for _, inv := range invs {
			docs[memberIDs[inv.ASN]] = inv
		}
		for m := range prevDocs {
			if _, ok := docs[m]; !ok { // no longer on this period's bill
				var asn uint32
				if err := tx.QueryRowContext(ctx, "SELECT asn FROM members WHERE id = ?", m).Scan(&asn); err != nil {
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
		r, err := tx.ExecContext(ctx, `INSERT INTO settlement_runs (period_start_us, period_end_us, seq, policy, exchange, created_us)
			VALUES (?,?,?,?,?,?)`, store.Micros(p.Start), store.Micros(p.End), seq, policy.String(), string(exJSON), now)
		if err != nil {
			return err
		}
		runID, _ := r.LastInsertId()
		res.RunID, res.Seq = runID, seq
		for m, inv := range docs {
			b, _ := json.Marshal(inv)
			if correct && string(b) == prevDocs[m] {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO invoices (run_id, member_id, period_start_us, net_micros, document) VALUES (?,?,?,?,?)`,
				runID, m, store.Micros(p.Start), inv.Net, string(b)); err != nil {
				return err
			}
		}
		const cols, row, batch = "run_id, member_id, period_start_us, trade_id, kind, amount_micros, correction, created_us", "(?,?,?,?,?,?,?,?)", 100
		corr := 0
		if correct {
			corr = 1
		}
		for i := 0; i < len(diffs); i += batch {
			chunk := diffs[i:min(i+batch, len(diffs))]
			args := make([]any, 0, len(chunk)*8)
			for _, e := range chunk {
				var member any
				if e.k.member != 0 {
					member = e.k.member
				}
				args = append(args, runID, member, store.Micros(p.Start), e.k.trade, e.k.kind, e.v, corr, now)
			}
			if _, err := tx.ExecContext(ctx, store.InsertRows("ledger", cols, row, len(chunk)), args...); err != nil {
				return err
			}
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

// checkRuns returns the seq the next run of p takes, refusing a first run
// of a settled period, a correction of an unsettled one and any period that
// overlaps a settled one without being it.
func (s *Settlement) checkRuns(ctx context.Context, q registry.Querier, p Period, correct bool) (int, error) {
	var n, other int
	var last sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT count(*), max(seq),
		(SELECT count(*) FROM settlement_runs WHERE period_start_us < ? AND period_end_us > ? AND NOT (period_start_us = ? AND period_end_us = ?))
		FROM settlement_runs WHERE period_start_us = ? AND period_end_us = ?`,
		store.Micros(p.End), store.Micros(p.Start), store.Micros(p.Start), store.Micros(p.End), store.Micros(p.Start), store.Micros(p.End)).Scan(&n, &last, &other)
	switch {
	case err != nil:
		return 0, err
	case other > 0:
		return 0, fmt.Errorf("period %s overlaps a settled period of other bounds", p)
	case n > 0 && !correct:
		return 0, fmt.Errorf("%w: %s (run a correction to change it)", ErrSettled, p)
	case n == 0 && correct:
		return 0, fmt.Errorf("%w: %s (run it before correcting it)", ErrNotSettled, p)
	case n == 0:
		return 0, nil
	}
	return int(last.Int64) + 1, nil
}

func writeDisputes(ctx context.Context, tx *sql.Tx, runID int64, bills []TradeBill) error {
	const cols, row, batch = "run_id, trade_id, slot_us, buyer_bps, buyer_samples, seller_bps, seller_samples, used_bps, policy", "(?,?,?,?,?,?,?,?,?)", 100
	args := make([]any, 0, batch*9)
	flush := func(n int) error {
		if n == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, store.InsertRows("settlement_disputes", cols, row, n), args...)
		args = args[:0]
		return err
	}
	n := 0
	for _, b := range bills {
		for _, d := range b.Disputes {
			args = append(args, runID, d.TradeID, store.Micros(d.Start), d.BuyerBps, d.BuyerSamples, d.SellerBps, d.SellerSamples, d.UsedBps, d.Policy)
			if n++; n == batch {
				if err := flush(n); err != nil {
					return err
				}
				n = 0
			}
		}
	}
	return flush(n)
}

// Disputes lists the disputed slots of member asn's trades in p, from the
// period's latest run; like Invoice it takes only the caller's own ASN.
func (s *Settlement) Disputes(ctx context.Context, asn uint32, p Period) ([]Dispute, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.trade_id, d.slot_us, d.buyer_bps, d.buyer_samples, d.seller_bps, d.seller_samples, d.used_bps, d.policy
		FROM settlement_disputes d JOIN trades t ON t.id = d.trade_id JOIN members m ON m.id IN (t.buyer_id, t.seller_id)
		WHERE m.asn = ? AND d.run_id = (SELECT id FROM settlement_runs WHERE period_start_us = ? AND period_end_us = ? ORDER BY seq DESC LIMIT 1)
		ORDER BY d.trade_id, d.slot_us`, asn, store.Micros(p.Start), store.Micros(p.End))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Dispute
	for rows.Next() {
		var d Dispute
		var slot int64
		if err := rows.Scan(&d.TradeID, &slot, &d.BuyerBps, &d.BuyerSamples, &d.SellerBps, &d.SellerSamples, &d.UsedBps, &d.Policy); err != nil {
			return nil, err
		}
		d.Start = store.Time(slot)
		out = append(out, d)
	}
	return out, rows.Err()
}

func periodEntries(ctx context.Context, tx *sql.Tx, p Period) (map[entryKey]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT coalesce(member_id, 0), trade_id, kind, sum(amount_micros) FROM ledger
		WHERE period_start_us = ? AND run_id IS NOT NULL GROUP BY 1, 2, 3`, store.Micros(p.Start))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[entryKey]int64{}
	for rows.Next() {
		var k entryKey
		var v int64
		if err := rows.Scan(&k.member, &k.trade, &k.kind, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

// latestDocs is each member's latest invoice document for p.
func latestDocs(ctx context.Context, tx *sql.Tx, p Period) (map[int64]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT member_id, document FROM invoices i WHERE period_start_us = ?
		AND run_id = (SELECT max(run_id) FROM invoices j WHERE j.member_id = i.member_id AND j.period_start_us = i.period_start_us)`, store.Micros(p.Start))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[int64]string{}
	for rows.Next() {
		var id int64
		var doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, err
		}
		m[id] = doc
	}
	return m, rows.Err()
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

// samplesOfTrade reads a trade's samples that start in [from, to), for
// readSamples; every reader of usage groups the same rows.
const samplesOfTrade = `SELECT role, start_us, end_us, bps, sample_count FROM usage_samples
	WHERE trade_id = ? AND start_us >= ? AND start_us < ? ORDER BY start_us, id`

func readSamples(ctx context.Context, stmt *sql.Stmt, trade, from, to int64, out []Sample) ([]Sample, error) {
	rows, err := stmt.QueryContext(ctx, trade, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		s := Sample{TradeID: trade}
		var st, en int64
		if err := rows.Scan(&s.Role, &st, &en, &s.Bps, &s.SampleCount); err != nil {
			return nil, err
		}
		s.Start, s.End = store.Time(st), store.Time(en)
		out = append(out, s)
	}
	return out, rows.Err()
}

// Invoice is member asn's invoice for p as last settled. It takes only the
// member's own ASN: the API passes the caller's authenticated identity, so a
// member can never fetch another's.
func (s *Settlement) Invoice(ctx context.Context, asn uint32, p Period) (Invoice, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT i.document FROM invoices i JOIN members m ON m.id = i.member_id
		WHERE m.asn = ? AND i.period_start_us = ? ORDER BY i.run_id DESC LIMIT 1`, asn, store.Micros(p.Start)).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return Invoice{}, fmt.Errorf("invoice of AS%d for %s: %w", asn, p, registry.ErrNotFound)
	}
	if err != nil {
		return Invoice{}, err
	}
	var inv Invoice
	if err := json.Unmarshal([]byte(doc), &inv); err != nil {
		return Invoice{}, fmt.Errorf("invoice of AS%d for %s: %w", asn, p, err)
	}
	return inv, nil
}

// Invoices is every period's latest invoice of member asn, oldest first.
func (s *Settlement) Invoices(ctx context.Context, asn uint32) ([]Invoice, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT i.document FROM invoices i JOIN members m ON m.id = i.member_id
		WHERE m.asn = ? AND i.run_id = (SELECT max(run_id) FROM invoices j WHERE j.member_id = i.member_id AND j.period_start_us = i.period_start_us)
		ORDER BY i.period_start_us`, asn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Invoice
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var inv Invoice
		if err := json.Unmarshal([]byte(doc), &inv); err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

// ExchangeStatement is the exchange's statement for p as last settled.
func (s *Settlement) ExchangeStatement(ctx context.Context, p Period) (Exchange, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT exchange FROM settlement_runs WHERE period_start_us = ? AND period_end_us = ?
		ORDER BY seq DESC LIMIT 1`, store.Micros(p.Start), store.Micros(p.End)).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return Exchange{}, fmt.Errorf("%w: %s", ErrNotSettled, p)
	}
	if err != nil {
		return Exchange{}, err
	}
	var ex Exchange
	return ex, json.Unmarshal([]byte(doc), &ex)
}
