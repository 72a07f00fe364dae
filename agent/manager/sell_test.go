package manager

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const gbps = 1000 * mbps

func sellPolicy() Policy {
	p := testPolicy()
	p.Sell = SellPolicy{Enabled: true, Destinations: []string{"customer", "203.0.113.0/24"}, Price: Money(1500000),
		MinBlock: Bandwidth(gbps), SafetyMargin: Bandwidth(gbps), Quality: QualityFloor{MaxLatency: 20 * time.Millisecond},
		Term: 30 * 24 * time.Hour, RenewBefore: 48 * time.Hour, Adjust: 10}
	p.Stability.MaxChangesPerHour = 2
	return p
}

func TestSpare(t *testing.T) {
	for _, tc := range []struct {
		port          Port
		margin, block int64
		want          int64
	}{
		{Port{CapacityBps: 10 * gbps, CommittedBps: 2 * gbps, OtherUseBps: gbps}, gbps, gbps, 6 * gbps},
		{Port{CapacityBps: 10 * gbps, CommittedBps: 2500 * mbps}, gbps, gbps, 6 * gbps}, // whole blocks
		{Port{CapacityBps: 10 * gbps, CommittedBps: 9500 * mbps}, gbps, gbps, 0},
		{Port{CapacityBps: 10 * gbps, CommittedBps: 12 * gbps}, 0, gbps, 0},
	} {
		if got := Spare(tc.port, tc.margin, tc.block); got != tc.want {
			t.Errorf("Spare(%+v, %d, %d) = %d, want %d", tc.port, tc.margin, tc.block, got, tc.want)
		}
	}
}

func TestSellFollowsSpareCapacity(t *testing.T) {
	m := newManager(t, sellPolicy())
	k := newMarket()
	k.port = Port{CapacityBps: 10 * gbps, CommittedBps: 2 * gbps, OtherUseBps: gbps}
	step := func(now time.Time) []Decision {
		ds := m.Step(k.inputs(now))
		k.apply(ds)
		return ds
	}
	// 10 - 2 - 1 - 1 (margin) = 6 G offered toward each destination.
	ds := step(t0)
	if len(ds) != 2 || ds[0].Kind != KindSellPlace || ds[1].Kind != KindSellPlace || len(k.orders) != 2 {
		t.Fatalf("decisions %+v", ds)
	}
	if o := k.orders[0]; o.Destination != "customer" || o.CapacityBps != 6*gbps || o.PriceMicros != 1500000 || !o.End.Equal(t0.Add(30*24*time.Hour)) ||
		ds[0].Intents[0].Limits.MaxLatencyUs != 20000 {
		t.Fatalf("order %+v", o)
	}
	// Nothing moved: nothing changes.
	if ds := step(t0.Add(time.Minute)); len(ds) != 0 {
		t.Fatalf("changes without cause: %+v", ds)
	}
	// A sale of 2 G from the customer offer: what it has left is the spare
	// capacity; the other offer shrinks at once, though the cap (2 an
	// hour) is spent.
	k.port.CommittedBps = 4 * gbps
	k.orders[0].FilledBps = 2 * gbps
	ds = step(t0.Add(2 * time.Minute))
	if len(ds) != 1 || ds[0].Kind != KindSellModify || ds[0].Destination != "203.0.113.0/24" || ds[0].Intents[0].CapacityBps != 4*gbps {
		t.Fatalf("decisions %+v", ds)
	}
	// Less than a block of growth is noise; a block more than 10 % is not,
	// but the cap is spent: held, then done after the hour.
	k.port.CommittedBps = 3500 * mbps
	if ds := step(t0.Add(3 * time.Minute)); len(ds) != 0 {
		t.Fatalf("changes for half a block: %+v", ds)
	}
	k.port.CommittedBps = 3 * gbps
	ds = step(t0.Add(4 * time.Minute))
	if len(ds) != 2 || ds[0].Kind != KindHold || !strings.Contains(ds[0].Reason, "max_changes_per_hour") {
		t.Fatalf("want holds, got %+v", ds)
	}
	ds = step(t0.Add(63 * time.Minute))
	if len(ds) != 2 || ds[0].Kind != KindSellModify || ds[0].Intents[0].CapacityBps != 7*gbps || ds[1].Intents[0].CapacityBps != 5*gbps {
		t.Fatalf("want growth, got %+v", ds)
	}
	// The port fills: both offers are cancelled.
	k.port.CommittedBps = 9 * gbps
	ds = step(t0.Add(64 * time.Minute))
	if len(ds) != 2 || ds[0].Kind != KindSellCancel || ds[1].Kind != KindSellCancel || len(k.orders) != 0 {
		t.Fatalf("decisions %+v, orders %+v", ds, k.orders)
	}
}

