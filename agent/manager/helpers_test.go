package manager

import (
	"net/netip"
	"testing"
	"time"
)

var (
	t0   = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	pfx4 = netip.MustParsePrefix("198.51.100.0/24")
	pfx6 = netip.MustParsePrefix("2001:db8:100::/48")
)

const (
	asA  = 64501
	asB  = 64502
	asC  = 64503
	mbps = 1_000_000
	unit = 1_000_000 // micro-units
)

// testPolicy buys in trade mode with a budget of 1000 a month, max price
// 5/Mbps, 5 ms or 1 % loss worth paying for.
func testPolicy() Policy {
	p := DefaultPolicy()
	p.Mode = ModeTrade
	p.Demand.Window = 2 * time.Hour
	p.Demand.MinSamples = 10
	p.Demand.MinIntervals = 3
	p.Buy.Budget = 1000 * unit
	p.Buy.MaxPrice = 5 * unit
	p.Buy.MinImprovement = Improvement{Latency: 5 * time.Millisecond, Loss: 10_000}
	p.Buy.Headroom = 25
	p.Buy.Floor = QualityFloor{MaxLatency: 50 * time.Millisecond, MaxLoss: 20_000}
	p.Buy.Term = 30 * 24 * time.Hour
	p.Buy.RenewBefore = 24 * time.Hour
	p.Stability = StabilityPolicy{Hysteresis: 50, RebuyHoldDown: 6 * time.Hour, SwitchHoldDown: 12 * time.Hour, MaxChangesPerHour: 4}
	p.Failover.Rounds = 3
	return p
}

func newManager(t testing.TB, p Policy) *Manager {
	t.Helper()
	m, err := New(p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// demand feeds n 5-minute intervals of bps toward p ending at end.
func demand(m *Manager, p netip.Prefix, bps int64, n int, end time.Time) {
	for i := n; i > 0; i-- {
		s := end.Add(-time.Duration(i) * 5 * time.Minute)
		m.AddDemand(DemandSample{Prefix: p, Seller: DefaultPath, Start: s, End: s.Add(5 * time.Minute), BitsPerSecond: bps, Samples: 100})
	}
}

// probe feeds one round toward p through seller.
func probe(m *Manager, seller uint32, p netip.Prefix, at time.Time, latencyMs int64, lossPPM int32) {
	recv := 100 - int32(int64(lossPPM)*100/1_000_000)
	m.AddQuality(PathSample{Seller: seller, Prefix: p, At: at, Sent: 100, Received: recv, LatencyUs: latencyMs * 1000, JitterUs: 100, LossPPM: lossPPM})
}

func offer(id uint64, seller uint32, p netip.Prefix, price int64, avail int64) Offer {
	return Offer{OrderID: id, Seller: seller, Prefix: p, AvailableBps: avail, MinBlockBps: 10 * mbps, PriceMicros: price}
}

// market plays the daemon and the exchange: it carries out intents.
type market struct {
	offers []Offer
	orders []Order
	trades []Trade
	port   Port
	nextID uint64
	// routes is the route preference the manager last asked for.
	routes map[netip.Prefix]uint32
	// taken counts TakeOffer intents.
	taken int
}

func newMarket(offers ...Offer) *market {
	return &market{offers: offers, nextID: 1000, routes: map[netip.Prefix]uint32{}}
}

func (k *market) inputs(now time.Time) Inputs {
	var tr []Trade
	for _, t := range k.trades {
		if t.End.After(now) {
			tr = append(tr, t)
		}
	}
	k.trades = tr
	return Inputs{Now: now, Offers: k.offers, Orders: k.orders, Trades: tr, Port: k.port}
}

func (k *market) apply(ds []Decision) {
	for _, d := range ds {
		for _, in := range d.Intents {
			k.nextID++
			switch in.Type {
			case TakeOffer:
				k.taken++
				k.trades = append(k.trades, Trade{ID: k.nextID, Side: Buy, Seller: in.Seller, Prefixes: []netip.Prefix{in.Prefix},
					CapacityBps: in.CapacityBps, PriceMicros: in.PriceMicros, Start: in.Start, End: in.End, Limits: in.Limits})
			case CancelOrder:
				for i, o := range k.orders {
					if o.ID == in.OrderID {
						k.orders = append(k.orders[:i], k.orders[i+1:]...)
						break
					}
				}
			case PlaceSell:
				k.orders = append(k.orders, Order{ID: k.nextID, Side: Sell, Destination: in.Destination, CapacityBps: in.CapacityBps,
					MinBlockBps: in.MinBlockBps, PriceMicros: in.PriceMicros, Start: in.Start, End: in.End, ClientOrderID: in.ClientOrderID})
			case ModifySell:
				for i := range k.orders {
					if k.orders[i].ID == in.OrderID {
						k.orders[i].CapacityBps, k.orders[i].PriceMicros = in.CapacityBps, in.PriceMicros
					}
				}
			case Route:
				k.routes[in.Prefix] = in.Seller
			}
		}
	}
}

func kinds(ds []Decision) []Kind {
	var out []Kind
	for _, d := range ds {
		out = append(out, d.Kind)
	}
	return out
}

func find(ds []Decision, k Kind) *Decision {
	for i := range ds {
		if ds[i].Kind == k {
			return &ds[i]
		}
	}
	return nil
}
