package manager

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// feed gives pfx4 fresh demand and five probe rounds per path (the
// rounds the policy pools) just before now.
func feed(m *Manager, now time.Time, lat map[uint32]int64) {
	demand(m, pfx4, 40*mbps, 12, now)
	for s, l := range lat {
		for i := range 5 {
			probe(m, s, pfx4, now.Add(-time.Duration(i)*time.Second-time.Millisecond), l, 0)
		}
	}
}

func TestSwitchNeedsHysteresisAndHoldDown(t *testing.T) {
	m, k := baseline(t, testPolicy())
	k.apply(m.Step(k.inputs(t0)))
	if len(k.trades) != 1 || k.trades[0].Seller != asA {
		t.Fatalf("trades %+v", k.trades)
	}
	// The trade delivers: the route goes to A.
	now := t0.Add(time.Minute)
	ds := m.Step(k.inputs(now))
	if r := find(ds, KindRoute); r == nil || r.Seller != asA || k.routes[pfx4] != DefaultPath {
		t.Fatalf("route %+v", ds)
	}
	// B is 10 ms better than A (threshold 5 ms + 50 % = 7.5): worth a
	// switch, but not within the 12 h hold-down after the buy.
	if h := find(ds, KindHold); h == nil || !strings.Contains(h.Reason, "switch hold-down") || find(ds, KindSwitch) != nil {
		t.Fatalf("want a switch hold-down, got %+v", kinds(ds))
	}
	k.apply(ds)
	if k.routes[pfx4] != asA {
		t.Fatal("route intent not for A")
	}
	now = t0.Add(time.Hour)
	feed(m, now, map[uint32]int64{DefaultPath: 30, asA: 20, asB: 10, asC: 28})
	if ds = m.Step(k.inputs(now)); find(ds, KindSwitch) != nil {
		t.Fatalf("switched within the hold-down: %+v", kinds(ds))
	}
	// After the hold-down, 6 ms better is above the threshold but within
	// the hysteresis margin: no switch.
	now = t0.Add(13 * time.Hour)
	feed(m, now, map[uint32]int64{DefaultPath: 30, asA: 20, asB: 14, asC: 28})
	if ds := m.Step(k.inputs(now)); find(ds, KindSwitch) != nil || find(ds, KindBuy) != nil {
		t.Fatalf("switched within the hysteresis margin: %+v", kinds(ds))
	}
	// 8 ms better: switch.
	now = now.Add(time.Minute)
	feed(m, now, map[uint32]int64{DefaultPath: 30, asA: 20, asB: 12, asC: 28})
	ds = m.Step(k.inputs(now))
	sw := find(ds, KindSwitch)
	if sw == nil || sw.Seller != asB || sw.From != asA || sw.GainLatencyUs != 8000 {
		t.Fatalf("want a switch to B, got %+v", ds)
	}
	k.apply(ds)
	// B's trade delivers: the route moves to B; A's is left to lapse.
	now = now.Add(time.Minute)
	ds = m.Step(k.inputs(now))
	k.apply(ds)
	if k.routes[pfx4] != asB {
		t.Fatalf("route %v after the switch (%v)", k.routes[pfx4], kinds(ds))
	}
	end := k.trades[0].End
	now = end.Add(-time.Hour)
	feed(m, now, map[uint32]int64{DefaultPath: 30, asA: 20, asB: 12, asC: 28})
	ds = m.Step(k.inputs(now))
	if l := find(ds, KindLapse); l == nil || l.Seller != asA || !strings.Contains(l.Reason, "superseded") {
		t.Fatalf("want A to lapse, got %+v", ds)
	}
	for _, d := range ds {
		if d.Kind == KindRenew && d.TradeID == k.trades[0].ID {
			t.Fatalf("renewed A: %+v", d)
		}
	}
}

// handTrade is a trade from A for pfx4 ending at end.
func handTrade(end time.Time) Trade {
	return Trade{ID: 5, Side: Buy, Seller: asA, Prefixes: []netip.Prefix{pfx4}, CapacityBps: 50 * mbps, PriceMicros: 2 * unit,
		Start: end.Add(-30 * 24 * time.Hour), End: end, Limits: Limits{MaxLatencyUs: 50000}}
}

