package book_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/invalid"
)

// Engine tests run the matching rules in memory, each from the rule's
// statement: who trades with whom, how much, at what price, in what order.

type quality map[uint32]*book.Measured

func (q quality) Measured(_, seller uint32, _ []netip.Prefix, _ time.Time) *book.Measured {
	return q[seller]
}

var now = t0.Add(-time.Hour)

// engine has three sellers and two buyers on 10G ports. Sellers 64501-64503
// all register 198.51.100.0/24 (64501 as customer, 64502 as transit, 64503
// as peer with origin 64999) and 2001:db8:100::/48; 64501 also has
// 203.0.113.0/24 (customer).
func engine(t *testing.T) *book.Engine {
	t.Helper()
	e := book.NewEngine()
	m := func(asn uint32, port int64, routers []string, routes ...registry.Prefix) *book.MemberInfo {
		mi := &book.MemberInfo{ASN: asn, ID: int64(asn), PortID: port, Capacity: 10 * Gbps}
		for _, r := range routers {
			mi.Routers = append(mi.Routers, netip.MustParseAddr(r))
		}
		mi.Routes = routes
		return mi
	}
	r := func(asn uint32, p string, typ registry.RouteType, origin uint32) registry.Prefix {
		if origin == 0 {
			origin = asn
		}
		return registry.Prefix{Prefix: netip.MustParsePrefix(p), MemberASN: asn, Type: typ, OriginASN: origin}
	}
	e.SetMembers(map[uint32]*book.MemberInfo{
		64501: m(64501, 1, []string{"192.0.2.1", "2001:db8::1"}, r(64501, "198.51.100.0/24", registry.Customer, 0),
			r(64501, "2001:db8:100::/48", registry.Customer, 0), r(64501, "203.0.113.0/24", registry.Customer, 0)),
		64502: m(64502, 2, []string{"192.0.2.2", "2001:db8::2"}, r(64502, "198.51.100.0/24", registry.Transit, 0),
			r(64502, "2001:db8:100::/48", registry.Transit, 0)),
		64503: m(64503, 3, []string{"192.0.2.3", "2001:db8::3"}, r(64503, "198.51.100.0/24", registry.Peer, 64999),
			r(64503, "2001:db8:100::/48", registry.Peer, 64999)),
		64510: m(64510, 10, []string{"192.0.2.10"}),
		64511: m(64511, 11, []string{"192.0.2.11"}),
	})
	return e
}

func place(t *testing.T, e *book.Engine, asn uint32, s book.Spec) (book.Order, []book.Trade) {
	t.Helper()
	o, trades, _, err := e.Place(now, asn, s, "", 0)
	if err != nil {
		t.Fatalf("place for AS%d: %v", asn, err)
	}
	return o, trades
}

func total(trades []book.Trade) int64 {
	var n int64
	for _, t := range trades {
		n += t.CapacityBps
	}
	return n
}

func sellers(trades []book.Trade) []uint32 {
	var out []uint32
	for _, t := range trades {
		out = append(out, t.SellerASN)
	}
	return out
}

