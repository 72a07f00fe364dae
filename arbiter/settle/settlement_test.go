package settle_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/invalid"
)

const crashEnv = "BWX_SETTLE_CRASH_DB"

// TestMain lets the test binary double as the process the crash test kills.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(crashEnv); cfg != "" {
		crashChild(cfg)
		return
	}
	storetest.Main(m)
}

// ledger is a database with members A, B, C and D, a Settlement whose clock
// the test sets, and the usage store agents report through.
type ledger struct {
	db    *store.DB
	s     *settle.Settlement
	usage *settle.Usage
	now   time.Time
	ids   map[uint32]int64
}

const asD = 64504

// fataler is what the ledger's helpers need of a test: a testing.TB or a
// rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func newLedger(t testing.TB, cfg settle.Config) *ledger {
	t.Helper()
	db := storetest.Open(t)
	return openLedger(t, db, cfg, true)
}

func openLedger(t testing.TB, db *store.DB, cfg settle.Config, addMembers bool) *ledger {
	l := &ledger{db: db, usage: settle.New(db), now: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), ids: map[uint32]int64{}}
	l.usage.Now = func() time.Time { return l.now }
	ctx := context.Background()
	reg := registry.New(db)
	for i, asn := range []uint32{asA, asB, asC, asD} {
		if addMembers {
			if _, err := reg.AddMember(ctx, registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 100_000 * mbps},
				Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		m, err := registry.GetMember(ctx, db, asn)
		if err != nil {
			t.Fatal(err)
		}
		l.ids[asn] = m.ID
	}
	s, err := settle.NewSettlement(db, settle.Options{Config: cfg, Now: func() time.Time { return l.now }})
	if err != nil {
		t.Fatal(err)
	}
	l.s = s
	return l
}

