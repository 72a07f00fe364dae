package settle_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/invalid"
)

// The golden cases bill November 2026: 30 days = 2,592,000 s. Terms:
// overage at 1.5x the price, SLA credit factor 1x, fee 25 bp on each side.
var (
	nov   = settle.Month(2026, time.November)
	terms = func() settle.Config {
		c := settle.DefaultConfig()
		c.OverageMultiplierBP, c.SLACreditFactorBP, c.FeeBP, c.DisputeK = 15_000, 10_000, 25, 3
		return c
	}()
)

const (
	asA, asB, asC = 64501, 64502, 64503
	mbps          = 1_000_000
)

// monthTrade is 1 Gbps at 2.000000 per Mbps per month for all of November.
func monthTrade(id int64, buyer, seller uint32) settle.Trade {
	return settle.Trade{ID: id, BuyerASN: buyer, SellerASN: seller, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000,
		Start: nov.Start.Add(-24 * time.Hour), End: nov.End.Add(24 * time.Hour)}
}

// series makes one buyer and one seller sample per 5-minute slot of
// November; bps(i) gives slot i's rate, both sides agreeing, 10000 samples each.
func series(trade int64, bps func(i int) int64) []settle.Sample {
	var ss []settle.Sample
	for i := 0; i < 8640; i++ {
		st := nov.Start.Add(time.Duration(i) * settle.SlotLength)
		for _, r := range []settle.Role{settle.BuyerRole, settle.SellerRole} {
			ss = append(ss, settle.Sample{TradeID: trade, Role: r, Start: st, End: st.Add(settle.SlotLength), Bps: bps(i), SampleCount: 10_000})
		}
	}
	return ss
}

