package manager

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/shared/pathscore"
)

var (
	propDests   = []netip.Prefix{pfx4, netip.MustParsePrefix("192.0.2.0/24"), pfx6, netip.MustParsePrefix("2001:db8:200::/48")}
	propSellers = []uint32{asA, asB, asC}
)

func drawPolicy(t *rapid.T) Policy {
	p := DefaultPolicy()
	p.Mode = ModeTrade
	p.Demand.Window = time.Hour
	p.Demand.MinSamples = 0
	p.Demand.MinIntervals = 1
	p.Quality.Rounds = rapid.IntRange(1, 5).Draw(t, "rounds")
	p.Quality.MaxAge = time.Hour
	b := &p.Buy
	b.Budget = Money(rapid.Int64Range(50, 3000).Draw(t, "budget") * unit)
	b.MaxPrice = Money(rapid.Int64Range(1, 6).Draw(t, "max_price") * unit / 2)
	b.Ranking = rapid.SampledFrom([]Ranking{ByPrice, ByPerformance, Weighted}).Draw(t, "ranking")
	b.PriceWeight = rapid.IntRange(0, 100).Draw(t, "weight")
	if rapid.Bool().Draw(t, "floor") {
		b.Floor.MaxLatency = time.Duration(rapid.IntRange(20, 60).Draw(t, "floor_ms")) * time.Millisecond
		b.Floor.MaxLoss = Percent(rapid.IntRange(10_000, 50_000).Draw(t, "floor_loss"))
	}
	b.MinImprovement = Improvement{Latency: time.Duration(rapid.IntRange(1, 10).Draw(t, "gain_ms")) * time.Millisecond}
	if rapid.Bool().Draw(t, "savings") {
		b.MinImprovement.Savings = Money(rapid.Int64Range(1, 100).Draw(t, "min_savings") * unit)
		b.DefaultPathPrice = Money(rapid.Int64Range(1, 8).Draw(t, "default_price") * unit)
	}
	b.Headroom = rapid.IntRange(0, 50).Draw(t, "headroom")
	b.MaxOpenOrders = rapid.IntRange(1, 3).Draw(t, "max_open")
	b.MaxTrades = rapid.IntRange(1, 6).Draw(t, "max_trades")
	for _, s := range propSellers {
		if rapid.Bool().Draw(t, fmt.Sprintf("allow_AS%d", s)) {
			b.Sellers = append(b.Sellers, s)
		}
	}
	for _, d := range propDests {
		if rapid.Bool().Draw(t, "allow_"+d.String()) {
			b.Destinations = append(b.Destinations, d.String())
		}
	}
	b.Term = time.Duration(rapid.IntRange(1, 48).Draw(t, "term_h")) * time.Hour
	b.RenewBefore = time.Duration(rapid.Int64Range(1, int64(b.Term/time.Minute)-1).Draw(t, "renew_min")) * time.Minute
	p.Stability = StabilityPolicy{
		Hysteresis:        rapid.IntRange(0, 100).Draw(t, "hysteresis"),
		RebuyHoldDown:     time.Duration(rapid.IntRange(0, 360).Draw(t, "rebuy_min")) * time.Minute,
		SwitchHoldDown:    time.Duration(rapid.IntRange(0, 720).Draw(t, "switch_min")) * time.Minute,
		MaxChangesPerHour: rapid.IntRange(1, 5).Draw(t, "cap"),
	}
	p.Failover.Rounds = rapid.IntRange(1, 4).Draw(t, "failover_rounds")
	return p
}

