package daemon_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// wantField checks that err has code and names field in its message.
func wantField(t *testing.T, what string, err error, code codes.Code, field string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), field) {
		t.Errorf("%s: got %v, want %v naming %s", what, err, code, field)
	}
}

// TestBadReportsRefused: measurements with a negative latency, a loss above
// 100 %, a seller that is not a member, a target outside its prefix, or
// another member's vantage, and usage for a trade the reporter is not a
// party of, are refused naming the field; nothing of a refused batch is
// stored, and a good report sent twice is stored once.
func TestBadReportsRefused(t *testing.T) {
	x := startExchange(t)
	seller := x.member(64501, "192.0.2.1")
	buyer := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	ctx := context.Background()
	q := pb.NewQualityServiceClient(buyer)
	good := func() *pb.Measurement {
		return &pb.Measurement{IdempotencyKey: "m1", ViaAsn: 64501, DestinationPrefix: "198.51.100.0/24", Target: "198.51.100.1",
			MeasuredAt: timestamppb.New(clock.Now()), LatencyUs: 10_000, JitterUs: 100, LossPpm: 0, ProbesSent: 5}
	}
	for _, c := range []struct {
		name  string
		edit  func(*pb.Measurement)
		code  codes.Code
		field string
	}{
		{"negative latency", func(m *pb.Measurement) { m.LatencyUs = -1 }, codes.InvalidArgument, "measurements[1].latency_us"},
		{"loss above 100 %", func(m *pb.Measurement) { m.LossPpm = 1_000_001 }, codes.InvalidArgument, "measurements[1].loss_ppm"},
		{"seller not a member", func(m *pb.Measurement) { m.ViaAsn = 64999 }, codes.InvalidArgument, "measurements[1].via_asn"},
		{"target outside the prefix", func(m *pb.Measurement) { m.Target = "203.0.113.1" }, codes.InvalidArgument, "measurements[1].target"},
		{"another member's vantage", func(m *pb.Measurement) { m.VantageAsn = 64501 }, codes.PermissionDenied, "measurements[1].vantage_asn"},
	} {
		bad := good()
		bad.IdempotencyKey = "bad"
		c.edit(bad)
		_, err := q.ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{good(), bad}})
		wantField(t, c.name, err, c.code, c.field)
	}
	es, err := q.QueryMatrix(ctx, &pb.QueryMatrixRequest{})
	if err != nil || len(es.Entries) != 0 {
		t.Fatalf("after refused batches the matrix has %v (%v), want nothing", es, err)
	}
	for i, want := range []int32{1, 0} {
		r, err := q.ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{good()}})
		if err != nil || r.Accepted != want || r.Duplicates != 1-want {
			t.Fatalf("good report, try %d: %v %v", i+1, r, err)
		}
	}

	// Usage: only a party may report, in its own role.
	sell, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, "198.51.100.0/24", 1e9, 100, 60)})
	if err != nil {
		t.Fatal(err)
	}
	buy, err := pb.NewTradingServiceClient(buyer).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100, 30)})
	if err != nil || len(buy.Trades) != 1 {
		t.Fatalf("buy: %v %v (sell %v)", buy, err, sell)
	}
	now := clock.Now().UTC().Truncate(time.Minute)
	sample := func(role pb.ReporterRole) *pb.ReportUsageRequest {
		return &pb.ReportUsageRequest{Samples: []*pb.UsageSample{{IdempotencyKey: "u1", TradeId: buy.Trades[0].Id, Role: role,
			IntervalStart: timestamppb.New(now), IntervalEnd: timestamppb.New(now.Add(5 * time.Minute)), BitsPerSecond: 1e6, SampleCount: 100}}}
	}
	_, err = pb.NewUsageServiceClient(seller).ReportUsage(ctx, sample(pb.ReporterRole_REPORTER_ROLE_BUYER))
	wantField(t, "seller reports as the buyer", err, codes.InvalidArgument, "samples[0].trade_id")
	_, err = pb.NewUsageServiceClient(buyer).ReportUsage(ctx, sample(pb.ReporterRole_REPORTER_ROLE_SELLER))
	wantField(t, "buyer reports as the seller", err, codes.InvalidArgument, "samples[0].trade_id")
	neg := sample(pb.ReporterRole_REPORTER_ROLE_BUYER)
	neg.Samples[0].BitsPerSecond = -1
	_, err = pb.NewUsageServiceClient(buyer).ReportUsage(ctx, neg)
	wantField(t, "negative rate", err, codes.InvalidArgument, "samples[0].bits_per_second")
	// The attacks of a lying member, each refused with its field: a figure
	// that overflows every bill, a sample count that no port carries (to
	// narrow or widen an error bar), an interval a day long or in the future.
	for _, c := range []struct {
		name, field string
		edit        func(*pb.UsageSample)
	}{
		{"int64 bits/s", "samples[0].bits_per_second", func(s *pb.UsageSample) { s.BitsPerSecond = 9_223_372_036_854_775_000 }},
		{"more than the 10G ports carry", "samples[0].bits_per_second", func(s *pb.UsageSample) { s.BitsPerSecond = 11e9 }},
		{"more packets than the line carries", "samples[0].sample_count", func(s *pb.UsageSample) { s.SampleCount = 1 << 40 }},
		{"a day-long interval", "samples[0].interval_end", func(s *pb.UsageSample) { s.IntervalEnd = timestamppb.New(now.Add(24 * time.Hour)) }},
		{"in the future", "samples[0].interval_end", func(s *pb.UsageSample) {
			s.IntervalStart, s.IntervalEnd = timestamppb.New(now.Add(time.Hour)), timestamppb.New(now.Add(time.Hour+5*time.Minute))
		}},
	} {
		for _, who := range []struct {
			conn *grpc.ClientConn
			role pb.ReporterRole
		}{{seller, pb.ReporterRole_REPORTER_ROLE_SELLER}, {buyer, pb.ReporterRole_REPORTER_ROLE_BUYER}} {
			r := sample(who.role)
			c.edit(r.Samples[0])
			_, err = pb.NewUsageServiceClient(who.conn).ReportUsage(ctx, r)
			wantField(t, c.name+" as "+who.role.String(), err, codes.InvalidArgument, c.field)
		}
	}
	for i, want := range []int32{1, 0} {
		r, err := pb.NewUsageServiceClient(buyer).ReportUsage(ctx, sample(pb.ReporterRole_REPORTER_ROLE_BUYER))
		if err != nil || r.Accepted != want {
			t.Fatalf("buyer's usage, try %d: %v %v", i+1, r, err)
		}
	}
}

