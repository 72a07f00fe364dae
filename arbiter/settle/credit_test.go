package settle_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"pgregory.net/rapid"
)

// cached is the figure CheckCreditWith decides on; it also checks that CheckCredit
// refuses exactly when that figure says stopped.
func (l *ledger) cached(t testing.TB, asn uint32) settle.Credit {
	t.Helper()
	ctx := context.Background()
	c, err := settle.CachedCredit(l.s, ctx, asn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.s.CheckCredit(ctx, asn); errors.Is(err, settle.ErrCreditLimit) != (c.State == settle.CreditStopped) {
		t.Fatalf("AS%d: CheckCredit = %v for cached %+v", asn, err, c)
	}
	return c
}

func (l *ledger) full(t testing.TB, asn uint32) settle.Credit {
	t.Helper()
	c, err := l.s.Credit(context.Background(), asn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (l *ledger) cancel(t testing.TB, trade int64) {
	t.Helper()
	if _, err := l.db.Exec("UPDATE trades SET cancelled = 1 WHERE id = ?", trade); err != nil {
		t.Fatal(err)
	}
}

// TestCreditCacheFollowsTheRules walks member C through the rules of the
// Credit doc comment with figures worked out by hand, under a horizon of
// one month (so month ends show); at every step the cached answer must be
// those figures and equal the from-scratch one.
func TestCreditCacheFollowsTheRules(t *testing.T) {
	cfg := terms
	cfg.CreditHorizonMonths = 1
	l := newLedger(t, cfg)
	ctx := context.Background()
	l.now = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	dec, jan := settle.Month(2026, time.December), settle.Month(2027, time.January)
	buy := func(asn uint32, capMbps, price int64, from, to time.Time) func() {
		return func() {
			l.addTrade(t, settle.Trade{BuyerASN: asn, SellerASN: asB, CapacityBps: capMbps * mbps, PriceMicros: price, Start: from, End: to})
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var decJan int64 // the December-January trade, cancelled late on
	steps := []struct {
		name            string
		do              func()
		unpaid, accrued int64
		state           settle.CreditState
		cachedAccrued   int64 // when not 0: the cache over-counts (a cancel it cannot see yet)
	}{
		{"nothing bought", func() { must(l.s.SetCreditLimit(ctx, asC, 1_700_000_000)) }, 0, 0, settle.CreditOK, 0},
		{"C buys all of November, 500 Mbps at 3.00", buy(asC, 500, 3_000_000, nov.Start, nov.End), 0, 1_500_000_000, settle.CreditWarning, 0},
		{"A buys: not C's exposure", buy(asA, 800, 2_000_000, nov.Start, nov.End), 0, 1_500_000_000, settle.CreditWarning, 0},
		{"C buys December-January, 100 Mbps at 2.00: its first month counts", func() {
			decJan = l.addTrade(t, settle.Trade{BuyerASN: asC, SellerASN: asB, CapacityBps: 100 * mbps, PriceMicros: 2_000_000, Start: dec.Start, End: jan.End})
		}, 0, 1_700_000_000, settle.CreditStopped, 0},
		{"C pays 300.00 owing nothing: no change", func() { must(l.s.RecordPayment(ctx, asC, 300_000_000, "ahead")) }, 0, 1_700_000_000, settle.CreditStopped, 0},
		{"limit raised to 2,500.00", func() { must(l.s.SetCreditLimit(ctx, asC, 2_500_000_000)) }, 0, 1_700_000_000, settle.CreditOK, 0},
		{"C buys November-December, 310 Mbps at 1.00: up to November's end", buy(asC, 310, 1_000_000, nov.Start, dec.End), 0, 2_010_000_000, settle.CreditWarning, 0},
		{"five minutes before December", func() { l.now = dec.Start.Add(-5 * time.Minute) }, 0, 2_010_000_000, settle.CreditWarning, 0},
		// Sooner than the periodic recompute: the new month alone must do it.
		{"December: the running month counts", func() { l.now = dec.Start.Add(time.Minute) }, 0, 2_320_000_000, settle.CreditWarning, 0},
		{"December 5th", func() { l.now = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC) }, 0, 2_320_000_000, settle.CreditWarning, 0},
		// Committed 1,810.00 plus 25 bp fees (4.525), less the 300.00 paid.
		{"November settled: its charges become unpaid", func() { _, err := l.s.Run(ctx, nov, settle.BuyerFigure); must(err) }, 1_514_525_000, 510_000_000, settle.CreditWarning, 0},
		{"C pays 1,000.00", func() { must(l.s.RecordPayment(ctx, asC, 1_000_000_000, "wire")) }, 514_525_000, 510_000_000, settle.CreditOK, 0},
		{"limit lowered to 1,000.00", func() { must(l.s.SetCreditLimit(ctx, asC, 1_000_000_000)) }, 514_525_000, 510_000_000, settle.CreditStopped, 0},
		{"January: December unsettled still counts, January too", func() { l.now = time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC) }, 514_525_000, 710_000_000, settle.CreditStopped, 0},
		{"December-January cancelled: the cache over-counts it a while", func() { l.cancel(t, decJan) }, 514_525_000, 310_000_000, settle.CreditWarning, 710_000_000},
		{"ten minutes on the cache recomputes", func() { l.now = l.now.Add(settle.CreditRecomputeEvery) }, 514_525_000, 310_000_000, settle.CreditWarning, 0},
	}
	for _, st := range steps {
		st.do()
		want := settle.Credit{ASN: asC, Limited: true, LimitMicros: l.full(t, asC).LimitMicros, UnpaidMicros: st.unpaid, AccruedMicros: st.accrued,
			ExposureMicros: st.unpaid + st.accrued, State: st.state}
		if full := l.full(t, asC); full != want {
			t.Fatalf("%s: from scratch %+v, want %+v", st.name, full, want)
		}
		if st.cachedAccrued != 0 {
			want.AccruedMicros, want.ExposureMicros = st.cachedAccrued, st.unpaid+st.cachedAccrued
			want.State = settle.CreditStopped
		}
		if got := l.cached(t, asC); got != want {
			t.Fatalf("%s: cached %+v, want %+v", st.name, got, want)
		}
	}
}

// TestCreditCacheReadsOnlyWhatChanged fails if the cache is not used: after
// the first check, a check reads only the rows added since the last one,
// and a member without a limit reads none.
func TestCreditCacheReadsOnlyWhatChanged(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	l.now = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	buy := func(asn uint32, n int) {
		for i := 0; i < n; i++ {
			l.addTrade(t, settle.Trade{BuyerASN: asn, SellerASN: asB, CapacityBps: mbps, PriceMicros: 1_000_000,
				Start: nov.Start.Add(time.Duration(i) * time.Hour), End: nov.End})
		}
	}
	buy(asC, 200)
	buy(asA, 50)
	if err := l.s.SetCreditLimit(ctx, asC, 1_000_000_000_000); err != nil {
		t.Fatal(err)
	}
	var lastL, lastT int64
	reads := func(step string, ledger, trades int64) {
		t.Helper()
		if c, f := l.cached(t, asC), l.full(t, asC); c != f {
			t.Errorf("%s: cached %+v, from scratch %+v", step, c, f)
		}
		// l.cached checks twice (CachedCredit, then CheckCredit): the second
		// finds nothing new.
		L, T := settle.CreditRowsRead(l.s)
		if L-lastL != ledger || T-lastT != trades {
			t.Errorf("%s: read %d ledger and %d trade rows, want %d and %d", step, L-lastL, T-lastT, ledger, trades)
		}
		lastL, lastT = L, T
	}
	reads("first check: C's history", 0, 200)
	reads("nothing new", 0, 0)
	buy(asC, 1)
	buy(asA, 3)
	reads("one more trade of C's (and A's)", 0, 1)
	if err := l.s.RecordPayment(ctx, asC, 5_000_000, "wire"); err != nil {
		t.Fatal(err)
	}
	reads("a payment", 1, 0)
	if err := l.s.SetCreditLimit(ctx, asC, 1); err != nil {
		t.Fatal(err)
	}
	reads("a new limit", 0, 0)
	if l.cached(t, asC).State != settle.CreditStopped {
		t.Error("C under a limit of 1: not stopped")
	}
	lastL, lastT = settle.CreditRowsRead(l.s)
	// A has no limit and none by default: its 53 trades are not read.
	if c := l.cached(t, asA); c.Limited || c.ExposureMicros != 0 {
		t.Errorf("A, no limit: %+v", c)
	}
	if L, T := settle.CreditRowsRead(l.s); L != lastL || T != lastT {
		t.Errorf("A, no limit: read %d ledger and %d trade rows, want none", L-lastL, T-lastT)
	}
	// Nor, once known, its limit: a check of a member without one reads
	// nothing at all.
	limits := settle.CreditLimitReads(l.s)
	for range 10 {
		if err := l.s.CheckCredit(ctx, asA); err != nil {
			t.Fatal(err)
		}
	}
	if n := settle.CreditLimitReads(l.s) - limits; n != 0 {
		t.Errorf("A, no limit, checked 10 times: its limit read %d times, want 0", n)
	}
	l.now = l.now.Add(settle.CreditRecomputeEvery)
	reads("ten minutes on: recomputed", 0, 201)
	l.now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	reads("a new month: recomputed", 0, 201)
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); err != nil {
		t.Fatal(err)
	}
	// The run wrote C's committed charge and fee per trade.
	reads("November settled: recomputed", 2*201, 201)
	reads("nothing new after the run", 0, 0)
}

// TestCreditCacheQueryPlans: both delta reads seek their index (member,
// then id) instead of scanning the member's history. The trades delta and
// the report's open buys are the book's (book's TestCreditQueriesUseTheirIndexes).
func TestCreditCacheQueryPlans(t *testing.T) {
	if storetest.Dialect() != store.SQLite {
		t.Skip("sqlite's query plan (EXPLAIN QUERY PLAN)")
	}
	l := newLedger(t, terms)
	plan := func(q string, args ...any) string {
		t.Helper()
		p, err := l.db.Plan(q, args...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		q    string
		args []any
		want []string
	}{
		{settle.CreditLimitSQL, []any{asC}, []string{"SEARCH m USING COVERING INDEX sqlite_autoindex_members_1 (asn=?)", "SEARCH cl USING INTEGER PRIMARY KEY (rowid=?)"}},
		{settle.CreditLedgerSQL, []any{1, 10}, []string{"SEARCH ledger USING INDEX ledger_member (member_id=? AND id>?)"}},
	} {
		p := plan(c.q, c.args...)
		for _, w := range c.want {
			if !strings.Contains(p, w) {
				t.Errorf("plan of %s\n%s\nlacks %q", c.q, p, w)
			}
		}
		if strings.Contains(p, "SCAN ledger") || strings.Contains(p, "SCAN trades") {
			t.Errorf("plan of %s scans:\n%s", c.q, p)
		}
	}
}

// TestCreditCacheConcurrent: checks of one member from many goroutines,
// while its trades and payments land, never add a row twice.
func TestCreditCacheConcurrent(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	l.now = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	if err := l.s.SetCreditLimit(ctx, asC, 1_000_000_000_000); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.s.CheckCredit(ctx, asC); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 100 {
		l.addTrade(t, settle.Trade{BuyerASN: asC, SellerASN: asB, CapacityBps: mbps, PriceMicros: 1_000_000 + int64(i), Start: nov.Start, End: nov.End})
		if i%10 == 0 {
			if err := l.s.RecordPayment(ctx, asC, 1_000, "wire"); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c, f := l.cached(t, asC), l.full(t, asC); c != f || f.AccruedMicros == 0 {
		t.Errorf("after concurrent checks: cached %+v, from scratch %+v", c, f)
	}
}

// TestCreditLimitCacheFollowsSetCreditLimit: the cached limit never
// outlives SetCreditLimit. While other goroutines keep checking the member
// (reads that may have begun before each change and end after it), a check
// made after each change returns always decides on the new limit.
func TestCreditLimitCacheFollowsSetCreditLimit(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	l.now = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	l.addTrade(t, settle.Trade{BuyerASN: asC, SellerASN: asB, CapacityBps: mbps, PriceMicros: 1_000_000, Start: nov.Start, End: nov.End})
	// A read that saw the old limit (none) is about to be kept when the
	// limit changes: the change wins.
	once := true
	settle.AfterLimitRead(l.s, func() {
		if once {
			once = false
			if err := l.s.SetCreditLimit(ctx, asC, 1); err != nil {
				t.Error(err)
			}
		}
	})
	if err := l.s.CheckCredit(ctx, asC); err != nil {
		t.Fatalf("no limit yet: %v", err)
	}
	settle.AfterLimitRead(l.s, nil)
	if err := l.s.CheckCredit(ctx, asC); !errors.Is(err, settle.ErrCreditLimit) {
		t.Fatalf("limit 1 set while the old one was being read: check says %v", err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					l.s.CheckCredit(ctx, asC)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 200 {
		// 1: below C's one trade, stopped; 1e12: far above it.
		limit := []int64{1e12, 1}[i%2]
		if err := l.s.SetCreditLimit(ctx, asC, limit); err != nil {
			t.Fatal(err)
		}
		err := l.s.CheckCredit(ctx, asC)
		if stopped := errors.Is(err, settle.ErrCreditLimit); stopped != (limit == 1) {
			t.Fatalf("change %d to a limit of %d: check says %v", i, limit, err)
		}
	}
}

// TestCreditCacheMatchesFromScratch: after any sequence of trades (the
// member's and others'), payments, settlement runs and corrections, limit
// changes, cancels and the clock moving (across months too), the cached
// answer is the from-scratch one; after a cancel it may over-count, never
// under-count, and only until the recompute.
func TestCreditCacheMatchesFromScratch(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := terms
		cfg.DefaultCreditLimitMicros = rapid.SampledFrom([]int64{0, 3_000_000_000}).Draw(rt, "default")
		cfg.CreditHorizonMonths = rapid.SampledFrom([]int{0, 1, 2, 12}).Draw(rt, "horizon")
		db, err := store.OpenConfig(storetest.Config(t))
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		l := openLedger(t, db, cfg, true)
		ctx := context.Background()
		l.now = time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
		buyers := []uint32{asA, asC}
		if err := l.s.SetCreditLimit(ctx, asC, rapid.Int64Range(0, 5e9).Draw(rt, "limitC")); err != nil {
			rt.Fatal(err)
		}
		var trades []int64
		var cancelAt time.Time // latest cancel; zero: none
		ops := rapid.IntRange(1, 40).Draw(rt, "ops")
		for i := 0; i < ops; i++ {
			op := rapid.IntRange(0, 6).Draw(rt, "op")
			switch op {
			case 0, 1:
				start := settle.MonthOf(l.now).Start.AddDate(0, rapid.IntRange(-1, 2).Draw(rt, "month"), rapid.IntRange(0, 27).Draw(rt, "day"))
				tr := settle.Trade{BuyerASN: rapid.SampledFrom(buyers).Draw(rt, "buyer"), SellerASN: asB,
					CapacityBps: rapid.Int64Range(1, 1000).Draw(rt, "mbps") * mbps, PriceMicros: rapid.Int64Range(0, 5_000_000).Draw(rt, "price"),
					Start: start, End: start.Add(time.Duration(rapid.IntRange(1, 24*70).Draw(rt, "hours")) * time.Hour)}
				trades = append(trades, l.addTrade(t, tr))
			case 2:
				if err := l.s.RecordPayment(ctx, rapid.SampledFrom(buyers).Draw(rt, "payer"), rapid.Int64Range(1, 2e9).Draw(rt, "paid"), ""); err != nil {
					rt.Fatal(err)
				}
			case 3:
				// Long steps, and short ones (under the periodic recompute)
				// that cross a month's end from just before it.
				if rapid.Bool().Draw(rt, "long") {
					l.now = l.now.Add(time.Duration(rapid.Int64Range(int64(time.Minute), int64(20*24*time.Hour)).Draw(rt, "advance")))
				} else {
					if rapid.Bool().Draw(rt, "toMonthEnd") {
						l.now = settle.MonthOf(l.now).End.Add(-3 * time.Minute)
					}
					l.now = l.now.Add(time.Duration(rapid.IntRange(1, 9).Draw(rt, "minutes")) * time.Minute)
				}
			case 4:
				// Settle (or correct) a month that is over.
				p := settle.MonthOf(settle.MonthOf(l.now).Start.AddDate(0, -rapid.IntRange(1, 3).Draw(rt, "ago"), 0))
				if _, err := l.s.Run(ctx, p, settle.BuyerFigure); errors.Is(err, settle.ErrSettled) {
					_, err = l.s.Correct(ctx, p, settle.BuyerFigure)
					if err != nil {
						rt.Fatal(err)
					}
				} else if err != nil {
					rt.Fatal(err)
				}
			case 5:
				if err := l.s.SetCreditLimit(ctx, rapid.SampledFrom(buyers).Draw(rt, "limited"), rapid.Int64Range(0, 5e9).Draw(rt, "limit")); err != nil {
					rt.Fatal(err)
				}
			case 6:
				if len(trades) > 0 {
					l.cancel(t, rapid.SampledFrom(trades).Draw(rt, "cancelled"))
					cancelAt = l.now
				}
			default:
				panic(fmt.Sprint("op ", op))
			}
			// Sometimes a trade the book has queued, counted on top.
			var pending []settle.Commitment
			if rapid.Bool().Draw(rt, "pending") {
				st := l.now.Add(time.Duration(rapid.IntRange(-24*40, 24*40).Draw(rt, "pendingStart")) * time.Hour)
				pending = append(pending, settle.Commitment{CapacityBps: mbps, PriceMicros: rapid.Int64Range(0, 5_000_000).Draw(rt, "pendingPrice"),
					Start: st, End: st.Add(time.Duration(rapid.IntRange(1, 24*70).Draw(rt, "pendingHours")) * time.Hour)})
			}
			for _, asn := range buyers {
				c, err := settle.CachedCredit(l.s, ctx, asn, pending)
				if err != nil {
					rt.Fatal(err)
				}
				f, err := settle.CreditFromScratch(l.s, ctx, asn, pending)
				if err != nil {
					rt.Fatal(err)
				}
				switch {
				case !f.Limited:
					if c != (settle.Credit{ASN: asn}) {
						rt.Fatalf("AS%d without a limit: cached %+v", asn, c)
					}
				case c == f:
				case !cancelAt.IsZero() && l.now.Sub(cancelAt) < settle.CreditRecomputeEvery && c.ExposureMicros > f.ExposureMicros &&
					c.UnpaidMicros == f.UnpaidMicros && c.LimitMicros == f.LimitMicros:
					// A cancel the cache cannot see yet: over, never under.
				default:
					rt.Fatalf("after op %d, %s: AS%d cached %+v, from scratch %+v", op, l.now.Format(time.RFC3339), asn, c, f)
				}
			}
		}
	})
}

// TestCreditCheckCountsTheBuy: a buy is judged with its own worst case
// (capacity at its limit price over its term, up to the horizon) and the
// member's open buys; figures worked out by hand.
func TestCreditCheckCountsTheBuy(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	// 100 Mbps at 1.00: 100.00 a month.
	tenYears := settle.Commitment{CapacityBps: 100 * mbps, PriceMicros: 1_000_000, Start: now, End: now.AddDate(10, 0, 0)}
	later := tenYears
	later.Start, later.End = time.Date(2028, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2038, 3, 10, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		horizon    int
		buy        settle.Commitment
		worst      int64
		what, says string
	}{
		// November's last 11 days and the 11 months after it.
		{12, tenYears, 36_666_666 + 11*100_000_000, "ten years from now, 12 months", "up to 12 months"},
		// From March 10th (22 of 31 days) to the end of the next February.
		{12, later, 70_967_741 + 11*100_000_000, "ten years from 2028, 12 months", "up to 12 months"},
		// November's last 11 days, the rest of the first month.
		{1, tenYears, 36_666_666, "ten years from now, 1 month", "up to 1 month"},
		// The whole term: 11 days, 119 months, 19 days (each rounded down).
		{0, tenYears, 36_666_666 + 119*100_000_000 + 63_333_333, "ten years from now, whole term", "its whole term"},
	} {
		cfg := terms
		cfg.CreditHorizonMonths = c.horizon
		l := newLedger(t, cfg)
		l.now = now
		if err := l.s.SetCreditLimit(ctx, asC, c.worst); err != nil {
			t.Fatal(err)
		}
		st, err := l.s.StandingOf(ctx, asC, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Check(nil, &c.buy); err != nil {
			t.Errorf("%s: a buy of exactly the limit refused: %v", c.what, err)
		}
		if err := l.s.SetCreditLimit(ctx, asC, c.worst-1); err != nil {
			t.Fatal(err)
		}
		if st, err = l.s.StandingOf(ctx, asC, nil); err != nil {
			t.Fatal(err)
		}
		err = st.Check(nil, &c.buy)
		var ce *settle.CreditError
		if !errors.As(err, &ce) || !errors.Is(err, settle.ErrCreditLimit) || ce.AddMicros != c.worst || !ce.Buy {
			t.Fatalf("%s: a buy one micro-unit above the limit: %v, want refused adding %d", c.what, err, c.worst)
		}
		if m := err.Error(); !strings.Contains(m, "would add") || !strings.Contains(m, c.says) || !strings.Contains(m, "exposure 0.000000") {
			t.Errorf("%s: refusal %q does not say limit, exposure, what it adds and how", c.what, m)
		}
	}

	// Open buys count with the buy; one of them about to trade is judged
	// on the exposure alone.
	cfg := terms
	cfg.CreditHorizonMonths = 1
	l := newLedger(t, cfg)
	l.now = now
	if err := l.s.SetCreditLimit(ctx, asC, 100_000_000); err != nil {
		t.Fatal(err)
	}
	st, err := l.s.StandingOf(ctx, asC, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := []settle.Commitment{tenYears, tenYears}                                                                   // 2 x 36.666666
	small := settle.Commitment{CapacityBps: 10 * mbps, PriceMicros: 1_000_000, Start: now, End: now.AddDate(0, 0, 3)} // 1.00
	if err := st.Check(open, &small); err != nil {
		t.Errorf("74.333332 of 100.00: %v", err)
	}
	if err := st.Check(append(open, tenYears), &small); !errors.Is(err, settle.ErrCreditLimit) || !strings.Contains(err.Error(), "open buy orders 109.999998") {
		t.Errorf("three open buys of 36.666666 and one more: %v, want refused naming the open buys", err)
	}
	if err := st.Check(append(open, tenYears), nil); !errors.Is(err, settle.ErrCreditLimit) {
		t.Errorf("an open buy trading while the exposure is above the limit: %v", err)
	}
	if err := st.Check(open, nil); err != nil {
		t.Errorf("an open buy trading within the limit: %v", err)
	}
}
