package book_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/invalid"
)

const (
	seller  = 64501
	seller2 = 64502
	buyer   = 64510
	Gbps    = 1_000_000_000
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

type fixture struct {
	db          *store.DB
	reg         *registry.Registry
	book        *book.Book
	cfg         store.Config
	mu          sync.Mutex
	now         time.Time
	events      []book.Event
	creditCheck func(ctx context.Context, asn uint32, pending []book.Trade) (book.BuyCheck, error)
	active      func(asn uint32) error
}

func (f *fixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fixture) setClock(t time.Time) { f.mu.Lock(); f.now = t; f.mu.Unlock() }

func (f *fixture) seen() []book.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]book.Event(nil), f.events...)
}

func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the fixture changed by edit before the
// book starts.
func newFixtureWith(t *testing.T, edit func(*fixture)) *fixture {
	t.Helper()
	f := &fixture{cfg: storetest.Config(t), now: t0.Add(-time.Hour)}
	if edit != nil {
		edit(f)
	}
	f.open(t)
	ctx := context.Background()
	add := func(asn uint32, capacity int64, routers ...string) {
		m := registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: capacity}}
		for _, r := range routers {
			m.Routers = append(m.Routers, netip.MustParseAddr(r))
		}
		if _, err := f.reg.AddMember(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	add(seller, 10*Gbps, "192.0.2.1", "2001:db8::1")
	add(seller2, 10*Gbps, "192.0.2.2")
	add(buyer, 10*Gbps, "192.0.2.10", "2001:db8::10")
	for _, p := range []struct {
		asn uint32
		p   string
		typ registry.RouteType
	}{{seller, "198.51.100.0/24", registry.Customer}, {seller, "2001:db8:100::/48", registry.Customer},
		{seller2, "198.51.100.0/24", registry.Transit}, {seller, "203.0.113.0/24", registry.Peer}} {
		if _, err := f.reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix(p.p), MemberASN: p.asn, Type: p.typ}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.book.RefreshMembers(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	db, err := store.OpenConfig(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := book.Start(context.Background(), db, book.Options{Now: f.clock, ExpireEvery: -1, CreditCheck: f.creditCheck, Active: f.active, Notify: func(evs []book.Event) {
		f.mu.Lock()
		f.events = append(f.events, evs...)
		f.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); db.Close() })
	f.db, f.reg, f.book = db, registry.New(db), b
}

// restart closes the book and database and opens them again, as an arbiter
// restart does.
func (f *fixture) restart(t *testing.T) {
	t.Helper()
	f.book.Close()
	f.db.Close()
	f.open(t)
}

func spec(side book.Side, dest string, capacity, price int64) book.Spec {
	s := book.Spec{
		Side: side, Protocol: book.IPv4, CapacityBps: capacity, MinBlockBps: Gbps / 10, PriceMicros: price,
		TrafficType: book.AnyTraffic, Start: t0, End: t0.Add(30 * 24 * time.Hour), Type: book.Limit,
	}
	if side == book.Buy {
		s.Ranking = book.ByPrice
	}
	p := netip.MustParsePrefix(dest)
	s.Destination.Prefix = p
	if p.Addr().Is6() {
		s.Protocol = book.IPv6
	}
	return s
}

func TestSellThenBuyMakesTrade(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sell, trades, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 2*Gbps, 5_000_000), "")
	if err != nil || len(trades) != 0 || sell.Status != book.Open {
		t.Fatalf("sell: %+v %v %v", sell, trades, err)
	}
	buy, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 7_000_000), "b1")
	if err != nil {
		t.Fatal(err)
	}
	if len(trades) != 1 {
		t.Fatalf("want 1 trade, got %+v", trades)
	}
	tr := trades[0]
	if tr.BuyerASN != buyer || tr.SellerASN != seller || tr.CapacityBps != Gbps || tr.PriceMicros != 5_000_000 {
		t.Errorf("trade = %+v; want buyer %d seller %d 1G at the resting price 5", tr, buyer, seller)
	}
	if len(tr.Prefixes) != 1 || tr.Prefixes[0].String() != "198.51.100.0/24" {
		t.Errorf("traded prefixes = %v", tr.Prefixes)
	}
	if len(tr.SellerNextHops) != 1 || tr.SellerNextHops[0].String() != "192.0.2.1" {
		t.Errorf("next hops = %v, want the seller's IPv4 router only", tr.SellerNextHops)
	}
	if len(tr.BuyerRouters) != 1 || tr.BuyerRouters[0].String() != "192.0.2.10" {
		t.Errorf("buyer routers = %v, want the buyer's IPv4 router only", tr.BuyerRouters)
	}
	if buy.Status != book.Filled || buy.FilledBps != Gbps {
		t.Errorf("buy = %v filled %d, want filled", buy.Status, buy.FilledBps)
	}
	var tradeEvents []book.Event
	for _, e := range f.seen() {
		if e.Type == book.TradeCreated {
			tradeEvents = append(tradeEvents, e)
		}
	}
	if len(tradeEvents) != 2 || tradeEvents[0].MemberASN == tradeEvents[1].MemberASN {
		t.Fatalf("trade events = %+v, want one for each party", tradeEvents)
	}
	s, _ := f.book.Get(ctx, seller, sell.ID)
	if s.FilledBps != Gbps || s.Status != book.Open {
		t.Errorf("sell after fill = %v filled %d", s.Status, s.FilledBps)
	}

	// Everything survives a restart of the arbiter.
	f.restart(t)
	ts, err := f.book.Trades(ctx, buyer, false)
	if err != nil || len(ts) != 1 || ts[0].ID != tr.ID || ts[0].CapacityBps != Gbps || fmt.Sprint(ts[0].BuyerRouters) != "[192.0.2.10]" {
		t.Fatalf("trades after reopen: %+v %v", ts, err)
	}
	evs, err := f.book.Events(ctx, seller, 0, 10)
	if err != nil || len(evs) != 2 || evs[0].Type != book.OrderAccepted || evs[1].Trade == nil || evs[1].Trade.ID != tr.ID {
		t.Fatalf("seller events after reopen: %+v %v; want its order accepted, then the trade", evs, err)
	}
	// Unended: the trade until its delivery ends, not after.
	for _, c := range []struct {
		at   time.Time
		want int
	}{{t0.Add(-time.Hour), 1}, {tr.End.Add(-time.Second), 1}, {tr.End, 0}} {
		if un, err := f.book.Unended(ctx, c.at); err != nil || len(un) != c.want {
			t.Errorf("Unended(%v) = %d trades, %v; want %d", c.at, len(un), err, c.want)
		}
	}
	// Idempotent placement: the same client id returns the first order.
	again, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 7_000_000), "b1")
	if err != nil || again.ID != buy.ID || len(trades) != 1 {
		t.Fatalf("re-place with same client id: %+v %v %v", again, trades, err)
	}
}

