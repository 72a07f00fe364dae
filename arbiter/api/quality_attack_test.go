package api

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
)

// The attacks of a lying member on the quality matrix, each through the
// QualityService with the member's identity (what its certificate says).
// Members: a buyer with a trade from the seller (latency limited to 20
// ms), the seller, a competitor seller, three honest vantages and a loud
// liar.
const (
	atkBuyer      = 64510
	atkSeller     = 64501
	atkCompetitor = 64502
	atkLiar       = 64530
	atkHonest     = 64520 // and the next two
	sellerPrefix  = "198.51.100.0/24"
	rivalPrefix   = "203.0.113.0/24"
)

type attackFixture struct {
	db    *store.DB
	now   time.Time
	qs    *QualityServer
	trade int64
}

func newAttackFixture(t *testing.T) *attackFixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "bwx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	reg := registry.New(db)
	asns := []uint32{atkBuyer, atkSeller, atkCompetitor, atkLiar, atkHonest, atkHonest + 1, atkHonest + 2}
	for i, asn := range asns {
		if _, err := reg.AddMember(ctx, registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 1e10},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)})}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct {
		asn uint32
		p   string
	}{{atkSeller, sellerPrefix}, {atkCompetitor, rivalPrefix}} {
		if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix(p.p), MemberASN: p.asn, Type: registry.Customer, OriginASN: p.asn}); err != nil {
			t.Fatal(err)
		}
	}
	f := &attackFixture{db: db, now: time.Date(2026, 12, 1, 0, 30, 0, 0, time.UTC)}
	// Everyone joined long before the fixed clock.
	if _, err := db.Exec("UPDATE members SET created_us = ?", store.Micros(f.now.AddDate(0, -2, 0))); err != nil {
		t.Fatal(err)
	}
	m := quality.New(db, func() time.Time { return f.now })
	f.qs = &QualityServer{Matrix: m, now: func() time.Time { return f.now }}
	// The buyer's November trade from the seller, its buy limited to 20 ms.
	nov := settle.Month(2026, time.November)
	id := func(asn uint32) int64 {
		mm, err := registry.GetMember(ctx, db, asn)
		if err != nil {
			t.Fatal(err)
		}
		return mm.ID
	}
	var orders [2]int64
	for i, asn := range []uint32{atkBuyer, atkSeller} {
		r, err := db.Exec(`INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros, max_latency_us, traffic_type,
			start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES (?,?,?,1,1000000000,1000000000,2000000,20000,0,?,?,1,0,3,?,?)`,
			id(asn), i+1, sellerPrefix, store.Micros(nov.Start), store.Micros(nov.End), store.Micros(nov.Start), store.Micros(nov.Start))
		if err != nil {
			t.Fatal(err)
		}
		orders[i], _ = r.LastInsertId()
	}
	r, err := db.Exec(`INSERT INTO trades (buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
		start_us, end_us, created_us) VALUES (?,?,?,?,?,1,1000000000,2000000,?,?,?)`, orders[0], orders[1], id(atkBuyer), id(atkSeller), sellerPrefix,
		store.Micros(nov.Start), store.Micros(nov.End), store.Micros(nov.Start))
	if err != nil {
		t.Fatal(err)
	}
	f.trade, _ = r.LastInsertId()
	return f
}

// row is a measurement through via toward prefix at, latency in ms.
func row(key string, via uint32, prefix string, at time.Time, latencyMs int64, lossPPM int32) *pb.Measurement {
	p := netip.MustParsePrefix(prefix)
	return &pb.Measurement{IdempotencyKey: key, ViaAsn: via, DestinationPrefix: prefix, Target: p.Addr().Next().String(),
		MeasuredAt: timestamppb.New(at), LatencyUs: latencyMs * 1000, JitterUs: 500, LossPpm: lossPPM, AsHops: 1, IpHops: 4, ProbesSent: 100}
}

func (f *attackFixture) report(asn uint32, ms ...*pb.Measurement) error {
	_, err := f.qs.ReportMeasurements(as(pki.MemberIdentity(asn)), &pb.ReportMeasurementsRequest{Measurements: ms})
	return err
}

func wantRefused(t *testing.T, what string, err error, code codes.Code, field string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), field) {
		t.Errorf("%s: got %v, want %v naming %s", what, err, code, field)
	}
}