// offered lists the sellers of the offers AS64510's buy b sees, best first.
func offered(t *testing.T, e *book.Engine, b book.Spec) []uint32 {
	t.Helper()
	offers, err := e.Offers(now, 64510, b)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, o := range offers {
		out = append(out, o.Order.MemberASN)
	}
	return out
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRankingByBuyerChoice(t *testing.T) {
	// Prices: 64501 cheapest, 64503 dearest. Latency: 64503 fastest, 64501 slowest.
	q := quality{
		64501: {LatencyUs: 30_000, Samples: 10},
		64502: {LatencyUs: 20_000, Samples: 10},
		64503: {LatencyUs: 5_000, Samples: 10},
	}
	cases := []struct {
		name    string
		ranking book.Ranking
		weight  uint32
		want    []uint32
	}{
		{"price", book.ByPrice, 0, []uint32{64501, 64502, 64503}},
		{"performance", book.ByPerformance, 0, []uint32{64503, 64502, 64501}},
		{"weighted all price", book.Weighted, 100, []uint32{64501, 64502, 64503}},
		{"weighted all performance", book.Weighted, 0, []uint32{64503, 64502, 64501}},
		// price part: 1/10, 2/10, 9/10 of the limit; latency part: 1, 2/3, 1/6.
		// w=0.5: 64501 .55, 64502 .433, 64503 .533 -> 64502, 64503, 64501.
		{"weighted half", book.Weighted, 50, []uint32{64502, 64503, 64501}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t)
			e.Quality = q
			for asn, price := range map[uint32]int64{64501: 1_000, 64502: 2_000, 64503: 9_000} {
				place(t, e, asn, spec(book.Sell, "198.51.100.0/24", Gbps, price))
			}
			b := spec(book.Buy, "198.51.100.0/24", 3*Gbps, 10_000)
			b.MinBlockBps = Gbps
			b.Ranking, b.PriceWeight = c.ranking, c.weight
			got := offered(t, e, b)
			if !equal(got, c.want) {
				t.Fatalf("offers ranked %v, want %v", got, c.want)
			}
			// Matching fills in the same order, each at its own (resting) price.
			_, trades := place(t, e, 64510, b)
			if !equal(sellers(trades), c.want) {
				t.Fatalf("fills from %v, want %v", sellers(trades), c.want)
			}
		})
	}
}

func TestTimePriorityBreaksTies(t *testing.T) {
	e := engine(t)
	second, _ := place(t, e, 64502, spec(book.Sell, "198.51.100.0/24", Gbps, 5))
	_ = second
	place(t, e, 64501, spec(book.Sell, "198.51.100.0/24", Gbps, 5))
	_, trades := place(t, e, 64510, spec(book.Buy, "198.51.100.0/24", Gbps, 5))
	if !equal(sellers(trades), []uint32{64502}) {
		t.Fatalf("equal prices: filled by %v, want the earlier order's seller 64502", sellers(trades))
	}
}

func TestModifyPriorityConvention(t *testing.T) {
	for _, c := range []struct {
		name       string
		capacity   int64
		price      int64
		keepsPlace bool
	}{
		{"lower capacity keeps priority", Gbps / 2, 5, true},
		{"higher capacity loses it", 2 * Gbps, 5, false},
		{"new price loses it", Gbps, 4, false}, // cheaper, but the tie-break is what is tested: see below
	} {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t)
			first, _ := place(t, e, 64502, spec(book.Sell, "198.51.100.0/24", Gbps, 5))
			place(t, e, 64501, spec(book.Sell, "198.51.100.0/24", Gbps, 5))
			capacity, price := c.capacity, c.price
			if _, _, _, err := e.Modify(now, 64502, first.ID, &capacity, &price); err != nil {
				t.Fatal(err)
			}
			if c.price != 5 {
				// Bring it back to the tie with a second price change.
				p := int64(5)
				if _, _, _, err := e.Modify(now, 64502, first.ID, nil, &p); err != nil {
					t.Fatal(err)
				}
			}
			b := spec(book.Buy, "198.51.100.0/24", Gbps/2, 5)
			_, trades := place(t, e, 64510, b)
			want := uint32(64501)
			if c.keepsPlace {
				want = 64502
			}
			if !equal(sellers(trades), []uint32{want}) {
				t.Fatalf("filled by %v, want %d", sellers(trades), want)
			}
		})
	}
}

