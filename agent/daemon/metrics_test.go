package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	arbiter "github.com/bwxchange/bwx/arbiter/daemon"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

// testArbiter is an in-process arbiter on loopback that can be stopped
// and started again on the same port.
type testArbiter struct {
	t   *testing.T
	cfg arbiter.Config
	arb *arbiter.Arbiter
	dir string
}

func startTestArbiter(t *testing.T) *testArbiter {
	t.Helper()
	dir := t.TempDir()
	cfg := arbiter.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x := &testArbiter{t: t, cfg: cfg, dir: dir}
	x.start()
	t.Cleanup(x.stop)
	return x
}

func (x *testArbiter) start() {
	x.t.Helper()
	var err error
	for range 50 { // the port may linger briefly after a stop
		if x.arb, err = arbiter.Start(x.cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		x.t.Fatal(err)
	}
	x.cfg.GRPC.Listen = x.arb.Addr.String() // the same port after a restart
}

func (x *testArbiter) stop() {
	if x.arb != nil {
		x.arb.Close()
		x.arb = nil
	}
}

// member registers asn and returns its certificate bundle's path.
func (x *testArbiter) member(asn uint32, routers ...string) string {
	x.t.Helper()
	c, err := rpc.DialUnix(x.cfg.Operator.Socket)
	if err != nil {
		x.t.Fatal(err)
	}
	defer c.Close()
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "x")
	resp, err := pb.NewRegistryServiceClient(c).AddMember(context.Background(), &pb.AddMemberRequest{
		Asn: asn, Name: fmt.Sprintf("AS%d", asn), Port: &pb.Port{Name: fmt.Sprintf("swp%d", asn), CapacityBps: 10e9},
		RouterAddresses: routers, Csr: csr})
	if err != nil {
		x.t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalKeyPEM(key)
	path := filepath.Join(x.dir, fmt.Sprintf("AS%d.pem", asn))
	if err := pki.WriteBundle(path, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
		x.t.Fatal(err)
	}
	return path
}

// addPrefixes registers customer prefixes of member asn.
func (x *testArbiter) addPrefixes(asn uint32, prefixes ...string) {
	x.t.Helper()
	c, err := rpc.DialUnix(x.cfg.Operator.Socket)
	if err != nil {
		x.t.Fatal(err)
	}
	defer c.Close()
	for _, p := range prefixes {
		if _, err := pb.NewRegistryServiceClient(c).AddPrefix(context.Background(), &pb.AddPrefixRequest{
			Prefix: &pb.Prefix{Prefix: p, MemberAsn: asn, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}}); err != nil {
			x.t.Fatal(err)
		}
	}
}

// runAgent starts the agent (made by newAgent) and stops it at the end
// of the test; it returns the agent's metrics base URL.
func runAgent(t *testing.T, newAgent func() (*daemon.Agent, error)) (*daemon.Agent, string) {
	t.Helper()
	a, err := newAgent()
	if err != nil {
		t.Fatal(err)
	}
	a.MinBackoff, a.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		a.Close()
	})
	poll(t, "the metrics listener", func() bool { return a.MetricsAddr() != nil })
	return a, "http://" + a.MetricsAddr().String()
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := clock.Now().Add(30 * time.Second) // the machine is shared: be patient
	for !cond() {
		if clock.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	return getWith(t, http.DefaultClient, url)
}

func getWith(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns the series of base/metrics: `name{labels}` -> value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	return scrapeWith(t, http.DefaultClient, base)
}

