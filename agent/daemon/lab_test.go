package daemon_test

// The agent applying traded routes, for real: a route server
// (arbiter/routeserver, embedded GoBGP) in its own namespace, two sellers
// running BIRD 2, a default upstream, and the agent as a child process (this
// test binary, see TestMain) in the buyer's namespace: GoBGP v3 allows one
// BgpServer per process, and the agent's sessions must start in the buyer's
// namespace. Packets are counted on the sellers' and the upstream's
// interfaces; routes are read from the buyer's kernel.
//
// This test imports arbiter/routeserver: only the test, so the real route
// server is what the agent talks to. agent/ code never imports arbiter/.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/bwxchange/bwx/shared/pki"
)

const agentEnv = "BWX_TEST_AGENT_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(agentEnv); cfg != "" {
		os.Exit(runAgentChild(cfg))
	}
	os.Exit(m.Run())
}

// runAgentChild is `bwx-agent run` in a child process.
func runAgentChild(path string) int {
	cfg, err := daemon.LoadConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := daemon.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a.MinBackoff, a.MaxBackoff = time.Second, 5*time.Second
	err = a.Run(ctx)
	a.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log.Info("agent exited")
	return 0
}

const (
	rsASN     = 65000
	buyerASN  = 64501
	seller1AS = 64511
	seller2AS = 64512
	grTime    = 10 * time.Second
)

var (
	p4a   = netip.MustParsePrefix("198.51.100.0/24")
	p6a   = netip.MustParsePrefix("2001:db8:100::/48")
	p4b   = netip.MustParsePrefix("203.0.113.0/24")
	dst4a = netip.MustParseAddr("198.51.100.7")
	dst6a = netip.MustParseAddr("2001:db8:100::7")
	dst4b = netip.MustParseAddr("203.0.113.7")
)

// labTradeGrace is the agent's bgp.trade_grace in the lab.
const labTradeGrace = 3 * time.Second

type routeLab struct {
	t                        testing.TB
	lab                      *labnet.Lab
	rsH, buyer, s1, s2, up   *labnet.Host
	rs                       *routeserver.Server
	arb                      *labArbiter
	members                  []routeserver.Member
	trades                   map[uint64]routeserver.Trade
	dir, cfgPath, socketPath string
	memberSock               string
	agent                    *agentProc
}

// labArbiter is the arbiter's trading service as the agent sees it: the
// trades it bought, in ListTrades and in the event stream. Served on the
// route server's host (192.0.2.1:7443), so the agent reaches it over the
// LAN from its own namespace.
type labArbiter struct {
	pb.UnimplementedTradingServiceServer
	mu     sync.Mutex
	trades []*pb.Trade
	events []*pb.TradeEvent
	wake   chan struct{} // closed at each new event
}

func (f *labArbiter) ListTrades(context.Context, *pb.ListTradesRequest) (*pb.ListTradesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &pb.ListTradesResponse{Trades: slices.Clone(f.trades)}, nil
}

func (f *labArbiter) StreamTradeEvents(r *pb.StreamTradeEventsRequest, s pb.TradingService_StreamTradeEventsServer) error {
	after := r.AfterSequence
	for {
		f.mu.Lock()
		var evs []*pb.TradeEvent
		for _, e := range f.events {
			if e.Sequence > after {
				evs = append(evs, e)
			}
		}
		wake := f.wake
		f.mu.Unlock()
		for _, e := range evs {
			if err := s.Send(e); err != nil {
				return err
			}
			after = e.Sequence
		}
		select {
		case <-wake:
		case <-s.Context().Done():
			return nil
		}
	}
}

func (f *labArbiter) event(typ pb.TradeEventType, t *pb.Trade) {
	f.events = append(f.events, &pb.TradeEvent{Sequence: uint64(len(f.events) + 1), Type: typ, Trade: t, Time: timestamppb.New(clock.Now())})
	close(f.wake)
	f.wake = make(chan struct{})
}