func TestSellPlacedAnewBeforeItEnds(t *testing.T) {
	p := sellPolicy()
	p.Sell.Destinations = p.Sell.Destinations[:1]
	m := newManager(t, p)
	k := newMarket()
	k.port = Port{CapacityBps: 10 * gbps}
	k.apply(m.Step(k.inputs(t0)))
	now := t0.Add(29 * 24 * time.Hour)
	ds := m.Step(k.inputs(now))
	k.apply(ds)
	if len(ds) != 1 || ds[0].Kind != KindSellPlace || len(ds[0].Intents) != 2 || ds[0].Intents[0].Type != CancelOrder ||
		len(k.orders) != 1 || !k.orders[0].End.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("decisions %+v, orders %+v", ds, k.orders)
	}
}

func TestShadowMode(t *testing.T) {
	for _, r := range []Ranking{ByPrice, ByPerformance, Weighted} {
		t.Run(string(r), func(t *testing.T) {
			p := testPolicy()
			p.Buy.Ranking = r
			p.Buy.DefaultPathPrice = 4 * unit
			mt, kt := baseline(t, p)
			real := find(mt.Step(kt.inputs(t0)), KindBuy)
			p.Mode = ModeShadow
			ms, ks := baseline(t, p)
			ds := ms.Step(ks.inputs(t0))
			sh := find(ds, KindBuy)
			if real == nil || sh == nil || !sh.Shadow || len(sh.Intents) != 0 || sh.Seller != real.Seller || sh.PriceMicros != real.PriceMicros || sh.SizeBps != real.SizeBps {
				t.Fatalf("trade mode %+v, shadow %+v", real, sh)
			}
			// What it gains and what it saves (or costs) against the default path.
			if sh.GainLatencyUs != 30000-sh.Chosen.LatencyUs || sh.SavingMicros != (4*unit-sh.PriceMicros)*50 || sh.MonthlyMicros != sh.PriceMicros*50 {
				t.Fatalf("shadow numbers %+v", sh)
			}
			// The shadow buy counts: no second buy, and the journal has it.
			if again := find(ms.Step(ks.inputs(t0.Add(time.Minute))), KindBuy); again != nil {
				t.Fatalf("shadow bought twice")
			}
			if j := ms.Journal().Since(0); len(j) == 0 || !j[0].Shadow {
				t.Fatalf("journal %+v", j)
			}
		})
	}
}

func TestShadowSellPlacesOnce(t *testing.T) {
	p := sellPolicy()
	p.Mode = ModeShadow
	m := newManager(t, p)
	k := newMarket()
	k.port = Port{CapacityBps: 10 * gbps}
	if ds := m.Step(k.inputs(t0)); len(ds) != 2 || !ds[0].Shadow || ds[0].Intents != nil {
		t.Fatalf("decisions %+v", ds)
	}
	if ds := m.Step(k.inputs(t0.Add(time.Minute))); len(ds) != 0 {
		t.Fatalf("shadow sells placed again: %+v", ds)
	}
	k.port.CommittedBps = 5 * gbps
	if ds := m.Step(k.inputs(t0.Add(2 * time.Minute))); len(ds) != 2 || ds[0].Kind != KindSellModify {
		t.Fatalf("decisions %+v", ds)
	}
}