func scrapeWith(t *testing.T, c *http.Client, base string) map[string]float64 {
	t.Helper()
	code, body := getWith(t, c, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d: %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds the series of metric name that carry every one of labels
// (`key="value"`); ok is false when there is none. Other labels may be
// there too (capture's direction, say).
func sum(m map[string]float64, name string, labels ...string) (total float64, ok bool) {
	for s, v := range m {
		n, ls, _ := strings.Cut(s, "{")
		if n != name {
			continue
		}
		have := strings.Split(strings.TrimSuffix(ls, "}"), ",")
		match := true
		for _, l := range labels {
			if !slices.Contains(have, l) {
				match = false
			}
		}
		if match {
			total, ok = total+v, true
		}
	}
	return total, ok
}

func TestMetricsFollowTheArbiter(t *testing.T) {
	x := startTestArbiter(t)
	bundle := x.member(64501, "192.0.2.10", "2001:db8::a")
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Address, cfg.Bundle, cfg.StateDir = x.cfg.GRPC.Listen, bundle, filepath.Join(t.TempDir(), "state")
	cfg.Metrics.Listen = "127.0.0.1:0"
	_, base := runAgent(t, func() (*daemon.Agent, error) {
		return daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})

	up := func(want float64) func() bool {
		return func() bool {
			m := scrape(t, base)
			return m["bwx_agent_event_stream_up"] == want && m["bwx_agent_arbiter_connected"] == want
		}
	}
	poll(t, "event stream up", up(1))
	m := scrape(t, base)
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	for s := range m {
		// Neither routing nor measuring is configured: their metrics
		// would be zeros that look like an outage.
		if strings.HasPrefix(s, "bwx_agent_bgp_") || strings.HasPrefix(s, "bwx_agent_spool_") || strings.HasPrefix(s, "bwx_agent_capture_") {
			t.Errorf("unexpected series %s", s)
		}
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	// The arbiter goes away: the stream is down, the agent still healthy
	// (a restart would not bring the arbiter back).
	x.stop()
	poll(t, "event stream down", up(0))
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with the arbiter away: %d %q", code, body)
	}
	// It comes back.
	x.start()
	poll(t, "event stream up again", up(1))

	// Without the status socket the agent is not healthy.
	if err := os.Remove(cfg.SocketPath()); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "status socket") {
		t.Fatalf("/healthz without the status socket: %d %q", code, body)
	}
}

func TestMetricsListenTakenFailsRun(t *testing.T) {
	x := startTestArbiter(t)
	bundle := x.member(64501, "192.0.2.10", "2001:db8::a")
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Address, cfg.Bundle, cfg.StateDir = x.cfg.GRPC.Listen, bundle, filepath.Join(t.TempDir(), "state")
	cfg.Metrics.Listen = "127.0.0.1:0"
	_, base := runAgent(t, func() (*daemon.Agent, error) {
		return daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	// A second agent on the same metrics port (and its own state) fails
	// with the key named, and leaves no status socket behind.
	cfg.Metrics.Listen = strings.TrimPrefix(base, "http://")
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	b, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Run with the metrics port taken: %v", err)
	}
	if _, err := os.Stat(cfg.SocketPath()); !os.IsNotExist(err) {
		t.Fatalf("status socket left behind: %v", err)
	}
}

// TestMetricsCapture runs the agent's capture on a lab host's interface
// and checks that the capture collector is registered and counts frames
// the kernel passed, with the spool's backlog beside it.
func TestMetricsCapture(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		t.Skip("ping is needed (apt-get install iputils-ping)")
	}
	lab := labtest.New(t, "metrics")
	h := labtest.AddHost(t, lab, "h", "192.0.2.10/24", "2001:db8::a/64")
	labtest.AddHost(t, lab, "peer", "192.0.2.20/24", "2001:db8::14/64")
	x := startTestArbiter(t)
	bundle := x.member(64501, "192.0.2.10", "2001:db8::a")
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Address, cfg.Bundle, cfg.StateDir = x.cfg.GRPC.Listen, bundle, filepath.Join(t.TempDir(), "state")
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Capture.Interfaces = []string{"eth0"}
	cfg.Capture.SampleRate = 1
	cfg.Capture.Interval = time.Second
	_, base := runAgent(t, func() (a *daemon.Agent, err error) {
		// The capture socket and netlink handle open in h's namespace;
		// the agent's listeners and the gRPC connection stay here.
		err = h.Do(func() error {
			a, err = daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			return err
		})
		return a, err
	})
	m := scrape(t, base)
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"bwx_agent_capture_frames_total", []string{`class="matched"`}},
		{"bwx_agent_capture_kernel_drops_total", []string{`interface="eth0"`}},
		{"bwx_agent_capture_kernel_packets_total", []string{`interface="eth0"`}},
		{"bwx_agent_spool_pending_reports", []string{`kind="usage"`}},
		{"bwx_agent_spool_oldest_pending_age_seconds", []string{`kind="measurement"`}},
		{"bwx_agent_spool_parked_reports", []string{`kind="usage"`}},
		{"bwx_agent_reports_sent_total", []string{`kind="usage"`}},
		{"bwx_agent_trades_bought", nil},
	} {
		if _, ok := sum(m, s.name, s.labels...); !ok {
			t.Errorf("no series %s%v", s.name, s.labels)
		}
	}
	if _, ok := m["bwx_agent_probe_rounds_total"]; ok {
		t.Error("probe metrics without probing")
	}
	// Traffic out of eth0, IPv4 and IPv6, reaches the kernel counters.
	for _, dst := range []string{"192.0.2.20", "2001:db8::14"} {
		if out, err := h.Command(context.Background(), "ping", "-c", "3", "-i", "0.2", "-W", "5", dst).CombinedOutput(); err != nil {
			t.Fatalf("ping %s: %v: %s", dst, err, out)
		}
	}
	poll(t, "captured frames in the kernel counters", func() bool {
		m := scrape(t, base)
		n, _ := sum(m, "bwx_agent_capture_kernel_packets_total", `interface="eth0"`)
		return n >= 6 && m["bwx_agent_capture_last_interval_timestamp_seconds"] > 0
	})
}