// addTrade stores a trade the way the book leaves one: two orders and the trade row.
func (l *ledger) addTrade(t fataler, tr settle.Trade) int64 {
	t.Helper()
	var ids [2]int64
	for i, m := range []uint32{tr.BuyerASN, tr.SellerASN} {
		if err := l.db.QueryRow(`INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros, traffic_type,
			start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES (?,?,'198.51.100.0/24',1,?,?,?,0,?,?,1,0,3,0,0) RETURNING id`,
			l.ids[m], i+1, tr.CapacityBps, tr.CapacityBps, tr.PriceMicros, store.Micros(tr.Start), store.Micros(tr.End)).Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	if err := l.db.QueryRow(`INSERT INTO trades (buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
		start_us, end_us, created_us) VALUES (?,?,?,?,'198.51.100.0/24',1,?,?,?,?,0) RETURNING id`, ids[0], ids[1], l.ids[tr.BuyerASN], l.ids[tr.SellerASN],
		tr.CapacityBps, tr.PriceMicros, store.Micros(tr.Start), store.Micros(tr.End)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// report sends both parties' samples for the slots [from, to) of November at bps.
func (l *ledger) report(t testing.TB, trade int64, tr settle.Trade, from, to int, bps int64) {
	t.Helper()
	for _, side := range []struct {
		asn  uint32
		role settle.Role
	}{{tr.BuyerASN, settle.BuyerRole}, {tr.SellerASN, settle.SellerRole}} {
		var ss []settle.Sample
		for i := from; i < to; i++ {
			st := nov.Start.Add(time.Duration(i) * settle.SlotLength)
			ss = append(ss, settle.Sample{IdempotencyKey: fmt.Sprintf("%d/%d", trade, i), TradeID: trade, Role: side.role, Start: st,
				End: st.Add(settle.SlotLength), Bps: bps, SampleCount: 10_000})
		}
		if _, _, err := l.usage.Report(context.Background(), side.asn, ss); err != nil {
			t.Fatal(err)
		}
	}
}

func (l *ledger) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := l.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// balances is each member's ledger sum (0 key: the exchange) and the total.
func (l *ledger) balances(t fataler) (map[int64]int64, int64) {
	t.Helper()
	rows, err := l.db.Query("SELECT coalesce(member_id, 0), sum(amount_micros) FROM ledger WHERE kind <> ? GROUP BY 1", settle.EntryPayment)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m, total := map[int64]int64{}, int64(0)
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		m[id], total = v, total+v
	}
	return m, total
}

// twoTrades is the netting case of the golden tests: A buys 1 Gbps from B
// at 2.00 and sells C 500 Mbps at 3.00, all November. Returns the trade ids.
func (l *ledger) twoTrades(t testing.TB) (int64, int64) {
	t1 := settle.Trade{BuyerASN: asA, SellerASN: asB, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000, Start: nov.Start, End: nov.End}
	t2 := settle.Trade{BuyerASN: asC, SellerASN: asA, CapacityBps: 500 * mbps, PriceMicros: 3_000_000, Start: nov.Start, End: nov.End}
	return l.addTrade(t, t1), l.addTrade(t, t2)
}

func TestRunWritesInvoicesAndLedger(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	id1, _ := l.twoTrades(t)
	l.report(t, id1, settle.Trade{BuyerASN: asA, SellerASN: asB}, 0, 8640, 600*mbps)

	res, err := l.s.Run(ctx, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	// Nets from TestGoldenNettingAndBalance.
	want := map[uint32]int64{asA: -508_750_000, asB: 1_995_000_000, asC: -1_503_750_000}
	bal, total := l.balances(t)
	if total != 0 {
		t.Errorf("ledger sums to %d, want 0", total)
	}
	if bal[0] != 17_500_000 || res.Exchange.FeeIncome != 17_500_000 || res.Exchange.Balance != 0 {
		t.Errorf("exchange account %d, statement %+v; want fee income 17,500,000", bal[0], res.Exchange)
	}
	for asn, net := range want {
		if bal[l.ids[asn]] != net {
			t.Errorf("AS%d ledger %d, want %d", asn, bal[l.ids[asn]], net)
		}
		inv, err := l.s.Invoice(ctx, asn, nov)
		if err != nil || inv.Net != net || inv.ASN != asn {
			t.Errorf("AS%d invoice net %d (AS%d), %v; want %d", asn, inv.Net, inv.ASN, err, net)
		}
		for _, line := range inv.Lines {
			if line.Side == "bought" && line.CounterpartyASN == asn {
				t.Errorf("AS%d's invoice has a line of its own", asn)
			}
		}
	}
	if inv, _ := l.s.Invoice(ctx, asA, nov); len(inv.Lines) != 2 || inv.Lines[0].Slots != 8640 || inv.Lines[0].P95Bps != 600*mbps {
		t.Errorf("A's lines %+v", inv.Lines)
	}
	// D traded nothing: no invoice, and no way to ask for another member's.
	if _, err := l.s.Invoice(ctx, asD, nov); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("D's invoice: %v, want ErrNotFound", err)
	}
	if invs, err := l.s.Invoices(ctx, asB); err != nil || len(invs) != 1 || invs[0].ASN != asB {
		t.Errorf("B's invoices %+v, %v", invs, err)
	}
	if ex, err := l.s.ExchangeStatement(ctx, nov); err != nil || ex != res.Exchange {
		t.Errorf("statement %+v, %v; want %+v", ex, err, res.Exchange)
	}

	// Settled: a second run is refused and writes nothing.
	entries := l.count(t, "ledger")
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); !errors.Is(err, settle.ErrSettled) {
		t.Errorf("second run: %v, want ErrSettled", err)
	}
	if n := l.count(t, "ledger"); n != entries {
		t.Errorf("refused run wrote %d entries", n-entries)
	}
	// A period overlapping the settled one, and one not over yet.
	half := settle.Period{Start: nov.Start.Add(15 * 24 * time.Hour), End: nov.End.Add(-24 * time.Hour)}
	if _, err := l.s.Run(ctx, half, settle.BuyerFigure); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping period: %v", err)
	}
	if _, err := l.s.Run(ctx, settle.Month(2026, time.December), settle.BuyerFigure); err == nil || !strings.Contains(err.Error(), "after now") {
		t.Errorf("December on Dec 5: %v", err)
	}
}

