package quality

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/invalid"
	"github.com/bwxchange/bwx/shared/pathscore"
)

const (
	reporter = 64510
	via      = 64501
	via2     = 64502
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	db *store.DB
	mx *Matrix
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := storetest.Open(t)
	reg := registry.New(db)
	for i, asn := range []uint32{reporter, via, via2} {
		m := registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 1e10},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)}), netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(1 + i)})}}
		if _, err := reg.AddMember(context.Background(), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The sellers' registered prefixes: the paths every other member's
	// agent is asked to measure (what Report admits).
	for _, asn := range []uint32{via, via2} {
		for _, p := range []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
			if _, err := reg.AddPrefix(context.Background(), registry.Prefix{Prefix: netip.MustParsePrefix(p), MemberASN: asn, Type: registry.Customer, OriginASN: asn}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Members since long before the fixed clock.
	if _, err := db.Exec("UPDATE members SET created_us = 0"); err != nil {
		t.Fatal(err)
	}
	mx := New(db, func() time.Time { return now })
	mx.Window = 24 * time.Hour // these tests look at older measurements too
	return &fixture{db: db, mx: mx}
}

func (f *fixture) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow("SELECT count(*) FROM measurements").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func meas(key string) Measurement {
	return Measurement{
		IdempotencyKey: key, ViaASN: via, Prefix: netip.MustParsePrefix("198.51.100.0/24"),
		Target: netip.MustParseAddr("198.51.100.7"), At: now.Add(-time.Minute),
		LatencyUs: 10_000, JitterUs: 1_000, LossPPM: 100, ASHops: 2, IPHops: 7, ProbesSent: 10,
	}
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var ie *invalid.Error
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want *invalid.Error on %q", err, err, field)
	}
	if ie.Field != field {
		t.Fatalf("InvalidError field = %q (%v), want %q", ie.Field, err, field)
	}
}

func TestReportValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		edit  func(*Measurement)
		field string // "" means valid
	}{
		{"valid", func(*Measurement) {}, ""},
		{"key of 128 characters", func(m *Measurement) { m.IdempotencyKey = strings.Repeat("k", 128) }, ""},
		{"4 minutes ahead (clock skew)", func(m *Measurement) { m.At = now.Add(4 * time.Minute) }, ""},
		{"loss 100%", func(m *Measurement) { m.LossPPM = 1_000_000 }, ""},
		{"zeros", func(m *Measurement) {
			m.LatencyUs, m.JitterUs, m.LossPPM, m.ASHops, m.IPHops, m.ProbesSent = 0, 0, 0, 0, 0, 0
		}, ""},
		{"IPv6", func(m *Measurement) {
			m.Prefix, m.Target = netip.MustParsePrefix("2001:db8:100::/48"), netip.MustParseAddr("2001:db8:100::7")
		}, ""},
		{"empty key", func(m *Measurement) { m.IdempotencyKey = "" }, "idempotency_key"},
		{"key too long", func(m *Measurement) { m.IdempotencyKey = strings.Repeat("k", 129) }, "idempotency_key"},
		{"no via", func(m *Measurement) { m.ViaASN = 0 }, "via_asn"},
		{"no prefix", func(m *Measurement) { m.Prefix = netip.Prefix{} }, "destination_prefix"},
		{"IPv4-mapped prefix", func(m *Measurement) {
			m.Prefix, m.Target = netip.MustParsePrefix("::ffff:198.51.100.0/120"), netip.MustParseAddr("::ffff:198.51.100.1")
		}, "destination_prefix"},
		{"no target", func(m *Measurement) { m.Target = netip.Addr{} }, "target"},
		{"target outside prefix", func(m *Measurement) { m.Target = netip.MustParseAddr("198.51.101.7") }, "target"},
		{"IPv6 target in IPv4 prefix", func(m *Measurement) { m.Target = netip.MustParseAddr("2001:db8::7") }, "target"},
		{"no time", func(m *Measurement) { m.At = time.Time{} }, "measured_at"},
		{"6 minutes ahead", func(m *Measurement) { m.At = now.Add(6 * time.Minute) }, "measured_at"},
		{"negative latency", func(m *Measurement) { m.LatencyUs = -1 }, "latency_us"},
		{"negative jitter", func(m *Measurement) { m.JitterUs = -1 }, "latency_us"},
		{"negative AS hops", func(m *Measurement) { m.ASHops = -1 }, "latency_us"},
		{"negative IP hops", func(m *Measurement) { m.IPHops = -1 }, "latency_us"},
		{"negative probes", func(m *Measurement) { m.ProbesSent = -1 }, "latency_us"},
		{"negative loss", func(m *Measurement) { m.LossPPM = -1 }, "loss_ppm"},
		{"loss above 100%", func(m *Measurement) { m.LossPPM = 1_000_001 }, "loss_ppm"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.count(t)
			// The bad measurement is second: the index is in the field name
			// and the good first one is not stored either.
			bad := meas("bad-" + c.name)
			c.edit(&bad)
			acc, dup, err := f.mx.Report(ctx, reporter, []Measurement{meas("good-" + string(rune('a'+i))), bad})
			if c.field == "" {
				if err != nil || acc != 2 || dup != 0 {
					t.Fatalf("Report = %d, %d, %v; want 2 accepted", acc, dup, err)
				}
				return
			}
			wantInvalid(t, err, "measurements[1]."+c.field)
			if acc != 0 || dup != 0 {
				t.Errorf("refused report counted %d accepted, %d duplicates", acc, dup)
			}
			if n := f.count(t); n != before {
				t.Errorf("refused report stored %d measurements", n-before)
			}
		})
	}
}