// TestLabMetricsRouting scrapes the agent of the route lab (real route
// server, BIRD sellers, the buyer's kernel table): BGP sessions by state,
// traded routes learned and installed, seller next hops up and down.
func TestLabMetricsRouting(t *testing.T) {
	l := newRouteLab(t)
	l.startAgent()
	l.waitAgentReady()
	// The agent serves metrics on the default 127.0.0.1:9480 of the
	// buyer's namespace.
	c := &http.Client{Transport: &http.Transport{DialContext: l.buyer.DialContext}, Timeout: 10 * time.Second}
	const base = "http://127.0.0.1:9480"
	series := func(m map[string]float64, name string, labels ...string) float64 {
		v, ok := sum(m, name, labels...)
		if !ok {
			t.Fatalf("no series %s%v", name, labels)
		}
		return v
	}
	// want polls until every check holds, saying which does not.
	want := func(what string, checks map[string]func(map[string]float64) bool) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() string {
			m := scrapeWith(t, c, base)
			var bad []string
			for name, ok := range checks {
				if !ok(m) {
					bad = append(bad, name)
				}
			}
			if len(bad) == 0 {
				return ""
			}
			slices.Sort(bad)
			var have []string
			for k, v := range m {
				if strings.HasPrefix(k, "bwx_agent_") {
					have = append(have, fmt.Sprintf("%s %g", k, v))
				}
			}
			slices.Sort(have)
			return strings.Join(bad, ", ") + " wrong; metrics:\n" + strings.Join(have, "\n")
		})
	}
	eq := func(v float64, name string, labels ...string) func(map[string]float64) bool {
		return func(m map[string]float64) bool { return series(m, name, labels...) == v }
	}
	want("sessions up, nothing traded", map[string]func(map[string]float64) bool{
		"route server sessions established": eq(2, "bwx_agent_bgp_sessions", `peer="route_server"`, `state="established"`),
		"route server sessions idle":        eq(0, "bwx_agent_bgp_sessions", `peer="route_server"`, `state="idle"`),
		"member router established":         eq(1, "bwx_agent_bgp_sessions", `peer="member_router"`, `state="established"`),
		"learned":                           eq(0, "bwx_agent_routes_learned"),
		"installed":                         eq(0, "bwx_agent_routes_installed"),
		"synced":                            eq(1, "bwx_agent_fib_synced"),
		"readable":                          eq(1, "bwx_agent_fib_readable"),
		"event stream (the lab's arbiter)":  eq(1, "bwx_agent_event_stream_up"),
		"nothing rejected":                  eq(0, "bwx_agent_routes_rejected_total"),
		"nothing pending":                   eq(0, "bwx_agent_routes_pending"),
		"no trades known":                   eq(0, "bwx_agent_routes_trades_known"),
	})
	if code, body := getWith(t, c, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	// IPv4 and IPv6 through seller 1, IPv4 through seller 2, whose prefix
	// a route added by hand holds at the agent's metric: refused.
	l.ip(l.buyer, "route", "add", p4b.String(), "via", "192.0.2.20", "proto", "static", "metric", "10")
	l.trade(1, l.s1, seller1AS, p4a, p6a)
	l.trade(2, l.s2, seller2AS, p4b)
	want("trades installed but one", map[string]func(map[string]float64) bool{
		"learned":   eq(3, "bwx_agent_routes_learned"),
		"installed": eq(2, "bwx_agent_routes_installed"),
		"conflict":  eq(1, "bwx_agent_routes_refused", `reason="conflict"`),
		"extra":     eq(0, "bwx_agent_routes_out_of_sync", `diff="extra"`),
		"added": func(m map[string]float64) bool {
			return series(m, "bwx_agent_fib_route_changes_total", `op="add"`) >= 2
		},
		"next hops": eq(3, "bwx_agent_seller_next_hops", `state="up"`),
		"updates":   func(m map[string]float64) bool { return series(m, "bwx_agent_bgp_updates_total") >= 3 },
		"trades":    eq(2, "bwx_agent_routes_trades_known"),
		"rejected":  eq(0, "bwx_agent_routes_rejected_total"),
	})
	// The hand route goes: the agent's repair installs the third. (The
	// refusal stays in routes_refused until the next BGP update: Routing's
	// Status keeps the last Sync's refusals, not a repair's.)
	l.ip(l.buyer, "route", "del", p4b.String(), "proto", "static", "metric", "10")
	want("all trades installed", map[string]func(map[string]float64) bool{
		"installed": eq(3, "bwx_agent_routes_installed"),
		"repaired":  func(m map[string]float64) bool { return series(m, "bwx_agent_fib_repairs_total") >= 1 },
		"missing":   eq(0, "bwx_agent_routes_out_of_sync", `diff="missing"`),
		"extra":     eq(0, "bwx_agent_routes_out_of_sync", `diff="extra"`),
		"errors":    eq(0, "bwx_agent_fib_errors_total"),
	})

	// Seller 2 stops answering ARP (arp_ignore 8; IPv6 ND and its BGP
	// sessions to the route server are untouched): its next hop is down and
	// its route refused, until it answers again.
	arpIgnore := func(v string) {
		t.Helper()
		if err := l.s2.SetSysctl("net.ipv4.conf.eth0.arp_ignore", v); err != nil {
			t.Fatal(err)
		}
	}
	arpIgnore("8")
	want("seller 2's router down", map[string]func(map[string]float64) bool{
		"down":      eq(1, "bwx_agent_seller_next_hops", `state="down"`),
		"up":        eq(2, "bwx_agent_seller_next_hops", `state="up"`),
		"installed": eq(2, "bwx_agent_routes_installed"),
		"learned":   eq(3, "bwx_agent_routes_learned"),
	})
	arpIgnore("0")
	want("seller 2 back", map[string]func(map[string]float64) bool{
		"down":      eq(0, "bwx_agent_seller_next_hops", `state="down"`),
		"installed": eq(3, "bwx_agent_routes_installed"),
	})

	// The route server goes away: no session is established.
	l.rs.Stop()
	want("sessions down", map[string]func(map[string]float64) bool{
		"established": eq(0, "bwx_agent_bgp_sessions", `peer="route_server"`, `state="established"`),
	})
}