func TestRenewOrLapse(t *testing.T) {
	end := t0.Add(12 * time.Hour) // within renew_before (24 h)
	tests := []struct {
		name   string
		latA   int64
		renew  bool
		reason string
	}{
		{"pays off", 20, true, "still pays off"},
		// 3 ms gain: below the 5 ms to buy, above the 2.5 ms to keep.
		{"hysteresis keeps it", 27, true, "still pays off"},
		{"no longer pays off", 29, false, "no longer pays off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, k := baseline(t, testPolicy())
			k.trades = []Trade{handTrade(end)}
			k.offers[0].Start = t0.Add(-time.Hour)
			feed(m, t0, map[uint32]int64{DefaultPath: 30, asA: tc.latA, asB: 30, asC: 30})
			ds := m.Step(k.inputs(t0))
			k.apply(ds)
			d := find(ds, KindRenew)
			if !tc.renew {
				d = find(ds, KindLapse)
			}
			if d == nil || !strings.Contains(d.Reason, tc.reason) || d.TradeID != 5 {
				t.Fatalf("want %q, got %+v", tc.reason, ds)
			}
			if tc.renew {
				in := d.Intents[0]
				if in.Type != TakeOffer || in.Seller != asA || !in.Start.Equal(end) || !in.End.Equal(end.Add(30*24*time.Hour)) {
					t.Fatalf("renewal intent %+v", in)
				}
			}
			// Nothing is renewed or lapsed twice.
			ds = m.Step(k.inputs(t0.Add(time.Minute)))
			if find(ds, KindRenew) != nil || find(ds, KindLapse) != nil {
				t.Fatalf("second round: %+v", kinds(ds))
			}
			if tc.renew {
				return
			}
			// After the lapse the destination is held down: B would gain 20 ms.
			now := end.Add(time.Hour)
			feed(m, now, map[uint32]int64{DefaultPath: 30, asA: 29, asB: 10})
			ds = m.Step(k.inputs(now))
			if h := find(ds, KindHold); find(ds, KindBuy) != nil || h == nil || !strings.Contains(h.Reason, "rebuy hold-down") {
				t.Fatalf("want the rebuy hold-down, got %+v", ds)
			}
			now = end.Add(6*time.Hour + time.Minute)
			feed(m, now, map[uint32]int64{DefaultPath: 30, asA: 29, asB: 10})
			if b := find(m.Step(k.inputs(now)), KindBuy); b == nil || b.Seller != asB {
				t.Fatalf("no buy after the hold-down: %+v", b)
			}
		})
	}
}

func TestCancelOnlyOwnOrdersThatNoLongerMakeSense(t *testing.T) {
	p := testPolicy()
	m, k := baseline(t, p)
	other := netip.MustParsePrefix("203.0.113.0/24")
	k.orders = []Order{
		{ID: 1, Side: Buy, Prefix: pfx6, CapacityBps: 10 * mbps, PriceMicros: unit, End: t0.Add(time.Hour), ClientOrderID: ClientOrderPrefix + "1"},     // no demand
		{ID: 2, Side: Buy, Prefix: other, CapacityBps: 10 * mbps, PriceMicros: unit, End: t0.Add(time.Hour), ClientOrderID: "by-hand"},                  // not ours
		{ID: 3, Side: Buy, Prefix: pfx4, CapacityBps: 10 * mbps, PriceMicros: 6 * unit, End: t0.Add(time.Hour), ClientOrderID: ClientOrderPrefix + "3"}, // above max price
	}
	ds := m.Step(k.inputs(t0))
	var cancelled []uint64
	for _, d := range ds {
		if d.Kind == KindCancel {
			cancelled = append(cancelled, d.OrderID)
			if len(d.Intents) != 1 || d.Intents[0].Type != CancelOrder || d.Intents[0].OrderID != d.OrderID {
				t.Fatalf("cancel intent %+v", d)
			}
		}
	}
	if len(cancelled) != 2 || cancelled[0] != 1 || cancelled[1] != 3 {
		t.Fatalf("cancelled %v (%+v)", cancelled, ds)
	}
}

