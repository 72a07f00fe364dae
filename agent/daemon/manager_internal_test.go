package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/agent/speaker"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

func TestManagerConfigDefaultsAndErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(p, []byte("arbiter:\n  address: \"192.0.2.1:7443\"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write(""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Manager.Mode != manager.ModeShadow || cfg.managerRuns() {
		t.Errorf("empty section: mode %q, runs %v; want shadow, not running without capture", cfg.Manager.Mode, cfg.managerRuns())
	}
	cfg, err = LoadConfig(write("capture:\n  interfaces: [eth1]\n  interval: 10s\nmanager:\n  mode: trade\n  buy:\n    budget: \"100\"\n    max_price: \"2.5\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.managerRuns() || cfg.managerRound() != 10*time.Second || cfg.Manager.Buy.MaxPrice != 2_500_000 || cfg.Manager.Demand.Top != 20 {
		t.Errorf("trade section: %+v, round %v", cfg.Manager, cfg.managerRound())
	}
	for _, c := range []struct{ body, want string }{
		{"manager:\n  buy:\n    ranking: cheapest\n", "manager.buy.ranking"},
		{"manager:\n  bogus: 1\n", "bogus"},
		{"manager:\n  mode: trade\n", "manager.mode"},
		{"manager:\n  round: 10ms\n", "manager.round"},
		{"manager:\n  journal_size: 0\n", "manager.journal_size"},
		{"manager:\n  sell:\n    enabled: true\n    destinations: [10.0.0.1/8]\n    price: 1\n    min_block: 1M\n", "manager.sell.destinations[0]"},
	} {
		_, err := LoadConfig(write(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to name %s", c.body, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "agent.yaml:") {
			t.Errorf("%q: error %v does not give the file and line", c.body, err)
		}
	}
}

func TestJournalPersistsAndRestores(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.StateDir = dir
	cfg.Manager.JournalSize = 5
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := NewManagerLoop(cfg, 64510, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	// Decisions as a Step makes them, persisted as the loop does.
	p := netip.MustParsePrefix("2001:db8:300::/48")
	var ds []manager.Decision
	for i := 1; i <= 8; i++ {
		ds = append(ds, manager.Decision{Seq: uint64(i), At: time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC), Kind: manager.KindHold, Prefix: p, Reason: "test"})
	}
	l.m.Restore(ds[:3])
	l.saved = 0
	l.persist()
	l.m.Restore(ds[3:])
	l.persist()
	got, err := readJournal(cfg.journalPath(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0].Seq != 4 || got[4].Seq != 8 || got[4].Prefix != p {
		t.Fatalf("read back %+v, want decisions 4-8", got)
	}
	// A restarted agent continues the journal where it was.
	l2, err := NewManagerLoop(cfg, 64510, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if last := l2.m.Journal().Last(); last != 8 {
		t.Errorf("restored journal ends at %d, want 8", last)
	}
	// A torn last line (a crash mid-write) is skipped; a corrupt line in
	// the middle is an error naming the file and line.
	f, _ := os.OpenFile(cfg.journalPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":9,"kind":"ho`)
	f.Close()
	if got, err := readJournal(cfg.journalPath(), 5); err != nil || len(got) != 5 || got[4].Seq != 8 {
		t.Errorf("torn last line: %d decisions, %v", len(got), err)
	}
	f, _ = os.OpenFile(cfg.journalPath(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n{\"seq\":10}\n")
	f.Close()
	if _, err := readJournal(cfg.journalPath(), 5); err == nil || !strings.Contains(err.Error(), "decisions.jsonl:9") {
		t.Errorf("corrupt middle line: %v, want an error naming line 9", err)
	}
}

func TestRoutingPreference(t *testing.T) {
	a := netip.MustParseAddr
	p4, p6 := netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:db8:300::/48")
	r := &Routing{log: slog.New(slog.NewTextHandler(io.Discard, nil)), prefs: map[netip.Prefix]preference{}, resync: make(chan struct{}, 1)}
	route := func(p netip.Prefix, hops ...string) speaker.Route {
		rt := speaker.Route{Prefix: p}
		for _, h := range hops {
			rt.NextHops = append(rt.NextHops, speaker.NextHop{Addr: a(h)})
		}
		return rt
	}
	check := func(rt speaker.Route, ok bool, want ...string) {
		t.Helper()
		got, gotOK := r.preferred(rt)
		var hops []netip.Addr
		for _, h := range want {
			hops = append(hops, a(h))
		}
		if gotOK != ok || (ok && !slices.Equal(got.NextHops, hops)) {
			t.Errorf("%v: got %v %v, want %v %v", rt.Prefix, got.NextHops, gotOK, hops, ok)
		}
	}
	two4 := route(p4, "192.0.2.11", "192.0.2.12")
	two6 := route(p6, "2001:db8:ffff::11", "2001:db8:ffff::12")
	// No preference: every seller's next hop (ECMP), as before.
	check(two4, true, "192.0.2.11", "192.0.2.12")
	r.Prefer(p4, 64502, []netip.Addr{a("192.0.2.12"), a("2001:db8:ffff::12")})
	r.Prefer(p6, 64502, []netip.Addr{a("192.0.2.12"), a("2001:db8:ffff::12")})
	check(two4, true, "192.0.2.12")
	check(two6, true, "2001:db8:ffff::12")
	// A more specific traded route inside the preferred destination too.
	check(route(netip.MustParsePrefix("198.18.0.128/25"), "192.0.2.11", "192.0.2.12"), true, "192.0.2.12")
	// The preferred seller delivers nothing for it: keep what there is.
	check(route(p4, "192.0.2.11"), true, "192.0.2.11")
	// The default path: no traded route at all.
	r.Prefer(p4, manager.DefaultPath, nil)
	check(two4, false)
	check(two6, true, "2001:db8:ffff::12")
	select {
	case <-r.resync:
	default:
		t.Error("Prefer did not ask for a resync")
	}
	var _ fib.Route // the type preferred returns
}

func TestProtoConversions(t *testing.T) {
	o := orderFromProto(&pb.Order{Id: 7, ClientOrderId: "bwxm-1", FilledBps: 1e6, Spec: &pb.OrderSpec{Side: pb.Side_SIDE_SELL,
		Destination: &pb.Destination{Kind: &pb.Destination_RouteType{RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}}, CapacityBps: 5e6}}, 64501)
	if o.Side != manager.Sell || o.Destination != "customer" || o.Remaining() != 4e6 || o.ClientOrderID != "bwxm-1" {
		t.Errorf("order %+v", o)
	}
	tr := tradeFromProto(&pb.Trade{Id: 3, SellerAsn: 64501, BuyerAsn: 64510, Prefixes: []string{"2001:db8:300::/48", "198.18.0.0/24"}}, 64510)
	if tr.Side != manager.Buy || !tr.Covers(netip.MustParsePrefix("2001:db8:300:1::/64")) || !tr.Covers(netip.MustParsePrefix("198.18.0.0/24")) {
		t.Errorf("trade %+v", tr)
	}
	q := limitsToProto(manager.Limits{MaxLatencyUs: 45000})
	if q.MaxLatencyUs == nil || *q.MaxLatencyUs != 45000 || q.MaxLossPpm != nil || q.MaxJitterUs != nil {
		t.Errorf("limits %v", q)
	}
	if protoOf(netip.MustParsePrefix("2001:db8::/32")) != pb.Protocol_PROTOCOL_IPV6 || protoOf(netip.MustParsePrefix("198.18.0.0/24")) != pb.Protocol_PROTOCOL_IPV4 {
		t.Error("protocol of a prefix")
	}
}

func TestStatusSocketServesDecisions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StateDir = t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := NewManagerLoop(cfg, 64510, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.18.0.0/24")
	l.m.Restore([]manager.Decision{
		{Seq: 1, At: clock.Now().UTC(), Kind: manager.KindBuy, Shadow: true, Prefix: p, Seller: 64502, Reason: "a"},
		{Seq: 2, At: clock.Now().UTC(), Kind: manager.KindHold, Shadow: true, Prefix: p, Reason: "b"},
	})
	a := &Agent{cfg: cfg, log: log, manager: l}
	sock := filepath.Join(cfg.StateDir, "agent.sock")
	ln, err := listenStatus(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.serveStatus(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	ds, err := FetchDecisions(ctx, sock, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Mode != "shadow" || len(ds.Decisions) != 1 || ds.Decisions[0].Seq != 2 || ds.Decisions[0].Kind != manager.KindHold {
		t.Errorf("decisions after 1: %+v", ds)
	}
	// An agent without a manager says so.
	off := &Agent{cfg: cfg, log: log}
	sock2 := filepath.Join(cfg.StateDir, "off.sock")
	ln2, err := listenStatus(sock2)
	if err != nil {
		t.Fatal(err)
	}
	done2 := make(chan struct{})
	go func() { off.serveStatus(ctx, ln2); close(done2) }()
	defer func() { cancel(); <-done2 }()
	if _, err := FetchDecisions(ctx, sock2, 0); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("without a manager: %v, want it to say the manager is not running", err)
	}
}

// BenchmarkRoutePreference measures the preference filter per learned
// route over a full-size table: "none" (no preference: what sync did
// before) is the baseline beside "prefs" (20 and 100000 preferred
// destinations). Run:
//
//	go test -run '^$' -bench RoutePreference ./agent/daemon/
func BenchmarkRoutePreference(b *testing.B) {
	const n = 100000
	routes := make([]speaker.Route, n)
	for i := range routes {
		a := netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0})
		routes[i] = speaker.Route{Prefix: netip.PrefixFrom(a, 24), NextHops: []speaker.NextHop{{Addr: netip.MustParseAddr("192.0.2.11")}, {Addr: netip.MustParseAddr("192.0.2.12")}}}
	}
	for _, np := range []int{0, 20, n} {
		name := map[int]string{0: "none", 20: "prefs=20", n: "prefs=100000"}[np]
		b.Run(name, func(b *testing.B) {
			r := &Routing{log: slog.New(slog.NewTextHandler(io.Discard, nil)), prefs: map[netip.Prefix]preference{}, resync: make(chan struct{}, 1)}
			for i := range np {
				r.prefs[routes[i*(n/np)].Prefix] = preference{seller: 64502, hops: []netip.Addr{netip.MustParseAddr("192.0.2.12")}}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.preferred(routes[i%n])
			}
		})
	}
}

// An offer's measurement reaches the manager with its samples; one
// without them (an older arbiter) has no probe count, which justifies no
// buy.
func TestOfferMeasurementCarriesSamples(t *testing.T) {
	p := netip.MustParsePrefix("198.51.100.0/24")
	o := offerFromProto(&pb.Offer{OrderId: 1, SellerAsn: 64501, Measured: &pb.Quality{},
		MeasuredPath: &pb.PathQuality{LatencyUs: 20_000, LossPpm: 5000, Samples: 3, Probes: 200, LatencyErrUs: 150, JitterErrUs: 40}}, p)
	want := manager.Quality{LatencyUs: 20_000, LossPPM: 5000, Probes: 200, Rounds: 3, LatencyErrUs: 150, JitterErrUs: 40}
	if o.Measured == nil || *o.Measured != want {
		t.Fatalf("measured %+v, want %+v", o.Measured, want)
	}
	old := offerFromProto(&pb.Offer{OrderId: 1, SellerAsn: 64501, Measured: &pb.Quality{MaxLatencyUs: proto.Int64(20_000)}}, p)
	if old.Measured == nil || old.Measured.Probes != 0 || old.Measured.LatencyUs != 20_000 {
		t.Fatalf("measured without samples %+v", old.Measured)
	}
}