func TestPropertiesBuy(t *testing.T) {
	seen := map[Kind]int{}
	defer func() {
		// The generator must reach the decisions the properties are about.
		t.Logf("decisions made: %v", seen)
		// (Switches, renewals and lapses are rarer; their unit tests cover them.)
		for _, k := range []Kind{KindBuy, KindBreach, KindRoute} {
			if seen[k] == 0 && !t.Failed() {
				t.Errorf("no %s decision in any run", k)
			}
		}
	}()
	rapid.Check(t, func(t *rapid.T) {
		p := drawPolicy(t)
		m, err := New(p, 10000)
		if err != nil {
			t.Fatal(err)
		}
		k := newMarket()
		now := t0
		lastBuy := map[netip.Prefix]time.Time{}
		noRebuy := map[netip.Prefix]time.Time{}
		var changes []time.Time
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for range steps {
			now = now.Add(time.Duration(rapid.IntRange(1, 40).Draw(t, "advance_min")) * time.Minute)
			k.offers = nil
			for _, d := range propDests {
				m.AddDemand(DemandSample{Prefix: d, Start: now.Add(-5 * time.Minute), End: now, Samples: 100,
					BitsPerSecond: rapid.Int64Range(0, 100).Draw(t, "demand_mbps") * mbps})
				for _, s := range append([]uint32{DefaultPath}, propSellers...) {
					loss := int32(0)
					if rapid.IntRange(0, 4).Draw(t, "lossy") == 0 {
						loss = int32(rapid.IntRange(0, 1_000_000).Draw(t, "loss"))
					}
					lat := rapid.Int64Range(5, 60).Draw(t, "latency_ms")
					if s == DefaultPath {
						lat += 20 // the default path is usually the slower
					}
					probe(m, s, d, now, lat, loss)
					if s == DefaultPath || !rapid.Bool().Draw(t, "offered") {
						continue
					}
					o := offer(uint64(len(k.offers)+1), s, d, rapid.Int64Range(1, 6).Draw(t, "price")*unit/2, rapid.Int64Range(0, 1000).Draw(t, "avail_mbps")*mbps)
					o.MinBlockBps = rapid.Int64Range(1, 50).Draw(t, "block_mbps") * mbps
					k.offers = append(k.offers, o)
				}
			}
			ds := m.Step(k.inputs(now))
			for _, d := range ds {
				seen[d.Kind]++
				for _, in := range d.Intents {
					if in.Type != TakeOffer {
						continue
					}
					i := slices.IndexFunc(k.offers, func(o Offer) bool { return o.OrderID == in.OfferOrderID })
					if i < 0 {
						t.Fatalf("took an offer that does not exist: %+v", in)
					}
					o := k.offers[i]
					switch {
					case in.PriceMicros > int64(p.Buy.MaxPrice) || o.PriceMicros > int64(p.Buy.MaxPrice):
						t.Fatalf("bought above max price %v: %+v", p.Buy.MaxPrice, in)
					case !slices.Contains(p.Buy.Sellers, in.Seller) && len(p.Buy.Sellers) > 0:
						t.Fatalf("bought from AS%d, allowed %v", in.Seller, p.Buy.Sellers)
					case !slices.Contains(p.Buy.Destinations, in.Prefix.String()) && len(p.Buy.Destinations) > 0:
						t.Fatalf("bought for %v, allowed %v", in.Prefix, p.Buy.Destinations)
					case in.Prefix != o.Prefix || in.Seller != o.Seller || in.CapacityBps%o.MinBlockBps != 0 || in.CapacityBps > o.AvailableBps || in.CapacityBps <= 0:
						t.Fatalf("intent %+v does not fit offer %+v", in, o)
					}
				}
				failover := strings.HasPrefix(d.Reason, "failover")
				if (d.Kind == KindBuy || d.Kind == KindSwitch) && d.Chosen != nil {
					// No decision on noise, never worse where it matters.
					if d.Chosen.Probes < p.Quality.MinProbes || d.Current != nil && d.Current.Probes < p.Quality.MinProbes && !failover {
						t.Fatalf("%s on too few probes: %+v", d.Kind, d)
					}
					if d.Current != nil && pathscore.Worse(pathscore.Loss, d.Chosen.figures(), d.Current.figures()) {
						t.Fatalf("%s to a path with significantly more loss: %s", d.Kind, d)
					}
				}
				switch d.Kind {
				case KindBuy:
					if !failover && now.Before(noRebuy[d.Prefix]) {
						t.Fatalf("rebought %v at %v, hold-down until %v", d.Prefix, now, noRebuy[d.Prefix])
					}
					lastBuy[d.Prefix] = now
				case KindSwitch:
					if now.Sub(lastBuy[d.Prefix]) < p.Stability.SwitchHoldDown {
						t.Fatalf("switched %v at %v, %v after its last buy", d.Prefix, now, now.Sub(lastBuy[d.Prefix]))
					}
					lastBuy[d.Prefix] = now
				case KindLapse:
					if i := slices.IndexFunc(k.trades, func(tr Trade) bool { return tr.ID == d.TradeID }); i >= 0 && d.Prefix.IsValid() {
						noRebuy[d.Prefix] = laterOf(noRebuy[d.Prefix], k.trades[i].End.Add(p.Stability.RebuyHoldDown))
					}
				case KindCancel:
					noRebuy[d.Prefix] = laterOf(noRebuy[d.Prefix], now.Add(p.Stability.RebuyHoldDown))
				}
				if d.Kind.changes() && !failover {
					changes = append(changes, now)
					n := 0
					for _, c := range changes {
						if now.Sub(c) < time.Hour {
							n++
						}
					}
					if n > p.Stability.MaxChangesPerHour {
						t.Fatalf("%d changes in the hour before %v, cap %d", n, now, p.Stability.MaxChangesPerHour)
					}
				}
			}
			// Some takes fail: the manager must forget them.
			for _, d := range ds {
				for _, in := range d.Intents {
					if in.Type == TakeOffer && rapid.IntRange(0, 4).Draw(t, "fail") == 0 {
						m.Failed(in.ClientOrderID, now, errors.New("offer gone"))
						d.Intents = nil
					}
				}
				k.apply([]Decision{d})
			}
			// The budget and the trade limit hold at every instant from now on.
			var live []Trade
			for _, tr := range k.trades {
				if tr.End.After(now) {
					live = append(live, tr)
				}
			}
			for _, at := range live {
				t0 := laterOf(at.Start, now)
				var sum int64
				n := 0
				for _, tr := range live {
					if !t0.Before(tr.Start) && t0.Before(tr.End) {
						sum += tr.PriceMicros * tr.CapacityBps / mbps
						n++
					}
				}
				if sum > int64(p.Buy.Budget) {
					t.Fatalf("at %v trades cost %v a month, budget %v", t0, Money(sum), p.Buy.Budget)
				}
				if n > p.Buy.MaxTrades {
					t.Fatalf("at %v %d trades deliver, limit %d", t0, n, p.Buy.MaxTrades)
				}
			}
		}
	})
}

