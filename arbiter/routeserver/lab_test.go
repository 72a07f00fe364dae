package routeserver

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// The route server in a network namespace against BIRD 2 and FRR in
// others, on one LAN (labnet).

var (
	rs4 = addr("192.0.2.1")
	rs6 = addr("2001:db8::1")
)

// rsLab is a lab with the route server on host "rs".
type rsLab struct {
	t       *testing.T
	lab     *labnet.Lab
	rsHost  *labnet.Host
	rs      *Server
	checker *fakeChecker
	members []Member
	// config, if set, adjusts the route server's configuration.
	config func(*Config)
}

func newRSLab(t *testing.T) *rsLab {
	t.Helper()
	lab := labtest.New(t, t.Name())
	l := &rsLab{t: t, lab: lab, checker: newFakeChecker()}
	l.rsHost = labtest.AddHost(t, lab, "rs", "192.0.2.1/24", "2001:db8::1/64")
	return l
}

// host adds a member host at 192.0.2.<n> and 2001:db8::<n>.
func (l *rsLab) host(name string, n int) *labnet.Host {
	return labtest.AddHost(l.t, l.lab, name, fmt.Sprintf("192.0.2.%d/24", n), fmt.Sprintf("2001:db8::%x/64", n))
}

// member registers a member router host with the route server (started
// or not).
func (l *rsLab) member(asn uint32, h *labnet.Host, m Member) {
	l.t.Helper()
	m.ASN = asn
	m.Addresses = []netip.Addr{h.Addr4(), h.Addr6()}
	l.members = append(l.members, m)
	if l.rs != nil {
		if err := l.rs.AddMember(context.Background(), m); err != nil {
			l.t.Fatal(err)
		}
	}
}

