// Package exchange builds a whole bwx exchange in a labnet lab: the trading
// switch, an arbiter and member hosts, each member with its own agent,
// driven through the real binaries and commands an operator and a member
// would use. The lab command and the end-to-end tests share it; later parts
// (BGP, traffic, probes) extend the same Exchange.
package exchange

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/bird"
)

// Member is one member network of the lab.
type Member struct {
	Name     string
	ASN      uint32
	Host     *labnet.Host
	Capacity string
	// Prefixes registered for the member (its customer routes).
	Prefixes []string
	Config   string
	Bundle   string
	Log      string
	// Router is the member's BIRD, announcing its prefixes to the route
	// server (members with prefixes only).
	Router *bird.Router
	// Remote are more customer routes, registered and announced like
	// Prefixes, whose addresses are not on the member's host: the caller
	// puts that network somewhere and routes the member (and the
	// upstream) to it.
	Remote []string
	// AgentConfig is appended to the member's agent YAML (e.g. capture,
	// probe and manager sections).
	AgentConfig string
	agent       *labnet.Proc
	baseConfig  string // the lab's part of the agent config
}

// announced are the routes the member registers and announces.
func (m *Member) announced() []string { return append(slices.Clone(m.Prefixes), m.Remote...) }

// Exchange is a running lab exchange.
type Exchange struct {
	Lab     *labnet.Lab
	Dir     string
	Bin     Binaries
	Arbiter *labnet.Host
	// ArbiterConfig is the arbiter's config file and ArbiterLog its log.
	ArbiterConfig, ArbiterLog string
	Members                   []*Member
	// Upstream is every member's default route: the rest of the internet,
	// which also reaches the members' prefixes, the long way.
	Upstream *labnet.Host
	arbiter  *labnet.Proc
}

// The route server's AS number in the lab.
const RouteServerASN = 65000

// Binaries are the paths of the programs the lab runs.
type Binaries struct {
	Arbiter, Agent string
}

// Build compiles the daemons into dir.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Arbiter: filepath.Join(dir, "bwx-arbiter"), Agent: filepath.Join(dir, "bwx-agent")}
	// One go build for both: it compiles their shared dependencies once
	// and in parallel, which on a cold cache is most of the lab's start.
	pkgs := []string{"github.com/bwxchange/bwx/arbiter/cmd/bwx-arbiter", "github.com/bwxchange/bwx/agent/cmd/bwx-agent"}
	out, err := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...).CombinedOutput()
	if err != nil {
		return b, fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return b, nil
}

// The exchange LAN: the arbiter is .1 / ::1, members follow.
var (
	lan4 = netip.MustParsePrefix("192.0.2.0/24")
	lan6 = netip.MustParsePrefix("2001:db8:ffff::/64")
)

func lanAddrs(n int) []netip.Prefix {
	a4 := lan4.Addr().As4()
	a4[3] = byte(n)
	// ::11 for .11, so both families read alike in a BGP table.
	hex, _ := strconv.ParseUint(strconv.Itoa(n), 16, 16)
	a6 := lan6.Addr().As16()
	a6[14], a6[15] = byte(hex>>8), byte(hex)
	return []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4(a4), 24), netip.PrefixFrom(netip.AddrFrom16(a6), 64)}
}

// DefaultMembers are two sellers and a buyer with IPv4 and IPv6 routes.
func DefaultMembers() []*Member {
	return []*Member{
		{Name: "seller-a", ASN: 64501, Capacity: "10G", Prefixes: []string{"198.51.100.0/24", "2001:db8:100::/48"}},
		{Name: "seller-b", ASN: 64502, Capacity: "10G", Prefixes: []string{"203.0.113.0/24", "2001:db8:200::/48"}},
		{Name: "buyer", ASN: 64510, Capacity: "10G"},
	}
}

// Up builds the lab: namespaces, the switch, the arbiter with its CA, the
// members registered with their certificates and prefixes, and an agent
// per member. On error everything made so far is torn down.
func Up(ctx context.Context, dir string, bin Binaries, members []*Member) (x *Exchange, err error) {
	return UpWith(ctx, dir, bin, members, Options{})
}

