package settle_test

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"pgregory.net/rapid"
)

// refP95 is the carriers' rule written independently: sort, drop the top
// 5 % (rounded down), take the highest that remains.
func refP95(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]int64(nil), vs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	drop := len(s) * 5 / 100
	return s[len(s)-1-drop]
}

func TestP95MatchesReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vs := rapid.SliceOfN(rapid.Int64Range(0, 1e13), 1, 10_000).Draw(t, "bps")
		want := refP95(vs)
		if got := settle.P95(append([]int64(nil), vs...)); got != want {
			t.Fatalf("P95 of %d samples = %d, reference %d", len(vs), got, want)
		}
	})
}

func drawSamples(t *rapid.T, trade int64, label string) []settle.Sample {
	n := rapid.IntRange(0, 300).Draw(t, label+"n")
	var ss []settle.Sample
	for i := 0; i < n; i++ {
		slot := rapid.IntRange(0, 8639).Draw(t, label+"slot")
		st := nov.Start.Add(time.Duration(slot) * settle.SlotLength)
		// Sometimes a part of a slot, as an agent that restarted reports.
		length := settle.SlotLength
		if rapid.IntRange(0, 4).Draw(t, label+"part") == 0 {
			length = time.Duration(rapid.IntRange(1, 299).Draw(t, label+"len")) * time.Second
		}
		ss = append(ss, settle.Sample{TradeID: trade, Role: settle.Role(rapid.IntRange(1, 2).Draw(t, label+"role")), Start: st, End: st.Add(length),
			Bps: rapid.Int64Range(0, 4e9).Draw(t, label+"bps"), SampleCount: rapid.Int64Range(0, 100_000).Draw(t, label+"count")})
	}
	return ss
}

func TestReplayChangesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tr := monthTrade(1, asA, asB)
		tr.Start = nov.Start.Add(time.Duration(rapid.IntRange(-100, 8000).Draw(t, "startSlot")) * settle.SlotLength)
		ss := drawSamples(t, 1, "")
		policy := settle.Policy(rapid.IntRange(0, 3).Draw(t, "policy"))
		b, _ := settle.NewBiller(terms, nov, policy)
		once, err := b.Bill(tr, ss, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The same reports again, after the first ones and in another order.
		twice := append(append([]settle.Sample(nil), ss...), rapid.Permutation(ss).Draw(t, "replay")...)
		again, err := b.Bill(tr, twice, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(once, again) {
			t.Fatalf("replayed usage changed the bill:\n once %+v\nagain %+v", once, again)
		}
	})
}

func TestTotalsConserved(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := terms
		cfg.OverageMultiplierBP = rapid.Int64Range(0, 30_000).Draw(t, "mult")
		cfg.SLACreditFactorBP = rapid.Int64Range(0, 100_000).Draw(t, "credit")
		cfg.FeeBP = rapid.Int64Range(0, 1000).Draw(t, "fee")
		b, err := settle.NewBiller(cfg, nov, settle.BuyerFigure)
		if err != nil {
			t.Fatal(err)
		}
		members := rapid.IntRange(2, 6).Draw(t, "members")
		var bills []settle.TradeBill
		for id := int64(1); id <= int64(rapid.IntRange(1, 8).Draw(t, "trades")); id++ {
			buyer := uint32(64500 + rapid.IntRange(0, members-1).Draw(t, "buyer"))
			seller := uint32(64500 + rapid.IntRange(0, members-1).Draw(t, "seller"))
			if buyer == seller {
				seller = 64500 + (seller-64500+1)%uint32(members)
			}
			st := nov.Start.Add(time.Duration(rapid.Int64Range(-1e6, 3e6).Draw(t, "start")) * time.Second)
			tr := settle.Trade{ID: id, BuyerASN: buyer, SellerASN: seller, CapacityBps: rapid.Int64Range(1, 1e12).Draw(t, "cap"),
				PriceMicros: rapid.Int64Range(0, 1e8).Draw(t, "price"), Start: st, End: st.Add(time.Duration(rapid.Int64Range(1, 4e6).Draw(t, "len")) * time.Second)}
			br := []settle.Interval{}
			for range rapid.IntRange(0, 3).Draw(t, "breaches") {
				bs := nov.Start.Add(time.Duration(rapid.Int64Range(-1e5, 3e6).Draw(t, "bstart")) * time.Second)
				br = append(br, settle.Interval{Start: bs, End: bs.Add(time.Duration(rapid.Int64Range(1, 1e6).Draw(t, "blen")) * time.Second)})
			}
			var gaps []settle.Interval
			for range rapid.IntRange(0, 2).Draw(t, "gaps") {
				gs := nov.Start.Add(time.Duration(rapid.Int64Range(-1e5, 3e6).Draw(t, "gstart")) * time.Second)
				gaps = append(gaps, settle.Interval{Start: gs, End: gs.Add(time.Duration(rapid.Int64Range(1, 1e6).Draw(t, "glen")) * time.Second)})
			}
			ss := drawSamples(t, id, fmt.Sprint(id))
			bill, err := b.Bill(tr, ss, br, gaps)
			if err != nil {
				t.Fatal(err)
			}
			whole, err := b.Bill(tr, ss, br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bill.Committed > whole.Committed || bill.BreachedMicros > whole.BreachedMicros {
				t.Fatalf("trade %d: gaps raised the committed charge (%d > %d) or the breached time (%d > %d)",
					id, bill.Committed, whole.Committed, bill.BreachedMicros, whole.BreachedMicros)
			}
			if bill.Credit < 0 || bill.Gross < 0 {
				t.Fatalf("trade %d: credit %d, gross %d", id, bill.Credit, bill.Gross)
			}
			bills = append(bills, bill)
		}
		invs, ex := settle.Invoices(nov, bills)
		var net, paid, received, fees int64
		for _, inv := range invs {
			var lines int64
			for _, l := range inv.Lines {
				lines += l.Net
				if l.Net != l.Committed+l.Overage+l.Credit+l.Fee {
					t.Fatalf("AS%d trade %d: line net %d != its parts", inv.ASN, l.TradeID, l.Net)
				}
			}
			if lines != inv.Net || inv.Net != inv.Received-inv.Paid-inv.Fees {
				t.Fatalf("AS%d: net %d, lines %d, received-paid-fees %d", inv.ASN, inv.Net, lines, inv.Received-inv.Paid-inv.Fees)
			}
			net, paid, received, fees = net+inv.Net, paid+inv.Paid, received+inv.Received, fees+inv.Fees
		}
		if ex.Balance != 0 || net+ex.FeeIncome != 0 || paid != received || paid != ex.Gross || fees != ex.FeeIncome {
			t.Fatalf("not conserved: members' net %d, fee income %d, paid %d, received %d, gross %d, fees %d", net, ex.FeeIncome, paid, received, ex.Gross, fees)
		}
	})
}
