package settle_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/shared/invalid"
)

// TestTradeUsageIsWhatARunBills: the per-slot view of a trade shows both
// parties' figures and the billed one, and a settlement run of the same
// month bills exactly those slots at exactly those figures.
func TestTradeUsageIsWhatARunBills(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	tr := settle.Trade{BuyerASN: asA, SellerASN: asB, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000, Start: nov.Start, End: nov.End}
	id := l.addTrade(t, tr)
	l.report(t, id, tr, 0, 5, 600*mbps) // slots 0-4 agree
	slot := func(i int) time.Time { return nov.Start.Add(time.Duration(i) * settle.SlotLength) }
	sample := func(role settle.Role, i int, part, of int, bps int64) settle.Sample {
		st := slot(i).Add(time.Duration(part) * settle.SlotLength / time.Duration(of))
		return settle.Sample{IdempotencyKey: fmt.Sprintf("x/%d/%d/%d", role, i, part), TradeID: id, Role: role, Start: st,
			End: st.Add(settle.SlotLength / time.Duration(of)), Bps: bps, SampleCount: 10_000}
	}
	buyer := []settle.Sample{
		sample(settle.BuyerRole, 5, 0, 1, 500*mbps), // the seller says 900M: disputed
		sample(settle.BuyerRole, 6, 0, 1, 400*mbps), // the seller is silent
		sample(settle.BuyerRole, 8, 0, 2, 200*mbps), // two halves: 300M
		sample(settle.BuyerRole, 8, 1, 2, 400*mbps),
	}
	seller := []settle.Sample{
		sample(settle.SellerRole, 5, 0, 1, 900*mbps),
		sample(settle.SellerRole, 7, 0, 1, 300*mbps), // the buyer is silent
		sample(settle.SellerRole, 8, 0, 1, 300*mbps),
	}
	for _, r := range []struct {
		asn uint32
		ss  []settle.Sample
	}{{asA, buyer}, {asB, seller}} {
		if _, _, err := l.usage.Report(ctx, r.asn, r.ss); err != nil {
			t.Fatal(err)
		}
	}

	got, err := l.s.TradeUsage(ctx, asA, id, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9 {
		t.Fatalf("%d slots, want the 9 either party reported: %+v", len(got), got)
	}
	upper := terms.Errors().Upper(settle.Figure{Bps: 300 * mbps, Micros: settle.SlotLength.Microseconds(), OK: true})
	want := []struct {
		buyer, seller, billed int64 // -1: not reported
		disputed, oneSided    bool
	}{
		{600 * mbps, 600 * mbps, 600 * mbps, false, false}, {}, {}, {}, {},
		{500 * mbps, 900 * mbps, 500 * mbps, true, false},
		{400 * mbps, -1, 400 * mbps, false, true},
		{-1, 300 * mbps, upper, false, true},
		{300 * mbps, 300 * mbps, 300 * mbps, false, false},
	}
	for i := 1; i < 5; i++ {
		want[i] = want[0]
	}
	for i, w := range want {
		g := got[i]
		fig := func(f settle.Figure) int64 {
			if !f.OK {
				return -1
			}
			return f.Bps
		}
		if !g.Start.Equal(slot(i)) || fig(g.Buyer) != w.buyer || fig(g.Seller) != w.seller || g.Billed.Bps != w.billed ||
			g.Billed.Disputed != w.disputed || g.Billed.Fallback != w.oneSided {
			t.Errorf("slot %d: %+v\n want start %s buyer %d seller %d billed %d disputed %v one-sided %v", i, g, slot(i).Format(time.RFC3339),
				w.buyer, w.seller, w.billed, w.disputed, w.oneSided)
		}
	}
	if upper <= 300*mbps {
		t.Errorf("a slot only the seller reported is billed at %d, want above the seller's 300M (the most that would have agreed)", upper)
	}
	if g := got[8]; g.Buyer.Samples != 20_000 || g.Seller.Samples != 10_000 {
		t.Errorf("slot 8 samples: buyer %d (two reports), seller %d; want 20000 and 10000", g.Buyer.Samples, g.Seller.Samples)
	}

	// The seller and the operator see the same; a third member and an
	// unknown trade get one and the same answer.
	for _, asn := range []uint32{asB, 0} {
		if again, err := l.s.TradeUsage(ctx, asn, id, time.Time{}, time.Time{}); err != nil || fmt.Sprint(again) != fmt.Sprint(got) {
			t.Errorf("AS%d sees %v (%v), want what the buyer sees", asn, again, err)
		}
	}
	_, errC := l.s.TradeUsage(ctx, asC, id, time.Time{}, time.Time{})
	_, errNone := l.s.TradeUsage(ctx, asA, id+100, time.Time{}, time.Time{})
	if !errors.Is(errC, registry.ErrNotFound) || !errors.Is(errNone, registry.ErrNotFound) {
		t.Errorf("third member: %v; unknown trade: %v; want ErrNotFound for both", errC, errNone)
	}
	if errC != nil && errNone != nil && errC.Error() != fmt.Sprintf("trade %d: not found", id) {
		t.Errorf("third member told %q, want the answer for a trade that does not exist", errC)
	}

	// The run bills these slots at these figures.
	if _, err := l.s.Run(ctx, nov, settle.BuyerFigure); err != nil {
		t.Fatal(err)
	}
	inv, err := l.s.Invoice(ctx, asA, nov)
	if err != nil || len(inv.Lines) != 1 {
		t.Fatalf("A's invoice %+v, %v", inv, err)
	}
	var billed []int64
	var disputed, oneSided int
	for _, g := range got {
		billed = append(billed, g.Billed.Bps)
		if g.Billed.Disputed {
			disputed++
		}
		if g.Billed.Fallback {
			oneSided++
		}
	}
	if line := inv.Lines[0]; line.Slots != len(got) || line.DisputedSlots != disputed || line.FallbackSlots != oneSided || line.P95Bps != settle.P95(billed) {
		t.Errorf("invoice line: %d slots, %d disputed, %d one-sided, p95 %d; the view: %d, %d, %d, p95 %d",
			line.Slots, line.DisputedSlots, line.FallbackSlots, line.P95Bps, len(got), disputed, oneSided, settle.P95(billed))
	}
	ds, err := l.s.Disputes(ctx, asA, nov)
	if err != nil || len(ds) != 1 || !ds[0].Start.Equal(got[5].Start) || ds[0].UsedBps != got[5].Billed.Bps {
		t.Errorf("run's disputes %+v (%v), want slot 5 at %d", ds, err, got[5].Billed.Bps)
	}

	// from and to round out to whole slots.
	part, err := l.s.TradeUsage(ctx, asB, id, slot(5).Add(2*time.Minute), slot(7).Add(time.Minute))
	if err != nil || len(part) != 3 || !part[0].Start.Equal(slot(5)) || !part[2].Start.Equal(slot(7)) || part[0].Billed != got[5].Billed {
		t.Errorf("slots 5 to 7 asked mid-slot: %+v (%v), want slots 5, 6 and 7 whole", part, err)
	}
}

// TestTradeUsageBounds: bad spans are refused naming the field, one call
// spans at most MaxUsageSlots slots, and a trade not yet begun has none.
func TestTradeUsageBounds(t *testing.T) {
	l := newLedger(t, terms)
	ctx := context.Background()
	year := settle.Trade{BuyerASN: asA, SellerASN: asB, CapacityBps: 1000 * mbps, PriceMicros: 1, Start: nov.Start.AddDate(-1, 0, 0), End: nov.End}
	id := l.addTrade(t, year)
	later := l.addTrade(t, settle.Trade{BuyerASN: asA, SellerASN: asB, CapacityBps: 1000 * mbps, PriceMicros: 1,
		Start: l.now.AddDate(0, 1, 0), End: l.now.AddDate(0, 2, 0)})
	field := func(err error) string {
		var ie *invalid.Error
		if errors.As(err, &ie) {
			return ie.Field
		}
		return fmt.Sprintf("not invalid input (%v)", err)
	}
	for _, c := range []struct {
		name     string
		trade    int64
		from, to time.Time
		field    string
	}{
		{"no trade id", 0, time.Time{}, time.Time{}, "trade_id"},
		{"to before from", id, nov.End, nov.Start, "to"},
		{"from after the trade", id, nov.End.Add(time.Hour), time.Time{}, "from"},
		{"to before the trade", id, time.Time{}, year.Start.Add(-time.Hour), "to"},
		{"the whole year by default", id, time.Time{}, time.Time{}, "to"},
		{"a year up to to", id, time.Time{}, nov.End, "from"},
		{"a year from from", id, year.Start, time.Time{}, "to"},
	} {
		if _, err := l.s.TradeUsage(ctx, asA, c.trade, c.from, c.to); field(err) != c.field {
			t.Errorf("%s: %v, want invalid %s", c.name, err, c.field)
		}
	}
	maxSpan := settle.MaxUsageSlots * settle.SlotLength
	if _, err := l.s.TradeUsage(ctx, asA, id, nov.End.Add(-maxSpan), nov.End); err != nil {
		t.Errorf("exactly %d slots: %v", settle.MaxUsageSlots, err)
	}
	if _, err := l.s.TradeUsage(ctx, asA, id, nov.End.Add(-maxSpan-time.Second), nov.End); field(err) != "to" {
		t.Errorf("one slot more (rounded out): %v, want invalid to", err)
	}
	if got, err := l.s.TradeUsage(ctx, asB, later, time.Time{}, time.Time{}); err != nil || len(got) != 0 {
		t.Errorf("a trade not begun: %v, %v; want no slots", got, err)
	}
}