func (f *attackFixture) rows(t *testing.T) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow("SELECT count(*) FROM measurements").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttackReportOutsideTheWindow: a buyer backdates bad rows of its own
// trade's path into the past (to earn SLA credits for hours long gone),
// or dates them ahead; the whole call is refused naming the row and the
// field, and nothing of it is stored.
func TestAttackReportOutsideTheWindow(t *testing.T) {
	f := newAttackFixture(t)
	good := row("good", atkSeller, sellerPrefix, f.now.Add(-time.Minute), 10, 0)
	for _, c := range []struct {
		name string
		at   time.Time
	}{
		{"backdated three hours", f.now.Add(-3 * time.Hour)},
		{"backdated a week", f.now.AddDate(0, 0, -7)},
		{"in the future", f.now.Add(quality.MaxSkew + time.Minute)},
	} {
		err := f.report(atkBuyer, good, row("bad", atkSeller, sellerPrefix, c.at, 300, 0))
		wantRefused(t, c.name, err, codes.InvalidArgument, "measurements[1].measured_at")
	}
	if n := f.rows(t); n != 0 {
		t.Errorf("refused calls stored %d rows", n)
	}
	// Within the window, and a clock a little ahead: taken.
	if err := f.report(atkBuyer, good, row("ahead", atkSeller, sellerPrefix, f.now.Add(quality.MaxSkew/2), 10, 0)); err != nil {
		t.Fatal(err)
	}
}

// TestAttackReportUntaskedPath: a member reports paths it was never asked
// to measure and has no trade on: toward a prefix its seller never
// registered (the competitor's), through itself, through a member with no
// router of the prefix's family.
func TestAttackReportUntaskedPath(t *testing.T) {
	f := newAttackFixture(t)
	at := f.now.Add(-time.Minute)
	good := row("good", atkSeller, sellerPrefix, at, 10, 0)
	for _, c := range []struct {
		name  string
		bad   *pb.Measurement
		field string
	}{
		{"another seller's prefix", row("bad", atkSeller, rivalPrefix, at, 300, 0), "measurements[1].destination_prefix"},
		{"a wider prefix than registered", row("bad", atkSeller, "198.51.0.0/16", at, 300, 0), "measurements[1].destination_prefix"},
		{"a prefix nobody registered", row("bad", atkCompetitor, "192.0.2.0/24", at, 300, 0), "measurements[1].destination_prefix"},
		{"through itself", row("bad", atkLiar, sellerPrefix, at, 300, 0), "measurements[1].via_asn"},
	} {
		wantRefused(t, c.name, f.report(atkLiar, good, c.bad), codes.InvalidArgument, c.field)
	}
	if n := f.rows(t); n != 0 {
		t.Errorf("refused calls stored %d rows", n)
	}
	// Its tasks (every other seller's registered prefixes, or inside one)
	// and the buyer's own trade path are taken.
	if err := f.report(atkLiar, good, row("rival", atkCompetitor, rivalPrefix, at, 10, 0), row("inside", atkSeller, "198.51.100.128/25", at, 10, 0)); err != nil {
		t.Fatal(err)
	}
}

// TestAttackFloodThePooledView: three honest vantages measure the
// competitor's path at 10, 12 and 14 ms; a liar sends ten thousand rows of
// 500 ms and 50 % loss. The pooled view (what every buyer without its own
// measurements sees) stays within the honest vantages' figures and says it
// rests on four vantages.
func TestAttackFloodThePooledView(t *testing.T) {
	f := newAttackFixture(t)
	at := f.now.Add(-10 * time.Minute)
	for i, ms := range []int64{10, 12, 14} {
		if err := f.report(uint32(atkHonest+i), row("h", atkCompetitor, rivalPrefix, at, ms, 0), row("h2", atkCompetitor, rivalPrefix, at.Add(time.Minute), ms, 0)); err != nil {
			t.Fatal(err)
		}
	}
	flood := make([]*pb.Measurement, quality.MaxBatch)
	for i := range flood {
		flood[i] = row(fmt.Sprint("liar-", i), atkCompetitor, rivalPrefix, at.Add(time.Duration(i)*time.Millisecond), 500, 500_000)
	}
	if err := f.report(atkLiar, flood...); err != nil {
		t.Fatal(err)
	}
	c, err := f.qs.Matrix.PathQuality(context.Background(), atkBuyer, atkCompetitor, []netip.Prefix{netip.MustParsePrefix(rivalPrefix)}, f.now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || c.LatencyUs < 10_000 || c.LatencyUs > 14_000 || c.LossPPM != 0 || c.Vantages != 4 {
		t.Fatalf("pooled view after the flood: %+v; want latency within 10..14 ms, no loss, 4 vantages", c)
	}
	r, err := f.qs.QueryMatrix(as(pki.MemberIdentity(atkBuyer)), &pb.QueryMatrixRequest{ViaAsn: atkCompetitor, MaxAge: durationpb.New(time.Hour)})
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("matrix: %v %v", r, err)
	}
	if e := r.Entries[0]; e.LatencyUs < 10_000 || e.LatencyUs > 14_000 || e.LossPpm != 0 || e.Vantages != 4 {
		t.Errorf("matrix entry after the flood: %+v; want latency within 10..14 ms, no loss, 4 vantages", e)
	}
}