func TestJournalRingAndRestore(t *testing.T) {
	j := NewJournal(3)
	for i := range 5 {
		j.add(Decision{Kind: KindHold, Reason: string(rune('a' + i))})
	}
	got := j.Since(0)
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 || got[2].Reason != "e" || j.Last() != 5 {
		t.Fatalf("ring %+v", got)
	}
	if got := j.Since(4); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("since 4: %+v", got)
	}
	// A restarted manager keeps the change cap and hold-downs of its journal.
	p := testPolicy()
	p.Stability.MaxChangesPerHour = 1
	m1, k1 := baseline(t, p)
	ds := m1.Step(k1.inputs(t0))
	if find(ds, KindBuy) == nil {
		t.Fatal("no buy")
	}
	m2, k2 := baseline(t, p)
	m2.Restore(m1.Journal().Since(0))
	m2.demand = NewDemand(p.Demand.Window)
	demand(m2, pfx6, 40*mbps, 12, t0)
	probe(m2, DefaultPath, pfx6, t0, 30, 0)
	probe(m2, asA, pfx6, t0, 10, 0)
	k2.offers = append(k2.offers, offer(9, asA, pfx6, unit, 1000*mbps))
	ds = m2.Step(k2.inputs(t0.Add(time.Minute)))
	if h := find(ds, KindHold); find(ds, KindBuy) != nil || h == nil || !strings.Contains(h.Reason, "max_changes_per_hour") {
		t.Fatalf("restored manager ignored the cap: %+v", ds)
	}
	// The journal survives JSON (as the daemon would persist it).
	raw, err := json.Marshal(m1.Journal().Since(0))
	if err != nil {
		t.Fatal(err)
	}
	var back []Decision
	if err := json.Unmarshal(raw, &back); err != nil || len(back) != 1 || back[0].Prefix != pfx4 || back[0].Intents[0].Type != TakeOffer ||
		!back[0].At.Equal(t0) || back[0].Chosen.LatencyUs != 20000 {
		t.Fatalf("JSON round trip: %v %+v (%s)", err, back, raw)
	}
	if m2.Journal().Last() != m1.Journal().Last()+1 {
		t.Fatalf("journal sequence %d after %d", m2.Journal().Last(), m1.Journal().Last())
	}
}

func TestShadowSummary(t *testing.T) {
	p := testPolicy()
	p.Mode = ModeShadow
	p.Buy.DefaultPathPrice = 3 * unit
	m, k := baseline(t, p)
	demand(m, pfx6, 40*mbps, 12, t0)
	probe(m, DefaultPath, pfx6, t0, 30, 50_000)
	probe(m, asB, pfx6, t0, 25, 0)
	k.offers = append(k.offers, offer(4, asB, pfx6, 4*unit, 1000*mbps))
	ds := m.Step(k.inputs(t0))
	s := Summarize(m.Journal().Since(0))
	if len(s.Destinations) != 2 {
		t.Fatalf("summary %+v of %v", s, ds)
	}
	v4, v6 := s.Destinations[0], s.Destinations[1]
	// pfx4: A at 2 for 50 Mbps, 10 ms better, 50 a month cheaper than 3;
	// pfx6: B at 4 (only offer), 5 % less loss, 50 a month dearer.
	if v4.Prefix != pfx4 || v4.Seller != asA || v4.MonthlyMicros != 100*unit || v4.SavingMicros != 50*unit || v4.GainLatencyUs != 10000 ||
		v6.Prefix != pfx6 || v6.Seller != asB || v6.GainLossPPM != 50_000 || v6.SavingMicros != -50*unit ||
		s.MonthlyMicros != 300*unit || s.SavingMicros != 0 {
		t.Fatalf("summary %+v", s)
	}
	if v4.GainLatencyMarginUs == 0 || v4.GainLossMarginPPM == 0 || v4.GainLossMarginPPM > 10_000 {
		t.Fatalf("summary lacks the gains' margins: %+v", v4)
	}
	if str := ds[0].String(); !strings.HasPrefix(str, "[shadow] buy 198.51.100.0/24 AS64501 50Mbps at 2/Mbps/month (100 a month); gains 10.0±0.0 ms, 0%±0.894% loss, saves 50 a month") ||
		!strings.Contains(str, "latency 20.0±0.0 ms vs 30.0±0.0 ms: significantly lower") {
		t.Fatalf("String: %s", str)
	}
}