// startRS starts a route server whose GoBGP event loop (and so its
// listeners) lives in the rs namespace, with the members added so far.
func (l *rsLab) startRS(trades []Trade) {
	l.t.Helper()
	cfg := Config{
		ASN: rsASN, RouterID: rs4, ListenAddrs: []string{rs4.String(), rs6.String()},
		Log: testLog(l.t), Checker: l.checker, HoldTime: 9 * time.Second,
		Passive: true, RunIn: l.rsHost.Do,
	}
	if l.config != nil {
		l.config(&cfg)
	}
	rs, err := New(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(rs.Stop) // before the lab closes (cleanups run last first)
	ctx := context.Background()
	for _, m := range l.members {
		if err := rs.AddMember(ctx, m); err != nil {
			l.t.Fatal(err)
		}
	}
	if err := rs.SetActive(ctx, trades); err != nil {
		l.t.Fatal(err)
	}
	if err := rs.Start(ctx); err != nil {
		l.t.Fatal(err)
	}
	l.rs = rs
}

func (l *rsLab) bird(h *labnet.Host, asn uint32, addPath bool, static ...string) *birdRouter {
	return newBIRD(l.t, h, birdConfig{ASN: asn, RS4: rs4, RS6: rs6, Static: static, AddPathRx: addPath})
}

// routerHas waits until the router's routes for p have exactly the next
// hops nhs and returns them.
func routerHas(t *testing.T, name string, routes func() []ribRoute, p string, nhs ...netip.Addr) []ribRoute {
	t.Helper()
	var got []ribRoute
	want := slices.Clone(nhs)
	slices.SortFunc(want, netip.Addr.Compare)
	eventually(t, waitBGP, fmt.Sprintf("%s has %s via %v", name, p, nhs), func() string {
		got = routesFor(routes(), p)
		var have []netip.Addr
		for _, r := range got {
			have = append(have, r.NextHop)
		}
		slices.SortFunc(have, netip.Addr.Compare)
		if !slices.Equal(have, want) {
			return fmt.Sprintf("has %v", got)
		}
		return ""
	})
	return got
}

func TestLabImportChecksAndMaxPrefix(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	l := newRSLab(t)
	s1h, gh := l.host("seller", 11), l.host("greedy", 16)
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24", "2001:db8:100::/48")
	l.checker.invalid[netip.MustParsePrefix("198.51.101.0/24")] = true // an RPKI-invalid origin
	l.checker.register(64506, "203.0.113.0/24", "203.0.113.64/26", "203.0.113.128/26")
	l.member(64501, s1h, Member{MaxPrefixes: 100})
	l.member(64506, gh, Member{MaxPrefixes: 2})
	// A member announcing its own registered prefixes with the seller's
	// router as next hop.
	th := l.host("thief", 17)
	l.checker.register(64507, "198.51.110.0/24", "2001:db8:110::/48")
	l.member(64507, th, Member{})
	l.startRS(nil)
	var mu sync.Mutex
	announced := map[string]bool{}
	l.rs.OnRoute(func(e RouteEvent) {
		mu.Lock()
		announced[fmt.Sprintf("AS%d %v %v", e.ASN, e.Prefix, e.Accepted)] = !e.Withdrawn
		mu.Unlock()
	})
	l.bird(s1h, 64501, false, "198.51.100.0/24", "198.51.101.0/24", "203.0.113.0/24", "2001:db8:100::/48", "2001:db8:999::/48")
	greedy := l.bird(gh, 64506, false, "203.0.113.0/24", "203.0.113.64/26", "203.0.113.128/26")
	newBIRD(t, th, birdConfig{ASN: 64507, RS4: rs4, RS6: rs6, Static: []string{"198.51.110.0/24", "2001:db8:110::/48"},
		NextHop4: s1h.Addr4(), NextHop6: s1h.Addr6()})

	eventually(t, waitBGP, "seller's five routes checked", func() string {
		if st := l.rs.Stats(64501); st.Received != 5 {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	want := map[string]string{
		"198.51.100.0/24":   "",
		"198.51.101.0/24":   reasonRPKIInvalid,
		"203.0.113.0/24":    reasonNotRegistered,
		"2001:db8:100::/48": "",
		"2001:db8:999::/48": reasonNotRegistered,
	}
	for _, r := range l.rs.Received(64501) {
		w, ok := want[r.Prefix.String()]
		nh := s1h.Addr4()
		if r.Prefix.Addr().Is6() {
			nh = s1h.Addr6()
		}
		if !ok || r.Accepted != (w == "") || r.Reason != w || r.NextHop != nh || !slices.Equal(r.ASPath, []uint32{64501}) || r.OriginAS != 64501 {
			t.Errorf("received %+v, want reason %q next hop %v", r, w, nh)
		}
	}
	st := l.rs.Stats(64501)
	if st.Accepted != 2 || st.Reasons[reasonNotRegistered] != 2 || st.Reasons[reasonRPKIInvalid] != 1 {
		t.Errorf("stats %+v", st)
	}
	eventually(t, waitBGP, "the foreign next hops rejected", func() string {
		if st := l.rs.Stats(64507); st.Received != 2 || st.Reasons[ReasonNextHop] != 2 {
			return fmt.Sprintf("%+v %+v", st, l.rs.Received(64507))
		}
		return ""
	})
	for _, r := range l.rs.Received(64507) {
		nh := s1h.Addr4()
		if r.Prefix.Addr().Is6() {
			nh = s1h.Addr6()
		}
		if r.Accepted || r.Reason != ReasonNextHop || r.NextHop != nh {
			t.Errorf("received %+v, want rejected (%s) with next hop %v", r, ReasonNextHop, nh)
		}
	}
	mu.Lock()
	for _, k := range []string{"AS64501 198.51.100.0/24 true", "AS64501 2001:db8:100::/48 true", "AS64501 198.51.101.0/24 false", "AS64501 203.0.113.0/24 false"} {
		if !announced[k] {
			t.Errorf("OnRoute did not report %s (got %v)", k, announced)
		}
	}
	mu.Unlock()

	// The greedy member's IPv4 session announces 3 > 2 routes: CEASE.
	eventually(t, waitBGP, "max-prefix shutdown", func() string {
		ss, err := l.rs.Sessions(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, s := range ss {
			if s.Address == gh.Addr4() && s.State == "Idle (max prefix)" {
				return ""
			}
		}
		return fmt.Sprintf("%+v", ss)
	})
	eventually(t, waitBGP, "BIRD saw the CEASE", func() string {
		info := greedy.protocolInfo("rs4")
		if !strings.Contains(info, "Maximum number of prefixes reached") {
			return info
		}
		return ""
	})
	if n := l.rs.Stats(64506).Received; n != 0 {
		t.Errorf("%d routes kept from the greedy member", n)
	}
	var buf bytes.Buffer
	ss, _ := l.rs.Sessions(context.Background())
	FormatSessions(&buf, ss)
	FormatReceived(&buf, l.rs.Received(64501))
	t.Logf("route server view:\n%s", buf.String())
	if !strings.Contains(buf.String(), "Idle (max prefix)") {
		t.Errorf("session table lacks the max-prefix state")
	}
}

func TestLabTradeDelivery(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	needFRR(t)
	l := newRSLab(t)
	s1h, s2h, b1h, b2h, t3h := l.host("seller1", 11), l.host("seller2", 14), l.host("buyer1", 12), l.host("buyer2", 13), l.host("third", 15)
	l.checker.register(64501, "198.51.100.0/24", "2001:db8:100::/48")
	l.checker.register(64504, "198.51.100.0/24")
	l.member(64501, s1h, Member{})
	l.member(64504, s2h, Member{})
	l.member(64502, b1h, Member{AddPathReceive: true})
	l.member(64503, b2h, Member{AddPathReceive: true})
	l.member(64505, t3h, Member{AddPathReceive: true})
	l.startRS(nil)
	s1 := l.bird(s1h, 64501, false, "198.51.100.0/24", "2001:db8:100::/48")
	s2 := l.bird(s2h, 64504, false, "198.51.100.0/24")
	b1 := l.bird(b1h, 64502, true)
	t3 := l.bird(t3h, 64505, true)
	b2 := newFRR(t, b2h, 64503, rs4, rs6)
	waitEstablished(t, l.rs, waitBGP)
	waitAccepted(t, l.rs, 64501, 2)
	waitAccepted(t, l.rs, 64504, 1)
	ctx := context.Background()
	v4, v6 := "198.51.100.0/24", "2001:db8:100::/48"
	s1v4, s1v6, s2v4 := s1h.Addr4(), s1h.Addr6(), s2h.Addr4()

	// Trade 1: buyer1 (BIRD) buys both prefixes from seller1.
	tr1 := Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs(v4, v6), NextHop4: s1v4, NextHop6: s1v6}
	if err := l.rs.AnnounceTrade(ctx, tr1); err != nil {
		t.Fatal(err)
	}
	for _, r := range append(routerHas(t, "buyer1", b1.routes, v4, s1v4), routerHas(t, "buyer1", b1.routes, v6, s1v6)...) {
		if r.ASPath != "65000 64501" || !slices.Equal(r.Communities, []string{"65535:65281"}) ||
			!slices.Equal(r.Large, []string{"65000:1:64502", "65000:2:1"}) {
			t.Errorf("buyer1: %v", r)
		}
	}
	// Nobody else has it; members' own routes go nowhere.
	for name, rt := range map[string]func() []ribRoute{"third": t3.routes, "seller1": s1.routes, "seller2": s2.routes, "buyer2": b2.routes} {
		if got := rt(); len(got) != 0 {
			t.Errorf("%s has %v", name, got)
		}
	}
	if got := b1.routes(); len(got) != 2 {
		t.Errorf("buyer1 has more than its trade: %v", got)
	}

	// Trade 2: buyer2 (FRR) buys the same from seller1: a path of its own,
	// naming only buyer2 and its trade. FRR installs it in its kernel.
	tr2 := Trade{ID: 2, BuyerASN: 64503, SellerASN: 64501, Prefixes: pfxs(v4, v6), NextHop4: s1v4, NextHop6: s1v6}
	if err := l.rs.AnnounceTrade(ctx, tr2); err != nil {
		t.Fatal(err)
	}
	for _, r := range append(routerHas(t, "buyer2", b2.routes, v4, s1v4), routerHas(t, "buyer2", b2.routes, v6, s1v6)...) {
		if r.ASPath != "65000 64501" || !slices.Equal(r.Communities, []string{"65535:65281"}) ||
			!slices.Equal(r.Large, []string{"65000:1:64503", "65000:2:2"}) {
			t.Errorf("buyer2: %v", r)
		}
	}
	eventually(t, waitBGP, "buyer2's kernel routes", func() string {
		if g4, g6 := kernelRoute(t, b2h, v4), kernelRoute(t, b2h, v6); g4 != s1v4 || g6 != s1v6 {
			return fmt.Sprintf("gateways %v %v", g4, g6)
		}
		return ""
	})
	routerHas(t, "buyer1", b1.routes, v4, s1v4)

	// Trade 2 ends: gone from FRR (and its kernel), buyer1 keeps its own.
	if err := l.rs.WithdrawTrade(ctx, 2); err != nil {
		t.Fatal(err)
	}
	routerHas(t, "buyer2", b2.routes, v4)
	routerHas(t, "buyer2", b2.routes, v6)
	if g := kernelRoute(t, b2h, v4); g.IsValid() {
		t.Errorf("buyer2's kernel still routes %s via %v", v4, g)
	}
	routerHas(t, "buyer1", b1.routes, v4, s1v4)
	routerHas(t, "buyer1", b1.routes, v6, s1v6)

	// Trade 3: buyer1 buys the same IPv4 prefix from seller2 too: both
	// paths reach it (ADD-PATH).
	tr3 := Trade{ID: 3, BuyerASN: 64502, SellerASN: 64504, Prefixes: pfxs(v4), NextHop4: s2v4}
	if err := l.rs.AnnounceTrade(ctx, tr3); err != nil {
		t.Fatal(err)
	}
	routerHas(t, "buyer1", b1.routes, v4, s1v4, s2v4)
	if got := t3.routes(); len(got) != 0 {
		t.Errorf("third has %v", got)
	}

	// Seller1 withdraws its IPv6 prefix: that path goes, the rest stays.
	s1.announce(v4)
	routerHas(t, "buyer1", b1.routes, v6)
	routerHas(t, "buyer1", b1.routes, v4, s1v4, s2v4)
	s1.announce(v4, v6)
	routerHas(t, "buyer1", b1.routes, v6, s1v6)

	// Seller1's router stops: its paths go within seconds; seller2's
	// stays. It comes back: so do they.
	start := clock.Now()
	s1.stop()
	routerHas(t, "buyer1", b1.routes, v4, s2v4)
	routerHas(t, "buyer1", b1.routes, v6)
	t.Logf("paths of a stopped seller gone from the buyer in %v", clock.Since(start).Round(time.Millisecond))
	s1.start()
	routerHas(t, "buyer1", b1.routes, v4, s1v4, s2v4)
	routerHas(t, "buyer1", b1.routes, v6, s1v6)

	var buf bytes.Buffer
	FormatAnnounced(&buf, l.rs.Announced())
	sent, err := l.rs.Sent(ctx, 64502)
	if err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\nsent to AS64502:\n")
	FormatSent(&buf, sent)
	t.Logf("route server:\n%s", buf.String())
	if len(sent) != 3 {
		t.Errorf("Sent(64502) = %+v, want 3 paths", sent)
	}
}

// ADD-PATH off on every buyer (the shipped default): two sellers of one
// prefix, each buyer gets exactly its own seller's path, with only its own
// communities, in its RIB and its kernel; a buyer of both gets its oldest
// trade's. A seller's session drops: only its buyers lose it (or fall back
// to their other seller). A member that bought nothing receives no UPDATE.
func TestLabPerBuyerDelivery(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	needFRR(t)
	l := newRSLab(t)
	s1h, s2h, b1h, b2h, b3h, idh := l.host("seller1", 11), l.host("seller2", 14), l.host("buyer1", 12),
		l.host("buyer2", 13), l.host("buyer3", 15), l.host("idle", 16)
	v4, v6 := "198.51.100.0/24", "2001:db8:100::/48"
	l.checker.register(64501, v4, v6)
	l.checker.register(64504, v4, v6)
	for asn, h := range map[uint32]*labnet.Host{64501: s1h, 64504: s2h, 64502: b1h, 64503: b2h, 64505: b3h, 64506: idh} {
		l.member(asn, h, Member{})
	}
	l.startRS(nil)
	s1 := l.bird(s1h, 64501, false, v4, v6)
	l.bird(s2h, 64504, false, v4, v6)
	b1 := newFRR(t, b1h, 64502, rs4, rs6)
	b2 := newBIRD(t, b2h, birdConfig{ASN: 64503, RS4: rs4, RS6: rs6, Kernel: true})
	b3 := newBIRD(t, b3h, birdConfig{ASN: 64505, RS4: rs4, RS6: rs6, Kernel: true})
	idle := newBIRD(t, idh, birdConfig{ASN: 64506, RS4: rs4, RS6: rs6})
	waitEstablished(t, l.rs, waitBGP)
	waitAccepted(t, l.rs, 64501, 2)
	waitAccepted(t, l.rs, 64504, 2)
	ctx := context.Background()
	s1v4, s1v6, s2v4, s2v6 := s1h.Addr4(), s1h.Addr6(), s2h.Addr4(), s2h.Addr6()
	for _, tr := range []Trade{
		{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs(v4, v6), NextHop4: s1v4, NextHop6: s1v6},
		{ID: 2, BuyerASN: 64503, SellerASN: 64504, Prefixes: pfxs(v4, v6), NextHop4: s2v4, NextHop6: s2v6},
		{ID: 3, BuyerASN: 64505, SellerASN: 64501, Prefixes: pfxs(v4, v6), NextHop4: s1v4, NextHop6: s1v6},
		{ID: 4, BuyerASN: 64505, SellerASN: 64504, Prefixes: pfxs(v4, v6), NextHop4: s2v4, NextHop6: s2v6},
	} {
		if err := l.rs.AnnounceTrade(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	type view struct {
		name   string
		h      *labnet.Host
		routes func() []ribRoute
	}
	// has checks a buyer's RIB (only these next hops, only these large
	// communities) and its kernel.
	has := func(b view, gw4, gw6 netip.Addr, large ...string) {
		t.Helper()
		for _, c := range []struct {
			p  string
			gw netip.Addr
		}{{v4, gw4}, {v6, gw6}} {
			var rs []ribRoute
			if c.gw.IsValid() {
				rs = routerHas(t, b.name, b.routes, c.p, c.gw)
			} else {
				rs = routerHas(t, b.name, b.routes, c.p)
			}
			for _, r := range rs {
				if !slices.Equal(r.Large, large) {
					t.Errorf("%s: %v carries %v, want %v", b.name, c.p, r.Large, large)
				}
			}
			eventually(t, waitBGP, b.name+"'s kernel route for "+c.p, func() string {
				if g := kernelRoute(t, b.h, c.p); g != c.gw {
					return fmt.Sprintf("gateway %v, want %v", g, c.gw)
				}
				return ""
			})
		}
	}
	vb1, vb2, vb3 := view{"buyer1 (FRR)", b1h, b1.routes}, view{"buyer2 (BIRD)", b2h, b2.routes}, view{"buyer3 (BIRD)", b3h, b3.routes}
	has(vb1, s1v4, s1v6, "65000:1:64502", "65000:2:1")
	has(vb2, s2v4, s2v6, "65000:1:64503", "65000:2:2")
	has(vb3, s1v4, s1v6, "65000:1:64505", "65000:2:3")
	if got := idle.routes(); len(got) != 0 {
		t.Errorf("idle member has %v", got)
	}

	// Seller1's router stops: buyer1 loses the prefixes, buyer2 keeps its
	// own, buyer3 falls back to seller2. It comes back: so do they.
	s1.stop()
	has(vb1, netip.Addr{}, netip.Addr{})
	has(vb3, s2v4, s2v6, "65000:1:64505", "65000:2:4")
	has(vb2, s2v4, s2v6, "65000:1:64503", "65000:2:2")
	s1.start()
	has(vb1, s1v4, s1v6, "65000:1:64502", "65000:2:1")
	has(vb3, s1v4, s1v6, "65000:1:64505", "65000:2:3")
	for _, id := range []uint64{1, 2, 3, 4} {
		if err := l.rs.WithdrawTrade(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	has(vb2, netip.Addr{}, netip.Addr{})
	// Its own router's count: not one announcement or withdrawal (where a
	// buyer's counts some).
	if u, w := importCounts(b2.protocolInfo("rs4")); u == 0 || w == 0 {
		t.Errorf("buyer2's BIRD counted %d announcements and %d withdrawals, want some of each", u, w)
	}
	if info := idle.protocolInfo("rs4") + idle.protocolInfo("rs6"); !strings.Contains(info, "Import updates:") {
		t.Errorf("no route change stats from BIRD:\n%s", info)
	} else if u, w := importCounts(info); u != 0 || w != 0 {
		t.Errorf("the member that bought nothing received %d announcements and %d withdrawals:\n%s", u, w, info)
	}
}

func TestLabRestart(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	l := newRSLab(t)
	s1h, b1h, b2h := l.host("seller", 11), l.host("buyer1", 12), l.host("buyer2", 13)
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24", "2001:db8:100::/48")
	l.member(64501, s1h, Member{})
	l.member(64502, b1h, Member{})
	l.member(64503, b2h, Member{})
	v4, v4b, v6 := "198.51.100.0/24", "198.51.101.0/24", "2001:db8:100::/48"
	tr1 := Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs(v4, v6), NextHop4: s1h.Addr4(), NextHop6: s1h.Addr6()}
	tr2 := Trade{ID: 2, BuyerASN: 64503, SellerASN: 64501, Prefixes: pfxs(v4), NextHop4: s1h.Addr4()}
	tr3 := Trade{ID: 3, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs(v4b), NextHop4: s1h.Addr4()}
	l.startRS([]Trade{tr1, tr2, tr3})
	l.bird(s1h, 64501, false, v4, v4b, v6)
	b1 := l.bird(b1h, 64502, false)
	b2 := l.bird(b2h, 64503, false)
	routerHas(t, "buyer1", b1.routes, v4, s1h.Addr4())
	routerHas(t, "buyer1", b1.routes, v4b, s1h.Addr4())
	routerHas(t, "buyer1", b1.routes, v6, s1h.Addr6())
	routerHas(t, "buyer2", b2.routes, v4, s1h.Addr4())

	// The arbiter restarts; meanwhile trades 2 and 3 ended. A new route
	// server given the active trades delivers exactly those.
	l.rs.Stop()
	routerHas(t, "buyer1", b1.routes, v4)
	l.startRS([]Trade{tr1})
	routerHas(t, "buyer1", b1.routes, v4, s1h.Addr4())
	routerHas(t, "buyer1", b1.routes, v6, s1h.Addr6())
	waitEstablished(t, l.rs, waitBGP)
	if got := b1.routes(); len(got) != 2 {
		t.Errorf("buyer1 after the restart: %v", got)
	}
	if got := b2.routes(); len(got) != 0 {
		t.Errorf("buyer2 after the restart: %v", got)
	}
}

func TestLabMD5(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	if err := md5Supported(); err != nil {
		t.Skipf("the kernel refuses TCP MD5 signatures: %v", err)
	}
	l := newRSLab(t)
	h := l.host("member", 11)
	l.checker.register(64501, "198.51.100.0/24")
	l.member(64501, h, Member{Password: "s3cret pass"})
	l.startRS(nil)
	newBIRD(t, h, birdConfig{ASN: 64501, RS4: rs4, RS6: rs6, Static: []string{"198.51.100.0/24"}, Password: "s3cret pass"})
	waitEstablished(t, l.rs, waitBGP)
	eventually(t, waitBGP, "route over the signed session", func() string {
		if st := l.rs.Stats(64501); st.Accepted != 1 {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	// A router with the wrong password never gets a session.
	bad := l.host("intruder", 12)
	l.member(64502, bad, Member{Password: "other"})
	b := newBIRD(t, bad, birdConfig{ASN: 64502, RS4: rs4, Password: "wrong"})
	// A negative: watch it over several connect attempts (retry 1 s).
	for end := clock.Now().Add(3 * time.Second); clock.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if info := b.protocolInfo("rs4"); strings.Contains(info, "Established") {
			t.Fatalf("session with a wrong MD5 password came up:\n%s", info)
		}
	}
}