func TestPortCapacityNeverOversold(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Two sellers with 10G each; the buyer's port is 10G.
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 8*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.book.Place(ctx, seller2, spec(book.Sell, "198.51.100.0/24", 8*Gbps, 2), ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", 12*Gbps, 10), "")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, tr := range trades {
		total += tr.CapacityBps
	}
	if total != 10*Gbps || len(trades) != 2 || trades[0].SellerASN != seller {
		t.Fatalf("trades %+v total %d; want cheapest first and 10G total (the buyer's port)", trades, total)
	}
	// A later, non-overlapping period has the whole port again.
	s := spec(book.Buy, "198.51.100.0/24", 4*Gbps, 10)
	s.Start, s.End = t0.Add(31*24*time.Hour), t0.Add(40*24*time.Hour)
	sl := spec(book.Sell, "198.51.100.0/24", 4*Gbps, 1)
	sl.End = s.End
	if _, _, err := f.book.Place(ctx, seller, sl, ""); err != nil {
		t.Fatal(err)
	}
	if _, trades, err := f.book.Place(ctx, buyer, s, ""); err != nil || len(trades) != 1 {
		t.Fatalf("non-overlapping period: %v %v", trades, err)
	}
}

func TestFOKAndIOC(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	fok := spec(book.Buy, "198.51.100.0/24", 2*Gbps, 10)
	fok.Type = book.FOK
	o, trades, err := f.book.Place(ctx, buyer, fok, "")
	if err != nil || len(trades) != 0 || o.Status != book.Cancelled || o.FilledBps != 0 {
		t.Fatalf("FOK beyond supply: %+v %v %v", o, trades, err)
	}
	ioc := fok
	ioc.Type = book.IOC
	o, trades, err = f.book.Place(ctx, buyer, ioc, "")
	if err != nil || len(trades) != 1 || o.Status != book.Cancelled || o.FilledBps != Gbps {
		t.Fatalf("IOC: %+v %v %v; want 1G filled, rest cancelled", o, trades, err)
	}
}