func TestFailover(t *testing.T) {
	for _, withB := range []bool{false, true} {
		t.Run(map[bool]string{false: "to the next offer", true: "to another trade"}[withB], func(t *testing.T) {
			p := testPolicy()
			p.Stability.MaxChangesPerHour = 1
			m, k := baseline(t, p)
			k.trades = []Trade{handTrade(t0.Add(20 * 24 * time.Hour))}
			if withB {
				tb := handTrade(t0.Add(20 * 24 * time.Hour))
				tb.ID, tb.Seller, tb.PriceMicros = 6, asB, 3*unit
				k.trades = append(k.trades, tb)
			}
			feed(m, t0, map[uint32]int64{DefaultPath: 30, asA: 20, asB: 18, asC: 28})
			k.apply(m.Step(k.inputs(t0)))
			if k.routes[pfx4] != asA {
				t.Fatalf("route %v", k.routes)
			}
			// A sells its cap's worth of changes elsewhere; then A's path
			// goes dark for failover.rounds rounds.
			m.changes = append(m.changes, t0)
			var ds []Decision
			for i := 1; i <= 3; i++ {
				now := t0.Add(time.Duration(i) * time.Minute)
				feed(m, now, map[uint32]int64{DefaultPath: 30, asB: 18, asC: 28})
				probe(m, asA, pfx4, now, 0, 1_000_000)
				ds = m.Step(k.inputs(now))
				k.apply(ds)
				if i < 3 && find(ds, KindBreach) != nil {
					t.Fatalf("breach after %d rounds", i)
				}
			}
			br := find(ds, KindBreach)
			if br == nil || br.TradeID != 5 || len(br.Intents) != 1 || br.Intents[0].Type != ReportBreach || br.Intents[0].Observed.LossPPM != 1_000_000 {
				t.Fatalf("want a breach report in round 3, got %+v", ds)
			}
			if withB {
				if k.routes[pfx4] != asB || find(ds, KindBuy) != nil {
					t.Fatalf("want the route on B's trade, got %v %v", k.routes, kinds(ds))
				}
				return
			}
			// Back to the default path at once, and the next best offer
			// bought despite the change cap.
			buy := find(ds, KindBuy)
			if k.routes[pfx4] != DefaultPath || buy == nil || buy.Seller == asA || !strings.HasPrefix(buy.Reason, "failover") {
				t.Fatalf("route %v, decisions %+v", k.routes, ds)
			}
			now := t0.Add(4 * time.Minute)
			probe(m, asA, pfx4, now, 20, 0) // A recovers: no new report, still avoided
			ds = m.Step(k.inputs(now))
			k.apply(ds)
			if k.routes[pfx4] != buy.Seller || find(ds, KindBreach) != nil {
				t.Fatalf("route %v after the new trade (%v)", k.routes, kinds(ds))
			}
		})
	}
}

func TestChangeCap(t *testing.T) {
	p := testPolicy()
	p.Stability.MaxChangesPerHour = 2
	m := newManager(t, p)
	k := newMarket()
	var ps []netip.Prefix
	for i := range 4 {
		pf := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(100 + i), 0}), 24)
		if i%2 == 1 {
			pf = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i)}), 48)
		}
		ps = append(ps, pf)
		k.offers = append(k.offers, offer(uint64(i+1), asA, pf, 2*unit, 1000*mbps))
	}
	buys := func(now time.Time) int {
		for _, pf := range ps {
			demand(m, pf, 20*mbps, 12, now)
			probe(m, DefaultPath, pf, now, 30, 0)
			probe(m, asA, pf, now, 10, 0)
		}
		ds := m.Step(k.inputs(now))
		k.apply(ds)
		n := 0
		for _, d := range ds {
			if d.Kind == KindBuy {
				n++
			}
		}
		return n
	}
	if n := buys(t0); n != 2 {
		t.Fatalf("%d buys in the first round, cap 2", n)
	}
	if n := buys(t0.Add(30 * time.Minute)); n != 0 {
		t.Fatalf("%d buys within the hour", n)
	}
	if n := buys(t0.Add(61 * time.Minute)); n != 2 {
		t.Fatalf("%d buys after the hour", n)
	}
}

