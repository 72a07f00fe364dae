package speaker

// Unit tests of what the speaker makes of GoBGP's events, fed the events
// GoBGP's watch delivers (built with GoBGP's own apiutil). The sessions
// themselves run for real in agent/daemon's lab test, against the real
// route server; GoBGP v3 allows one BgpServer per process, so a
// route server and a speaker cannot both run in this test binary.

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/bwxchange/bwx/shared/clock"
)

const (
	rsASN = 65000
	ourAS = 64501
)

var (
	rs4 = netip.MustParseAddr("192.0.2.1")
	rs6 = netip.MustParseAddr("2001:db8::1")
	// The second route server of an arbiter pair.
	rsB4 = netip.MustParseAddr("192.0.2.2")
	rsB6 = netip.MustParseAddr("2001:db8::2")
)

func newTest(t *testing.T, restart time.Duration) *Speaker {
	t.Helper()
	s, err := New(Config{ASN: ourAS, RouterID: netip.MustParseAddr("192.0.2.10"), RouteServerASN: rsASN,
		RouteServers: []netip.Addr{rs4, rs6}, RestartTime: restart})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func lc(d1, d2 uint32) *bgp.LargeCommunity { return bgp.NewLargeCommunity(rsASN, d1, d2) }

// path builds the API path GoBGP's watch reports for a received route.
func path(t *testing.T, peer netip.Addr, prefix string, id uint32, nh string, withdraw, stale bool, large ...*bgp.LargeCommunity) *api.Path {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	var nlri bgp.AddrPrefixInterface
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0)}
	if p.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nh))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nh, []bgp.AddrPrefixInterface{nlri}))
	}
	if len(large) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	ap, err := apiutil.NewPath(nlri, withdraw, attrs, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	ap.NeighborIp, ap.Identifier, ap.Stale = peer.String(), id, stale
	return ap
}

func peerEvent(peer netip.Addr, st api.PeerState_SessionState) *api.WatchEventResponse_PeerEvent {
	return &api.WatchEventResponse_PeerEvent{Type: api.WatchEventResponse_PeerEvent_STATE,
		Peer: &api.Peer{State: &api.PeerState{NeighborAddress: peer.String(), SessionState: st}}}
}

func show(rs []Route) string {
	var out []string
	for _, r := range rs {
		for _, nh := range r.NextHops {
			s := r.Prefix.String() + " via " + nh.Addr.String()
			for _, id := range nh.Trades {
				s += " #" + strconvU(id)
			}
			if nh.Stale {
				s += " stale"
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, "; ")
}

func strconvU(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func TestTradeIDs(t *testing.T) {
	for _, c := range []struct {
		name  string
		large []*bgp.LargeCommunity
		want  []uint64
	}{
		{"ours", []*bgp.LargeCommunity{lc(1, ourAS), lc(2, 7)}, []uint64{7}},
		{"several trades, sorted, once", []*bgp.LargeCommunity{lc(2, 9), lc(1, ourAS), lc(2, 7), lc(2, 9)}, []uint64{7, 9}},
		{"also for another buyer", []*bgp.LargeCommunity{lc(1, 64999), lc(1, ourAS), lc(2, 7)}, []uint64{7}},
		{"another buyer only", []*bgp.LargeCommunity{lc(1, 64999), lc(2, 7)}, nil},
		{"no trade ID", []*bgp.LargeCommunity{lc(1, ourAS)}, nil},
		{"another ASN's scheme", []*bgp.LargeCommunity{bgp.NewLargeCommunity(65001, 1, ourAS), bgp.NewLargeCommunity(65001, 2, 7)}, nil},
		{"none", nil, nil},
	} {
		if got := TradeIDs(rsASN, ourAS, c.large); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLearnsTradedRoutesOnly(t *testing.T) {
	s := newTest(t, 0)
	s.onPeer(peerEvent(rs4, api.PeerState_ESTABLISHED))
	s.onPeer(peerEvent(rs6, api.PeerState_ESTABLISHED))
	s.onPaths([]*api.Path{
		// Two sellers of one prefix (ADD-PATH IDs 1 and 2), one IPv6.
		path(t, rs4, "198.51.100.0/24", 1, "192.0.2.11", false, false, lc(1, ourAS), lc(2, 7)),
		path(t, rs4, "198.51.100.0/24", 2, "192.0.2.12", false, false, lc(1, ourAS), lc(2, 8), lc(2, 9)),
		path(t, rs6, "2001:db8:100::/48", 1, "2001:db8::b", false, false, lc(1, ourAS), lc(2, 7)),
		// Not ours: another buyer's, none at all, no trade ID.
		path(t, rs4, "203.0.113.0/24", 3, "192.0.2.12", false, false, lc(1, 64999), lc(2, 10)),
		path(t, rs4, "192.0.2.128/25", 4, "192.0.2.12", false, false),
		path(t, rs6, "2001:db8:200::/48", 2, "2001:db8::c", false, false, lc(1, ourAS)),
	})
	want := "198.51.100.0/24 via 192.0.2.11 #7; 198.51.100.0/24 via 192.0.2.12 #8 #9; 2001:db8:100::/48 via 2001:db8::b #7"
	if got := show(s.Routes()); got != want {
		t.Fatalf("routes %s\nwant %s", got, want)
	}
	if st := s.Stats(); st.Updates != 6 || st.Ignored != 3 {
		t.Fatalf("stats %+v, want 6 updates, 3 ignored", st)
	}
	ss := s.Sessions()
	if ss[0].Traded != 2 || ss[0].Ignored != 2 || ss[1].Traded != 1 || ss[1].Ignored != 1 || ss[0].State != "established" {
		t.Fatalf("sessions %+v", ss)
	}
	select {
	case <-s.Updates():
	default:
		t.Fatal("no update signalled")
	}

	// One seller's path withdrawn: the other stays.
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 2, "", true, false)})
	want = "198.51.100.0/24 via 192.0.2.11 #7; 2001:db8:100::/48 via 2001:db8::b #7"
	if got := show(s.Routes()); got != want {
		t.Fatalf("after withdraw: %s\nwant %s", got, want)
	}
	// An implicit replace by the same ID moves the next hop.
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 1, "192.0.2.13", false, false, lc(1, ourAS), lc(2, 7))})
	if got := show(s.Routes()); !strings.HasPrefix(got, "198.51.100.0/24 via 192.0.2.13 #7;") {
		t.Fatalf("after replace: %s", got)
	}
}