func TestLedgerIsAppendOnly(t *testing.T) {
	l := newLedger(t, terms)
	l.twoTrades(t)
	if _, err := l.s.Run(context.Background(), nov, settle.BuyerFigure); err != nil {
		t.Fatal(err)
	}
	n := l.count(t, "ledger")
	for _, q := range []string{"UPDATE ledger SET amount_micros = 0", "DELETE FROM ledger", "UPDATE invoices SET net_micros = 0",
		"DELETE FROM invoices", "DELETE FROM settlement_runs"} {
		if _, err := l.db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
	if _, total := l.balances(t); l.count(t, "ledger") != n || total != 0 {
		t.Errorf("ledger changed: %d entries (was %d), total %d", l.count(t, "ledger"), n, total)
	}
}

func TestCorrectionWritesOnlyDifferences(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	id1, id2 := l.twoTrades(t)
	t1 := settle.Trade{BuyerASN: asA, SellerASN: asB}
	if _, err := l.s.Correct(ctx, nov, settle.BuyerFigure); !errors.Is(err, settle.ErrNotSettled) {
		t.Errorf("correcting an unsettled period: %v", err)
	}
	l.report(t, id1, t1, 0, 8001, 600*mbps)
	first, err := l.s.Run(ctx, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	entries := l.count(t, "ledger")

	// Nothing new: a correction writes nothing.
	if res, err := l.s.Correct(ctx, nov, settle.BuyerFigure); err != nil || res.Entries != 0 || res.RunID != 0 || l.count(t, "ledger") != entries || l.count(t, "settlement_runs") != 1 {
		t.Fatalf("empty correction: %+v, %v; %d entries", res, err, l.count(t, "ledger")-entries)
	}
	// Late reports: the last 639 slots at 1.8 Gbps, more than the free 5 %
	// (432), so trade 1 gets 800 Mbps overage: 2,400,000,000, and its fees
	// go from 5,000,000 to 11,000,000 each. Differences: overage for buyer
	// and seller, fee for buyer, seller and exchange.
	l.report(t, id1, t1, 8001, 8640, 1800*mbps)
	res, err := l.s.Correct(ctx, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 5 || res.Seq != 1 || l.count(t, "ledger") != entries+5 {
		t.Fatalf("correction wrote %d entries (seq %d), want 5", res.Entries, res.Seq)
	}
	var corrections int
	var overage int64
	l.db.QueryRow("SELECT count(*) FROM ledger WHERE correction = 1 AND run_id = ?", res.RunID).Scan(&corrections)
	l.db.QueryRow("SELECT amount_micros FROM ledger WHERE run_id = ? AND kind = ? AND member_id = ?", res.RunID, settle.EntryOverage, l.ids[asA]).Scan(&overage)
	if corrections != 5 || overage != -2_400_000_000 {
		t.Errorf("%d correction entries, A's overage entry %d; want 5 and -2,400,000,000", corrections, overage)
	}
	// The ledger now matches the revised invoices: A pays 2,000,000,000 +
	// 2,400,000,000 + 11,000,000 and receives 1,496,250,000 from C.
	bal, total := l.balances(t)
	a, _ := l.s.Invoice(ctx, asA, nov)
	if total != 0 || a.Net != -2_914_750_000 || bal[l.ids[asA]] != a.Net {
		t.Errorf("after correction: total %d, A's invoice %d, ledger %d; want 0, -2,914,750,000", total, a.Net, bal[l.ids[asA]])
	}
	// C's invoice did not change: no revised copy.
	var cCopies int
	l.db.QueryRow("SELECT count(*) FROM invoices WHERE member_id = ?", l.ids[asC]).Scan(&cCopies)
	if cCopies != 1 || len(first.Invoices) != 3 {
		t.Errorf("C has %d invoice copies, want 1", cCopies)
	}
	if invs, _ := l.s.Invoices(ctx, asA); len(invs) != 1 || invs[0].Net != a.Net {
		t.Errorf("A's invoice list %+v, want the revised one only", invs)
	}

	// Trade 2 drops off the bill (cancelled, say): a second correction
	// reverses its five entries (committed and fee for C and A, the
	// exchange's fee) and C's revised invoice is empty.
	if _, err := l.db.Exec("UPDATE trades SET cancelled = 1 WHERE id = ?", id2); err != nil {
		t.Fatal(err)
	}
	res, err = l.s.Correct(ctx, nov, settle.BuyerFigure)
	if err != nil || res.Entries != 5 || res.Seq != 2 {
		t.Fatalf("reversal: %+v, %v; want 5 entries, seq 2", res, err)
	}
	bal, total = l.balances(t)
	if c, err := l.s.Invoice(ctx, asC, nov); err != nil || c.Net != 0 || len(c.Lines) != 0 || bal[l.ids[asC]] != 0 || total != 0 {
		t.Errorf("C after reversal: %+v, %v; ledger %d, total %d", c, err, bal[l.ids[asC]], total)
	}
}

func TestRunFailureLeavesNothing(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	l.twoTrades(t)
	boom := errors.New("disk on fire")
	settle.SetBeforeCommit(l.s, func() error { return boom })
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); !errors.Is(err, boom) {
		t.Fatalf("run: %v, want the injected failure", err)
	}
	for _, table := range []string{"settlement_runs", "invoices", "ledger"} {
		if n := l.count(t, table); n != 0 {
			t.Errorf("failed run left %d rows in %s", n, table)
		}
	}
	settle.SetBeforeCommit(l.s, nil)
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); err != nil {
		t.Fatalf("run after the failure: %v", err)
	}
}

// crashChild settles November in the database at path and, with every row
// written but not committed, says so and waits to be killed.
func crashChild(cfg string) {
	db, err := store.OpenConfig(storetest.Decode(cfg))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	s, err := settle.NewSettlement(db, settle.Options{Config: terms, Now: func() time.Time { return nov.End.Add(time.Hour) }})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	settle.SetBeforeCommit(s, func() error {
		fmt.Println("writing")
		select {}
	})
	_, err = s.Run(context.Background(), nov, settle.BuyerFigure)
	fmt.Println("error", err)
	os.Exit(1)
}

func TestKilledRunLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process; skipped with -short")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := storetest.Config(t)
	db, err := store.OpenConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := openLedger(t, db, terms, true)
	for range 20 {
		l.twoTrades(t)
	}
	db.Close()

	cmd := exec.Command(exe, "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
	cmd.Env = append(os.Environ(), crashEnv+"="+storetest.Encode(cfg))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "writing" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, want writing", sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()

	db, err = store.OpenConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l = openLedger(t, db, terms, false)
	for _, table := range []string{"settlement_runs", "invoices", "ledger"} {
		if n := l.count(t, table); n != 0 {
			t.Errorf("killed run left %d rows in %s", n, table)
		}
	}
	res, err := l.s.Run(context.Background(), nov, settle.BuyerFigure)
	if err != nil {
		t.Fatalf("run after the crash: %v", err)
	}
	if _, total := l.balances(t); total != 0 || res.Exchange.Trades != 40 || l.count(t, "invoices") != 3 {
		t.Errorf("after the crash: total %d, %d trades, %d invoices", total, res.Exchange.Trades, l.count(t, "invoices"))
	}
}

func TestCreditControl(t *testing.T) {
	cfg := terms
	cfg.CreditHorizonMonths = 1 // the figures below are to month ends
	l := newLedger(t, cfg)
	ctx := context.Background()
	l.twoTrades(t)
	l.now = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

	// C buys 500 Mbps at 3.00 for November: 1,500,000,000 accrues this month.
	if err := l.s.CheckCredit(ctx, asC); err != nil {
		t.Fatalf("no limit set, none by default: %v", err)
	}
	state := func(asn uint32) settle.Credit {
		t.Helper()
		c, err := l.s.Credit(ctx, asn)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	l.s.SetCreditLimit(ctx, asC, 1_600_000_000) // 93.75 % used
	if c := state(asC); c.State != settle.CreditWarning || c.AccruedMicros != 1_500_000_000 || c.ExposureMicros != 1_500_000_000 || l.s.CheckCredit(ctx, asC) != nil {
		t.Errorf("at 94 %%: %+v, want a warning and buys allowed", c)
	}
	// A trade the book has matched but not yet stored counts as a stored
	// one: 500 Mbps at 3.00 from the 20th accrues 11/30 of 1,500,000,000.
	queued := settle.Commitment{CapacityBps: 500e6, PriceMicros: 3_000_000, Start: l.now, End: l.now.AddDate(0, 1, 0)}
	if err := l.s.CheckCreditWith(ctx, asC, []settle.Commitment{queued}); !errors.Is(err, settle.ErrCreditLimit) ||
		!strings.Contains(err.Error(), "exposure 2050.000000") {
		t.Errorf("with a queued trade: %v, want refused at exposure 2050", err)
	}
	// A commitment not begun counts all the same (a member cannot stack
	// future deliveries past its limit): from its start to the month's end,
	// or its whole first month when that is a later month.
	later := queued
	later.Start = l.now.Add(time.Hour)
	if err := l.s.CheckCreditWith(ctx, asC, []settle.Commitment{later}); !errors.Is(err, settle.ErrCreditLimit) {
		t.Errorf("with a queued trade not begun: %v, want refused", err)
	}
	next := queued
	next.Start = settle.MonthOf(l.now).End
	next.End = next.Start.AddDate(0, 2, 0)
	if err := l.s.CheckCreditWith(ctx, asC, []settle.Commitment{next}); !errors.Is(err, settle.ErrCreditLimit) ||
		!strings.Contains(err.Error(), "exposure 3000.000000") {
		t.Errorf("with a queued trade for next month: %v, want refused at exposure 3000 (its first month counts)", err)
	}
	if _, err := l.s.Credit(ctx, 65999); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown member's credit: %v", err)
	}
	l.s.SetCreditLimit(ctx, asC, 1_500_000_000)
	err := l.s.CheckCredit(ctx, asC)
	var ce *settle.CreditError
	if !errors.Is(err, settle.ErrCreditLimit) || !errors.As(err, &ce) || !strings.Contains(err.Error(), "AS64503") {
		t.Errorf("at the limit: %v, want a CreditError naming AS64503", err)
	}
	if err := l.s.CheckCredit(ctx, asB); err != nil {
		t.Errorf("B, a seller: %v", err)
	}

	// Settled: the accrual becomes C's unpaid invoice (1,503,750,000 with fees).
	l.now = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); err != nil {
		t.Fatal(err)
	}
	if c := state(asC); c.UnpaidMicros != 1_503_750_000 || c.AccruedMicros != 0 || c.State != settle.CreditStopped {
		t.Errorf("after settlement: %+v", c)
	}
	// B is owed money: nothing unpaid.
	if c := state(asB); c.UnpaidMicros != 0 {
		t.Errorf("B: %+v", c)
	}
	if err := l.s.RecordPayment(ctx, asC, 1_503_750_000, "wire 42"); err != nil {
		t.Fatal(err)
	}
	if c := state(asC); c.ExposureMicros != 0 || c.State != settle.CreditOK || l.s.CheckCredit(ctx, asC) != nil {
		t.Errorf("after payment: %+v", c)
	}

	// A default limit from the configuration applies to members without one.
	cfg.DefaultCreditLimitMicros = 100_000_000
	s2, _ := settle.NewSettlement(l.db, settle.Options{Config: cfg, Now: func() time.Time { return l.now }})
	if c, _ := s2.Credit(ctx, asA); !c.Limited || c.LimitMicros != 100_000_000 || c.State != settle.CreditStopped {
		t.Errorf("A under the default limit: %+v", c)
	}
	var ie *invalid.Error
	if err := l.s.SetCreditLimit(ctx, asC, -1); !errors.As(err, &ie) {
		t.Errorf("negative limit: %v", err)
	}
	if err := l.s.RecordPayment(ctx, asC, 0, ""); !errors.As(err, &ie) {
		t.Errorf("zero payment: %v", err)
	}
	if _, err := l.s.Credit(ctx, 64999); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown member: %v", err)
	}
}

