package routeserver

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/bwxchange/bwx/shared/bgplog"
	"github.com/bwxchange/bwx/shared/clock"
)

// Test helpers: GoBGP speakers playing member routers on loopback
// addresses (127.0.0.x), polling, a fake Checker.

const rsASN = 65000

// testLog returns a logger for the test (debug output with -v and
// ROUTESERVER_DEBUG=1).
func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("ROUTESERVER_DEBUG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fakeChecker accepts the registered prefixes of each member and rejects
// origins listed as RPKI-invalid.
type fakeChecker struct {
	mu         sync.Mutex
	registered map[uint32][]netip.Prefix
	invalid    map[netip.Prefix]bool // RPKI invalid
	calls      int
}

func newFakeChecker() *fakeChecker {
	return &fakeChecker{registered: map[uint32][]netip.Prefix{}, invalid: map[netip.Prefix]bool{}}
}

func (c *fakeChecker) register(asn uint32, ps ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		c.registered[asn] = append(c.registered[asn], netip.MustParsePrefix(p))
	}
}

func (c *fakeChecker) unregister(asn uint32, p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.registered[asn] = slices.DeleteFunc(c.registered[asn], func(x netip.Prefix) bool { return x == netip.MustParsePrefix(p) })
}

const (
	reasonNotRegistered = "not registered"
	reasonRPKIInvalid   = "rpki invalid"
)

func (c *fakeChecker) Check(asn uint32, p netip.Prefix, origin uint32) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.invalid[p] {
		return false, reasonRPKIInvalid
	}
	if slices.Contains(c.registered[asn], p) {
		return true, ""
	}
	return false, reasonNotRegistered
}

// speaker is a GoBGP playing a member router: it dials the route server
// from its own loopback address. It runs in a child process (this test
// binary, see TestMain) because GoBGP v3 keeps route selection options in
// package variables that every BgpServer writes on start: two in one
// process race.
type speaker struct {
	t    testing.TB
	asn  uint32
	addr netip.Addr
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   *json.Encoder
	out  *json.Decoder
	done bool
}

// speakerEnv holds the JSON speakerConfig of a child process.
const speakerEnv = "ROUTESERVER_TEST_SPEAKER"

type speakerConfig struct {
	ASN     uint32
	Addr    netip.Addr
	RS      netip.Addr
	RSPort  int
	AddPath bool
}

type speakerCmd struct {
	Op      string // announce, withdraw, rib, down, up, watch, flaps
	Prefix  string
	NextHop netip.Addr
	Path    []uint32
}

type speakerReply struct {
	Err     string
	RIB     []ribRoute
	Flaps   int
	Updates uint64
}

func newSpeaker(t testing.TB, asn uint32, addr, rs netip.Addr, rsPort int, addPath bool) *speaker {
	t.Helper()
	cfg, _ := json.Marshal(speakerConfig{ASN: asn, Addr: addr, RS: rs, RSPort: rsPort, AddPath: addPath})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
	cmd.Env = append(os.Environ(), speakerEnv+"="+string(cfg))
	cmd.Stderr = tWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &speaker{t: t, asn: asn, addr: addr, cmd: cmd, in: json.NewEncoder(stdin), out: json.NewDecoder(stdout)}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
		stdin.Close() // the child exits on EOF
		timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		timer.Stop()
	})
	s.call(speakerCmd{Op: "ping"})
	return s
}

func (s *speaker) call(c speakerCmd) speakerReply {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var r speakerReply
	if s.done {
		s.t.Fatalf("speaker AS%d: used after the test", s.asn)
	}
	if err := s.in.Encode(c); err != nil {
		s.t.Fatalf("speaker AS%d: %s: %v", s.asn, c.Op, err)
	}
	if err := s.out.Decode(&r); err != nil {
		s.t.Fatalf("speaker AS%d: %s: %v", s.asn, c.Op, err)
	}
	if r.Err != "" {
		s.t.Fatalf("speaker AS%d: %s: %s", s.asn, c.Op, r.Err)
	}
	return r
}