func TestEndOfRIBMakesReady(t *testing.T) {
	s := newTest(t, 0)
	eor := func(peer netip.Addr) *api.Path {
		return &api.Path{NeighborIp: peer.String(), Family: family4}
	}
	s.onPaths([]*api.Path{eor(rs4)})
	select {
	case <-s.Ready():
		t.Fatal("ready after one session's End-of-RIB")
	default:
	}
	s.onPaths([]*api.Path{eor(rs6)})
	select {
	case <-s.Ready():
	default:
		t.Fatal("not ready after both sessions' End-of-RIB")
	}
}

// Two route servers (an arbiter pair), each with an IPv4 and an IPv6
// session: one End-of-RIB per family is all the routes, whichever route
// server sent it.
func TestEndOfRIBPerFamilyWithTwoRouteServers(t *testing.T) {
	s, err := New(Config{ASN: ourAS, RouterID: netip.MustParseAddr("192.0.2.10"), RouteServerASN: rsASN,
		RouteServers: []netip.Addr{rs4, rs6, rsB4, rsB6}})
	if err != nil {
		t.Fatal(err)
	}
	eor := func(peer netip.Addr) { s.onPaths([]*api.Path{{NeighborIp: peer.String(), Family: family4}}) }
	ready := func() bool {
		select {
		case <-s.Ready():
			return true
		default:
			return false
		}
	}
	eor(rs4)
	eor(rsB4)
	if ready() {
		t.Fatal("ready with IPv4 End-of-RIBs only")
	}
	eor(rsB6)
	if !ready() {
		t.Fatal("not ready after an End-of-RIB in each family")
	}
	eor(rs6) // the other route server's, later: no second close
}

// The same trade from both route servers is one next hop; when one route
// server goes (gracefully: stale; or for good: withdrawn) the other's
// path keeps the route, not stale.
func TestSameTradeFromTwoRouteServers(t *testing.T) {
	s, err := New(Config{ASN: ourAS, RouterID: netip.MustParseAddr("192.0.2.10"), RouteServerASN: rsASN,
		RouteServers: []netip.Addr{rs4, rsB4}, RestartTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range []netip.Addr{rs4, rsB4} {
		s.onPeer(peerEvent(rs, api.PeerState_ESTABLISHED))
		s.onPaths([]*api.Path{path(t, rs, "198.51.100.0/24", 1, "192.0.2.11", false, false, lc(1, ourAS), lc(2, 7))})
	}
	const want = "198.51.100.0/24 via 192.0.2.11 #7"
	if got := show(s.Routes()); got != want {
		t.Fatalf("from both: %q", got)
	}
	// One route server withdraws it (a Hard Reset drops its paths).
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 1, "", true, false)})
	if got := show(s.Routes()); got != want {
		t.Fatalf("one route server withdrew: %q, want %q", got, want)
	}
	// It is back, then goes away gracefully: its path is stale, the
	// other's is not.
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 2, "192.0.2.11", false, false, lc(1, ourAS), lc(2, 7))})
	s.onPeer(peerEvent(rs4, api.PeerState_ACTIVE))
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 2, "192.0.2.11", false, true, lc(1, ourAS), lc(2, 7))})
	if got := show(s.Routes()); got != want {
		t.Fatalf("one route server restarting: %q, want %q (not stale: the other carries it)", got, want)
	}
	// Both away: graceful restart keeps it, stale.
	s.onPeer(peerEvent(rsB4, api.PeerState_ACTIVE))
	s.onPaths([]*api.Path{path(t, rsB4, "198.51.100.0/24", 1, "192.0.2.11", false, true, lc(1, ourAS), lc(2, 7))})
	if got := show(s.Routes()); got != want+" stale" {
		t.Fatalf("both restarting: %q", got)
	}
	if ss := s.Sessions(); !ss[0].Restarting || !ss[1].Restarting || ss[0].Traded != 1 || ss[1].Traded != 1 {
		t.Fatalf("sessions %+v", ss)
	}
}