func TestQualityLimitNeedsMeasurement(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 3*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	b := spec(book.Buy, "198.51.100.0/24", Gbps, 10)
	lat := int64(20_000)
	b.Quality.MaxLatencyUs = &lat
	if _, trades, err := f.book.Place(ctx, buyer, b, ""); err != nil || len(trades) != 0 {
		t.Fatalf("limit without measurement traded: %v %v", trades, err)
	}
	b.Quality.AllowUnverified = true
	if _, trades, err := f.book.Place(ctx, buyer, b, ""); err != nil || len(trades) != 1 {
		t.Fatalf("allow_unverified did not trade: %v %v", trades, err)
	}
	b.Quality.AllowUnverified = false
	// A measurement from another member's agent (10 ms) counts when the
	// buyer has none of its own; the buyer's own (30 ms) wins over it.
	measure := func(reporter uint32, key string, latUs, probes int64) {
		t.Helper()
		_, err := f.db.Exec(`INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target, measured_us,
			latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent)
			VALUES ((SELECT id FROM members WHERE asn = ?), ?, (SELECT id FROM members WHERE asn = ?), '198.51.100.0/24', '198.51.100.1', ?, ?, 0, 0, 2, 3, ?)`,
			reporter, key, seller, store.Micros(f.clock().Add(-time.Minute)), latUs, probes)
		if err != nil {
			t.Fatal(err)
		}
	}
	measure(seller2, "other", 10_000, 20)
	if _, trades, err := f.book.Place(ctx, buyer, b, ""); err != nil || len(trades) != 1 {
		t.Fatalf("the exchange's view (10 ms) did not trade under a 20 ms limit: %v %v", trades, err)
	}
	measure(buyer, "own", 30_000, 20)
	if _, trades, err := f.book.Place(ctx, buyer, b, ""); err != nil || len(trades) != 0 {
		t.Fatalf("the buyer's own 30 ms did not stop a 20 ms limit: %v %v", trades, err)
	}
}

// One round of 3 probes verifies nothing, either way: it meets no limit,
// and it does not hide the seller from a buyer that allows unverified paths
// (a buyer that is not offered a path never probes it again). This is the
// first round an agent measures, often before the path is set up.
func TestFewProbesVerifyNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 3*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	_, err := f.db.Exec(`INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target, measured_us,
		latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent)
		VALUES ((SELECT id FROM members WHERE asn = ?), 'first', (SELECT id FROM members WHERE asn = ?), '198.51.100.0/24', '198.51.100.1', ?, 52000, 0, 666666, 2, 3, 3)`,
		buyer, seller, store.Micros(f.clock().Add(-time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	b := spec(book.Buy, "198.51.100.0/24", Gbps, 10)
	lat, loss := int64(45_000), int32(20_000)
	b.Quality.MaxLatencyUs, b.Quality.MaxLossPPM = &lat, &loss
	offers, err := f.book.Offers(ctx, buyer, b)
	if err != nil || len(offers) != 0 {
		t.Fatalf("3 probes met a 45 ms, 2%% limit: %+v %v", offers, err)
	}
	b.Quality.AllowUnverified = true
	if offers, err = f.book.Offers(ctx, buyer, b); err != nil || len(offers) != 1 {
		t.Fatalf("3 probes at 52 ms, 2 lost, hid the seller from a buyer allowing unverified paths: %+v %v", offers, err)
	}
	if _, trades, err := f.book.Place(ctx, buyer, b, ""); err != nil || len(trades) != 1 {
		t.Fatalf("3 probes at 52 ms, 2 lost, refused a buyer allowing unverified paths: %v %v", trades, err)
	}
}

func TestMembersSeeOnlyTheirOwn(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	o, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", Gbps, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.book.Get(ctx, buyer, o.ID); !errors.Is(err, book.ErrNotFound) {
		t.Errorf("buyer read seller's order: %v", err)
	}
	if _, err := f.book.Cancel(ctx, buyer, o.ID); !errors.Is(err, book.ErrNotFound) {
		t.Errorf("buyer cancelled seller's order: %v", err)
	}
	p := int64(2)
	if _, _, err := f.book.Modify(ctx, buyer, o.ID, nil, &p); !errors.Is(err, book.ErrNotFound) {
		t.Errorf("buyer modified seller's order: %v", err)
	}
	if os, _ := f.book.Orders(ctx, buyer, false); len(os) != 0 {
		t.Errorf("buyer lists %d orders of others", len(os))
	}
	if os, _ := f.book.Orders(ctx, book.Operator, false); len(os) != 1 {
		t.Errorf("operator lists %d orders, want 1", len(os))
	}
	if _, err := f.book.Cancel(ctx, seller, o.ID); err != nil {
		t.Errorf("owner cancel: %v", err)
	}
	if _, err := f.book.Cancel(ctx, seller, o.ID); !errors.Is(err, book.ErrNotOpen) {
		t.Errorf("second cancel: %v, want ErrNotOpen", err)
	}
}

func TestSellMustBeRegistered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _, err := f.book.Place(ctx, seller, spec(book.Sell, "10.0.0.0/8", Gbps, 1), "")
	var inv *invalid.Error
	if !errors.As(err, &inv) || inv.Field != "spec.destination" {
		t.Fatalf("sell of an unregistered prefix: %v", err)
	}
	if os, _ := f.book.Orders(ctx, seller, false); len(os) != 0 {
		t.Fatalf("refused order was stored: %+v", os)
	}
}