func TestDestinationsByOriginAndRouteType(t *testing.T) {
	cases := []struct {
		name   string
		dest   book.Destination
		proto  book.Protocol
		seller uint32
		want   []string
	}{
		{"origin AS of the peer route", book.Destination{OriginASN: 64999}, book.IPv4, 64503, []string{"198.51.100.0/24"}},
		{"transit routes", book.Destination{RouteType: registry.Transit}, book.IPv6, 64502, []string{"2001:db8:100::/48"}},
		{"customer routes", book.Destination{RouteType: registry.Customer}, book.IPv4, 64501, []string{"198.51.100.0/24", "203.0.113.0/24"}},
		{"more specific prefix inside a route", book.Destination{Prefix: netip.MustParsePrefix("198.51.100.128/25")}, book.IPv4, 64501, []string{"198.51.100.128/25"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t)
			// Each seller sells everything it has of the protocol.
			for _, asn := range []uint32{64501, 64502, 64503} {
				s := spec(book.Sell, "198.51.100.0/24", Gbps, 1)
				s.Destination, s.Protocol = book.Destination{OriginASN: asn}, c.proto
				if asn == 64503 {
					s.Destination.OriginASN = 64999
				}
				place(t, e, asn, s)
			}
			b := spec(book.Buy, "198.51.100.0/24", Gbps, 10)
			b.Destination, b.Protocol = c.dest, c.proto
			_, trades := place(t, e, 64510, b)
			if len(trades) != 1 || trades[0].SellerASN != c.seller {
				t.Fatalf("trades %+v, want one with AS%d", trades, c.seller)
			}
			var got []string
			for _, p := range trades[0].Prefixes {
				got = append(got, p.String())
			}
			if !equal(got, c.want) {
				t.Fatalf("traded prefixes %v, want %v", got, c.want)
			}
		})
	}
}

func TestIncomingSellMeetsBestBidFirst(t *testing.T) {
	e := engine(t)
	place(t, e, 64510, spec(book.Buy, "198.51.100.0/24", Gbps, 7))
	place(t, e, 64511, spec(book.Buy, "198.51.100.128/25", Gbps, 9))
	_, trades := place(t, e, 64501, spec(book.Sell, "198.51.100.0/24", 2*Gbps, 5))
	if len(trades) != 2 || trades[0].BuyerASN != 64511 || trades[0].PriceMicros != 9 || trades[1].PriceMicros != 7 {
		t.Fatalf("trades %+v; want the 9 bid (a /25 inside the sold /24) first, each at the resting buy's price", trades)
	}
	if trades[0].Prefixes[0].String() != "198.51.100.128/25" {
		t.Fatalf("traded %v, want the buyer's /25", trades[0].Prefixes)
	}
}

func TestOrderTermsMustFit(t *testing.T) {
	cases := []struct {
		name string
		mod  func(buy, sell *book.Spec)
	}{
		{"price above limit", func(b, s *book.Spec) { s.PriceMicros = b.PriceMicros + 1 }},
		{"period not covered", func(b, s *book.Spec) { s.End = b.End.Add(-time.Hour) }},
		{"period starts later", func(b, s *book.Spec) { s.Start = b.Start.Add(time.Hour) }},
		{"traffic type", func(b, s *book.Spec) { b.TrafficType, s.TrafficType = book.Realtime, book.Bulk }},
		{"protocol", func(b, s *book.Spec) {
			b.Destination.Prefix, b.Protocol = netip.MustParsePrefix("2001:db8:100::/48"), book.IPv6
		}},
		{"quality limit without measurement", func(b, s *book.Spec) { v := int64(1000); b.Quality.MaxLatencyUs = &v }},
		{"single seller but supply split", func(b, s *book.Spec) { b.SingleSeller, b.CapacityBps = true, 2*Gbps }},
		{"block larger than the buy", func(b, s *book.Spec) { s.MinBlockBps = 2 * Gbps; s.CapacityBps = 2 * Gbps }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t)
			b, s := spec(book.Buy, "198.51.100.0/24", Gbps, 10), spec(book.Sell, "198.51.100.0/24", Gbps, 5)
			c.mod(&b, &s)
			place(t, e, 64501, s)
			if _, trades := place(t, e, 64510, b); len(trades) != 0 {
				t.Fatalf("traded %+v", trades)
			}
		})
	}
	// Traffic type "any" on either side fits every other.
	e := engine(t)
	b, s := spec(book.Buy, "198.51.100.0/24", Gbps, 10), spec(book.Sell, "198.51.100.0/24", Gbps, 5)
	b.TrafficType = book.Realtime
	place(t, e, 64501, s)
	if _, trades := place(t, e, 64510, b); len(trades) != 1 {
		t.Fatal("a realtime buy did not take an any-traffic sell")
	}
}

