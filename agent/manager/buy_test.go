package manager

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// baseline: 40 Mbps toward pfx4 (95th percentile); the default path 30 ms;
// A: 2/Mbps, 20 ms; B: 3/Mbps, 10 ms; C: 1/Mbps, 28 ms (gains too little).
func baseline(t *testing.T, p Policy) (*Manager, *market) { return baselineFor(t, p, pfx4) }

func baselineFor(t *testing.T, p Policy, pf netip.Prefix) (*Manager, *market) {
	m := newManager(t, p)
	demand(m, pf, 40*mbps, 12, t0)
	for i := range 3 {
		at := t0.Add(-time.Duration(i) * time.Minute)
		probe(m, DefaultPath, pf, at, 30, 0)
		probe(m, asA, pf, at, 20, 0)
		probe(m, asB, pf, at, 10, 0)
		probe(m, asC, pf, at, 28, 0)
	}
	k := newMarket(offer(1, asA, pf, 2*unit, 1000*mbps), offer(2, asB, pf, 3*unit, 1000*mbps), offer(3, asC, pf, 1*unit, 1000*mbps))
	return m, k
}

func TestBuyDecisions(t *testing.T) {
	tests := []struct {
		name   string
		policy func(*Policy)
		market func(*market, *Manager)
		seller uint32 // 0: no buy
		hold   string // part of the hold reason when no buy
	}{
		{name: "price ranking skips an offer that gains too little", seller: asA},
		{name: "performance ranking", policy: func(p *Policy) { p.Buy.Ranking = ByPerformance }, seller: asB},
		{name: "weighted, price only", policy: func(p *Policy) { p.Buy.Ranking, p.Buy.PriceWeight = Weighted, 100 }, seller: asA},
		{name: "weighted, performance only", policy: func(p *Policy) { p.Buy.Ranking, p.Buy.PriceWeight = Weighted, 0 }, seller: asB},
		{name: "max price excludes the fastest", policy: func(p *Policy) { p.Buy.Ranking, p.Buy.MaxPrice = ByPerformance, 2500000 }, seller: asA},
		{name: "quality floor", policy: func(p *Policy) { p.Buy.Floor.MaxLatency = 15 * time.Millisecond }, seller: asB},
		{name: "allowed sellers", policy: func(p *Policy) { p.Buy.Sellers = []uint32{asB} }, seller: asB},
		{name: "destination not allowed", policy: func(p *Policy) { p.Buy.Destinations = []string{"203.0.113.0/24"} }},
		{name: "budget", policy: func(p *Policy) { p.Buy.Budget = 99 * unit }, hold: "over buy.budget"},
		{name: "budget just enough", policy: func(p *Policy) { p.Buy.Budget = 100 * unit }, seller: asA},
		{name: "too little capacity", market: func(k *market, _ *Manager) {
			for i := range k.offers {
				k.offers[i].AvailableBps = 40 * mbps
			}
		}, hold: "3 too little capacity"},
		{name: "own port full", market: func(k *market, _ *Manager) { k.port = Port{CapacityBps: 100 * mbps, CommittedBps: 60 * mbps} }, hold: "own port full"},
		{name: "max trades", policy: func(p *Policy) { p.Buy.MaxTrades = 1 }, market: func(k *market, _ *Manager) {
			k.trades = append(k.trades, Trade{ID: 9, Side: Buy, Seller: asC, Prefixes: []netip.Prefix{pfx6}, CapacityBps: mbps, PriceMicros: unit, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)})
		}, hold: "buy.max_trades 1 reached"},
		{name: "hand-placed order counts against the budget", policy: func(p *Policy) { p.Buy.Budget = 150 * unit }, market: func(k *market, _ *Manager) {
			k.orders = append(k.orders, Order{ID: 7, Side: Buy, Prefix: pfx6, CapacityBps: 100 * mbps, PriceMicros: unit, End: t0.Add(48 * time.Hour)})
		}, hold: "over buy.budget"},
		{name: "max open orders", policy: func(p *Policy) { p.Buy.MaxOpenOrders = 1 }, market: func(k *market, _ *Manager) {
			k.orders = append(k.orders, Order{ID: 7, Side: Buy, Prefix: pfx6, CapacityBps: mbps, PriceMicros: unit, End: t0.Add(48 * time.Hour)})
		}, hold: "buy.max_open_orders 1 reached"},
		{name: "sell orders do not count", policy: func(p *Policy) { p.Buy.MaxOpenOrders = 1 }, market: func(k *market, _ *Manager) {
			k.orders = append(k.orders, Order{ID: 7, Side: Sell, Destination: "customer", CapacityBps: gbps, PriceMicros: unit, End: t0.Add(48 * time.Hour)})
		}, seller: asA},
		{name: "no offer improves enough", market: func(_ *market, m *Manager) {
			for i := range 5 {
				probe(m, DefaultPath, pfx4, t0.Add(time.Duration(i+1)*time.Second), 12, 0)
			}
		}, hold: "no offer improves enough"},
		{name: "loss improvement", market: func(_ *market, m *Manager) {
			for i := range 5 {
				probe(m, DefaultPath, pfx4, t0.Add(time.Duration(i+1)*time.Second), 19, 30_000)
			}
		}, seller: asC},
		{name: "unmeasured default path", market: func(_ *market, m *Manager) { m.paths = newPaths(5) }, hold: "no usable offer: 3 unmeasured"},
		{name: "exchange measurement when own probes are missing", market: func(k *market, m *Manager) {
			m.paths = newPaths(5)
			probe(m, DefaultPath, pfx4, t0, 30, 0)
			k.offers[1].Measured = &Quality{LatencyUs: 10_000, Probes: 100}
		}, seller: asB},
		{name: "exchange measurement with too few probes", market: func(k *market, m *Manager) {
			m.paths = newPaths(5)
			probe(m, DefaultPath, pfx4, t0, 30, 0)
			k.offers[1].Measured = &Quality{LatencyUs: 10_000, Probes: 6}
		}, hold: "1 too few probes yet (probing more)"},
		{name: "savings", policy: func(p *Policy) {
			p.Buy.MinImprovement = Improvement{Savings: 50 * unit}
			p.Buy.DefaultPathPrice = 4 * unit
		}, seller: asC},
		{name: "savings too small", policy: func(p *Policy) {
			p.Buy.MinImprovement = Improvement{Savings: 200 * unit}
			p.Buy.DefaultPathPrice = 4 * unit
		}, hold: "no offer improves enough"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			m, k := baseline(t, p)
			if tc.market != nil {
				tc.market(k, m)
			}
			ds := m.Step(k.inputs(t0))
			buy := find(ds, KindBuy)
			if tc.seller == 0 {
				if buy != nil {
					t.Fatalf("bought from AS%d: %+v", buy.Seller, *buy)
				}
				h := find(ds, KindHold)
				switch {
				case tc.hold == "" && h != nil:
					t.Fatalf("unexpected hold %q", h.Reason)
				case tc.hold != "" && (h == nil || !strings.Contains(h.Reason, tc.hold)):
					t.Fatalf("want a hold saying %q, got %v", tc.hold, ds)
				}
				return
			}
			if buy == nil {
				t.Fatalf("no buy: %+v", ds)
			}
			if buy.Seller != tc.seller {
				t.Fatalf("bought from AS%d, want AS%d (%s)", buy.Seller, tc.seller, buy.Reason)
			}
			if len(buy.Intents) != 1 {
				t.Fatalf("intents %+v", buy.Intents)
			}
			in := buy.Intents[0]
			// 40 Mbps + 25 % headroom = 50 Mbps: 5 blocks of 10.
			if in.Type != TakeOffer || in.CapacityBps != 50*mbps || in.Prefix != pfx4 || in.Seller != tc.seller ||
				!in.Start.Equal(t0) || !in.End.Equal(t0.Add(p.Buy.Term)) || in.Limits != p.Buy.Floor.Limits() ||
				!strings.HasPrefix(in.ClientOrderID, ClientOrderPrefix) {
				t.Fatalf("intent %+v", in)
			}
			if buy.MonthlyMicros != buy.PriceMicros*50 || buy.DemandP95Bps != 40*mbps || buy.Current == nil || buy.Chosen == nil {
				t.Fatalf("decision numbers %+v", *buy)
			}
			// The next round does not buy again: the buy is pending.
			if again := find(m.Step(k.inputs(t0.Add(time.Minute))), KindBuy); again != nil {
				t.Fatalf("bought twice: %+v", *again)
			}
		})
	}
}

