package settle_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/shared/invalid"
	"pgregory.net/rapid"
)

// figure draws a bits/s figure, extremes included: nothing, a trickle,
// anything up to a 400G port.
func figure(t *rapid.T, label string) int64 {
	return rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(1, 10_000), rapid.Int64Range(0, 4e11)).Draw(t, label)
}

// twoParties draws both parties' reports of a trade for November: slots
// only one side reported, seller figures near and far from the buyer's,
// partial intervals, replays, and any sample counts.
func twoParties(t *rapid.T) []settle.Sample {
	var ss []settle.Sample
	for range rapid.IntRange(1, 120).Draw(t, "slots") {
		st := nov.Start.Add(time.Duration(rapid.IntRange(0, 8639).Draw(t, "slot")) * settle.SlotLength)
		end := st.Add(settle.SlotLength)
		if rapid.IntRange(0, 4).Draw(t, "part") == 0 {
			end = st.Add(time.Duration(rapid.IntRange(1, 299).Draw(t, "len")) * time.Second)
		}
		b := figure(t, "buyer")
		s := figure(t, "seller")
		if rapid.Bool().Draw(t, "near") { // an honest seller: within a few per mille
			s = max(0, b+b/1000*rapid.Int64Range(-5, 5).Draw(t, "noise"))
		}
		count := func() int64 { return rapid.Int64Range(0, 1e9).Draw(t, "count") }
		switch rapid.IntRange(0, 2).Draw(t, "who") {
		case 0:
			ss = append(ss, settle.Sample{TradeID: 1, Role: settle.BuyerRole, Start: st, End: end, Bps: b, SampleCount: count()},
				settle.Sample{TradeID: 1, Role: settle.SellerRole, Start: st, End: end, Bps: s, SampleCount: count()})
		case 1:
			ss = append(ss, settle.Sample{TradeID: 1, Role: settle.BuyerRole, Start: st, End: end, Bps: b, SampleCount: count()})
		default:
			ss = append(ss, settle.Sample{TradeID: 1, Role: settle.SellerRole, Start: st, End: end, Bps: s, SampleCount: count()})
		}
		if rapid.IntRange(0, 9).Draw(t, "replay") == 0 {
			ss = append(ss, ss[len(ss)-1])
		}
	}
	return ss
}

// without is ss less the role's samples in the slots keep says.
func without(ss []settle.Sample, role settle.Role, drop func(slot time.Time) bool) []settle.Sample {
	var out []settle.Sample
	for _, s := range ss {
		if s.Role == role && drop(s.Start.Truncate(settle.SlotLength)) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// The gap rule and the error model, as properties: for any reports of two
// parties, neither moves its bill in its own favour by claiming other
// sample counts, a buyer never pays less by going silent where its figure
// would have agreed (or was below the seller's), and a seller never earns
// more by going silent where its figure was at least the buyer's; under
// every policy.
func TestNoPartyGainsBySilenceOrSampleCounts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		policy := settle.Policy(rapid.IntRange(0, 3).Draw(t, "policy"))
		b, err := settle.NewBiller(terms, nov, policy)
		if err != nil {
			t.Fatal(err)
		}
		tr := monthTrade(1, asA, asB)
		tr.CapacityBps = rapid.OneOf(rapid.Int64Range(1, 1e6), rapid.Int64Range(1, 4e11)).Draw(t, "capacity")
		ss := twoParties(t)
		bill, err := b.Bill(tr, ss, nil, nil)
		if err != nil {
			t.Fatalf("bill: %v", err)
		}
		// Slots as billing sees them, to pick where each party goes silent.
		slots := map[time.Time]settle.Slot{}
		for _, sl := range settle.Slots(ss, settle.SlotLength, nov.Start, nov.End) {
			slots[sl.Start] = sl
		}
		pick := rapid.Uint64().Draw(t, "pick")

		recount := append([]settle.Sample(nil), ss...)
		rng := rand.New(rand.NewPCG(pick, 1))
		for i := range recount {
			recount[i].SampleCount = rng.Int64N(1e9)
		}
		if got, err := b.Bill(tr, recount, nil, nil); err != nil || got.Gross != bill.Gross || got.P95Bps != bill.P95Bps || got.DisputedSlots != bill.DisputedSlots {
			t.Fatalf("other sample counts moved the bill: gross %d -> %d, p95 %d -> %d, disputed %d -> %d (%v)",
				bill.Gross, got.Gross, bill.P95Bps, got.P95Bps, bill.DisputedSlots, got.DisputedSlots, err)
		}

		chosen := func(start time.Time) bool { return (pick>>(uint(start.Unix()/300)%64))&1 == 1 }
		buyerSilent := without(ss, settle.BuyerRole, func(st time.Time) bool {
			sl := slots[st]
			return chosen(st) && sl.Buyer.OK && sl.Seller.OK && sl.Buyer.Bps <= terms.Errors().Upper(sl.Seller)
		})
		if got, err := b.Bill(tr, buyerSilent, nil, nil); err != nil || got.Gross < bill.Gross {
			t.Fatalf("the buyer pays %d instead of %d by going silent (%v)", got.Gross, bill.Gross, err)
		}
		slotByslot(t, "the buyer", policy, ss, buyerSilent, func(present, silent int64) bool { return silent < present })
		sellerSilent := without(ss, settle.SellerRole, func(st time.Time) bool {
			sl := slots[st]
			return chosen(st) && sl.Buyer.OK && sl.Seller.OK && sl.Seller.Bps >= sl.Buyer.Bps
		})
		if got, err := b.Bill(tr, sellerSilent, nil, nil); err != nil || got.Gross > bill.Gross {
			t.Fatalf("the seller earns %d instead of %d by going silent (%v)", got.Gross, bill.Gross, err)
		}
		slotByslot(t, "the seller", policy, ss, sellerSilent, func(present, silent int64) bool { return silent > present })
	})
}