// announce originates p with the AS_PATH path (the speaker's own ASN is
// prepended on the way out) and next hop nh (zero: the speaker's address).
func (s *speaker) announce(p string, nh netip.Addr, path ...uint32) {
	s.t.Helper()
	s.call(speakerCmd{Op: "announce", Prefix: p, NextHop: nh, Path: path})
}

func (s *speaker) withdraw(p string) {
	s.t.Helper()
	s.call(speakerCmd{Op: "withdraw", Prefix: p})
}

// rib returns the routes the speaker learned from the route server.
func (s *speaker) rib() []ribRoute {
	s.t.Helper()
	return s.call(speakerCmd{Op: "rib"}).RIB
}

// down closes the session (CEASE, administrative shutdown); up reopens it.
func (s *speaker) down() { s.t.Helper(); s.call(speakerCmd{Op: "down"}) }
func (s *speaker) up()   { s.t.Helper(); s.call(speakerCmd{Op: "up"}) }

// watchWithdrawals counts, from now on, the speaker's losses of a best
// path; the returned function reads the count.
func (s *speaker) watchWithdrawals() func() int {
	s.t.Helper()
	s.call(speakerCmd{Op: "watch"})
	return func() int { return s.call(speakerCmd{Op: "flaps"}).Flaps }
}

// updates is how many UPDATE messages the speaker has received from the
// route server (announcements and withdrawals alike).
func (s *speaker) updates() uint64 {
	s.t.Helper()
	return s.call(speakerCmd{Op: "updates"}).Updates
}

// isolateEnv names the test a child process runs (see isolate).
const isolateEnv = "ROUTESERVER_TEST_ISOLATED"

// isolatedTests run each in a child process of its own (see isolate).
// TestMain starts the children of those -test.run selects all at once, so
// their waits on BGP timers overlap.
var isolatedTests = []string{
	"TestReceivedRoutesAreCheckedAndRecorded",
	"TestTradeDelivery",
	"TestPerBuyerDeliveryWithoutAddPath",
	"TestDeliveryStateFollowsThePath",
	"TestSellerRouterFailover",
	"TestMaxPrefix",
	"TestRestartReannouncesActiveTrades",
	"TestLabImportChecksAndMaxPrefix",
	"TestLabMisbehavingPeer",
	"TestLabTradeDelivery",
	"TestLabPerBuyerDelivery",
	"TestLabRestart",
	"TestLabMD5",
}

type childResult struct {
	out []byte
	err error
}

var children = map[string]chan childResult{}