func TestCancelOwnOrdersOverBudget(t *testing.T) {
	p := testPolicy()
	p.Buy.Budget = 100 * unit
	m, k := baseline(t, p)
	demand(m, pfx6, 40*mbps, 12, t0)
	// Two orders of ours for wanted destinations cost 150 a month: the newer goes.
	k.orders = []Order{
		{ID: 1, Side: Buy, Prefix: pfx4, CapacityBps: 50 * mbps, PriceMicros: unit, End: t0.Add(time.Hour), ClientOrderID: ClientOrderPrefix + "1"},
		{ID: 2, Side: Buy, Prefix: pfx6, CapacityBps: 50 * mbps, PriceMicros: 2 * unit, End: t0.Add(time.Hour), ClientOrderID: ClientOrderPrefix + "2"},
	}
	ds := m.Step(k.inputs(t0))
	c := find(ds, KindCancel)
	if c == nil || c.OrderID != 2 || !strings.Contains(c.Reason, "over buy.budget") || !c.HoldUntil.Equal(t0.Add(p.Stability.RebuyHoldDown)) {
		t.Fatalf("decisions %+v", ds)
	}
	if n := len(ds); find(ds[1:], KindCancel) != nil {
		t.Fatalf("%d decisions, cancelled more than one: %+v", n, ds)
	}
}

func TestShadowFailover(t *testing.T) {
	p := testPolicy()
	p.Mode = ModeShadow
	m, k := baseline(t, p)
	if b := find(m.Step(k.inputs(t0)), KindBuy); b == nil || b.Seller != asA {
		t.Fatalf("shadow buy %+v", b)
	}
	var ds []Decision
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		feed(m, now, map[uint32]int64{DefaultPath: 30, asB: 18, asC: 28})
		probe(m, asA, pfx4, now, 0, 1_000_000)
		ds = m.Step(k.inputs(now))
	}
	br, buy := find(ds, KindBreach), find(ds, KindBuy)
	if br == nil || !br.Shadow || br.Seller != asA || buy == nil || !buy.Shadow || buy.Seller != asB || len(buy.Intents) != 0 {
		t.Fatalf("want a shadow breach and a shadow buy from B, got %+v", ds)
	}
}

// A trade bought without limits, under a policy whose floor sets no loss
// limit, is still held to the default 2 % loss floor: a path that loses
// 10 % for failover.rounds rounds is reported and left. The offers the
// manager takes carry the floor as configured (the trade's SLA).
func TestDefaultLossFloorGuardsTrades(t *testing.T) {
	p := testPolicy()
	p.Buy.Floor = QualityFloor{MaxLatency: 50 * time.Millisecond}
	m, k := baseline(t, p)
	tr := handTrade(t0.Add(20 * 24 * time.Hour))
	tr.Limits = Limits{}
	k.trades = []Trade{tr}
	feed(m, t0, map[uint32]int64{DefaultPath: 30, asA: 20, asB: 18, asC: 28})
	ds := m.Step(k.inputs(t0))
	k.apply(ds)
	taken := 0
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		feed(m, now, map[uint32]int64{DefaultPath: 30, asB: 18, asC: 28})
		probe(m, asA, pfx4, now, 20, 100_000)
		ds = m.Step(k.inputs(now))
		k.apply(ds)
		for _, d := range ds {
			for _, in := range d.Intents {
				if in.Type != TakeOffer {
					continue
				}
				taken++
				if in.Limits != p.Buy.Floor.Limits() {
					t.Errorf("an offer taken with limits %+v, want the floor as configured %+v", in.Limits, p.Buy.Floor.Limits())
				}
			}
		}
	}
	if taken == 0 {
		t.Errorf("no offer taken to move off the lossy path")
	}
	br := find(ds, KindBreach)
	if br == nil || br.TradeID != 5 {
		t.Fatalf("10 %% loss on a trade without limits: no breach report (%v)", kinds(ds))
	}
	if k.routes[pfx4] == asA {
		t.Errorf("the route stayed on the lossy path: %v", k.routes)
	}
}