// TestAttackReportFlood: a member sending more rows than its allowance is
// refused with ResourceExhausted and told when to retry; it gets its
// allowance back as time passes, and other members are not held up.
func TestAttackReportFlood(t *testing.T) {
	f := newAttackFixture(t)
	f.qs.Matrix.Limit(10, 1000)
	at := f.now.Add(-time.Minute)
	batch := func(tag string, n int) []*pb.Measurement {
		out := make([]*pb.Measurement, n)
		for i := range out {
			out[i] = row(fmt.Sprint(tag, i), atkCompetitor, rivalPrefix, at, 10, 0)
		}
		return out
	}
	if err := f.report(atkLiar, batch("a", 1000)...); err != nil {
		t.Fatal(err)
	}
	err := f.report(atkLiar, batch("b", 100)...)
	wantRefused(t, "past the allowance", err, codes.ResourceExhausted, "retry")
	var hint *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri
		}
	}
	if hint == nil || hint.RetryDelay.AsDuration() != 10*time.Second {
		t.Errorf("retry hint %v, want 10s (100 rows at 10 a second)", hint)
	}
	if err := f.report(atkHonest, batch("h", 10)...); err != nil {
		t.Errorf("another member held up: %v", err)
	}
	f.now = f.now.Add(10 * time.Second)
	if err := f.report(atkLiar, batch("b", 100)...); err != nil {
		t.Errorf("after the hint's wait: %v", err)
	}
}

// TestAttackUncorroboratedBreach: a buyer reports (fresh, on its own trade
// path) latencies above its limit that no other vantage sees. Settlement
// shows the breach as disputed and credits nothing; once an honest
// vantage's measurement in the same window shows the limit exceeded too,
// the breach is credited.
func TestAttackUncorroboratedBreach(t *testing.T) {
	f := newAttackFixture(t)
	ctx := context.Background()
	nov := settle.Month(2026, time.November)
	start := nov.End.Add(-time.Hour) // 23:00 on the 30th, 90 minutes before the clock
	var ms []*pb.Measurement
	for i := range 6 {
		ms = append(ms, row(fmt.Sprint("b", i), atkSeller, sellerPrefix, start.Add(time.Duration(i)*5*time.Minute), 40, 0))
	}
	if err := f.report(atkBuyer, ms...); err != nil {
		t.Fatal(err)
	}
	// An honest vantage sees the path fine meanwhile.
	if err := f.report(atkHonest, row("ok", atkSeller, sellerPrefix, start.Add(10*time.Minute), 8, 0)); err != nil {
		t.Fatal(err)
	}
	line := func() settle.Line {
		t.Helper()
		st, err := settle.NewSettlement(f.db, settle.Options{Config: settle.DefaultConfig(), Now: func() time.Time { return f.now },
			Breaches: settle.NewQualityBreaches(f.db)})
		if err != nil {
			t.Fatal(err)
		}
		run := st.Run
		if _, err := st.ExchangeStatement(ctx, nov); err == nil {
			run = st.Correct
		}
		if _, err := run(ctx, nov, settle.BuyerFigure); err != nil {
			t.Fatal(err)
		}
		inv, err := st.Invoice(ctx, atkBuyer, nov)
		if err != nil || len(inv.Lines) != 1 {
			t.Fatalf("invoice %+v %v", inv, err)
		}
		return inv.Lines[0]
	}
	l := line()
	if l.Credit != 0 || l.BreachedSeconds != 0 || l.DisputedBreachSeconds != 30*60 {
		t.Errorf("uncorroborated: credit %d, breached %v s, disputed %v s; want no credit and 1800 s disputed", l.Credit, l.BreachedSeconds, l.DisputedBreachSeconds)
	}
	// A second vantage sees 35 ms at 23:20: the breach is corroborated.
	if err := f.report(atkHonest+1, row("bad", atkSeller, sellerPrefix, start.Add(20*time.Minute), 35, 0)); err != nil {
		t.Fatal(err)
	}
	l = line()
	if l.Credit <= 0 || l.BreachedSeconds != 30*60 || l.DisputedBreachSeconds != 0 {
		t.Errorf("corroborated: credit %d, breached %v s, disputed %v s; want a credit for 1800 s", l.Credit, l.BreachedSeconds, l.DisputedBreachSeconds)
	}
}