func TestGracefulRestartKeepsStaleRoutesForTheRestartTime(t *testing.T) {
	s := newTest(t, 2*time.Second)
	s.onPeer(peerEvent(rs4, api.PeerState_ESTABLISHED))
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 1, "192.0.2.11", false, false, lc(1, ourAS), lc(2, 7))})

	// The route server goes away gracefully: GoBGP re-reports the path
	// stale. It stays.
	s.onPeer(peerEvent(rs4, api.PeerState_ACTIVE))
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 1, "192.0.2.11", false, true, lc(1, ourAS), lc(2, 7))})
	if got := show(s.Routes()); got != "198.51.100.0/24 via 192.0.2.11 #7 stale" {
		t.Fatalf("while restarting: %q", got)
	}
	if ss := s.Sessions(); !ss[0].Restarting {
		t.Fatalf("session not shown restarting: %+v", ss[0])
	}
	// It is back and its End-of-RIB drops the stale path before the
	// seller's trade is re-announced: the route stays until the restart
	// time ends...
	s.onPeer(peerEvent(rs4, api.PeerState_ESTABLISHED))
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 1, "", true, false)})
	if got := show(s.Routes()); got != "198.51.100.0/24 via 192.0.2.11 #7 stale" {
		t.Fatalf("after End-of-RIB: %q", got)
	}
	// ...and the re-announced trade (new path ID) replaces it.
	s.onPaths([]*api.Path{path(t, rs4, "198.51.100.0/24", 5, "192.0.2.11", false, false, lc(1, ourAS), lc(2, 7))})
	if got := show(s.Routes()); got != "198.51.100.0/24 via 192.0.2.11 #7" {
		t.Fatalf("after re-announce: %q", got)
	}

	// Gone for longer than the restart time: the stale path goes when it
	// ends (the speaker's own timer), and a non-stale withdraw is at once.
	s.onPaths([]*api.Path{path(t, rs4, "203.0.113.0/24", 6, "192.0.2.12", false, false, lc(1, ourAS), lc(2, 8))})
	s.onPeer(peerEvent(rs4, api.PeerState_IDLE))
	s.onPaths([]*api.Path{
		path(t, rs4, "198.51.100.0/24", 5, "192.0.2.11", false, true, lc(1, ourAS), lc(2, 7)),
		path(t, rs4, "203.0.113.0/24", 6, "", true, false),
	})
	if got := show(s.Routes()); got != "198.51.100.0/24 via 192.0.2.11 #7 stale" {
		t.Fatalf("restarting again: %q", got)
	}
	held := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.paths)
	}
	start := clock.Now()
	for show(s.Routes()) != "" || held() != 0 {
		if clock.Since(start) > 5*time.Second {
			t.Fatalf("stale route still there 5s after a 2s restart time: %q, %d paths held", show(s.Routes()), held())
		}
		select {
		case <-s.Updates():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if d := clock.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("stale route dropped after %v, before the 2s restart time", d)
	}
}

func TestConfigErrors(t *testing.T) {
	good := Config{ASN: ourAS, RouterID: netip.MustParseAddr("192.0.2.10"), RouteServerASN: rsASN, RouteServers: []netip.Addr{rs4}}
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.ASN = 0 }, "own ASN 0"},
		{func(c *Config) { c.RouteServerASN = ourAS }, "is our own"},
		{func(c *Config) { c.RouterID = rs6 }, "router ID"},
		{func(c *Config) { c.RouteServers = nil }, "no route server"},
		{func(c *Config) { c.RouteServers = []netip.Addr{rs4, rs4} }, "listed twice"},
		{func(c *Config) { c.RouteServers = []netip.Addr{netip.MustParseAddr("fe80::1")} }, "link-local"},
		{func(c *Config) { c.RouteServers = []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.1")} }, "IPv4-mapped"},
		{func(c *Config) { c.RestartTime = 5000 * time.Second }, "restart time"},
		{func(c *Config) { c.HoldTime = time.Second }, "hold time"},
	} {
		cfg := good
		c.mod(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", err, c.want)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
}