func TestInvoiceWriters(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	l.twoTrades(t)
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); err != nil {
		t.Fatal(err)
	}
	inv, err := l.s.Invoice(ctx, asA, nov)
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := inv.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back settle.Invoice
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !reflect.DeepEqual(back, inv) {
		t.Errorf("JSON round trip: %v\n%s", err, js.String())
	}
	var cs bytes.Buffer
	if err := inv.WriteCSV(&cs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&cs).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || !reflect.DeepEqual(rows[0], settle.CSVHeader) {
		t.Fatalf("CSV rows %q", rows)
	}
	netCol := len(settle.CSVHeader) - 1
	if rows[1][3] != "bought" || rows[1][netCol] != "-2005000000" || rows[2][netCol] != "1496250000" || rows[3][3] != "total" || rows[3][netCol] != strconv.FormatInt(inv.Net, 10) {
		t.Errorf("CSV:\n%s", cs.String())
	}
}

func TestDisputesStoredForPartiesOnly(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	id1, _ := l.twoTrades(t)
	// Slots 0..9: the buyer says 1.2 Gbps, the seller 900 Mbps, 10,000
	// samples each (20 combined errors apart); the rest agree at 600 Mbps.
	t1 := settle.Trade{BuyerASN: asA, SellerASN: asB}
	l.report(t, id1, t1, 10, 8640, 600*mbps)
	for _, side := range []struct {
		asn  uint32
		role settle.Role
		bps  int64
	}{{asA, settle.BuyerRole, 1200 * mbps}, {asB, settle.SellerRole, 900 * mbps}} {
		var ss []settle.Sample
		for i := range 10 {
			st := nov.Start.Add(time.Duration(i) * settle.SlotLength)
			ss = append(ss, settle.Sample{IdempotencyKey: fmt.Sprint("d", i), TradeID: id1, Role: side.role, Start: st, End: st.Add(settle.SlotLength), Bps: side.bps, SampleCount: 10_000})
		}
		if _, _, err := l.usage.Report(ctx, side.asn, ss); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.s.Run(ctx, nov, settle.SellerFigure); err != nil {
		t.Fatal(err)
	}
	for asn, want := range map[uint32]int{asA: 10, asB: 10, asC: 0, asD: 0} {
		ds, err := l.s.Disputes(ctx, asn, nov)
		if err != nil || len(ds) != want {
			t.Errorf("AS%d sees %d disputes, %v; want %d", asn, len(ds), err, want)
			continue
		}
		if want > 0 {
			d := ds[0]
			if d.TradeID != id1 || !d.Start.Equal(nov.Start) || d.BuyerBps != 1200*mbps || d.SellerBps != 900*mbps || d.UsedBps != 900*mbps || d.Policy != "seller" {
				t.Errorf("AS%d dispute %+v", asn, d)
			}
		}
	}
	inv, _ := l.s.Invoice(ctx, asA, nov)
	if l := inv.Lines[0]; l.DisputedSlots != 10 || l.Figure != "seller" {
		t.Errorf("A's line: %d disputed, figure %q; want 10, seller", l.DisputedSlots, l.Figure)
	}
}

// A trade that cannot be billed (here a sample stored before usage had
// bounds, big enough to overflow the charges) is set aside with its
// reason; every other trade settles and the ledger balances.
func TestUnbillableTradeIsSetAside(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	id1, id2 := l.twoTrades(t)
	l.report(t, id1, settle.Trade{BuyerASN: asA, SellerASN: asB}, 0, 10, 600*mbps)
	if _, err := l.db.Exec(`INSERT INTO usage_samples (reporter_id, idempotency_key, trade_id, role, start_us, end_us, bps, sample_count)
		VALUES (?, 'old', ?, 1, ?, ?, 9223372036854775000, 1)`, l.ids[asC], id2, store.Micros(nov.Start), store.Micros(nov.Start.Add(settle.SlotLength))); err != nil {
		t.Fatal(err)
	}
	res, err := l.s.Run(ctx, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatalf("one trade stopped the run: %v", err)
	}
	if len(res.SetAside) != 1 || res.SetAside[0].TradeID != id2 || !strings.Contains(res.SetAside[0].Reason, "overflow") {
		t.Fatalf("set aside %+v, want trade %d (overflow)", res.SetAside, id2)
	}
	if res.Exchange.Trades != 1 {
		t.Errorf("statement counts %d trades, want the 1 billed", res.Exchange.Trades)
	}
	if _, total := l.balances(t); total != 0 {
		t.Errorf("ledger sums to %d, want 0", total)
	}
	var n int
	if err := l.db.QueryRow("SELECT count(*) FROM ledger WHERE trade_id = ?", id2).Scan(&n); err != nil || n != 0 {
		t.Errorf("set-aside trade has %d ledger entries (%v), want none", n, err)
	}
	if inv, err := l.s.Invoice(ctx, asB, nov); err != nil || len(inv.Lines) != 1 {
		t.Errorf("the billed trade's seller: %+v, %v", inv, err)
	}
}