func TestValidateNamesField(t *testing.T) {
	now := t0.Add(-time.Hour)
	cases := []struct {
		field string
		mod   func(*book.Spec)
	}{
		{"spec.side", func(s *book.Spec) { s.Side = 0 }},
		{"spec.capacity_bps", func(s *book.Spec) { s.CapacityBps = 0 }},
		{"spec.min_block_bps", func(s *book.Spec) { s.MinBlockBps = s.CapacityBps + 1 }},
		{"spec.price_micros", func(s *book.Spec) { s.PriceMicros = -1 }},
		{"spec.protocol", func(s *book.Spec) { s.Protocol = book.IPv6 }},
		{"spec.delivery_end", func(s *book.Spec) { s.End = s.Start }},
		{"spec.delivery_end", func(s *book.Spec) { s.Start, s.End = now.Add(-2*time.Hour), now.Add(-time.Hour) }},
		{"spec.delivery_start", func(s *book.Spec) { s.Start = now.AddDate(0, -1, 0) }},
		{"spec.delivery_start", func(s *book.Spec) { s.Start = now.Add(-book.StartSkew - time.Second) }},
		{"spec.destination", func(s *book.Spec) { s.Destination.OriginASN = 1 }},
		{"spec.destination.prefix", func(s *book.Spec) { s.Destination.Prefix = netip.MustParsePrefix("198.51.100.1/24") }},
		{"spec.order_type", func(s *book.Spec) { s.Type = 9 }},
		{"spec.traffic_type", func(s *book.Spec) { s.TrafficType = 0 }},
		{"spec.price_weight_percent", func(s *book.Spec) { s.Ranking = book.Weighted; s.PriceWeight = 101 }},
		{"spec.quality.max_loss_ppm", func(s *book.Spec) { v := int32(2_000_000); s.Quality.MaxLossPPM = &v }},
	}
	for _, c := range cases {
		s := spec(book.Buy, "198.51.100.0/24", Gbps, 1)
		c.mod(&s)
		err := s.Validate(now)
		var inv *invalid.Error
		if !errors.As(err, &inv) || inv.Field != c.field {
			t.Errorf("want error on %s, got %v", c.field, err)
		}
	}
	if err := spec(book.Buy, "198.51.100.0/24", Gbps, 1).Validate(now); err != nil {
		t.Errorf("valid spec refused: %v", err)
	}
	// A start a little in the past (clock skew) is accepted.
	s := spec(book.Buy, "198.51.100.0/24", Gbps, 1)
	s.Start = now.Add(-book.StartSkew)
	if err := s.Validate(now); err != nil {
		t.Errorf("start within the skew allowance refused: %v", err)
	}
}

func TestOrdersExpireAtDeliveryEnd(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := spec(book.Sell, "198.51.100.0/24", Gbps, 1)
	o, _, err := f.book.Place(ctx, seller, s, "")
	if err != nil {
		t.Fatal(err)
	}
	f.setClock(s.End.Add(time.Second))
	if err := f.book.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.book.Get(ctx, seller, o.ID)
	if err != nil || got.Status != book.Expired {
		t.Fatalf("order after its delivery end: %v %v, want expired", got.Status, err)
	}
	if open, _ := f.book.Orders(ctx, seller, true); len(open) != 0 {
		t.Fatalf("expired order listed as open: %+v", open)
	}
	if _, err := f.book.Cancel(ctx, seller, o.ID); !errors.Is(err, book.ErrNotOpen) {
		t.Fatalf("cancel of an expired order: %v", err)
	}
}

// Trade finds one trade for its parties and the operator, and for nobody
// else: the same ErrNotFound as an unknown id.
func TestTradeForItsParties(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 2*Gbps, 5_000_000), ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 7_000_000), "")
	if err != nil || len(trades) != 1 {
		t.Fatalf("trade: %v %v", trades, err)
	}
	id := trades[0].ID
	for _, asn := range []uint32{buyer, seller, 0} {
		if tr, err := f.book.Trade(ctx, asn, id); err != nil || tr.ID != id || tr.BuyerASN != buyer {
			t.Errorf("AS%d: %+v, %v", asn, tr, err)
		}
	}
	if _, err := f.book.Trade(ctx, 64999, id); !errors.Is(err, book.ErrNotFound) {
		t.Errorf("a stranger: %v, want ErrNotFound", err)
	}
	if _, err := f.book.Trade(ctx, buyer, id+1); !errors.Is(err, book.ErrNotFound) {
		t.Errorf("unknown trade: %v, want ErrNotFound", err)
	}
}
