package settle_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/invalid"
)

const (
	seller   = 64501
	buyer    = 64510
	stranger = 64520
	Gbps     = 1_000_000_000
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

type fixture struct {
	db    *store.DB
	usage *settle.Usage
	trade book.Trade
}

// newFixture stores three members and one trade between seller and buyer,
// made the way the book makes them: a sell, then a matching buy.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := storetest.Open(t)
	ctx := context.Background()
	reg := registry.New(db)
	for _, m := range []struct {
		asn    uint32
		router string
	}{{seller, "192.0.2.1"}, {buyer, "192.0.2.10"}, {stranger, "192.0.2.20"}} {
		if _, err := reg.AddMember(ctx, registry.Member{ASN: m.asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 10 * Gbps},
			Routers: []netip.Addr{netip.MustParseAddr(m.router)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MemberASN: seller, Type: registry.Customer}); err != nil {
		t.Fatal(err)
	}
	b, err := book.Start(ctx, db, book.Options{Now: func() time.Time { return t0.Add(-time.Hour) }, ExpireEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	spec := func(side book.Side, price int64) book.Spec {
		s := book.Spec{Side: side, Protocol: book.IPv4, CapacityBps: Gbps, MinBlockBps: Gbps, PriceMicros: price,
			TrafficType: book.AnyTraffic, Start: t0, End: t0.Add(30 * 24 * time.Hour), Type: book.Limit}
		s.Destination.Prefix = netip.MustParsePrefix("198.51.100.0/24")
		if side == book.Buy {
			s.Ranking = book.ByPrice
		}
		return s
	}
	if _, _, err := b.Place(ctx, seller, spec(book.Sell, 1_000_000), ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := b.Place(ctx, buyer, spec(book.Buy, 2_000_000), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(trades) != 1 || trades[0].BuyerASN != buyer || trades[0].SellerASN != seller {
		t.Fatalf("fixture trade: %+v", trades)
	}
	u := settle.New(db)
	u.Now = func() time.Time { return t0.Add(31 * 24 * time.Hour) } // the trade is over
	return &fixture{db: db, usage: u, trade: trades[0]}
}

func (f *fixture) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow("SELECT count(*) FROM usage_samples").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) sample(key string, role settle.Role) settle.Sample {
	return settle.Sample{IdempotencyKey: key, TradeID: f.trade.ID, Role: role,
		Start: t0, End: t0.Add(5 * time.Minute), Bps: 400_000_000, SampleCount: 300}
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var ie *invalid.Error
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want *invalid.Error on %q", err, err, field)
	}
	if ie.Field != field {
		t.Fatalf("invalid.Error field = %q (%v), want %q", ie.Field, err, field)
	}
}

func TestReportParties(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name     string
		reporter uint32
		role     settle.Role
		trade    int64 // 0: the fixture trade
		ok       bool
	}{
		{"buyer as buyer", buyer, settle.BuyerRole, 0, true},
		{"seller as seller", seller, settle.SellerRole, 0, true},
		{"seller claiming to be the buyer", seller, settle.BuyerRole, 0, false},
		{"buyer claiming to be the seller", buyer, settle.SellerRole, 0, false},
		{"non-party as buyer", stranger, settle.BuyerRole, 0, false},
		{"non-party as seller", stranger, settle.SellerRole, 0, false},
		{"unknown trade", buyer, settle.BuyerRole, 999_999, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.count(t)
			s := f.sample("k-"+c.name, c.role)
			if c.trade != 0 {
				s.TradeID = c.trade
			}
			acc, dup, err := f.usage.Report(ctx, c.reporter, []settle.Sample{s})
			if c.ok {
				if err != nil || acc != 1 || dup != 0 {
					t.Fatalf("Report = %d, %d, %v; want 1 accepted", acc, dup, err)
				}
				if n := f.count(t); n != before+1 {
					t.Fatalf("%d samples stored, want 1", n-before)
				}
				var reporterASN uint32
				var role int
				if err := f.db.QueryRow(`SELECT m.asn, u.role FROM usage_samples u JOIN members m ON m.id = u.reporter_id
					WHERE u.idempotency_key = ?`, s.IdempotencyKey).Scan(&reporterASN, &role); err != nil {
					t.Fatal(err)
				}
				if reporterASN != c.reporter || settle.Role(role) != c.role {
					t.Errorf("stored reporter AS%d role %d, want AS%d role %d", reporterASN, role, c.reporter, c.role)
				}
				return
			}
			wantInvalid(t, err, "samples[0].trade_id")
			if n := f.count(t); n != before {
				t.Errorf("refused sample stored (%d rows)", n-before)
			}
		})
	}
}

func TestReportUnknownReporter(t *testing.T) {
	f := newFixture(t)
	_, _, err := f.usage.Report(context.Background(), 64999, []settle.Sample{f.sample("k", settle.BuyerRole)})
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want registry.ErrNotFound", err)
	}
}