// startExchangeWith is startExchange with a config change.
func startExchangeWith(t *testing.T, edit func(*daemon.Config)) *exchange {
	t.Helper()
	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	edit(&cfg)
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x := &exchange{t: t, cfg: cfg, dir: dir}
	x.start()
	t.Cleanup(func() { x.arb.Close() })
	return x
}

// TestRouteAnalysis: an agent's probe task stream gets, at once, a task
// for every other member's prefix through that member's router (route
// analysis of a new member, claim 5), not its own; a member registered
// while the stream is open is analysed at once, not at the next re-plan;
// a measured path is not asked again until it needs revalidation.
func TestRouteAnalysis(t *testing.T) {
	xx := startExchangeWith(t, func(c *daemon.Config) {
		c.Quality.PollInterval = time.Hour
		c.Quality.Revalidate = time.Hour
	})
	vantage := xx.member(64510, "192.0.2.10", "2001:db8::10")
	xx.addPrefix(64510, "192.0.2.0/24") // its own: never a task
	xx.member(64501, "192.0.2.1", "2001:db8::1")
	xx.addPrefix(64501, "198.51.100.0/24")
	xx.addPrefix(64501, "2001:db8:100::/48")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The route server accepted 64501's IPv4 route with a two-AS path: the
	// task carries that network distance; the IPv6 one is unknown (0).
	db, err := store.Open(xx.cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	err = registry.New(db).UpdateAnnounced(ctx, []registry.AnnouncedRoute{{MemberASN: 64501, Neighbor: netip.MustParseAddr("192.0.2.1"),
		Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("192.0.2.1"), ASPath: []uint32{64501, 64999},
		OriginASN: 64999, Accepted: true, Since: clock.Now()}}, nil)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	stream, err := pb.NewQualityServiceClient(vantage).StreamProbeTasks(ctx, &pb.StreamProbeTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*pb.ProbeTask{}
	for len(got) < 2 {
		task, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got[task.DestinationPrefix] = task
	}
	if a, b := got["198.51.100.0/24"], got["2001:db8:100::/48"]; a == nil || b == nil || a.ViaAsn != 64501 || a.ViaNextHop != "192.0.2.1" ||
		b.ViaNextHop != "2001:db8::1" || !a.First || len(a.Targets) == 0 || a.AsHops != 2 || b.AsHops != 0 {
		t.Fatalf("tasks %v", got)
	}
	// A new member while the stream is open: its prefix comes at once.
	xx.member(64502, "192.0.2.2")
	xx.addPrefix(64502, "203.0.113.0/24")
	task, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if task.ViaAsn != 64502 || task.DestinationPrefix != "203.0.113.0/24" || task.ViaNextHop != "192.0.2.2" {
		t.Fatalf("task for the new member: %v", task)
	}
	// Reports for the tasks: measured paths are not asked again soon.
	q := pb.NewQualityServiceClient(vantage)
	for i, p := range []struct {
		via            uint32
		prefix, target string
	}{
		{64501, "198.51.100.0/24", "198.51.100.1"}, {64501, "2001:db8:100::/48", "2001:db8:100::1"}, {64502, "203.0.113.0/24", "203.0.113.1"}} {
		_, err := q.ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{{IdempotencyKey: "k" + string(rune('a'+i)),
			ViaAsn: p.via, DestinationPrefix: p.prefix, Target: p.target, MeasuredAt: timestamppb.New(clock.Now()), LatencyUs: 1000, ProbesSent: 5}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	xx.addPrefix(64502, "2001:db8:200::/48") // no IPv6 router: nothing to probe through
	xx.member(64503, "192.0.2.3")
	xx.addPrefix(64503, "203.0.113.0/25")
	task, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if task.ViaAsn != 64503 {
		t.Fatalf("after the reports, the next task is %v, want only the newest member's", task)
	}
}

// TestQualityAttackOverTLS: with its own certificate, a member reports a
// path it is not asked to measure (toward a prefix its seller never
// registered) and a backdated row: both refused naming the row and field,
// counted against the member in the refusals metric.
func TestQualityAttackOverTLS(t *testing.T) {
	x := startExchange(t)
	x.member(64501, "192.0.2.1")
	x.member(64502, "192.0.2.2")
	liar := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	x.addPrefix(64502, "203.0.113.0/24")
	q := pb.NewQualityServiceClient(liar)
	ctx := context.Background()
	m := func(prefix string, at time.Time) *pb.Measurement {
		return &pb.Measurement{IdempotencyKey: prefix + at.String(), ViaAsn: 64501, DestinationPrefix: prefix, Target: strings.TrimSuffix(prefix, "0/24") + "1",
			MeasuredAt: timestamppb.New(at), LatencyUs: 900_000, ProbesSent: 5}
	}
	now := clock.Now()
	_, err := q.ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{m("198.51.100.0/24", now), m("203.0.113.0/24", now)}})
	wantField(t, "a competitor's prefix through the seller", err, codes.InvalidArgument, "measurements[1].destination_prefix")
	_, err = q.ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{m("198.51.100.0/24", now.Add(-3*time.Hour))}})
	wantField(t, "backdated", err, codes.InvalidArgument, "measurements[0].measured_at")
	if r, err := q.ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{m("198.51.100.0/24", now)}}); err != nil || r.Accepted != 1 {
		t.Fatalf("its task's path: %v %v", r, err)
	}
	want := `bwx_arbiter_grpc_refusals_total{caller="member AS64510",code="InvalidArgument"} 2`
	if m := scrape(t, x); !strings.Contains(m, want) {
		t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "refusals"))
	}
}