func TestBadInputNamesField(t *testing.T) {
	e := engine(t)
	cases := []struct {
		field string
		asn   uint32
		s     book.Spec
	}{
		{"spec.destination", 64501, spec(book.Sell, "192.0.2.0/24", Gbps, 1)},
		{"spec.destination.origin_asn", 64510, func() book.Spec {
			s := spec(book.Buy, "198.51.100.0/24", Gbps, 1)
			s.Destination = book.Destination{OriginASN: 65123}
			return s
		}()},
		{"spec.price_micros", 64510, spec(book.Buy, "198.51.100.0/24", 1<<50, 1<<40)},
	}
	for _, c := range cases {
		_, _, _, err := e.Place(now, c.asn, c.s, "", 0)
		var inv *invalid.Error
		if !errors.As(err, &inv) || inv.Field != c.field {
			t.Errorf("want invalid.Error on %s, got %v", c.field, err)
		}
	}
	if e.OpenCount() != 0 {
		t.Fatalf("refused orders rest in the book: %d", e.OpenCount())
	}
	if _, _, _, err := e.Place(now, 65000, spec(book.Buy, "198.51.100.0/24", Gbps, 1), "", 0); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown member: %v", err)
	}
}

// Modify refuses what could never trade, or could only trade wrongly: a
// remainder below one block, and an order whose period has just ended
// (before the expiry sweep).
func TestModifyRefusesWhatCannotTrade(t *testing.T) {
	e := engine(t)
	s := spec(book.Sell, "198.51.100.0/24", 2*Gbps, 5)
	s.MinBlockBps = Gbps
	sell, _ := place(t, e, 64501, s)
	b := spec(book.Buy, "198.51.100.0/24", Gbps, 5)
	b.MinBlockBps = Gbps
	if _, tr := place(t, e, 64510, b); total(tr) != Gbps {
		t.Fatalf("buy traded %d", total(tr))
	}
	c := int64(Gbps + Gbps/2) // 1G traded: leaves 0.5G, half a block
	_, _, _, err := e.Modify(now, 64501, sell.ID, &c, nil)
	var ie *invalid.Error
	if !errors.As(err, &ie) || ie.Field != "capacity_bps" {
		t.Errorf("a remainder of half a block: %v, want InvalidArgument on capacity_bps", err)
	}
	short := spec(book.Sell, "198.51.100.0/24", Gbps, 5)
	short.Start, short.End = now, now.Add(time.Minute)
	o, _ := place(t, e, 64502, short)
	price := int64(1)
	// A resting buy it would cross at the new price, placed before it ended.
	rest := spec(book.Buy, "198.51.100.0/24", Gbps, 2)
	rest.Start, rest.End = now, now.Add(time.Minute)
	place(t, e, 64511, rest)
	if _, trades, _, err := e.Modify(now.Add(time.Minute+time.Second), 64502, o.ID, nil, &price); !errors.Is(err, book.ErrNotOpen) || len(trades) != 0 {
		t.Errorf("modifying an order whose period ended a second ago: %v, %d trades; want ErrNotOpen", err, len(trades))
	}
}