// TestLabMetricsProbe runs the agent as its own process in the buyer's
// namespace (as systemd would on the member's edge host) against an
// arbiter on the LAN; the arbiter's route analysis asks it to probe a
// seller's prefixes, and /metrics shows that seller's loss and latency,
// the rounds and the reports sent.
func TestLabMetricsProbe(t *testing.T) {
	lab := labtest.New(t, "mprobe")
	xh := labtest.AddHost(t, lab, "x", "192.0.2.100/24", "2001:db8::100/64")
	b := labtest.AddHost(t, lab, "b", "192.0.2.10/24", "2001:db8::10/64")
	s1 := labtest.AddHost(t, lab, "s1", "192.0.2.1/24", "2001:db8::1/64")
	d := labtest.AddHost(t, lab, "d", "198.51.100.1/24", "2001:db8:100::1/64")
	run := func(h *labnet.Host, args ...string) {
		t.Helper()
		if out, err := h.Command(context.Background(), args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// D (the destination) answers B straight over the LAN; S1 forwards the
	// requests B sends through it, without redirecting B.
	run(d, "ip", "route", "add", "192.0.2.0/24", "dev", "eth0")
	run(d, "ip", "-6", "route", "add", "2001:db8::/64", "dev", "eth0")
	for k, v := range map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1",
		"net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.eth0.send_redirects": "0"} {
		if err := s1.SetSysctl(k, v); err != nil {
			t.Fatal(err)
		}
	}
	run(s1, "ip", "route", "add", "198.51.100.0/24", "dev", "eth0")
	run(s1, "ip", "-6", "route", "add", "2001:db8:100::/64", "dev", "eth0")
	for _, k := range []string{"net.ipv4.conf.all.accept_redirects", "net.ipv4.conf.eth0.accept_redirects", "net.ipv6.conf.eth0.accept_redirects"} {
		if err := b.SetSysctl(k, "0"); err != nil {
			t.Fatal(err)
		}
	}

	// The arbiter listens on the LAN (its socket opened in x's namespace).
	dir := t.TempDir()
	acfg := arbiter.DefaultConfig()
	acfg.StateDir = filepath.Join(dir, "state")
	acfg.GRPC.Listen = "192.0.2.100:0"
	acfg.Metrics.Listen = ""
	acfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	acfg.Quality.PollInterval = time.Hour // tasks come from the registry change only
	if _, err := pki.InitCA(acfg.CADir(), "test CA", []string{"192.0.2.100"}); err != nil {
		t.Fatal(err)
	}
	var arb *arbiter.Arbiter
	if err := xh.Do(func() (err error) {
		arb, err = arbiter.Start(acfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arb.Close() })
	acfg.GRPC.Listen = arb.Addr.String()
	x := &testArbiter{t: t, cfg: acfg, arb: arb, dir: dir}
	bundle := x.member(64501, "192.0.2.10", "2001:db8::10")
	x.member(64511, "192.0.2.1", "2001:db8::1")
	x.addPrefixes(64511, "198.51.100.0/24", "2001:db8:100::/48")

	cfgPath := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`arbiter:
  address: %q
bundle: %s
state_dir: %s
probe:
  enabled: true
  interface: eth0
  count: 5
  targets_per_minute: 6000
  targets_per_prefix: 1
  round: 1s
  targets: {"198.51.100.0/24": ["198.51.100.1"], "2001:db8:100::/48": ["2001:db8:100::1"]}
`, acfg.GRPC.Listen, bundle, filepath.Join(dir, "agent-state"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := b.Command(ctx, os.Args[0]) // TestMain runs the agent (runAgentChild)
	cmd.Env = append(os.Environ(), agentEnv+"="+cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("agent did not stop within 15s of SIGTERM")
			cancel()
			<-done
		}
		cancel()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", log)
		}
	})

	c := &http.Client{Transport: &http.Transport{DialContext: b.DialContext}, Timeout: 10 * time.Second}
	eventually(t, 30*time.Second, "seller 64511 probed, its measurements sent", func() string {
		if _, err := c.Get("http://127.0.0.1:9480/healthz"); err != nil {
			return err.Error() // not listening yet
		}
		m := scrapeWith(t, c, "http://127.0.0.1:9480")
		loss, okLoss := m[`bwx_agent_probe_loss_ratio{seller_asn="64511"}`]
		lat := m[`bwx_agent_probe_latency_seconds{seller_asn="64511"}`]
		if !okLoss || loss != 0 || lat <= 0 || m["bwx_agent_probe_rounds_total"] < 1 || m["bwx_agent_probe_targets_total"] < 2 ||
			m[`bwx_agent_reports_sent_total{kind="measurement"}`] < 2 || m[`bwx_agent_spool_pending_reports{kind="measurement"}`] != 0 ||
			m["bwx_agent_event_stream_up"] != 1 {
			var have []string
			for k, v := range m {
				if strings.HasPrefix(k, "bwx_agent_") {
					have = append(have, fmt.Sprintf("%s %g", k, v))
				}
			}
			slices.Sort(have)
			return strings.Join(have, "\n")
		}
		t.Logf("through AS64511: loss %g, latency %gs; rounds %g, targets %g", loss, lat, m["bwx_agent_probe_rounds_total"], m["bwx_agent_probe_targets_total"])
		return ""
	})
	if code, body := getWith(t, c, "http://127.0.0.1:9480/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %q", code, body)
	}
}