func bill(t *testing.T, cfg settle.Config, policy settle.Policy, tr settle.Trade, ss []settle.Sample, br []settle.Interval) settle.TradeBill {
	t.Helper()
	b, err := settle.NewBiller(cfg, nov, policy)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Bill(tr, ss, br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

type golden struct{ committed, overage, credit, fee, p95 int64 }

func check(t *testing.T, b settle.TradeBill, g golden) {
	t.Helper()
	if b.Committed != g.committed || b.Overage != g.overage || b.Credit != g.credit || b.BuyerFee != g.fee || b.SellerFee != g.fee || b.P95Bps != g.p95 {
		t.Errorf("bill: committed %d overage %d credit %d fees %d/%d p95 %d\n want committed %d overage %d credit %d fee %d p95 %d",
			b.Committed, b.Overage, b.Credit, b.BuyerFee, b.SellerFee, b.P95Bps, g.committed, g.overage, g.credit, g.fee, g.p95)
	}
	if b.Gross != b.Committed+b.Overage-b.Credit {
		t.Errorf("gross %d != committed + overage - credit", b.Gross)
	}
}

func TestGoldenFullMonthConstant(t *testing.T) {
	// 600 Mbps all month under a 1 Gbps commit: no overage.
	// committed = 1000 Mbps * 2.00 = 2000.00 = 2,000,000,000 micro
	// fee = 2,000,000,000 * 25 / 10000 = 5,000,000 each side
	b := bill(t, terms, settle.BuyerFigure, monthTrade(1, asA, asB), series(1, func(int) int64 { return 600 * mbps }), nil)
	check(t, b, golden{committed: 2_000_000_000, fee: 5_000_000, p95: 600 * mbps})
	if b.Slots != 8640 || b.DisputedSlots != 0 {
		t.Errorf("slots %d disputed %d, want 8640 and 0", b.Slots, b.DisputedSlots)
	}
	invs, ex := settle.Invoices(nov, []settle.TradeBill{b})
	// buyer pays 2,000,000,000 + 5,000,000; seller gets 2,000,000,000 - 5,000,000
	if len(invs) != 2 || invs[0].ASN != asA || invs[0].Net != -2_005_000_000 || invs[1].ASN != asB || invs[1].Net != 1_995_000_000 {
		t.Fatalf("invoices %+v", invs)
	}
	if ex.FeeIncome != 10_000_000 || ex.Balance != 0 {
		t.Errorf("exchange %+v, want fee income 10,000,000 and balance 0", ex)
	}
}

func TestGoldenMidMonthStart(t *testing.T) {
	// Starts 2026-11-16 12:00: delivers 14.5 days = 1,252,800 s of 2,592,000 s = 29/60.
	// committed = 2,000,000,000 * 29/60 = 966,666,666.67 -> 966,666,667
	// fee = 966,666,667 * 25/10000 = 2,416,666.6675 -> 2,416,667
	tr := monthTrade(2, asA, asB)
	tr.Start = time.Date(2026, 11, 16, 12, 0, 0, 0, time.UTC)
	// A sample before the start is not billed: it would be 5 Gbps.
	ss := []settle.Sample{{TradeID: 2, Role: settle.BuyerRole, Start: tr.Start.Add(-settle.SlotLength), End: tr.Start, Bps: 5000 * mbps, SampleCount: 9}}
	b := bill(t, terms, settle.BuyerFigure, tr, ss, nil)
	check(t, b, golden{committed: 966_666_667, fee: 2_416_667})
	if !b.From.Equal(tr.Start) || !b.To.Equal(nov.End) || b.Slots != 0 {
		t.Errorf("delivered %v..%v, %d slots; want %v..%v, 0", b.From, b.To, b.Slots, tr.Start, nov.End)
	}
}

func TestGoldenBurstsInsideFreeFivePercent(t *testing.T) {
	// 8640 slots: rank ceil(0.95 * 8640) = 8208. 432 slots (5 %) at 1.8 Gbps,
	// 8208 at 500 Mbps: the 8208th smallest is 500 Mbps, no overage.
	b := bill(t, terms, settle.BuyerFigure, monthTrade(3, asA, asB), series(3, func(i int) int64 {
		if i%20 == 7 { // 8640/20 = 432 slots
			return 1800 * mbps
		}
		return 500 * mbps
	}), nil)
	check(t, b, golden{committed: 2_000_000_000, fee: 5_000_000, p95: 500 * mbps})
}

func TestGoldenBurstsAboveFreeFivePercent(t *testing.T) {
	// 433 slots at 1.8 Gbps: only 8207 at 500 Mbps, so rank 8208 is 1.8 Gbps.
	// overage = 800 Mbps * 2.00 * 1.5 = 2400.00 = 2,400,000,000
	// gross 4,400,000,000; fee = 4,400,000,000 * 25/10000 = 11,000,000
	b := bill(t, terms, settle.BuyerFigure, monthTrade(4, asA, asB), series(4, func(i int) int64 {
		if i%20 == 7 || i == 8639 {
			return 1800 * mbps
		}
		return 500 * mbps
	}), nil)
	check(t, b, golden{committed: 2_000_000_000, overage: 2_400_000_000, fee: 11_000_000, p95: 1800 * mbps})
	if b.OverageBps != 800*mbps {
		t.Errorf("overage %d bps, want 800 Mbps", b.OverageBps)
	}
}

func TestGoldenSLABreaches(t *testing.T) {
	// Breaches Nov 3 10:00-12:00 and 11:00-13:00 overlap: 3 h; Oct 31 23:00 -
	// Nov 1 01:00 counts 1 h inside November. 4 h = 14,400 s = 1/180 of the month.
	// credit = 2,000,000,000 / 180 * 1x = 11,111,111.1 -> 11,111,111
	// gross = 1,988,888,889; fee = 1,988,888,889 * 25/10000 = 4,972,222.2225 -> 4,972,222
	d3 := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	br := []settle.Interval{{Start: d3.Add(10 * time.Hour), End: d3.Add(12 * time.Hour)}, {Start: d3.Add(11 * time.Hour), End: d3.Add(13 * time.Hour)},
		{Start: nov.Start.Add(-time.Hour), End: nov.Start.Add(time.Hour)}}
	b := bill(t, terms, settle.BuyerFigure, monthTrade(5, asA, asB), nil, br)
	check(t, b, golden{committed: 2_000_000_000, credit: 11_111_111, fee: 4_972_222})
	if b.BreachedMicros != 14_400_000_000 {
		t.Errorf("breached %d us, want 14,400 s", b.BreachedMicros)
	}
	invs, ex := settle.Invoices(nov, []settle.TradeBill{b})
	// buyer: -(1,988,888,889 + 4,972,222) = -1,993,861,111; seller: 1,988,888,889 - 4,972,222 = 1,983,916,667
	if invs[0].Net != -1_993_861_111 || invs[1].Net != 1_983_916_667 || ex.Balance != 0 || ex.FeeIncome != 9_944_444 {
		t.Errorf("nets %d %d, exchange %+v", invs[0].Net, invs[1].Net, ex)
	}
	if l := invs[0].Lines[0]; l.Credit != 11_111_111 || l.Committed != -2_000_000_000 {
		t.Errorf("buyer line %+v: want committed -2,000,000,000 and credit +11,111,111", l)
	}
}

func TestGoldenNettingAndBalance(t *testing.T) {
	// A buys 1 Gbps from B at 2.00 (trade 1) and sells 500 Mbps to C at 3.00 (trade 2).
	// trade 1: gross 2,000,000,000, fee 5,000,000 each side
	// trade 2: gross 500 * 3.00 = 1,500,000,000, fee 3,750,000 each side
	// A: -2,005,000,000 + 1,496,250,000 = -508,750,000 (paid 2,000,000,000, received 1,500,000,000, fees 8,750,000)
	// B: +1,995,000,000   C: -1,503,750,000   exchange: 10,000,000 + 7,500,000 = 17,500,000
	// -508,750,000 + 1,995,000,000 - 1,503,750,000 + 17,500,000 = 0
	t2 := monthTrade(2, asC, asA)
	t2.CapacityBps, t2.PriceMicros = 500*mbps, 3_000_000
	b1 := bill(t, terms, settle.BuyerFigure, monthTrade(1, asA, asB), nil, nil)
	b2 := bill(t, terms, settle.BuyerFigure, t2, nil, nil)
	invs, ex := settle.Invoices(nov, []settle.TradeBill{b1, b2})
	want := map[uint32][4]int64{ // net, paid, received, fees
		asA: {-508_750_000, 2_000_000_000, 1_500_000_000, 8_750_000},
		asB: {1_995_000_000, 0, 2_000_000_000, 5_000_000},
		asC: {-1_503_750_000, 1_500_000_000, 0, 3_750_000},
	}
	if len(invs) != 3 {
		t.Fatalf("%d invoices, want 3", len(invs))
	}
	for _, inv := range invs {
		w := want[inv.ASN]
		if got := [4]int64{inv.Net, inv.Paid, inv.Received, inv.Fees}; got != w {
			t.Errorf("AS%d: net, paid, received, fees = %v, want %v", inv.ASN, got, w)
		}
	}
	if a := invs[0]; len(a.Lines) != 2 || a.Lines[0].Side != "bought" || a.Lines[1].Side != "sold" || a.Lines[1].CounterpartyASN != asC {
		t.Errorf("A's lines: %+v", a.Lines)
	}
	if ex.FeeIncome != 17_500_000 || ex.MemberNet != -17_500_000 || ex.Balance != 0 || ex.Trades != 2 || ex.Members != 3 {
		t.Errorf("exchange %+v", ex)
	}
}

func TestGoldenDisputePolicy(t *testing.T) {
	// Buyer says 1.2 Gbps, seller 900 Mbps, 10,000 samples each: errors 12 and
	// 9 Mbps, combined 15 Mbps; 300 Mbps apart is 20 errors > 3: disputed.
	// buyer/max: overage 200 Mbps * 2.00 * 1.5 = 600,000,000; seller/min: none.
	ss := series(6, func(int) int64 { return 0 })
	for i := range ss {
		ss[i].Bps = map[settle.Role]int64{settle.BuyerRole: 1200 * mbps, settle.SellerRole: 900 * mbps}[ss[i].Role]
	}
	for _, c := range []struct {
		p       settle.Policy
		overage int64
	}{{settle.BuyerFigure, 600_000_000}, {settle.MaxFigure, 600_000_000}, {settle.SellerFigure, 0}, {settle.MinFigure, 0}} {
		b := bill(t, terms, c.p, monthTrade(6, asA, asB), ss, nil)
		if b.Overage != c.overage || b.DisputedSlots != 8640 || len(b.Disputes) != 8640 {
			t.Errorf("%v: overage %d, %d disputed; want %d, 8640", c.p, b.Overage, b.DisputedSlots, c.overage)
		}
		invs, _ := settle.Invoices(nov, []settle.TradeBill{b})
		if l := invs[0].Lines[0]; l.Figure != c.p.String() || l.DisputedSlots != 8640 {
			t.Errorf("%v: line says figure %q, %d disputed", c.p, l.Figure, l.DisputedSlots)
		}
		if d := b.Disputes[0]; d.BuyerBps != 1200*mbps || d.SellerBps != 900*mbps || d.BuyerSamples != 10_000 {
			t.Errorf("%v: dispute %+v lacks both figures", c.p, d)
		}
	}
}

// errs is the default error model: 1 in 100 sampling, 1518-byte frames.
var errs = settle.DefaultConfig().Errors()

func TestDisputed(t *testing.T) {
	slot, second := int64(300e6), int64(1e6)
	f := func(bps, count, micros int64) settle.Figure {
		return settle.Figure{Bps: bps, Samples: count, Micros: micros, OK: true}
	}
	cases := []struct {
		name string
		e    settle.Errors
		a, b settle.Figure
		want bool
	}{
		// Over a second 600 Mbit/s is at least 494 samples: an error of
		// 4.5 %, and 3 combined errors are 114 Mbit/s.
		{"within error", errs, f(600*mbps, 0, second), f(500*mbps, 0, second), false},
		// Over a slot, at least 148,221 samples: 3 combined errors are 6.6 Mbit/s.
		{"outside error", errs, f(600*mbps, 0, slot), f(580*mbps, 0, slot), true},
		{"equal", errs, f(600*mbps, 0, slot), f(600*mbps, 0, slot), false},
		{"zero against traffic", errs, f(0, 0, slot), f(600*mbps, 0, slot), true},
		{"no traffic on both sides", errs, f(0, 0, slot), f(0, 0, slot), false},
		{"one side missing", errs, f(600*mbps, 0, slot), settle.Figure{}, false},
		// The attack: a party claims one sample to widen the error bar.
		// The bar rests on the facts, not on the claim.
		{"buyer claims 1 sample", errs, f(580*mbps, 1, slot), f(600*mbps, 150_000, slot), true},
		{"both claim 1 sample", errs, f(580*mbps, 1, slot), f(600*mbps, 1, slot), true},
		{"claims of many samples do not narrow the bar", errs, f(600*mbps, 1e9, second), f(500*mbps, 1e9, second), false},
		// Sparser sampling at the exchange widens every bar.
		{"1 in a million", settle.Errors{K: 3, SamplingRate: 1 << 20, MaxFrameBits: 1518 * 8}, f(600*mbps, 0, slot), f(580*mbps, 0, slot), false},
	}
	for _, c := range cases {
		if got := c.e.Disputed(c.a, c.b); got != c.want {
			t.Errorf("%s: Disputed = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestUpperIsTheEdgeOfAgreement(t *testing.T) {
	for _, bps := range []int64{0, 1, 1000, 50 * mbps, 600 * mbps, 400_000 * mbps} {
		for _, micros := range []int64{1, 1e6, 300e6} {
			f := settle.Figure{Bps: bps, Micros: micros, OK: true}
			u := errs.Upper(f)
			if u < bps || errs.Disputed(settle.Figure{Bps: u, Micros: micros, OK: true}, f) {
				t.Errorf("Upper(%d bit/s over %d us) = %d: below the figure or disputed", bps, micros, u)
			}
			if u < math.MaxInt64 && !errs.Disputed(settle.Figure{Bps: u + 1, Micros: micros, OK: true}, f) {
				t.Errorf("Upper(%d bit/s over %d us) = %d: %d agrees too", bps, micros, u, u+1)
			}
		}
	}
	// 600 Mbit/s over a slot: 3 combined errors above it, about 1.1 %.
	if u := errs.Upper(settle.Figure{Bps: 600 * mbps, Micros: 300e6, OK: true}); u < 604*mbps || u > 608*mbps {
		t.Errorf("Upper(600 Mbit/s over a slot) = %d", u)
	}
}

func TestSlotsMergeAndFallback(t *testing.T) {
	st := nov.Start
	ss := []settle.Sample{
		// two halves of one slot from the buyer: 100 and 300 Mbps -> 200 Mbps, counts added
		{Role: settle.BuyerRole, Start: st, End: st.Add(150 * time.Second), Bps: 100 * mbps, SampleCount: 10},
		{Role: settle.BuyerRole, Start: st.Add(150 * time.Second), End: st.Add(300 * time.Second), Bps: 300 * mbps, SampleCount: 30},
		// the same first half again, changed: ignored, the first report counts
		{Role: settle.BuyerRole, Start: st, End: st.Add(150 * time.Second), Bps: 999 * mbps, SampleCount: 10},
		// next slot only the seller reported
		{Role: settle.SellerRole, Start: st.Add(300 * time.Second), End: st.Add(600 * time.Second), Bps: 50 * mbps, SampleCount: 5},
	}
	sl := settle.Slots(ss, settle.SlotLength, nov.Start, nov.End)
	if len(sl) != 2 || sl[0].Buyer != (settle.Figure{Bps: 200 * mbps, Samples: 40, Micros: 300e6, OK: true}) || sl[0].Seller.OK || sl[1].Buyer.OK || sl[1].Seller.Bps != 50*mbps {
		t.Fatalf("slots %+v", sl)
	}
	// Only the seller reported: billed at the most a buyer's figure could
	// have been and agreed, flagged.
	c, ok := settle.Choose(sl[1], settle.BuyerFigure, errs)
	if want := errs.Upper(sl[1].Seller); !ok || !c.Fallback || c.Bps != want || want <= 50*mbps {
		t.Errorf("seller-only slot: %+v %v; want %d bit/s (the seller's 50 Mbit/s and its error bar) as a fallback", c, ok, want)
	}
	// Only the buyer reported: its figure, flagged.
	c, ok = settle.Choose(sl[0], settle.SellerFigure, errs)
	if !ok || !c.Fallback || c.Bps != 200*mbps {
		t.Errorf("buyer-only slot: %+v %v; want the buyer's figure as a fallback", c, ok)
	}
}

func TestBadInput(t *testing.T) {
	var ie *invalid.Error
	cfg := terms
	cfg.FeeBP = -1
	if _, err := settle.NewBiller(cfg, nov, settle.BuyerFigure); !errors.As(err, &ie) || ie.Field != "fee_bp" {
		t.Errorf("negative fee: %v", err)
	}
	cfg = terms
	cfg.DisputeK = 0
	if _, err := settle.NewBiller(cfg, nov, settle.BuyerFigure); !errors.As(err, &ie) || ie.Field != "dispute_k" {
		t.Errorf("zero k: %v", err)
	}
	if _, err := settle.NewBiller(terms, settle.Period{Start: nov.End, End: nov.Start}, settle.BuyerFigure); err == nil {
		t.Error("backwards period accepted")
	}
	if _, err := settle.ParsePeriod("2026-13"); err == nil {
		t.Error("month 13 accepted")
	}
	if p, err := settle.ParsePeriod("2026-11"); err != nil || p != nov || p.String() != "2026-11" {
		t.Errorf("ParsePeriod = %v, %v", p, err)
	}
	// Any span, for a lab's few minutes; it bills in whole slots.
	span := "2026-11-01T10:00:00Z/2026-11-01T10:30:00Z"
	if p, err := settle.ParsePeriod(span); err != nil || p.Start != nov.Start.Add(10*time.Hour) || p.Micros() != 30*60e6 || p.String() != span {
		t.Errorf("ParsePeriod(%s) = %v, %v", span, p, err)
	}
	for _, bad := range []string{"2026-11-01T10:30:00Z/2026-11-01T10:00:00Z", "2026-11-01/2026-11-02", "2026-11-01T10:00:00Z/"} {
		if _, err := settle.ParsePeriod(bad); err == nil {
			t.Errorf("ParsePeriod(%s) accepted", bad)
		}
	}
	odd, _ := settle.ParsePeriod("2026-11-01T10:00:10Z/2026-11-01T10:30:00Z")
	if _, err := settle.NewBiller(terms, odd, settle.BuyerFigure); err == nil || !strings.Contains(err.Error(), "5m0s boundaries") {
		t.Errorf("a period off the 5-minute slots: %v", err)
	}
	// A span is charged its share of the month it lies in: one hour of a
	// 1G trade at 2.00 per Mbps per month is 2000 * 3600 / 2,592,000 s.
	hour, _ := settle.ParsePeriod("2026-11-10T10:00:00Z/2026-11-10T11:00:00Z")
	hb, err := settle.NewBiller(terms, hour, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	if bill, err := hb.Bill(monthTrade(1, asA, asB), nil, nil, nil); err != nil || bill.Committed != 2_777_778 {
		t.Errorf("an hour of November: committed %d (%v), want 2.777778", bill.Committed, err)
	}
	across, _ := settle.ParsePeriod("2026-11-30T23:00:00Z/2026-12-01T01:00:00Z")
	if _, err := settle.NewBiller(terms, across, settle.BuyerFigure); err == nil || !strings.Contains(err.Error(), "one calendar month") {
		t.Errorf("a span across months: %v", err)
	}
	short := terms
	short.Slot, short.Use.MinDuration = 10*time.Second, time.Minute
	if _, err := settle.NewBiller(short, odd, settle.BuyerFigure); err != nil {
		t.Errorf("a period on 10 s slots with settle.slot 10s: %v", err)
	}
	for _, slot := range []time.Duration{0, 1500 * time.Millisecond, 7 * time.Second, 2 * time.Hour} {
		short.Slot = slot
		if _, err := settle.NewBiller(short, nov, settle.BuyerFigure); !errors.As(err, &ie) || ie.Field != "slot" {
			t.Errorf("slot %v: %v", slot, err)
		}
	}
	if _, err := settle.ParsePolicy("median"); !errors.As(err, &ie) || ie.Field != "policy" {
		t.Errorf("policy median: %v", err)
	}
	b, _ := settle.NewBiller(terms, nov, settle.BuyerFigure)
	tr := monthTrade(1, asA, asA)
	if _, err := b.Bill(tr, nil, nil, nil); err == nil {
		t.Error("trade with itself billed")
	}
	tr = monthTrade(1, asA, asB)
	tr.CapacityBps = 0
	if _, err := b.Bill(tr, nil, nil, nil); !errors.As(err, &ie) {
		t.Errorf("zero capacity: %v", err)
	}
}

func TestUseEvents(t *testing.T) {
	rule := settle.UseRule{OverPercent: 100, UnderPercent: 20, MinDuration: time.Hour}
	pts := func(bps ...int64) []settle.Point {
		var ps []settle.Point
		for i, b := range bps {
			st := nov.Start.Add(time.Duration(i) * settle.SlotLength)
			ps = append(ps, settle.Point{Start: st, End: st.Add(settle.SlotLength), Bps: b})
		}
		return ps
	}
	rep := func(v int64, n int) []int64 {
		var r []int64
		for range n {
			r = append(r, v)
		}
		return r
	}
	capBps := int64(1000 * mbps)
	// 12 slots (1 h) above 1 Gbps: one overuse event; 11 slots: none.
	if ev := rule.Events(7, capBps, pts(rep(1100*mbps, 12)...)); len(ev) != 1 || ev[0].Kind != settle.Overuse || ev[0].End.Sub(ev[0].Start) != time.Hour || ev[0].PeakBps != 1100*mbps {
		t.Errorf("12 slots over: %+v", ev)
	}
	if ev := rule.Events(7, capBps, pts(rep(1100*mbps, 11)...)); len(ev) != 0 {
		t.Errorf("11 slots over: %+v, want none", ev)
	}
	// 12 slots under 200 Mbps broken by one normal slot: none; 12 unbroken: underuse.
	broken := append(append(rep(100*mbps, 6), 500*mbps), rep(100*mbps, 6)...)
	if ev := rule.Events(7, capBps, pts(broken...)); len(ev) != 0 {
		t.Errorf("interrupted underuse: %+v", ev)
	}
	if ev := rule.Events(7, capBps, pts(rep(100*mbps, 12)...)); len(ev) != 1 || ev[0].Kind != settle.Underuse {
		t.Errorf("12 slots under: %+v", ev)
	}
	// A missing slot (a gap in time) breaks a run.
	ps := pts(rep(1100*mbps, 12)...)
	for i := 6; i < 12; i++ {
		ps[i].Start, ps[i].End = ps[i].Start.Add(settle.SlotLength), ps[i].End.Add(settle.SlotLength)
	}
	if ev := rule.Events(7, capBps, ps); len(ev) != 0 {
		t.Errorf("gap: %+v", ev)
	}
	// Billing reports them too.
	b := bill(t, terms, settle.BuyerFigure, monthTrade(8, asA, asB), series(8, func(i int) int64 {
		if i < 24 {
			return 1500 * mbps
		}
		return 500 * mbps
	}), nil)
	if len(b.Use) != 1 || b.Use[0].Kind != settle.Overuse || !b.Use[0].Start.Equal(nov.Start) || b.Use[0].End.Sub(b.Use[0].Start) != 2*time.Hour {
		t.Errorf("bill's use events %+v, want 2 h of overuse from the start", b.Use)
	}
}

func TestConfigFromYAML(t *testing.T) {
	cfg := settle.DefaultConfig()
	data := []byte("overage_multiplier_bp: 20000\nfee_bp: 10\ndispute_k: 4.5\ndefault_credit_limit_micros: 5000000000\nuse:\n  over_percent: 110\n  under_percent: 10\n  min_duration: 2h\n")
	if err := config.Decode("settle.yaml", data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OverageMultiplierBP != 20_000 || cfg.FeeBP != 10 || cfg.DisputeK != 4.5 || cfg.Use.MinDuration != 2*time.Hour || cfg.SLACreditFactorBP != 10_000 {
		t.Errorf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	cfg.Use.MinDuration = time.Minute
	var ie *invalid.Error
	if err := cfg.Validate(); !errors.As(err, &ie) || ie.Field != "use.min_duration" {
		t.Errorf("1 minute runs: %v", err)
	}
}

// Billing follows delivery: a gap the seller caused is not charged, by
// exactly its share of the month, and a breach inside it earns no credit
// on top; a breach outside it still does.
func TestUndeliveredTimeIsNotCharged(t *testing.T) {
	cfg := settle.DefaultConfig()
	tr := monthTrade(1, 64502, 64501)
	b, err := settle.NewBiller(cfg, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	full, err := b.Bill(tr, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gapStart := nov.Start.Add(10 * 24 * time.Hour)
	gap := settle.Interval{Start: gapStart, End: gapStart.Add(3 * time.Hour)}
	// One breach half inside the gap, half after it.
	br := settle.Interval{Start: gapStart.Add(2 * time.Hour), End: gapStart.Add(4 * time.Hour)}
	got, err := b.Bill(tr, nil, []settle.Interval{br}, []settle.Interval{gap})
	if err != nil {
		t.Fatal(err)
	}
	// 1000 Mbps at 2 per Mbps-month, the whole month: 2000; less 3 h of
	// November's 720: 1991.666667, rounded once.
	if full.Committed != 2_000_000_000 || got.Committed != 1_991_666_667 {
		t.Errorf("committed %d without the gap, %d with it; want 2000000000 and 1991666667", full.Committed, got.Committed)
	}
	if got.UndeliveredMicros != (3*time.Hour).Microseconds() || got.BreachedMicros != time.Hour.Microseconds() {
		t.Errorf("undelivered %d µs, breached %d µs; want 3 h and the 1 h of breach outside the gap", got.UndeliveredMicros, got.BreachedMicros)
	}
	withBreachOnly, err := b.Bill(tr, nil, []settle.Interval{{Start: gapStart.Add(3 * time.Hour), End: gapStart.Add(4 * time.Hour)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Credit != withBreachOnly.Credit {
		t.Errorf("credit %d, want %d (the breach's hour outside the gap only)", got.Credit, withBreachOnly.Credit)
	}
}