// slotByslot fails if any slot's billed figure moved in the silent party's
// favour: the bill's percentile follows from these.
func slotByslot(t *rapid.T, who string, policy settle.Policy, present, silent []settle.Sample, gains func(present, silent int64) bool) {
	before := map[time.Time]int64{}
	for _, p := range settle.UseOverTime(present, nov.Start, nov.End, policy, terms) {
		before[p.Start] = p.Bps
	}
	for _, p := range settle.UseOverTime(silent, nov.Start, nov.End, policy, terms) {
		if gains(before[p.Start], p.Bps) {
			t.Fatalf("%s gains by going silent in the slot at %v: billed %d bit/s, not %d", who, p.Start, p.Bps, before[p.Start])
		}
	}
}

// A settlement run over anything two parties can report completes, and
// its ledger balances to zero: samples beyond what the ports carry are
// refused at the door with the field named and nothing stored, and
// whatever is stored is billed.
func TestRunCompletesAndBalancesOverAnyReports(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	month := 0
	rapid.Check(t, func(rt *rapid.T) {
		month++
		p := settle.Period{Start: time.Date(2027, time.Month(month), 1, 0, 0, 0, 0, time.UTC)}
		p.End = p.Start.AddDate(0, 1, 0)
		l.now = p.End.Add(time.Hour)
		members := []uint32{asA, asB, asC, asD}
		stored := 0
		for range rapid.IntRange(1, 4).Draw(rt, "trades") {
			bi := rapid.IntRange(0, 3).Draw(rt, "buyer")
			si := (bi + rapid.IntRange(1, 3).Draw(rt, "seller")) % 4
			st := p.Start.Add(time.Duration(rapid.IntRange(-100, 8000).Draw(rt, "start")) * settle.SlotLength)
			tr := settle.Trade{BuyerASN: members[bi], SellerASN: members[si], CapacityBps: rapid.Int64Range(1, 100_000*mbps).Draw(rt, "capacity"),
				PriceMicros: rapid.Int64Range(0, 1e8).Draw(rt, "price"), Start: st, End: st.Add(time.Duration(rapid.IntRange(1, 9000).Draw(rt, "slots")) * settle.SlotLength)}
			id := l.addTrade(rt, tr)
			for i := range rapid.IntRange(0, 40).Draw(rt, "samples") {
				role := settle.Role(rapid.IntRange(1, 2).Draw(rt, "role"))
				asn := tr.BuyerASN
				if role == settle.SellerRole {
					asn = tr.SellerASN
				}
				at := tr.Start.Add(time.Duration(rapid.IntRange(0, 8700).Draw(rt, "at")) * settle.SlotLength)
				s := settle.Sample{IdempotencyKey: fmt.Sprintf("%d/%d", id, i), TradeID: id, Role: role, Start: at, End: at.Add(settle.SlotLength),
					Bps: rapid.OneOf(rapid.Int64Range(0, 110_000*mbps), rapid.Just(int64(9_223_372_036_854_775_000))).Draw(rt, "bps"), SampleCount: rapid.Int64Range(0, 1e12).Draw(rt, "count")}
				n, _, err := l.usage.Report(ctx, asn, []settle.Sample{s})
				var ie *invalid.Error
				if err != nil && !errors.As(err, &ie) {
					rt.Fatalf("report: %v", err)
				}
				stored += n
			}
		}
		res, err := l.s.Run(ctx, p, settle.Policy(rapid.IntRange(0, 3).Draw(rt, "policy")))
		if err != nil {
			rt.Fatalf("run for %s with %d samples stored: %v", p, stored, err)
		}
		if len(res.SetAside) != 0 {
			rt.Fatalf("trades set aside though every stored sample passed the bounds: %+v", res.SetAside)
		}
		if res.Exchange.Balance != 0 {
			rt.Fatalf("statement balance %d", res.Exchange.Balance)
		}
		if _, total := l.balances(rt); total != 0 {
			rt.Fatalf("ledger sums to %d", total)
		}
	})
	var max int64
	if err := l.db.QueryRow("SELECT coalesce(max(bps), 0) FROM usage_samples").Scan(&max); err != nil || max > 100_000*mbps*(100+settle.UsageTolerance)/100 {
		t.Errorf("largest stored sample %d bit/s (%v): beyond the ports", max, err)
	}
}