// The sell side never leaves more on offer than the spare capacity, and
// shadow mode never asks the daemon to do anything.
func TestPropertiesSellAndShadow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawPolicy(t)
		p.Sell = SellPolicy{Enabled: true, Destinations: []string{"customer", "198.51.100.0/24"}, Price: Money(unit),
			MinBlock: Bandwidth(rapid.Int64Range(1, 1000).Draw(t, "block_mbps") * mbps), SafetyMargin: Bandwidth(rapid.Int64Range(0, 2000).Draw(t, "margin_mbps") * mbps),
			Term: 24 * time.Hour, RenewBefore: time.Hour, Adjust: rapid.IntRange(0, 100).Draw(t, "adjust")}
		shadow := rapid.Bool().Draw(t, "shadow")
		if shadow {
			p.Mode = ModeShadow
		}
		m, err := New(p, 100)
		if err != nil {
			t.Fatal(err)
		}
		k := newMarket(offer(1, asA, pfx4, unit/2, 10000*mbps), offer(2, asB, pfx6, unit/2, 10000*mbps))
		now := t0
		for range rapid.IntRange(1, 50).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(1, 120).Draw(t, "advance_min")) * time.Minute)
			k.port = Port{CapacityBps: 10 * gbps, CommittedBps: rapid.Int64Range(0, 12).Draw(t, "committed_g") * gbps,
				OtherUseBps: rapid.Int64Range(0, 2000).Draw(t, "other_mbps") * mbps}
			for _, pf := range []netip.Prefix{pfx4, pfx6} {
				demand(m, pf, rapid.Int64Range(0, 100).Draw(t, "demand_mbps")*mbps, 3, now)
				probe(m, DefaultPath, pf, now, 40, 0)
				probe(m, asA, pf, now, rapid.Int64Range(5, 60).Draw(t, "lat_a"), 0)
				probe(m, asB, pf, now, rapid.Int64Range(5, 60).Draw(t, "lat_b"), 0)
			}
			// Some of what was offered sells.
			for i := range k.orders {
				if o := &k.orders[i]; o.Side == Sell && rapid.IntRange(0, 3).Draw(t, "sold") == 0 {
					o.FilledBps += o.Remaining() / o.MinBlockBps / 2 * o.MinBlockBps
				}
			}
			ds := m.Step(k.inputs(now))
			for _, d := range ds {
				if shadow && (len(d.Intents) > 0 || !d.Shadow) {
					t.Fatalf("shadow decision with intents: %+v", d)
				}
			}
			k.apply(ds)
			spare := Spare(k.port, int64(p.Sell.SafetyMargin), int64(p.Sell.MinBlock))
			for _, o := range k.orders {
				if o.Side == Sell && o.Remaining() > spare {
					t.Fatalf("offers %v with %v spare: %+v", Bandwidth(o.Remaining()), Bandwidth(spare), o)
				}
				if o.Side == Sell && o.Remaining()%int64(p.Sell.MinBlock) != 0 {
					t.Fatalf("offer %v is not whole blocks of %v", Bandwidth(o.Remaining()), p.Sell.MinBlock)
				}
			}
		}
	})
}