func TestReportTooLarge(t *testing.T) {
	f := newFixture(t)
	ms := make([]Measurement, MaxBatch+1)
	for i := range ms {
		ms[i] = meas("k")
	}
	_, _, err := f.mx.Report(context.Background(), reporter, ms)
	wantInvalid(t, err, "measurements")
}

func TestReportUnknownReporter(t *testing.T) {
	f := newFixture(t)
	_, _, err := f.mx.Report(context.Background(), 64999, []Measurement{meas("k1")})
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("err = %v, want registry.ErrNotFound", err)
	}
	if n := f.count(t); n != 0 {
		t.Errorf("%d measurements stored", n)
	}
}

func TestReportUnknownViaStoresNothing(t *testing.T) {
	f := newFixture(t)
	bad := meas("k2")
	bad.ViaASN = 64999
	// k1 passes validation and is inserted before k2's via is looked up;
	// the transaction rolls back and the counts say so.
	acc, dup, err := f.mx.Report(context.Background(), reporter, []Measurement{meas("k1"), bad})
	wantInvalid(t, err, "measurements[1].via_asn")
	if acc != 0 || dup != 0 {
		t.Errorf("refused batch counted %d accepted, %d duplicates; want 0, 0", acc, dup)
	}
	if !strings.Contains(err.Error(), "AS64999") {
		t.Errorf("err = %q, want it to name AS64999", err)
	}
	if n := f.count(t); n != 0 {
		t.Fatalf("%d measurements stored from a refused batch, want 0", n)
	}
	// The good half alone goes in afterwards: nothing of it was kept.
	if acc, dup, err := f.mx.Report(context.Background(), reporter, []Measurement{meas("k1")}); err != nil || acc != 1 || dup != 0 {
		t.Fatalf("retry of the good measurement: %d, %d, %v; want 1 accepted", acc, dup, err)
	}
}

func TestReportIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i, want := range [][2]int{{1, 0}, {0, 1}} {
		acc, dup, err := f.mx.Report(ctx, reporter, []Measurement{meas("k1")})
		if err != nil || acc != want[0] || dup != want[1] {
			t.Fatalf("report %d: %d accepted %d duplicates %v; want %v", i+1, acc, dup, err, want)
		}
	}
	// Another reporter's key space is its own.
	if acc, dup, err := f.mx.Report(ctx, via2, []Measurement{meas("k1")}); err != nil || acc != 1 || dup != 0 {
		t.Fatalf("same key from another reporter: %d, %d, %v; want 1 accepted", acc, dup, err)
	}
	// A key repeated inside one batch counts once.
	if acc, dup, err := f.mx.Report(ctx, reporter, []Measurement{meas("k2"), meas("k2"), meas("k1")}); err != nil || acc != 1 || dup != 2 {
		t.Fatalf("batch with repeats: %d, %d, %v; want 1 accepted 2 duplicates", acc, dup, err)
	}
	if n := f.count(t); n != 3 {
		t.Fatalf("%d measurements stored, want 3", n)
	}
	// A duplicate is ignored even if its values differ: the first one stands.
	changed := meas("k1")
	changed.LatencyUs = 99_000
	if _, dup, err := f.mx.Report(ctx, reporter, []Measurement{changed}); err != nil || dup != 1 {
		t.Fatalf("changed duplicate: %d duplicates, %v", dup, err)
	}
	es, err := f.mx.Query(ctx, via, netip.Prefix{}, time.Hour)
	if err != nil || len(es) != 1 || es[0].LatencyUs != 10_000 || es[0].Samples != 3 {
		t.Fatalf("Query = %+v, %v; want one cell of 3 samples at 10ms", es, err)
	}
}

