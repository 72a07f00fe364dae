package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/bwxchange/bwx/shared/pki"
)

// pairSide is one arbiter of a pair in the lab: its host, its route
// server and its gRPC server (the trading service of the one store both
// share: pairLab.arb).
type pairSide struct {
	h    *labnet.Host
	rs   *routeserver.Server
	grpc *grpc.Server
	addr string // gRPC host:port
}

// TestLabAgentWithArbiterPair: the buyer's agent knows two arbiters
// (arbiter.addresses, the second over IPv6) and peers with both route
// servers (four sessions). Both announce the trade. The first arbiter dies
// (route server and gRPC): the kernel route never disappears, the event
// stream resumes on the second from the cursor, and a trade made after
// comes through the second alone. Both dead: graceful restart keeps the
// routes for its time, then they go.
func TestLabAgentWithArbiterPair(t *testing.T) {
	needTools(t)
	lab := labtest.New(t, "agentaddr-pair")
	l := &routeLab{t: t, lab: lab}
	a := &pairSide{h: labtest.AddHost(t, lab, "rsa", "192.0.2.1/24", "2001:db8::1/64"), addr: "192.0.2.1:7443"}
	b := &pairSide{h: labtest.AddHost(t, lab, "rsb", "192.0.2.2/24", "2001:db8::2/64"), addr: "[2001:db8::2]:7443"}
	l.buyer = labtest.AddHost(t, lab, "buyer", "192.0.2.10/24", "2001:db8::a/64")
	l.s1 = labtest.AddHost(t, lab, "s1", "192.0.2.11/24", "2001:db8::b/64")
	l.dir = t.TempDir()

	ca, err := pki.InitCA(filepath.Join(l.dir, "ca"), "test", []string{"192.0.2.1", "2001:db8::2"})
	if err != nil {
		t.Fatal(err)
	}
	l.arb = &labArbiter{wake: make(chan struct{})}
	for _, s := range []*pairSide{a, b} {
		s.grpc = l.serveArbiter(ca, s.h, s.addr)
	}
	bundle := filepath.Join(l.dir, "agent.pem")
	if err := pki.IssueBundle(ca, pki.MemberIdentity(buyerASN), bundle); err != nil {
		t.Fatal(err)
	}
	l.socketPath = filepath.Join(l.dir, "agent.sock")
	l.cfgPath = filepath.Join(l.dir, "agent.yaml")
	cfg := fmt.Sprintf(`arbiter:
  addresses: ["%s", "%s"]
bundle: %s
state_dir: %s
bgp:
  route_servers: ["192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"]
  route_server_asn: %d
  local_addresses: ["192.0.2.10", "2001:db8::a"]
  hold_time: 9s
  graceful_restart_time: %s
  connect_retry: 1s
  trade_grace: %s
fib:
  interface: eth0
  neighbor_probe_interval: 500ms
status:
  socket: %s
metrics:
  listen: ""
`, a.addr, b.addr, bundle, filepath.Join(l.dir, "state"), rsASN, grTime, labTradeGrace, l.socketPath)
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l.members = []routeserver.Member{
		{ASN: buyerASN, Addresses: []netip.Addr{l.buyer.Addr4(), l.buyer.Addr6()}, AddPathReceive: true},
		{ASN: seller1AS, Addresses: []netip.Addr{l.s1.Addr4(), l.s1.Addr6()}},
	}
	l.bird(l.s1, seller1AS, []*labnet.Host{a.h, b.h}, p4a.String(), p6a.String(), p4b.String())
	for _, s := range []*pairSide{a, b} {
		s.rs = l.newRS(s.h)
	}
	announce := func(id uint64, ps ...netip.Prefix) {
		t.Helper()
		l.arb.bought(id, l.s1, seller1AS, ps...)
		for _, s := range []*pairSide{a, b} {
			if s.rs == nil {
				continue
			}
			tr := routeserver.Trade{ID: id, BuyerASN: buyerASN, SellerASN: seller1AS, Prefixes: ps, NextHop4: l.s1.Addr4(), NextHop6: l.s1.Addr6()}
			if err := s.rs.AnnounceTrade(context.Background(), tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	s1, s1v6 := l.s1.Addr4().String(), l.s1.Addr6().String()

	l.startAgent()
	l.waitAgentReady()
	st := l.status()
	if len(st.Routing.Sessions) != 4 || len(st.Arbiters) != 2 || st.Arbiter != a.addr {
		t.Fatalf("status: %d sessions, arbiters %+v (current %s)", len(st.Routing.Sessions), st.Arbiters, st.Arbiter)
	}
	eventually(t, 10*time.Second, "the event stream on the first arbiter, both ready", func() string {
		st := l.status()
		for _, x := range st.Arbiters {
			if x.State != "ready" {
				return fmt.Sprintf("%s %s", x.Address, x.State)
			}
		}
		if st.EventStream != a.addr {
			return "event stream on " + st.EventStream
		}
		return ""
	})

	announce(1, p4a, p6a)
	l.waitRoutes("trade 1 installed", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})
	eventually(t, 10*time.Second, "trade 1 from both route servers", func() string {
		for _, s := range l.status().Routing.Sessions {
			if s.Traded != 1 {
				return fmt.Sprintf("%v: %d traded paths", s.Address, s.Traded)
			}
		}
		return ""
	})

	// The first arbiter dies: its route server (no NOTIFICATION) and its
	// gRPC server. The route never leaves the kernel, also past the
	// graceful restart time (its stale paths drop, the other's stay).
	smp := l.sample(dst4a, l.s1.Addr4())
	smp6 := l.sample(dst6a, l.s1.Addr6())
	killSessions(t, a.h, l.buyer)
	a.rs.Stop()
	a.rs = nil
	a.grpc.Stop()
	died := clock.Now()
	eventually(t, 10*time.Second, "the agent on the second arbiter", func() string {
		st := l.status()
		if st.EventStream != b.addr || st.Arbiter != b.addr {
			return fmt.Sprintf("calls on %s, event stream on %q", st.Arbiter, st.EventStream)
		}
		return ""
	})
	t.Logf("event stream on the second arbiter %v after the first died", clock.Since(died).Round(time.Millisecond))
	// A trade made now reaches the agent through the second arbiter
	// alone: its event on the resumed stream, its route from the second
	// route server.
	announce(2, p4b)
	l.waitRoutes("trade 2 through the second arbiter", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}, p4b.String(): {s1}})
	time.Sleep(clock.Until(died.Add(grTime + 2*time.Second)))
	smp.finish(t, "IPv4 lookups while one arbiter of the pair died")
	smp6.finish(t, "IPv6 lookups while one arbiter of the pair died")
	st = l.status()
	for _, r := range st.Routing.Learned {
		for _, nh := range r.NextHops {
			if nh.Stale {
				t.Errorf("%v via %v stale: the second route server carries it", r.Prefix, nh.Addr)
			}
		}
	}
	for _, s := range st.Routing.Sessions {
		up := s.State == "established"
		if want := strings.HasPrefix(s.Address.String(), "192.0.2.2") || s.Address.String() == "2001:db8::2"; up != want {
			t.Errorf("session %v %s", s.Address, s.State)
		}
	}
	for _, x := range st.Arbiters {
		if x.Address == a.addr && (x.State == "ready" || x.LastError == "") {
			t.Errorf("dead arbiter shown %+v", x)
		}
	}
	l.arb.mu.Lock()
	nev := len(l.arb.events)
	l.arb.mu.Unlock()
	if got := l.readCursor(); got != uint64(nev) {
		t.Errorf("cursor %d, want %d (every event once)", got, nev)
	}

	// Both dead: graceful restart keeps the routes for its time, then
	// they go.
	killSessions(t, b.h, l.buyer)
	b.rs.Stop()
	b.rs = nil
	stopped := clock.Now()
	l.waitRoutes("routes dropped after the graceful restart time", map[string][]string{})
	if d := clock.Since(stopped); d < grTime-500*time.Millisecond {
		t.Fatalf("routes dropped %v after both route servers stopped, before the graceful restart time %v", d, grTime)
	}
	l.stopAgent()
}

// readCursor reads the agent's saved event cursor.
func (l *routeLab) readCursor() uint64 {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "state", "events.cursor"))
	if err != nil {
		l.t.Fatal(err)
	}
	var v uint64
	fmt.Sscan(string(b), &v)
	return v
}