func TestReportValidation(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name  string
		edit  func(*settle.Sample)
		field string // "" means valid
	}{
		{"valid", func(*settle.Sample) {}, ""},
		{"zero bps", func(s *settle.Sample) { s.Bps = 0 }, ""},
		{"zero count", func(s *settle.Sample) { s.SampleCount = 0 }, ""},
		{"key of 128 characters", func(s *settle.Sample) { s.IdempotencyKey = strings.Repeat("k", 128) }, ""},
		{"empty key", func(s *settle.Sample) { s.IdempotencyKey = "" }, "idempotency_key"},
		{"key too long", func(s *settle.Sample) { s.IdempotencyKey = strings.Repeat("k", 129) }, "idempotency_key"},
		{"no trade", func(s *settle.Sample) { s.TradeID = 0 }, "trade_id"},
		{"negative trade", func(s *settle.Sample) { s.TradeID = -1 }, "trade_id"},
		{"role 0", func(s *settle.Sample) { s.Role = 0 }, "role"},
		{"role 3", func(s *settle.Sample) { s.Role = 3 }, "role"},
		{"no start", func(s *settle.Sample) { s.Start = time.Time{} }, "interval_end"},
		{"no end", func(s *settle.Sample) { s.End = time.Time{} }, "interval_end"},
		{"empty interval", func(s *settle.Sample) { s.End = s.Start }, "interval_end"},
		{"end before start", func(s *settle.Sample) { s.End = s.Start.Add(-time.Second) }, "interval_end"},
		{"negative bps", func(s *settle.Sample) { s.Bps = -1 }, "bits_per_second"},
		{"negative count", func(s *settle.Sample) { s.SampleCount = -1 }, "sample_count"},
		// What the trade's 10G ports can carry: 10.5G with the tolerance,
		// and 5 minutes of 10.5G at 672 bits a packet.
		{"port capacity plus tolerance", func(s *settle.Sample) { s.Bps = 10_500_000_000 }, ""},
		{"above port capacity", func(s *settle.Sample) { s.Bps = 10_500_000_001 }, "bits_per_second"},
		{"int64 bits/s (overflows a bill)", func(s *settle.Sample) { s.Bps = 9_223_372_036_854_775_000 }, "bits_per_second"},
		{"packets at line rate", func(s *settle.Sample) { s.SampleCount = 4_687_500_000 }, ""},
		{"more packets than the line carries", func(s *settle.Sample) { s.SampleCount = 4_687_500_001 }, "sample_count"},
		{"int64 packets", func(s *settle.Sample) { s.SampleCount = 1 << 62 }, "sample_count"},
		{"interval of an hour", func(s *settle.Sample) { s.End = s.Start.Add(time.Hour) }, ""},
		{"interval over an hour", func(s *settle.Sample) { s.End = s.Start.Add(time.Hour + time.Second) }, "interval_end"},
		{"before the trade, within skew", func(s *settle.Sample) { s.Start = t0.Add(-settle.SampleSkew) }, ""},
		{"before the trade", func(s *settle.Sample) { s.Start = t0.Add(-settle.SampleSkew - time.Second) }, "interval_start"},
		{"after the trade", func(s *settle.Sample) {
			s.Start, s.End = t0.Add(30*24*time.Hour), t0.Add(30*24*time.Hour+settle.SampleSkew+time.Second)
		}, "interval_start"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.count(t)
			bad := f.sample("x-"+c.name, settle.BuyerRole)
			c.edit(&bad)
			// The bad sample is second: the index is in the field and the
			// good first one is not stored either.
			acc, dup, err := f.usage.Report(context.Background(), buyer, []settle.Sample{f.sample("g-"+c.name, settle.BuyerRole), bad})
			if c.field == "" {
				if err != nil || acc != 2 || dup != 0 {
					t.Fatalf("Report = %d, %d, %v; want 2 accepted", acc, dup, err)
				}
				return
			}
			wantInvalid(t, err, "samples[1]."+c.field)
			if acc != 0 || dup != 0 {
				t.Errorf("refused report counted %d accepted, %d duplicates", acc, dup)
			}
			if n := f.count(t); n != before {
				t.Errorf("refused report stored %d samples", n-before)
			}
		})
	}
}