func TestTakeOfferErrors(t *testing.T) {
	e := engine(t)
	sell, _ := place(t, e, 64501, spec(book.Sell, "198.51.100.0/24", Gbps, 5))
	take := func(s book.Spec) error {
		s.Type = book.FOK
		_, _, _, err := e.Place(now, 64510, s, "", sell.ID)
		return err
	}
	if err := take(spec(book.Buy, "198.51.100.0/24", 2*Gbps, 10)); !errors.Is(err, book.ErrOfferChanged) {
		t.Errorf("taking more than offered: %v", err)
	}
	if err := take(spec(book.Buy, "198.51.100.0/24", Gbps, 4)); !errors.Is(err, book.ErrOfferChanged) {
		t.Errorf("taking below the ask: %v", err)
	}
	// 1.5G of an offer in 1G blocks: the real cause, not "offer changed".
	blocky, _ := place(t, e, 64502, func() book.Spec { s := spec(book.Sell, "198.51.100.0/24", 2*Gbps, 5); s.MinBlockBps = Gbps; return s }())
	odd := spec(book.Buy, "198.51.100.0/24", Gbps+Gbps/2, 10)
	odd.Type, odd.MinBlockBps = book.FOK, Gbps/2
	_, _, _, err := e.Place(now, 64510, odd, "", blocky.ID)
	var ie *invalid.Error
	if !errors.As(err, &ie) || ie.Field != "capacity_bps" || errors.Is(err, book.ErrOfferChanged) {
		t.Errorf("taking 1.5G in 1G blocks: %v, want InvalidArgument on capacity_bps", err)
	}
	if _, _, err := e.Cancel(now, 64502, blocky.ID); err != nil {
		t.Fatal(err)
	}
	if e.OpenCount() != 1 {
		t.Fatalf("failed takes left orders: %d open", e.OpenCount())
	}
	// Part of the offer, then the rest; then it is gone.
	b := spec(book.Buy, "198.51.100.0/24", Gbps/2, 10)
	for i := 0; i < 2; i++ {
		b.Type = book.FOK
		if _, trades, _, err := e.Place(now, 64510, b, "", sell.ID); err != nil || len(trades) != 1 {
			t.Fatalf("take %d: %v %v", i, trades, err)
		}
	}
	if err := take(b); !errors.Is(err, book.ErrOfferGone) {
		t.Errorf("taking a filled offer: %v", err)
	}
}

func TestPortCapacityOverTime(t *testing.T) {
	e := engine(t)
	day := 24 * time.Hour
	// Seller 64501's 10G port: 6G for days 0-10 and 6G for days 10-20 fit;
	// a third 6G over days 5-15 does not fit beside either.
	mk := func(side book.Side, from, to int, capacity int64) book.Spec {
		s := spec(side, "198.51.100.0/24", capacity, 5)
		s.Start, s.End, s.MinBlockBps = t0.Add(time.Duration(from)*day), t0.Add(time.Duration(to)*day), capacity
		return s
	}
	// Two sell orders, so only the port, not an order's capacity, limits.
	s := mk(book.Sell, 0, 30, 10*Gbps)
	s.MinBlockBps = Gbps
	place(t, e, 64501, s)
	place(t, e, 64501, s)
	if _, tr := place(t, e, 64510, mk(book.Buy, 0, 10, 6*Gbps)); len(tr) != 1 {
		t.Fatal("first 6G did not trade")
	}
	if _, tr := place(t, e, 64511, mk(book.Buy, 10, 20, 6*Gbps)); total(tr) != 6*Gbps {
		t.Fatalf("second 6G, after the first ends, traded %d", total(tr))
	}
	if _, tr := place(t, e, 64511, mk(book.Buy, 5, 15, 6*Gbps)); len(tr) != 0 {
		t.Fatalf("a 6G overlapping both traded: %+v", tr)
	}
	if p := e.PortPeak(1, t0, t0.Add(30*day)); p != 6*Gbps {
		t.Fatalf("seller port peak %d, want 6G", p)
	}
}