// spawn runs test name alone in a child process (this test binary).
func spawn(name string) chan childResult {
	args := []string{"-test.run=^" + regexp.QuoteMeta(name) + "$", "-test.count=1", "-test.v"}
	if f := flag.Lookup("test.timeout"); f != nil && f.Value.String() != "0s" {
		args = append(args, "-test.timeout="+f.Value.String())
	}
	ch := make(chan childResult, 1)
	go func() {
		cmd := exec.Command(os.Args[0], args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
		cmd.Env = append(os.Environ(), isolateEnv+"="+name)
		out, err := cmd.CombinedOutput()
		ch <- childResult{out, err}
	}()
	return ch
}

// isolate runs the calling test alone in a child process and reports
// whether the caller is that child and should go on. A process holds one
// GoBGP at a time: GoBGP v3 keeps route selection options in package
// variables that every BgpServer writes when it starts, so two in one
// process race.
func isolate(t *testing.T) bool {
	t.Helper()
	if os.Getenv(isolateEnv) == t.Name() {
		return true
	}
	ch := children[t.Name()]
	if ch == nil {
		t.Parallel()
		ch = spawn(t.Name())
	}
	r := <-ch
	skip := regexp.MustCompile(`(?m)^\s*\S+: (.*)\n\s*--- SKIP: ` + regexp.QuoteMeta(t.Name()) + ` `).FindSubmatch(r.out)
	switch {
	case r.err != nil:
		t.Errorf("in a child process: %v\n%s", r.err, r.out)
	case skip != nil:
		t.Skipf("%s", skip[1])
	case testing.Verbose():
		t.Logf("in a child process:\n%s", r.out)
	}
	return false
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(speakerEnv); cfg != "" {
		if err := runSpeaker(cfg, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "speaker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(isolateEnv) == "" {
		flag.Parse()
		if list := flag.Lookup("test.list"); list == nil || list.Value.String() == "" {
			run := flag.Lookup("test.run").Value.String()
			skip := flag.Lookup("test.skip").Value.String()
			for _, name := range isolatedTests {
				if topMatch(run, name, true) && !topMatch(skip, name, false) {
					children[name] = spawn(name)
				}
			}
		}
	}
	os.Exit(m.Run())
}

// topMatch reports whether a -test.run or -test.skip pattern selects the
// top-level test name (empty: def).
func topMatch(pattern, name string, def bool) bool {
	if pattern == "" {
		return def
	}
	re, err := regexp.Compile(strings.SplitN(pattern, "/", 2)[0])
	return err != nil || re.MatchString(name) // a bad pattern: let the test run fail on it
}

// runSpeaker is the child process: one GoBGP, commands on stdin.
func runSpeaker(cfgJSON string, stdin io.Reader, stdout io.Writer) error {
	var cfg speakerConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return err
	}
	b := server.NewBgpServer(server.LoggerOption(bgplog.New(slog.New(slog.DiscardHandler))))
	go b.Serve()
	ctx := context.Background()
	err := b.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: cfg.ASN, RouterId: "192.0.2.255", ListenPort: -1}})
	if err != nil {
		return err
	}
	fam := family4
	if cfg.RS.Is6() {
		fam = family6
	}
	afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
	if cfg.AddPath {
		afi.AddPaths = &api.AddPaths{Config: &api.AddPathsConfig{Receive: true}}
	}
	err = b.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: cfg.RS.String(), PeerAsn: rsASN},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1, IdleHoldTimeAfterReset: 1}},
		Transport: &api.Transport{LocalAddress: cfg.Addr.String(), RemotePort: uint32(cfg.RSPort)},
		AfiSafis:  []*api.AfiSafi{afi},
	}})
	if err != nil {
		return err
	}
	uuids := map[netip.Prefix][]byte{}
	var flapMu sync.Mutex
	flaps, watching := 0, false
	in, out := json.NewDecoder(stdin), json.NewEncoder(stdout)
	for {
		var c speakerCmd
		if err := in.Decode(&c); err == io.EOF {
			b.StopBgp(ctx, &api.StopBgpRequest{})
			return nil
		} else if err != nil {
			return err
		}
		var r speakerReply
		var err error
		switch c.Op {
		case "ping":
		case "announce":
			var p *api.Path
			p, err = speakerPath(cfg, c)
			if err == nil {
				var rsp *api.AddPathResponse
				rsp, err = b.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
				if err == nil {
					uuids[netip.MustParsePrefix(c.Prefix)] = rsp.Uuid
				}
			}
		case "withdraw":
			id := uuids[netip.MustParsePrefix(c.Prefix)]
			if id == nil {
				err = fmt.Errorf("%s was not announced", c.Prefix)
				break
			}
			err = b.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Uuid: id})
			delete(uuids, netip.MustParsePrefix(c.Prefix))
		case "rib":
			r.RIB, err = speakerRIB(b, cfg.RS)
		case "down":
			err = b.DisablePeer(ctx, &api.DisablePeerRequest{Address: cfg.RS.String(), Communication: "test"})
		case "up":
			err = b.EnablePeer(ctx, &api.EnablePeerRequest{Address: cfg.RS.String()})
		case "watch":
			if !watching {
				watching = true
				req := &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
					Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}},
				}}
				err = b.WatchEvent(ctx, req, func(w *api.WatchEventResponse) {
					for _, p := range w.GetTable().GetPaths() {
						if p.IsWithdraw {
							flapMu.Lock()
							flaps++
							flapMu.Unlock()
						}
					}
				})
			}
			flapMu.Lock()
			flaps = 0
			flapMu.Unlock()
		case "updates":
			// Every UPDATE message the session received, announce or
			// withdraw, even one that changed nothing in the RIB.
			err = b.ListPeer(ctx, &api.ListPeerRequest{Address: cfg.RS.String()}, func(p *api.Peer) {
				r.Updates = p.GetState().GetMessages().GetReceived().GetUpdate()
			})
		case "flaps":
			// The count must include events already queued: a no-op
			// management call orders after them is not guaranteed, so
			// read the RIB once (it passes through the event loop).
			speakerRIB(b, cfg.RS)
			flapMu.Lock()
			r.Flaps = flaps
			flapMu.Unlock()
		default:
			err = fmt.Errorf("unknown op %q", c.Op)
		}
		if err != nil {
			r.Err = err.Error()
		}
		if err := out.Encode(r); err != nil {
			return err
		}
	}
}