func TestReportTooLarge(t *testing.T) {
	f := newFixture(t)
	ss := make([]settle.Sample, settle.MaxBatch+1)
	for i := range ss {
		ss[i] = f.sample("k", settle.BuyerRole)
	}
	_, _, err := f.usage.Report(context.Background(), buyer, ss)
	wantInvalid(t, err, "samples")
}

func TestReportAllOrNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Both samples are well formed; the second is for a trade the buyer is
	// not the seller of, which only the transaction finds out, after the
	// first was inserted.
	_, _, err := f.usage.Report(ctx, buyer, []settle.Sample{f.sample("k1", settle.BuyerRole), f.sample("k2", settle.SellerRole)})
	wantInvalid(t, err, "samples[1].trade_id")
	if n := f.count(t); n != 0 {
		t.Fatalf("%d samples stored from a refused batch, want 0", n)
	}
	if acc, _, err := f.usage.Report(ctx, buyer, []settle.Sample{f.sample("k1", settle.BuyerRole)}); err != nil || acc != 1 {
		t.Fatalf("retry of the good sample: %d accepted, %v; want 1", acc, err)
	}
}

func TestReportIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i, want := range [][2]int{{1, 0}, {0, 1}} {
		acc, dup, err := f.usage.Report(ctx, buyer, []settle.Sample{f.sample("k1", settle.BuyerRole)})
		if err != nil || acc != want[0] || dup != want[1] {
			t.Fatalf("report %d: %d accepted %d duplicates %v; want %v", i+1, acc, dup, err, want)
		}
	}
	// Keys are per reporter: the seller's k1 is a different sample.
	if acc, dup, err := f.usage.Report(ctx, seller, []settle.Sample{f.sample("k1", settle.SellerRole)}); err != nil || acc != 1 || dup != 0 {
		t.Fatalf("seller's k1: %d, %d, %v; want 1 accepted", acc, dup, err)
	}
	// Repeats inside one batch, mixed with a seen key.
	acc, dup, err := f.usage.Report(ctx, buyer, []settle.Sample{f.sample("k2", settle.BuyerRole), f.sample("k2", settle.BuyerRole), f.sample("k1", settle.BuyerRole)})
	if err != nil || acc != 1 || dup != 2 {
		t.Fatalf("batch with repeats: %d, %d, %v; want 1 accepted 2 duplicates", acc, dup, err)
	}
	if n := f.count(t); n != 3 {
		t.Fatalf("%d samples stored, want 3", n)
	}
	// A repeated key keeps the first values.
	changed := f.sample("k1", settle.BuyerRole)
	changed.Bps = 1
	if _, dup, err := f.usage.Report(ctx, buyer, []settle.Sample{changed}); err != nil || dup != 1 {
		t.Fatalf("changed duplicate: %d duplicates, %v", dup, err)
	}
	var bps int64
	if err := f.db.QueryRow(`SELECT u.bps FROM usage_samples u JOIN members m ON m.id = u.reporter_id
		WHERE m.asn = ? AND u.idempotency_key = 'k1'`, buyer).Scan(&bps); err != nil || bps != 400_000_000 {
		t.Fatalf("k1 bps = %d, %v; want the first report's 400000000", bps, err)
	}
}