// A registered route with an allow list (its routing policy) sells only to
// the members on it: by prefix, inside it, and among a route-type buy's
// prefixes, whichever side arrives first.
func TestAllowListLimitsBuyers(t *testing.T) {
	restrict := func(e *book.Engine) {
		ms := e.Members()
		m := *ms[64501]
		m.Routes = append([]registry.Prefix(nil), m.Routes...)
		m.Routes[0].AllowedBuyers = []uint32{64511} // 198.51.100.0/24
		ms[64501] = &m
		e.SetMembers(ms)
	}
	cases := []struct {
		name    string
		buyer   uint32
		dest    book.Destination
		wantPfx []string // nil: no trade
	}{
		{"allowed buyer", 64511, book.Destination{Prefix: netip.MustParsePrefix("198.51.100.0/24")}, []string{"198.51.100.0/24"}},
		{"other buyer", 64510, book.Destination{Prefix: netip.MustParsePrefix("198.51.100.0/24")}, nil},
		{"other buyer, more specific", 64510, book.Destination{Prefix: netip.MustParsePrefix("198.51.100.128/25")}, nil},
		{"other buyer by route type gets the rest", 64510, book.Destination{RouteType: registry.Customer}, []string{"203.0.113.0/24"}},
		{"allowed buyer by route type gets both", 64511, book.Destination{RouteType: registry.Customer}, []string{"198.51.100.0/24", "203.0.113.0/24"}},
	}
	for _, c := range cases {
		for _, sellFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sell first %v", c.name, sellFirst), func(t *testing.T) {
				e := engine(t)
				restrict(e)
				s := spec(book.Sell, "198.51.100.0/24", Gbps, 1)
				s.Destination = book.Destination{RouteType: registry.Customer}
				b := spec(book.Buy, "198.51.100.0/24", Gbps, 10)
				b.Destination = c.dest
				var trades []book.Trade
				if sellFirst {
					place(t, e, 64501, s)
					_, trades = place(t, e, c.buyer, b)
				} else {
					place(t, e, c.buyer, b)
					_, trades = place(t, e, 64501, s)
				}
				if c.wantPfx == nil {
					if len(trades) != 0 {
						t.Fatalf("trades %+v, want none", trades)
					}
					return
				}
				if len(trades) != 1 {
					t.Fatalf("trades %+v, want one", trades)
				}
				var got []string
				for _, p := range trades[0].Prefixes {
					got = append(got, p.String())
				}
				if !equal(got, c.wantPfx) {
					t.Fatalf("traded prefixes %v, want %v", got, c.wantPfx)
				}
			})
		}
	}
}