// bought records a trade of the buyer's, delivering from a day ago to a
// day ahead, and sends its event.
func (f *labArbiter) bought(id uint64, seller *labnet.Host, asn uint32, prefixes ...netip.Prefix) {
	t := &pb.Trade{Id: id, BuyerAsn: buyerASN, SellerAsn: asn, Status: pb.TradeStatus_TRADE_STATUS_ACTIVE,
		SellerNextHops: []string{seller.Addr4().String(), seller.Addr6().String()},
		DeliveryStart:  timestamppb.New(clock.Now().Add(-24 * time.Hour)), DeliveryEnd: timestamppb.New(clock.Now().Add(24 * time.Hour))}
	for _, p := range prefixes {
		t.Prefixes = append(t.Prefixes, p.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trades = append(f.trades, t)
	f.event(pb.TradeEventType_TRADE_EVENT_TYPE_CREATED, t)
}

// ended ends a trade now and sends its event.
func (f *labArbiter) ended(id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range f.trades {
		if t.Id == id {
			t = proto.Clone(t).(*pb.Trade)
			t.DeliveryEnd, t.Status = timestamppb.New(clock.Now()), pb.TradeStatus_TRADE_STATUS_ENDED
			f.trades[i] = t
			f.event(pb.TradeEventType_TRADE_EVENT_TYPE_ENDED, t)
		}
	}
}

// serveArbiter serves the lab arbiter (l.arb) on h at addr until the test
// ends.
func (l *routeLab) serveArbiter(ca *pki.CA, h *labnet.Host, addr string) *grpc.Server {
	l.t.Helper()
	lis, err := h.Listen("tcp", addr)
	if err != nil {
		l.t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(ca.ServerCertificate(), ca.Pool()))))
	pb.RegisterTradingServiceServer(srv, l.arb)
	go srv.Serve(lis)
	l.t.Cleanup(srv.Stop)
	return srv
}

func needTools(t testing.TB) {
	for _, p := range []string{"bird", "birdc", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is needed (apt-get install bird2 iproute2): %v", p, err)
		}
	}
}