// Options change the lab exchange.
type Options struct {
	// ArbiterConfig is appended to the arbiter's YAML (e.g. a settle
	// section).
	ArbiterConfig string
}

// UpWith is Up with options.
func UpWith(ctx context.Context, dir string, bin Binaries, members []*Member, opt Options) (x *Exchange, err error) {
	lab, err := labnet.New("exchange")
	if err != nil {
		return nil, err
	}
	x = &Exchange{Lab: lab, Dir: dir, Bin: bin, Members: members}
	defer func() {
		if err != nil {
			x.Close()
			x = nil
		}
	}()
	if x.Arbiter, err = lab.AddHost("arbiter", lanAddrs(1)...); err != nil {
		return x, err
	}
	if x.Upstream, err = lab.AddHost("upstream", lanAddrs(2)...); err != nil {
		return x, err
	}
	for i, m := range members {
		if m.Host, err = lab.AddHost(m.Name, lanAddrs(11+i)...); err != nil {
			return x, err
		}
	}
	for _, h := range append([]*labnet.Host{x.Upstream}, x.memberHosts()...) {
		if err = noRedirects(h); err != nil {
			return x, err
		}
	}
	state := filepath.Join(dir, "arbiter")
	x.ArbiterConfig = filepath.Join(dir, "arbiter.yaml")
	x.ArbiterLog = filepath.Join(dir, "arbiter.log")
	cfg := fmt.Sprintf(`# bwx lab arbiter
state_dir: %s
grpc:
  listen: "[::]:7443"
operator:
  socket: %s
metrics:
  listen: "[::]:9470"
dashboard:
  local: "127.0.0.1:8480"
bgp:
  enabled: true
  asn: %d
  router_id: %s
  hold_time: 9s
  add_path: true
  recheck_interval: 1s
log:
  format: json
`, state, filepath.Join(dir, "operator.sock"), RouteServerASN, x.Arbiter.Addr4()) + opt.ArbiterConfig
	if err = os.WriteFile(x.ArbiterConfig, []byte(cfg), 0o600); err != nil {
		return x, err
	}
	if _, err = x.Operator(ctx, "ca", "init", "--host", x.Arbiter.Addr4().String(), "--host", x.Arbiter.Addr6().String()); err != nil {
		return x, err
	}
	if x.arbiter, err = x.Arbiter.Start(context.Background(), x.ArbiterLog, bin.Arbiter, "run", "--config", x.ArbiterConfig); err != nil {
		return x, err
	}
	if err = x.waitArbiter(ctx); err != nil {
		return x, err
	}
	for _, m := range members {
		if err = x.addMember(ctx, m); err != nil {
			return x, err
		}
	}
	if err = x.importIRR(ctx); err != nil {
		return x, err
	}
	if err = x.routeUpstream(); err != nil {
		return x, err
	}
	for _, m := range members {
		if err = x.startRouter(ctx, m); err != nil {
			return x, err
		}
	}
	return x, nil
}