func TestQuery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p1 := netip.MustParsePrefix("198.51.100.0/24")
	p2 := netip.MustParsePrefix("203.0.113.0/24")
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	m := func(key string, v uint32, p netip.Prefix, when time.Time, lat, jit int64, loss, hops int32) Measurement {
		return Measurement{IdempotencyKey: key, ViaASN: v, Prefix: p, Target: p.Addr().Next(), At: when,
			LatencyUs: lat, JitterUs: jit, LossPPM: loss, ASHops: hops, IPHops: 5, ProbesSent: 10}
	}
	ms := []Measurement{
		m("a", via, p1, at(10*time.Minute), 10_000, 1_000, 0, 2),
		m("b", via, p1, at(5*time.Minute), 20_000, 3_000, 300, 3),
		m("c", via, p2, at(5*time.Minute), 40_000, 0, 0, 4),
		m("d", via2, p1, at(5*time.Minute), 7_000, 0, 0, 1),
		m("e", via, p1, at(2*time.Hour), 1_000_000, 0, 0, 9), // old
	}
	// A prefix written with host bits is refused (it was stored masked:
	// an accepted prefix is the canonical one), and nothing of the batch
	// is stored.
	ms[1].Prefix = netip.MustParsePrefix("198.51.100.1/24")
	if acc, _, err := f.mx.Report(ctx, reporter, ms); err == nil || acc != 0 || !strings.Contains(err.Error(), "measurements[1].destination_prefix: 198.51.100.1/24 has host bits set") {
		t.Fatalf("Report with host bits: %d accepted, %v", acc, err)
	}
	ms[1].Prefix = p1
	if acc, _, err := f.mx.Report(ctx, reporter, ms); err != nil || acc != len(ms) {
		t.Fatalf("Report: %d accepted, %v", acc, err)
	}

	es, err := f.mx.Query(ctx, via, p1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("Query(via, p1, 1h) = %+v, want one cell", es)
	}
	e := es[0]
	if e.ViaASN != via || e.Prefix != "198.51.100.0/24" || e.LatencyUs != 15_000 || e.JitterUs != 2_000 ||
		e.LossPPM != 150 || e.ASHops != 3 || e.Samples != 2 || !e.Last.Equal(at(5*time.Minute)) {
		t.Errorf("cell = %+v; want via %d 198.51.100.0/24 latency 15000 jitter 2000 loss 150 hops 3 (max) 2 samples last %v",
			e, via, at(5*time.Minute))
	}

	// maxAge reaches the old measurement.
	es, err = f.mx.Query(ctx, via, p1, 3*time.Hour)
	if err != nil || len(es) != 1 || es[0].Samples != 3 || es[0].ASHops != 9 {
		t.Errorf("Query(via, p1, 3h) = %+v, %v; want 3 samples including the old one", es, err)
	}
	// A window shorter than every measurement is empty.
	es, err = f.mx.Query(ctx, via, p1, time.Minute)
	if err != nil || len(es) != 0 {
		t.Errorf("Query(via, p1, 1m) = %+v, %v; want none", es, err)
	}

	// Filters.
	type cell struct {
		via    uint32
		prefix string
	}
	cells := func(es []Entry) []cell {
		var out []cell
		for _, e := range es {
			out = append(out, cell{e.ViaASN, e.Prefix})
		}
		return out
	}
	for _, c := range []struct {
		name string
		via  uint32
		p    netip.Prefix
		want []cell
	}{
		{"everything", 0, netip.Prefix{}, []cell{{via, "198.51.100.0/24"}, {via, "203.0.113.0/24"}, {via2, "198.51.100.0/24"}}},
		{"by via", via, netip.Prefix{}, []cell{{via, "198.51.100.0/24"}, {via, "203.0.113.0/24"}}},
		{"by other via", via2, netip.Prefix{}, []cell{{via2, "198.51.100.0/24"}}},
		{"by prefix", 0, p1, []cell{{via, "198.51.100.0/24"}, {via2, "198.51.100.0/24"}}},
		{"by prefix with host bits", 0, netip.MustParsePrefix("203.0.113.9/24"), []cell{{via, "203.0.113.0/24"}}},
		{"by via and prefix", via2, p2, nil},
		{"unknown via", 64999, netip.Prefix{}, nil},
	} {
		es, err := f.mx.Query(ctx, c.via, c.p, time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := cells(es)
		if len(got) != len(c.want) {
			t.Errorf("%s: cells %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: cells %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

func TestPathQualityPrefersTheVantage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p1 := netip.MustParsePrefix("198.51.100.0/24")
	m := func(key string, lat int64, loss int32, ago time.Duration) Measurement {
		x := meas(key)
		x.LatencyUs, x.LossPPM, x.At = lat, loss, now.Add(-ago)
		return x
	}
	// reporter sees via at 10 ms; via2's agent sees the same path at 30 ms.
	if _, _, err := f.mx.Report(ctx, reporter, []Measurement{m("r1", 10_000, 0, time.Minute), m("r-old", 900_000, 0, 3*time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.mx.Report(ctx, via2, []Measurement{m("v1", 30_000, 1000, time.Minute)}); err != nil {
		t.Fatal(err)
	}
	since := now.Add(-time.Hour)
	for _, c := range []struct {
		name    string
		vantage uint32
		lat     int64
		samples int
		from    uint32
	}{
		{"own view", reporter, 10_000, 1, reporter},
		{"other vantage's own view", via2, 30_000, 1, via2},
		{"no own measurement: the exchange's pooled view", via, 20_000, 2, 0},
		{"no vantage asked", 0, 20_000, 2, 0},
	} {
		got, err := f.mx.PathQuality(ctx, c.vantage, via, []netip.Prefix{p1}, since)
		if err != nil || got == nil {
			t.Fatalf("%s: %+v, %v", c.name, got, err)
		}
		if got.LatencyUs != c.lat || got.Samples != c.samples || got.Vantage != c.from {
			t.Errorf("%s: %+v, want latency %d from %d samples, vantage %d", c.name, got, c.lat, c.samples, c.from)
		}
	}
	// Nothing fresh through via2, or toward another prefix: nil.
	for _, c := range []struct {
		via uint32
		p   string
	}{{via2, "198.51.100.0/24"}, {via, "203.0.113.0/24"}} {
		if got, err := f.mx.PathQuality(ctx, reporter, c.via, []netip.Prefix{netip.MustParsePrefix(c.p)}, since); err != nil || got != nil {
			t.Errorf("via %d toward %s: %+v, %v; want nil", c.via, c.p, got, err)
		}
	}

	latest, err := f.mx.Latest(ctx, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[Path]time.Time{{reporter, via, p1}: now.Add(-time.Minute), {via2, via, p1}: now.Add(-time.Minute)}
	if len(latest) != len(want) {
		t.Fatalf("Latest = %v, want %v", latest, want)
	}
	for k, v := range want {
		if !latest[k].Equal(v) {
			t.Errorf("Latest[%v] = %v, want %v", k, latest[k], v)
		}
	}
}

// reportCell reports ms from the reporter and returns the reporter's cell
// of via toward 198.51.100.0/24 over the last hour.
func (f *fixture) reportCell(t *testing.T, ms ...Measurement) *Cell {
	t.Helper()
	ctx := context.Background()
	if _, _, err := f.mx.Report(ctx, reporter, ms); err != nil {
		t.Fatal(err)
	}
	c, err := f.mx.PathQuality(ctx, reporter, via, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, now.Add(-time.Hour))
	if err != nil || c == nil {
		t.Fatalf("%+v %v", c, err)
	}
	return c
}

// A cell carries what the path score needs: the probes its loss counts
// and the standard errors of its means.
func TestPathQualityCarriesItsSamples(t *testing.T) {
	f := newFixture(t)
	var ms []Measurement
	for i, lat := range []int64{10_000, 12_000, 14_000} {
		x := meas(string(rune('a' + i)))
		x.LatencyUs, x.JitterUs, x.ProbesSent = lat, 500*int64(i+1), 20
		ms = append(ms, x)
	}
	c := f.reportCell(t, ms...)
	// Latency 10, 12, 14 ms: standard deviation 2 ms, standard error
	// 2/sqrt(3) = 1.155 ms; jitter 0.5, 1, 1.5 ms: 0.289 ms.
	if c.Samples != 3 || c.Probes != 60 || c.LatencyUs != 12_000 || c.LatencyErrUs != 1155 || c.JitterErrUs != 289 {
		t.Fatalf("cell %+v", *c)
	}
	// A measurement that does not say how many probes it sent makes the
	// loss's sample size unknown.
	x := meas("z")
	x.ProbesSent = 0
	if c := f.reportCell(t, x); c.Probes != 0 {
		t.Fatalf("cell with an unknown probe count: %+v", c)
	}
}

// The cell's loss dispersion is pathscore.Dispersion over its measurements.
func TestPathQualityLossDispersion(t *testing.T) {
	f := newFixture(t)
	var ms []Measurement
	for i, loss := range []int32{0, 0, 500_000} {
		x := meas(string(rune('a' + i)))
		x.LossPPM, x.ProbesSent = loss, 20
		ms = append(ms, x)
	}
	c := f.reportCell(t, ms...)
	want := pathscore.Dispersion([]int64{20, 20, 20}, []int64{0, 0, 10})
	if want <= 1 || math.Abs(c.LossDispersion-want) > 1e-9 {
		t.Fatalf("dispersion %v, want %v", c.LossDispersion, want)
	}
}