func newRouteLab(t testing.TB) *routeLab {
	needTools(t)
	lab := labtest.New(t, t.Name())
	l := &routeLab{t: t, lab: lab, trades: map[uint64]routeserver.Trade{}}
	l.rsH = labtest.AddHost(t, lab, "rs", "192.0.2.1/24", "2001:db8::1/64")
	l.buyer = labtest.AddHost(t, lab, "buyer", "192.0.2.10/24", "2001:db8::a/64")
	l.s1 = labtest.AddHost(t, lab, "s1", "192.0.2.11/24", "2001:db8::b/64")
	l.s2 = labtest.AddHost(t, lab, "s2", "192.0.2.12/24", "2001:db8::c/64")
	l.up = labtest.AddHost(t, lab, "up", "192.0.2.20/24", "2001:db8::14/64")
	// The buyer's normal path: a default route via the upstream.
	l.ip(l.buyer, "route", "add", "default", "via", "192.0.2.20")
	l.ip(l.buyer, "-6", "route", "add", "default", "via", "2001:db8::14")
	// The route server and seller 2 keep static neighbor entries for each
	// other, so seller 2's BGP session survives when it stops answering
	// ARP (the neighbor test).
	l.ip(l.rsH, "neigh", "replace", "192.0.2.12", "lladdr", l.s2.MAC.String(), "dev", "eth0", "nud", "permanent")
	l.ip(l.s2, "neigh", "replace", "192.0.2.1", "lladdr", l.rsH.MAC.String(), "dev", "eth0", "nud", "permanent")

	l.dir = t.TempDir()
	ca, err := pki.InitCA(filepath.Join(l.dir, "ca"), "test", []string{"192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	l.arb = &labArbiter{wake: make(chan struct{})}
	l.serveArbiter(ca, l.rsH, "192.0.2.1:7443")
	bundle := filepath.Join(l.dir, "agent.pem")
	if err := pki.IssueBundle(ca, pki.MemberIdentity(buyerASN), bundle); err != nil {
		t.Fatal(err)
	}
	l.socketPath = filepath.Join(l.dir, "agent.sock")
	l.cfgPath = filepath.Join(l.dir, "agent.yaml")
	cfg := fmt.Sprintf(`arbiter:
  address: "192.0.2.1:7443"
bundle: %s
state_dir: %s
bgp:
  route_servers: ["192.0.2.1", "2001:db8::1"]
  route_server_asn: %d
  local_addresses: ["192.0.2.10", "2001:db8::a"]
  hold_time: 9s
  graceful_restart_time: %s
  connect_retry: 1s
  trade_grace: %s
  member_router:
    addresses: ["127.0.0.2"]
    local_address: "127.0.0.1"
    add_path: true
fib:
  interface: eth0
  keep_routes_on_stop: true
  neighbor_probe_interval: 500ms
status:
  socket: %s
`, bundle, filepath.Join(l.dir, "state"), rsASN, grTime, labTradeGrace, l.socketPath)
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	l.members = []routeserver.Member{
		{ASN: buyerASN, Addresses: []netip.Addr{l.buyer.Addr4(), l.buyer.Addr6()}, AddPathReceive: true},
		{ASN: seller1AS, Addresses: []netip.Addr{l.s1.Addr4(), l.s1.Addr6()}},
		{ASN: seller2AS, Addresses: []netip.Addr{l.s2.Addr4(), l.s2.Addr6()}},
	}
	// Beyond what the trades use, prefixes for the route check's test:
	// default routes, prefixes the buyer never buys, a seller of
	// 2001:db8:100::/48 it does not buy from.
	l.bird(l.s1, seller1AS, []*labnet.Host{l.rsH}, "198.51.100.0/24", "2001:db8:100::/48", "0.0.0.0/0", "::/0", "198.18.0.0/15", "2001:db8:300::/48")
	l.bird(l.s2, seller2AS, []*labnet.Host{l.rsH}, "198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/48", "2001:db8:200::/48")
	l.startRS()
	l.memberRouter()
	return l
}

// memberRouter runs BIRD 2 on the buyer's host as the member's own router
// (127.0.0.2, iBGP with the agent at 127.0.0.1): the agent re-announces the
// traded routes to it.
func (l *routeLab) memberRouter() {
	l.t.Helper()
	dir := filepath.Join(l.dir, "bird-member")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	l.ip(l.buyer, "link", "set", "lo", "up")
	conf := fmt.Sprintf(`log stderr all;
router id 10.0.0.2;
protocol device {}
protocol direct { ipv4; ipv6; interface "eth0"; }
protocol bgp agent {
  local 127.0.0.2 as %d; neighbor 127.0.0.1 as %d;
  hold time 30; keepalive time 3; connect retry time 1; error wait time 1,2;
  ipv4 { import all; export none; add paths rx; };
  ipv6 { import all; export none; add paths rx; };
}
`, buyerASN, buyerASN)
	p := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.memberSock = filepath.Join(dir, "bird.ctl")
	if _, err := l.buyer.Start(l.t.Context(), filepath.Join(dir, "bird.log"), "bird", "-f", "-c", p, "-s", l.memberSock, "-P", filepath.Join(dir, "bird.pid")); err != nil {
		l.t.Fatal(err)
	}
}

// memberRoutes returns the member router's `show route all` for prefix.
func (l *routeLab) memberRoutes(prefix netip.Prefix) string {
	l.t.Helper()
	out, _ := exec.Command("birdc", "-s", l.memberSock, "show", "route", "for", prefix.String(), "all").CombinedOutput()
	return string(out)
}

func (l *routeLab) ip(h *labnet.Host, args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", h.Netns}, args...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// bird starts BIRD 2 on a seller announcing prefixes to the route
// servers on rss, an IPv4 and an IPv6 session to each.
func (l *routeLab) bird(h *labnet.Host, asn uint32, rss []*labnet.Host, prefixes ...string) {
	l.t.Helper()
	dir := filepath.Join(l.dir, "bird-"+h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr all;\nrouter id %s;\nprotocol device {}\n", h.Addr4())
	var s4, s6 []string
	for _, p := range prefixes {
		if netip.MustParsePrefix(p).Addr().Is4() {
			s4 = append(s4, "  route "+p+" unreachable;\n")
		} else {
			s6 = append(s6, "  route "+p+" unreachable;\n")
		}
	}
	fmt.Fprintf(&w, "protocol static st4 { ipv4;\n%s}\nprotocol static st6 { ipv6;\n%s}\n", strings.Join(s4, ""), strings.Join(s6, ""))
	for i, rs := range rss {
		for _, x := range []struct{ local, rs, ch string }{
			{h.Addr4().String(), rs.Addr4().String(), "ipv4"}, {h.Addr6().String(), rs.Addr6().String(), "ipv6"},
		} {
			fmt.Fprintf(&w, "protocol bgp rs%d%s {\n  local %s as %d;\n  neighbor %s as %d;\n", i, x.ch, x.local, asn, x.rs, rsASN)
			fmt.Fprintf(&w, "  hold time 30; keepalive time 3; connect retry time 1; error wait time 1,2;\n")
			fmt.Fprintf(&w, "  %s { import none; export where source = RTS_STATIC; };\n}\n", x.ch)
		}
	}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(w.String()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if _, err := h.Start(l.t.Context(), filepath.Join(dir, "bird.log"), "bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid")); err != nil {
		l.t.Fatal(err)
	}
}

// startRS starts a route server in the rs namespace with the members and
// the trades registered so far (as the arbiter does after a restart).
func (l *routeLab) startRS() { l.rs = l.newRS(l.rsH) }

// newRS starts a route server on h with the members and the trades
// registered so far.
func (l *routeLab) newRS(h *labnet.Host) *routeserver.Server {
	l.t.Helper()
	rs, err := routeserver.New(routeserver.Config{
		ASN: rsASN, RouterID: h.Addr4(),
		ListenAddrs: []string{h.Addr4().String(), h.Addr6().String()},
		Checker:     routeserver.CheckerFunc(func(uint32, netip.Prefix, uint32) (bool, string) { return true, "" }),
		HoldTime:    30 * time.Second, GracefulRestartTime: grTime,
		Passive: true, RunIn: h.Do,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(rs.Stop)
	ctx := context.Background()
	for _, m := range l.members {
		if err := rs.AddMember(ctx, m); err != nil {
			l.t.Fatal(err)
		}
	}
	var ts []routeserver.Trade
	for _, t := range l.trades {
		ts = append(ts, t)
	}
	if err := rs.SetActive(ctx, ts); err != nil {
		l.t.Fatal(err)
	}
	if err := rs.Start(ctx); err != nil {
		l.t.Fatal(err)
	}
	return rs
}

// crashRS ends the route server as a crash or kill of the arbiter does:
// its TCP connections are reset, no NOTIFICATION is sent (a clean Stop
// sends CEASE, which GoBGP turns into an RFC 8538 Hard Reset: no graceful
// restart).
func (l *routeLab) crashRS() {
	l.t.Helper()
	// The buyer's sessions first: a process that dies closes every socket
	// at once, while a running route server would withdraw the trades of
	// a seller whose session it sees reset first.
	killSessions(l.t, l.rsH, l.buyer)
	l.rs.Stop()
}

// killSessions resets the TCP connections in h's namespace whose peer is
// one of the hosts (ss -K; the peer gets a RST, no BGP NOTIFICATION).
func killSessions(t testing.TB, h *labnet.Host, peers ...*labnet.Host) {
	t.Helper()
	var expr []string
	for _, p := range peers {
		if len(expr) > 0 {
			expr = append(expr, "or")
		}
		expr = append(expr, "dst", p.Addr4().String(), "or", "dst", "["+p.Addr6().String()+"]")
	}
	args := append([]string{"netns", "exec", h.Netns, "ss", "-K", "-t", "-n", "("}, expr...)
	out, err := exec.Command("ip", append(args, ")")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ESTAB") {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
}

// trade is a trade the buyer bought: the arbiter tells the agent, and the
// route server delivers it.
func (l *routeLab) trade(id uint64, seller *labnet.Host, asn uint32, prefixes ...netip.Prefix) {
	l.t.Helper()
	l.arb.bought(id, seller, asn, prefixes...)
	l.deliver(id, seller, asn, prefixes...)
}

// deliver makes the route server send the buyer a trade, whether or not
// the buyer bought it.
func (l *routeLab) deliver(id uint64, seller *labnet.Host, asn uint32, prefixes ...netip.Prefix) {
	l.t.Helper()
	t := routeserver.Trade{ID: id, BuyerASN: buyerASN, SellerASN: asn, Prefixes: prefixes, NextHop4: seller.Addr4(), NextHop6: seller.Addr6()}
	if err := l.rs.AnnounceTrade(context.Background(), t); err != nil {
		l.t.Fatal(err)
	}
	l.trades[id] = t
}

func (l *routeLab) endTrade(id uint64) {
	l.t.Helper()
	l.arb.ended(id)
	if err := l.rs.WithdrawTrade(context.Background(), id); err != nil {
		l.t.Fatal(err)
	}
	delete(l.trades, id)
}

// agentProc is the agent running in the buyer's namespace.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func (l *routeLab) startAgent() {
	l.t.Helper()
	logPath := filepath.Join(l.dir, fmt.Sprintf("agent-%d.log", clock.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	cmd := l.buyer.Command(context.Background(), os.Args[0])
	// Under -race the child writes its race reports to files of its own
	// and exits 0 for them; stopAgent fails the test on a report in our
	// code and only logs one inside GoBGP (its watch reads a path's stale
	// flag while its server goroutine sets it, on a graceful restart).
	cmd.Env = append(os.Environ(), agentEnv+"="+l.cfgPath, "GORACE=exitcode=0 log_path="+filepath.Join(l.dir, "race"))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { cmd.Wait(); close(p.done) }()
	l.agent = p
	l.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if l.t.Failed() {
			b, _ := os.ReadFile(logPath)
			l.t.Logf("agent log %s:\n%s", logPath, b)
		}
	})
}

// waitAgentReady waits until both sessions are established and the
// agent made its first Sync.
func (l *routeLab) waitAgentReady() {
	l.t.Helper()
	eventually(l.t, 15*time.Second, "both sessions established and synced", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := daemon.FetchStatus(ctx, l.socketPath)
		if err != nil {
			return err.Error()
		}
		for _, s := range st.Routing.Sessions {
			if s.State != "established" {
				return fmt.Sprintf("%v %s", s.Address, s.State)
			}
		}
		if !st.Routing.Synced {
			return "not synced"
		}
		return ""
	})
}

// stopAgent stops the agent with SIGTERM, as systemd does.
func (l *routeLab) stopAgent() {
	l.t.Helper()
	l.agent.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.agent.done:
	case <-time.After(15 * time.Second):
		l.t.Fatal("agent did not stop within 15s of SIGTERM")
	}
	if c := l.agent.cmd.ProcessState.ExitCode(); c != 0 {
		l.t.Fatalf("agent exited with %d", c)
	}
	l.checkRaces()
}

// checkRaces fails the test for each race report of the agent child that
// has our code in the racing accesses' stacks (before the "Goroutine ...
// created at" part), and logs those wholly inside a dependency.
func (l *routeLab) checkRaces() {
	l.t.Helper()
	files, _ := filepath.Glob(filepath.Join(l.dir, "race.*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			l.t.Fatal(err)
		}
		for _, r := range strings.Split(string(b), "WARNING: DATA RACE")[1:] {
			accesses, _, _ := strings.Cut(r, "\nGoroutine ")
			if strings.Contains(accesses, "github.com/bwxchange/bwx/") {
				l.t.Errorf("data race in the agent:%s", r)
			} else {
				l.t.Logf("data race inside a dependency of the agent (not ours):%s", r)
			}
		}
		os.Remove(f)
	}
}

func (l *routeLab) status() daemon.AgentStatus {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := daemon.FetchStatus(ctx, l.socketPath)
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

// eventually polls cond (which says what is wrong, or "") until it holds.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := clock.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if clock.Now().After(deadline) {
			t.Fatalf("after %v: %s: %s", timeout, what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kernelRoutes returns the buyer's routes of protocol bwx: prefix -> next hops.
func (l *routeLab) kernelRoutes() map[string][]string {
	l.t.Helper()
	out := map[string][]string{}
	for _, fam := range []string{"-4", "-6"} {
		var rs []struct {
			Dst      string `json:"dst"`
			Gateway  string `json:"gateway"`
			Nhid     int    `json:"nhid"`
			Nexthops []struct {
				Gateway string `json:"gateway"`
			} `json:"nexthops"`
		}
		b := l.ip(l.buyer, "-j", fam, "route", "show", "proto", "239")
		if err := json.Unmarshal([]byte(b), &rs); err != nil {
			l.t.Fatalf("ip -j route: %v: %s", err, b)
		}
		for _, r := range rs {
			var nhs []string
			if r.Gateway != "" {
				nhs = append(nhs, r.Gateway)
			}
			for _, n := range r.Nexthops {
				nhs = append(nhs, n.Gateway)
			}
			if r.Nhid != 0 && len(nhs) == 0 {
				nhs = l.nexthopGroup(r.Nhid)
			}
			slices.Sort(nhs)
			if _, dup := out[r.Dst]; dup {
				l.t.Fatalf("route %s listed twice in proto bwx", r.Dst)
			}
			out[r.Dst] = nhs
		}
	}
	return out
}

// nexthopGroup resolves an IPv6 route's next-hop object to gateways.
func (l *routeLab) nexthopGroup(id int) []string {
	var nh []struct {
		Gateway string `json:"gateway"`
		Group   []struct {
			ID int `json:"id"`
		} `json:"group"`
	}
	b := l.ip(l.buyer, "-j", "nexthop", "show", "id", fmt.Sprint(id))
	if err := json.Unmarshal([]byte(b), &nh); err != nil || len(nh) == 0 {
		l.t.Fatalf("ip -j nexthop show id %d: %v: %s", id, err, b)
	}
	if nh[0].Gateway != "" {
		return []string{nh[0].Gateway}
	}
	var out []string
	for _, g := range nh[0].Group {
		out = append(out, l.nexthopGroup(g.ID)...)
	}
	return out
}

func (l *routeLab) waitRoutes(what string, want map[string][]string) {
	l.t.Helper()
	eventually(l.t, 15*time.Second, what, func() string {
		got := l.kernelRoutes()
		if len(got) != len(want) {
			return fmt.Sprintf("kernel has %v, want %v", got, want)
		}
		for p, nhs := range want {
			if !slices.Equal(got[p], nhs) {
				return fmt.Sprintf("kernel has %v, want %v", got, want)
			}
		}
		return ""
	})
}

func rxPackets(t testing.TB, h *labnet.Host) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "-n", h.Netns, "-j", "-s", "link", "show", "dev", "eth0").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ls []struct {
		Stats64 struct {
			Rx struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("ip -j -s link: %v: %s", err, out)
	}
	return ls[0].Stats64.Rx.Packets
}

// sendVia sends n UDP datagrams from the buyer to dst and checks that
// they arrived at via's interface and not at the others'.
func (l *routeLab) sendVia(dst netip.Addr, via *labnet.Host, others ...*labnet.Host) {
	l.t.Helper()
	const n = 40
	before := map[*labnet.Host]uint64{}
	for _, h := range append([]*labnet.Host{via}, others...) {
		before[h] = rxPackets(l.t, h)
	}
	err := l.buyer.Do(func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			c.Write([]byte("bwx"))
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	eventually(l.t, 5*time.Second, fmt.Sprintf("%d packets to %v at %s", n, dst, via.Name), func() string {
		if d := rxPackets(l.t, via) - before[via]; d < n {
			return fmt.Sprintf("%s received %d", via.Name, d)
		}
		return ""
	})
	for _, h := range others {
		// ARP/ND and BGP keepalives also count: far fewer than n.
		if d := rxPackets(l.t, h) - before[h]; d >= n {
			l.t.Fatalf("%s received %d packets while %v should go via %s", h.Name, d, dst, via.Name)
		}
	}
}

// sampler looks up dst in the buyer's kernel in a loop and records every
// lookup whose gateway is not want (or that failed).
type sampler struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples int
	bad     []string
}

func (l *routeLab) sample(dst, want netip.Addr) *sampler {
	l.t.Helper()
	ns, err := netns.GetFromName(l.buyer.Netns)
	if err != nil {
		l.t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		l.t.Fatal(err)
	}
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer h.Close()
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			rs, err := h.RouteGet(net.IP(dst.AsSlice()))
			s.mu.Lock()
			s.samples++
			switch {
			case err != nil:
				s.bad = append(s.bad, err.Error())
			case len(rs) == 0:
				s.bad = append(s.bad, "no route")
			default:
				gw, _ := netip.AddrFromSlice(rs[0].Gw)
				if gw.Unmap() != want {
					s.bad = append(s.bad, "via "+gw.String())
				}
			}
			s.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return s
}

func (s *sampler) finish(t testing.TB, what string) {
	t.Helper()
	close(s.stop)
	<-s.done
	if s.samples < 100 {
		t.Fatalf("%s: only %d lookups sampled", what, s.samples)
	}
	if len(s.bad) > 0 {
		t.Fatalf("%s: %d of %d lookups did not go via the seller; first: %v", what, len(s.bad), s.samples, s.bad[0])
	}
	t.Logf("%s: %d lookups, all via the seller", what, s.samples)
}

func TestLabAgentAppliesTradedRoutes(t *testing.T) {
	l := newRouteLab(t)
	begin := clock.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", clock.Since(begin).Seconds(), what) }
	s1, s2 := l.s1.Addr4().String(), l.s2.Addr4().String()
	s1v6 := l.s1.Addr6().String()

	// (c) A route added by hand for a traded prefix, another protocol:
	// never touched (ours have a lower metric and sit beside it).
	l.ip(l.buyer, "route", "add", "198.51.100.0/24", "via", "192.0.2.20", "proto", "static", "metric", "100")
	hand := l.ip(l.buyer, "route", "show", "proto", "static")

	l.startAgent()
	l.waitAgentReady()
	if got := l.kernelRoutes(); len(got) != 0 {
		t.Fatalf("routes before any trade: %v", got)
	}
	if fi, err := os.Stat(l.socketPath); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("status socket: %v %v", fi.Mode(), err)
	}
	phase("agent up")
	// Before the trade: the normal path.
	l.sendVia(dst4a, l.up, l.s1, l.s2)
	l.sendVia(dst6a, l.up, l.s1, l.s2)

	phase("normal path checked")
	// (a) The trade: IPv4 and IPv6 leave through seller 1.
	l.trade(1, l.s1, seller1AS, p4a, p6a)
	l.waitRoutes("trade 1 installed", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})
	l.sendVia(dst4a, l.s1, l.up, l.s2)
	l.sendVia(dst6a, l.s1, l.up, l.s2)

	// A second seller of the same prefix (ADD-PATH): both next hops.
	l.trade(2, l.s2, seller2AS, p4a, p4b)
	l.waitRoutes("trade 2 added", map[string][]string{p4a.String(): {s1, s2}, p6a.String(): {s1v6}, p4b.String(): {s2}})
	l.sendVia(dst4b, l.s2, l.up, l.s1)

	// Claim 15: the member's own router (BIRD) gets the traded routes,
	// every seller (ADD-PATH), with NO_EXPORT and the communities.
	eventually(t, 15*time.Second, "the member router has both sellers of "+p4a.String(), func() string {
		out := l.memberRoutes(p4a)
		for _, want := range []string{"via 192.0.2.11", "via 192.0.2.12", "(65535,65281)", "(65000, 1, 64501) (65000, 2, 1)", "(65000, 1, 64501) (65000, 2, 2)"} {
			if !strings.Contains(out, want) {
				return fmt.Sprintf("lacks %q:\n%s", want, out)
			}
		}
		return ""
	})
	eventually(t, 15*time.Second, "the member router has "+p6a.String(), func() string {
		if out := l.memberRoutes(p6a); !strings.Contains(out, "via 2001:db8::b") || !strings.Contains(out, "(65000, 2, 1)") {
			return out
		}
		return ""
	})

	st := l.status().Routing
	if len(st.Missing) != 0 || len(st.Extra) != 0 || len(st.Refused) != 0 {
		t.Fatalf("status shows a difference: missing %v extra %v refused %v", st.Missing, st.Extra, st.Refused)
	}
	var learned []string
	for _, r := range st.Learned {
		for _, nh := range r.NextHops {
			learned = append(learned, fmt.Sprintf("%v via %v trades %v", r.Prefix, nh.Addr, nh.Trades))
		}
	}
	wantLearned := []string{
		"198.51.100.0/24 via 192.0.2.11 trades [1]", "198.51.100.0/24 via 192.0.2.12 trades [2]",
		"203.0.113.0/24 via 192.0.2.12 trades [2]", "2001:db8:100::/48 via 2001:db8::b trades [1]",
	}
	if !slices.Equal(learned, wantLearned) {
		t.Fatalf("status learned %v, want %v", learned, wantLearned)
	}
	if len(st.Installed) != 3 {
		t.Fatalf("status installed %v", st.Installed)
	}

	phase("trades checked")
	for _, a := range []string{s1, s2, s1v6} {
		if out := l.ip(l.buyer, "-d", "neigh", "show", a, "dev", "eth0"); !strings.Contains(out, "managed") {
			t.Fatalf("no managed neighbor entry for next hop %s: %q", a, out)
		}
	}

	// Seller 2 stops answering on the LAN: its routes go within seconds
	// (before any BGP timer), and come back when it answers again.
	l.ip(l.s2, "link", "set", "eth0", "arp", "off")
	start := clock.Now()
	l.waitRoutes("seller 2's routes pulled", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})
	t.Logf("seller 2 not answering: routes pulled after %v", clock.Since(start).Round(time.Millisecond))
	if d := clock.Since(start); d > 12*time.Second {
		t.Fatalf("routes pulled only after %v", d)
	}
	l.ip(l.s2, "link", "set", "eth0", "arp", "on")
	l.waitRoutes("seller 2's routes back", map[string][]string{p4a.String(): {s1, s2}, p6a.String(): {s1v6}, p4b.String(): {s2}})

	phase("neighbor checked")
	// The trades end: back to the normal path.
	l.endTrade(2)
	l.waitRoutes("trade 2 withdrawn", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})
	l.endTrade(1)
	l.waitRoutes("trade 1 withdrawn", map[string][]string{})
	// The managed neighbor entries the agent made for the sellers' routers
	// go with the last route through them (the kernel would keep probing).
	eventually(t, 5*time.Second, "managed neighbor entries removed", func() string {
		if out := l.ip(l.buyer, "-d", "neigh", "show", "dev", "eth0"); strings.Contains(out, "managed") {
			return out
		}
		return ""
	})
	eventually(t, 15*time.Second, "the member router lost the ended trades", func() string {
		if out := l.memberRoutes(p4a) + l.memberRoutes(p6a); strings.Contains(out, "[agent") {
			return out
		}
		return ""
	})
	l.sendVia(dst4a, l.up, l.s1, l.s2)
	l.sendVia(dst6a, l.up, l.s1, l.s2)
	l.sendVia(dst4b, l.up, l.s1, l.s2)

	phase("trades ended")
	// (b) Restart mid-trade (keep_routes_on_stop): no moment without the
	// route, no duplicate or stale route afterwards.
	l.trade(3, l.s1, seller1AS, p4a, p6a)
	l.waitRoutes("trade 3 installed", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})
	smp := l.sample(dst4a, l.s1.Addr4())
	smp6 := l.sample(dst6a, l.s1.Addr6())
	l.stopAgent()
	l.startAgent()
	eventually(t, 15*time.Second, "restarted agent synced", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := daemon.FetchStatus(ctx, l.socketPath)
		if err != nil {
			return err.Error()
		}
		if !st.Routing.Synced || len(st.Routing.Missing)+len(st.Routing.Extra) != 0 {
			return fmt.Sprintf("synced %v, missing %v, extra %v", st.Routing.Synced, st.Routing.Missing, st.Routing.Extra)
		}
		return ""
	})
	smp.finish(t, "IPv4 lookups during the agent restart")
	smp6.finish(t, "IPv6 lookups during the agent restart")
	l.waitRoutes("after the restart", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})

	phase("agent restarted")
	// (d) The route server stops for less than the graceful restart time:
	// the routes stay, also past its End-of-RIB while the seller
	// reconnects.
	smp = l.sample(dst4a, l.s1.Addr4())
	l.crashRS()
	crashed := clock.Now()
	eventually(t, 5*time.Second, "the agent sees the route server restarting", func() string {
		for _, s := range l.status().Routing.Sessions {
			if !s.Restarting {
				return fmt.Sprintf("%v %s", s.Address, s.State)
			}
		}
		return ""
	})
	time.Sleep(2 * time.Second) // the outage under test, not synchronization
	l.startRS()
	eventually(t, 15*time.Second, "route server back and trade 3 confirmed", func() string {
		st := l.status().Routing
		for _, s := range st.Sessions {
			if s.State != "established" {
				return fmt.Sprintf("%v %s", s.Address, s.State)
			}
		}
		for _, r := range st.Learned {
			for _, nh := range r.NextHops {
				if nh.Stale {
					return fmt.Sprintf("%v via %v still stale", r.Prefix, nh.Addr)
				}
			}
		}
		if len(st.Learned) != 2 {
			return fmt.Sprintf("learned %v", st.Learned)
		}
		return ""
	})
	phase("route server back")
	// Past the graceful restart time since the outage: still there.
	time.Sleep(clock.Until(crashed.Add(grTime + time.Second)))
	smp.finish(t, "IPv4 lookups during a short route server outage")
	l.waitRoutes("after a short route server outage", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})

	phase("short outage checked")
	// Longer than the graceful restart time: the routes go.
	l.crashRS()
	stopped := clock.Now()
	l.waitRoutes("routes dropped after the graceful restart time", map[string][]string{})
	if d := clock.Since(stopped); d < grTime-500*time.Millisecond {
		t.Fatalf("routes dropped %v after the route server stopped, before the graceful restart time %v", d, grTime)
	}
	l.sendVia(dst4a, l.up, l.s1, l.s2)

	phase("long outage checked")
	// The hand route was never touched.
	if got := l.ip(l.buyer, "route", "show", "proto", "static"); got != hand {
		t.Fatalf("hand-made routes changed:\n%s\nwant\n%s", got, hand)
	}
	l.stopAgent()
	if got := l.ip(l.buyer, "route", "show", "proto", "static"); got != hand {
		t.Fatalf("hand-made routes changed by the agent's stop:\n%s\nwant\n%s", got, hand)
	}
}