// noRedirects turns ICMP redirects off on a peering LAN host, both ways,
// before anything runs there, as IXPs require of members' routers. A
// redirect accepted once (a seller forwarding a probe back out to the
// upstream before its own path is set up) pins a destination to another
// gateway for minutes, and probes through a seller would measure the
// upstream instead.
func noRedirects(h *labnet.Host) error {
	for _, scope := range []string{"all", "default", h.Iface} {
		for _, kv := range [][2]string{{"net.ipv4.conf." + scope + ".accept_redirects", "0"},
			{"net.ipv4.conf." + scope + ".send_redirects", "0"}, {"net.ipv6.conf." + scope + ".accept_redirects", "0"}} {
			if err := h.SetSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x *Exchange) memberHosts() []*labnet.Host {
	hs := make([]*labnet.Host, len(x.Members))
	for i, m := range x.Members {
		hs[i] = m.Host
	}
	return hs
}

// DashboardPort is where the arbiter serves its local (operator) dashboard
// inside its namespace; ServeDashboard brings it to the host.
const DashboardPort = 8480

// ServeDashboard makes the arbiter's local dashboard reachable from the
// machine running the lab, on listen (e.g. "127.0.0.1:8480"; port 0
// picks one): each connection is passed into the arbiter's namespace. The
// dashboard there is the operator's view without a certificate, so listen
// must be a loopback address. It returns the dashboard's URL; the proxy
// stops with ctx.
func (x *Exchange) ServeDashboard(ctx context.Context, listen string) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
		return "", fmt.Errorf("dashboard: %q is not a loopback address: whoever reaches it is the operator", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	inside := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), DashboardPort).String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				a, err := x.Arbiter.DialContext(ctx, "tcp", inside)
				if err != nil {
					return
				}
				defer a.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(a, c); done <- struct{}{} }()
				go func() { io.Copy(c, a); done <- struct{}{} }()
				select {
				case <-done:
				case <-ctx.Done():
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/", nil
}

// importIRR registers a route/route6 object for every member prefix, as the
// members would have in their IRR, so the route server accepts them.
func (x *Exchange) importIRR(ctx context.Context) error {
	var w strings.Builder
	for _, m := range x.Members {
		for _, p := range m.announced() {
			class := "route"
			if strings.Contains(p, ":") {
				class = "route6"
			}
			fmt.Fprintf(&w, "%s: %s\norigin: AS%d\nmnt-by: LAB-MNT\nsource: LAB\n\n", class, p, m.ASN)
		}
	}
	path := filepath.Join(x.Dir, "lab.db.route")
	if err := os.WriteFile(path, []byte(w.String()), 0o644); err != nil {
		return err
	}
	_, err := x.Operator(ctx, "import", "irr", path)
	return err
}

// routeUpstream makes the upstream every member's default gateway and gives
// it routes to every member prefix, so a destination is reachable before
// any trade, through the upstream.
func (x *Exchange) routeUpstream() error {
	for _, kv := range [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.ipv6.conf.all.forwarding", "1"}} {
		if err := x.Upstream.SetSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, m := range x.Members {
		for _, gw := range []netip.Addr{x.Upstream.Addr4(), x.Upstream.Addr6()} {
			if _, err := run(m.Host.Command(context.Background(), "ip", "route", "add", "default", "via", gw.String())); err != nil {
				return err
			}
		}
		for _, p := range m.Prefixes {
			gw := m.Host.Addr4()
			if strings.Contains(p, ":") {
				gw = m.Host.Addr6()
			}
			if _, err := run(x.Upstream.Command(context.Background(), "ip", "route", "add", p, "via", gw.String())); err != nil {
				return err
			}
		}
	}
	return nil
}

// startRouter gives a member with prefixes its customer network (the first
// address of each prefix answers pings; it sits on lo, as some kernels lack
// the dummy link type) and a BIRD that announces the prefixes to the route
// server.
func (x *Exchange) startRouter(ctx context.Context, m *Member) error {
	if len(m.announced()) == 0 {
		return nil
	}
	var cmds [][]string
	var static []netip.Prefix
	for _, s := range m.Prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("member %s: prefix %q: %w", m.Name, s, err)
		}
		static = append(static, p)
		a := p.Addr().Next()
		cmds = append(cmds, []string{"ip", "addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"})
	}
	for _, s := range m.Remote {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("member %s: remote prefix %q: %w", m.Name, s, err)
		}
		static = append(static, p)
	}
	for _, c := range cmds {
		if _, err := run(m.Host.Command(ctx, c[0], c[1:]...)); err != nil {
			return err
		}
	}
	cfg := bird.Config{RouterID: m.Host.Addr4(), Static: static, Sessions: []bird.Session{
		{Name: "rs4", Local: m.Host.Addr4(), Neighbor: x.Arbiter.Addr4(), LocalASN: m.ASN, NeighborASN: RouteServerASN},
		{Name: "rs6", Local: m.Host.Addr6(), Neighbor: x.Arbiter.Addr6(), LocalASN: m.ASN, NeighborASN: RouteServerASN},
	}}
	var err error
	m.Router, err = bird.Start(ctx, m.Host, filepath.Join(x.Dir, m.Name+"-bird"), cfg)
	return err
}