// Quality limits, each from its rule: a limit fails only on significant
// evidence over at least pathscore.MinProbes probes, the bar an SLA breach
// is judged by; fewer probes, or no measurement, meet no limit unless
// unverified is allowed; an AS-hop limit needs a measured distance (a path
// through a seller is at least one AS, so 0 is "not measured").
func TestQualityMeets(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	i32 := func(v int32) *int32 { return &v }
	m := func(lat int64, loss, hops int32) *book.Measured {
		return &book.Measured{LatencyUs: lat, LossPPM: loss, ASHops: hops, Samples: 5, Probes: 1000}
	}
	few := &book.Measured{LatencyUs: 51_000, LossPPM: 666_666, ASHops: 2, Samples: 1, Probes: 3}
	for _, c := range []struct {
		name string
		q    book.Quality
		m    *book.Measured
		want bool
	}{
		{"no limits, unmeasured", book.Quality{}, nil, true},
		{"latency under", book.Quality{MaxLatencyUs: i64(20_000)}, m(19_000, 0, 2), true},
		{"latency at", book.Quality{MaxLatencyUs: i64(20_000)}, m(20_000, 0, 2), true},
		{"latency over", book.Quality{MaxLatencyUs: i64(20_000)}, m(20_001, 0, 2), false},
		{"latency over within its error", book.Quality{MaxLatencyUs: i64(20_000)},
			&book.Measured{LatencyUs: 21_000, LatencyErrUs: 1000, Samples: 5, Probes: 100, ASHops: 2}, true},
		{"latency over beyond its error", book.Quality{MaxLatencyUs: i64(20_000)},
			&book.Measured{LatencyUs: 23_000, LatencyErrUs: 1000, Samples: 5, Probes: 100, ASHops: 2}, false},
		{"loss over, significantly", book.Quality{MaxLossPPM: i32(1000)}, m(1, 50_000, 2), false},
		{"loss over, not significantly", book.Quality{MaxLossPPM: i32(15_000)}, m(1, 20_000, 2), true},
		{"too few probes", book.Quality{MaxLatencyUs: i64(45_000), MaxLossPPM: i32(20_000)}, few, false},
		{"too few probes, unverified allowed", book.Quality{MaxLatencyUs: i64(45_000), AllowUnverified: true}, few, true},
		{"probe count unknown", book.Quality{MaxLatencyUs: i64(20_000)}, &book.Measured{LatencyUs: 1, Samples: 5, ASHops: 2}, false},
		{"unmeasured", book.Quality{MaxLatencyUs: i64(20_000)}, nil, false},
		{"unmeasured allowed", book.Quality{MaxLatencyUs: i64(20_000), AllowUnverified: true}, nil, true},
		{"no samples", book.Quality{MaxLatencyUs: i64(20_000)}, &book.Measured{}, false},
		{"AS hops within", book.Quality{MaxASHops: i32(3)}, m(1, 0, 3), true},
		{"AS hops over", book.Quality{MaxASHops: i32(3)}, m(1, 0, 4), false},
		{"AS hops unknown", book.Quality{MaxASHops: i32(3)}, m(1, 0, 0), false},
		{"AS hops unknown allowed", book.Quality{MaxASHops: i32(3), AllowUnverified: true}, m(1, 0, 0), true},
	} {
		if got := c.q.Meets(c.m); got != c.want {
			t.Errorf("%s: Meets = %v, want %v", c.name, got, c.want)
		}
	}
}

// A sell for a prefix inside the seller's registered route meets a resting
// buy for that prefix as the buy would meet the resting sell (it did not:
// the book stayed crossed).
func TestSellInsideRouteMeetsRestingBuy(t *testing.T) {
	for _, dest := range []string{"198.51.100.128/26", "198.51.100.128/25"} {
		e := engine(t)
		place(t, e, 64510, spec(book.Buy, "198.51.100.128/26", Gbps, 5))
		_, tr := place(t, e, 64501, spec(book.Sell, dest, Gbps, 5))
		if len(tr) != 1 || tr[0].Prefixes[0].String() != "198.51.100.128/26" {
			t.Fatalf("sell %s against a resting buy for 198.51.100.128/26: %+v", dest, tr)
		}
	}
}

// A sell for a prefix inside the seller's registered route meets buys by
// the route's origin AS and route type, in both orders, trading only the
// part the seller offers.
func TestSellInsideRouteMeetsBuysByOriginAndType(t *testing.T) {
	for _, dest := range []book.Destination{{OriginASN: 64501}, {RouteType: registry.Customer}} {
		for _, sellFirst := range []bool{true, false} {
			e := engine(t)
			sell := spec(book.Sell, "198.51.100.128/25", Gbps, 5)
			buy := spec(book.Buy, "198.51.100.0/24", Gbps, 5)
			buy.Destination = dest
			var tr []book.Trade
			if sellFirst {
				place(t, e, 64501, sell)
				_, tr = place(t, e, 64510, buy)
			} else {
				place(t, e, 64510, buy)
				_, tr = place(t, e, 64501, sell)
			}
			if len(tr) != 1 || len(tr[0].Prefixes) != 1 || tr[0].Prefixes[0].String() != "198.51.100.128/25" {
				t.Errorf("buy of %v, sell first %v, against a sell of 198.51.100.128/25: %+v", dest, sellFirst, tr)
			}
		}
	}
}