func speakerPath(cfg speakerConfig, c speakerCmd) (*api.Path, error) {
	pfx, err := netip.ParsePrefix(c.Prefix)
	if err != nil {
		return nil, err
	}
	nh := c.NextHop
	if !nh.IsValid() {
		nh = cfg.Addr
	}
	var nlri bgp.AddrPrefixInterface
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if len(c.Path) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, c.Path)}))
	}
	if pfx.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nh.String()))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nh.String(), []bgp.AddrPrefixInterface{nlri}))
	}
	return apiutil.NewPath(nlri, false, attrs, clock.Now())
}

func speakerRIB(b *server.BgpServer, rs netip.Addr) ([]ribRoute, error) {
	out := []ribRoute{}
	for _, fam := range []*api.Family{family4, family6} {
		var perr error
		err := b.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			for _, p := range d.Paths {
				if p.NeighborIp != rs.String() {
					continue // its own
				}
				r, err := sentRoute(rs, p)
				if err != nil {
					perr = err
					continue
				}
				out = append(out, ribRoute{Prefix: r.Prefix, NextHop: r.NextHop, ASPath: asPathString(r.ASPath),
					Communities: r.Communities, Large: r.LargeCommunities})
			}
		})
		if err != nil {
			return nil, err
		}
		if perr != nil {
			return nil, perr
		}
	}
	sortRIB(out)
	return out, nil
}

// ribRoute is a route in a member router's RIB, whichever router.
type ribRoute struct {
	Prefix      netip.Prefix
	NextHop     netip.Addr
	ASPath      string
	Communities []string // "65535:65281"
	Large       []string // "65000:1:64502"
}

func (r ribRoute) String() string {
	return fmt.Sprintf("%v via %v [%s] %v %v", r.Prefix, r.NextHop, r.ASPath, r.Communities, r.Large)
}

func sortRIB(rs []ribRoute) {
	slices.SortFunc(rs, func(a, b ribRoute) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
}

// routesFor filters a RIB down to one prefix.
func routesFor(rib []ribRoute, p string) []ribRoute {
	pfx := netip.MustParsePrefix(p)
	var out []ribRoute
	for _, r := range rib {
		if r.Prefix == pfx {
			out = append(out, r)
		}
	}
	return out
}

// eventually polls cond until it returns "" or the deadline passes, and
// then fails the test with cond's last complaint.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := clock.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if clock.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// established waits until every session of the route server is up.
func waitEstablished(t testing.TB, rs *Server, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "sessions established", func() string {
		ss, err := rs.Sessions(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, s := range ss {
			if !s.Established() {
				return fmt.Sprintf("AS%d %v is %s", s.ASN, s.Address, s.State)
			}
		}
		return ""
	})
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