func (x *Exchange) waitArbiter(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := x.Operator(ctx, "member", "list")
		if err == nil {
			return nil
		}
		if x.arbiter.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("the arbiter did not come up: %v\n%s", err, Tail(x.ArbiterLog, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (x *Exchange) addMember(ctx context.Context, m *Member) error {
	m.Bundle = filepath.Join(x.Dir, m.Name+".pem")
	args := []string{"member", "add", "--asn", fmt.Sprint(m.ASN), "--name", m.Name, "--port", "swp-" + m.Name,
		"--capacity", m.Capacity, "--bundle-out", m.Bundle}
	for _, a := range []netip.Addr{m.Host.Addr4(), m.Host.Addr6()} {
		args = append(args, "--router", a.String())
	}
	if _, err := x.Operator(ctx, args...); err != nil {
		return err
	}
	for _, p := range m.announced() {
		if _, err := x.Operator(ctx, "prefix", "add", p, "--member", fmt.Sprint(m.ASN), "--type", "customer"); err != nil {
			return err
		}
	}
	m.Config = filepath.Join(x.Dir, m.Name+".yaml")
	m.Log = filepath.Join(x.Dir, m.Name+".log")
	cfg := fmt.Sprintf("arbiter:\n  address: %q\nbundle: %s\nstate_dir: %s\nlog:\n  format: json\n",
		netip.AddrPortFrom(x.Arbiter.Addr4(), 7443).String(), m.Bundle, filepath.Join(x.Dir, m.Name+"-state"))
	if len(m.announced()) == 0 {
		// A member without a router of its own (its BIRD holds the LAN
		// addresses' sessions otherwise) gets its trades through the
		// agent: BGP to the route server, routes into the kernel.
		cfg += fmt.Sprintf(`bgp:
  route_servers: [%q, %q]
  route_server_asn: %d
  local_addresses: [%q, %q]
  hold_time: 9s
  graceful_restart_time: 30s
  connect_retry: 1s
fib:
  interface: eth0
`, x.Arbiter.Addr4(), x.Arbiter.Addr6(), RouteServerASN, m.Host.Addr4(), m.Host.Addr6())
	}
	m.baseConfig = cfg
	return x.startAgent(m)
}

// startAgent writes m's agent config (the lab's part and m.AgentConfig)
// and starts the agent.
func (x *Exchange) startAgent(m *Member) error {
	if err := os.WriteFile(m.Config, []byte(m.baseConfig+m.AgentConfig), 0o600); err != nil {
		return err
	}
	var err error
	m.agent, err = m.Host.Start(context.Background(), m.Log, x.Bin.Agent, "run", "--config", m.Config)
	return err
}

// RestartAgent stops m's agent gracefully and starts it again with
// m.AgentConfig as it is now, as editing agent.yaml and running systemctl
// restart bwx-agent would.
func (x *Exchange) RestartAgent(m *Member) error {
	if err := m.agent.Stop(); err != nil && !m.agent.Exited() {
		return err
	}
	return x.startAgent(m)
}

// RestartArbiter stops the arbiter gracefully and starts it again on the
// same state, as systemctl restart would.
func (x *Exchange) RestartArbiter(ctx context.Context) error {
	if err := x.arbiter.Stop(); err != nil && !x.arbiter.Exited() {
		return err
	}
	var err error
	if x.arbiter, err = x.Arbiter.Start(context.Background(), x.ArbiterLog, x.Bin.Arbiter, "run", "--config", x.ArbiterConfig); err != nil {
		return err
	}
	return x.waitArbiter(ctx)
}

// Member finds a member by name.
func (x *Exchange) Member(name string) *Member {
	for _, m := range x.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Operator runs a bwx-arbiter operator command in the arbiter's namespace.
func (x *Exchange) Operator(ctx context.Context, args ...string) (string, error) {
	return run(x.Arbiter.Command(ctx, x.Bin.Arbiter, append([]string{"--config", x.ArbiterConfig}, args...)...))
}

// Agent runs a bwx-agent command as member m, from m's namespace.
func (x *Exchange) Agent(ctx context.Context, m *Member, args ...string) (string, error) {
	return run(m.Host.Command(ctx, x.Bin.Agent, append([]string{"--config", m.Config}, args...)...))
}

func run(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out), nil
}

// WaitLog waits until the file at path has a line containing every one of
// the substrings, and returns that line.
func WaitLog(ctx context.Context, path string, timeout time.Duration, subs ...string) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.Open(path)
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				line := sc.Text()
				ok := true
				for _, s := range subs {
					ok = ok && strings.Contains(line, s)
				}
				if ok {
					f.Close()
					return line, nil
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no line with %q after %v\n%s", path, subs, timeout, Tail(path, 10))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Close stops every process and removes every namespace the lab made.
func (x *Exchange) Close() error {
	if x == nil || x.Lab == nil {
		return nil
	}
	return x.Lab.Close()
}

// WaitRoutes waits until the route server has accepted every prefix of every
// member, as `bwx-arbiter bgp received` shows them.
func (x *Exchange) WaitRoutes(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing, err := x.unaccepted(ctx)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sessions, _ := x.Operator(ctx, "bgp", "sessions")
			return fmt.Errorf("route server has not accepted %v after %v (%v)\n%s", missing, timeout, err, sessions)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (x *Exchange) unaccepted(ctx context.Context) ([]string, error) {
	var missing []string
	for _, m := range x.Members {
		if len(m.announced()) == 0 {
			continue
		}
		out, err := x.Operator(ctx, "bgp", "received", strconv.FormatUint(uint64(m.ASN), 10), "-o", "json")
		if err != nil {
			return nil, err
		}
		var routes []struct {
			Prefix   string `json:"prefix"`
			Accepted bool   `json:"accepted"`
		}
		if err := json.Unmarshal([]byte(out), &routes); err != nil {
			return nil, fmt.Errorf("bgp received %d: %w\n%s", m.ASN, err, out)
		}
		ok := map[string]bool{}
		for _, r := range routes {
			ok[r.Prefix] = ok[r.Prefix] || r.Accepted
		}
		for _, p := range m.announced() {
			if !ok[p] {
				missing = append(missing, fmt.Sprintf("AS%d %s", m.ASN, p))
			}
		}
	}
	return missing, nil
}

// RouteVia returns the next hop the member's kernel uses toward dst (`ip
// route get`), or the zero Addr for a directly connected destination.
func (x *Exchange) RouteVia(ctx context.Context, m *Member, dst netip.Addr) (netip.Addr, error) {
	out, err := run(m.Host.Command(ctx, "ip", "route", "get", dst.String()))
	if err != nil {
		return netip.Addr{}, err
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			return netip.ParseAddr(f[i+1])
		}
	}
	return netip.Addr{}, nil
}

// WaitRouteVia waits until the member's kernel routes dst via gw.
func (x *Exchange) WaitRouteVia(ctx context.Context, m *Member, dst, gw netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		via, err := x.RouteVia(ctx, m, dst)
		if err == nil && via == gw {
			return nil
		}
		if time.Now().After(deadline) {
			// By number: the name bwx needs the agent package's rt_protos.d file.
			table, _ := run(m.Host.Command(ctx, "ip", "route", "show", "proto", "239"))
			table6, _ := run(m.Host.Command(ctx, "ip", "-6", "route", "show", "proto", "239"))
			return fmt.Errorf("%s: route to %v goes via %v, not %v, after %v (%v)\nbwx routes (proto 239):\n%s%s", m.Name, dst, via, gw, timeout, err, table, table6)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