func TestSizeWholeBlocks(t *testing.T) {
	p := testPolicy()
	p.Buy.Headroom = 10
	m, k := baseline(t, p)
	for i := range k.offers {
		k.offers[i].MinBlockBps = 30 * mbps
	}
	buy := find(m.Step(k.inputs(t0)), KindBuy)
	// 40 Mbps + 10 % = 44 Mbps: 2 blocks of 30.
	if buy == nil || buy.SizeBps != 60*mbps {
		t.Fatalf("want 60 Mbps, got %+v", buy)
	}
}

func TestFailedTakeIsForgotten(t *testing.T) {
	m, k := baseline(t, testPolicy())
	buy := find(m.Step(k.inputs(t0)), KindBuy)
	if buy == nil {
		t.Fatal("no buy")
	}
	m.Failed(buy.Intents[0].ClientOrderID, t0, errors.New("offer gone"))
	if again := find(m.Step(k.inputs(t0.Add(time.Minute))), KindBuy); again == nil {
		t.Fatal("no new buy after the first failed")
	}
}

func TestBuyIPv6(t *testing.T) {
	p := testPolicy()
	p.Buy.Ranking = ByPerformance
	p.Buy.Destinations = []string{"2001:db8::/32"}
	m, k := baselineFor(t, p, pfx6)
	buy := find(m.Step(k.inputs(t0)), KindBuy)
	if buy == nil || buy.Prefix != pfx6 || buy.Seller != asB || buy.Intents[0].Prefix != pfx6 {
		t.Fatalf("buy %+v", buy)
	}
	// The same policy does not buy for IPv4 outside its destinations.
	m, k = baselineFor(t, p, pfx4)
	if ds := m.Step(k.inputs(t0)); len(ds) != 0 {
		t.Fatalf("decisions for a destination not allowed: %+v", ds)
	}
}
