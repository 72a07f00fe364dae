package routeserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the route server against in-process GoBGP speakers on
// loopback addresses: no root needed. lab_test.go runs it against BIRD
// and FRR in network namespaces.

const waitBGP = 20 * time.Second

// loopLab is a route server on 127.0.0.1 and member speakers on
// 127.0.0.x.
type loopLab struct {
	t       *testing.T
	rs      *Server
	port    int
	checker *fakeChecker
	members map[uint32]Member
}

func newLoopLab(t *testing.T) *loopLab {
	t.Helper()
	l := &loopLab{t: t, port: freePort(t), checker: newFakeChecker(), members: map[uint32]Member{}}
	l.rs = l.newServer()
	if err := l.rs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *loopLab) newServer() *Server {
	rs, err := New(Config{
		ASN: rsASN, RouterID: addr("127.0.0.1"), ListenAddrs: []string{"127.0.0.1"}, ListenPort: int32(l.port),
		Log: testLog(l.t), Checker: l.checker, HoldTime: 9 * time.Second, Passive: true,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(rs.Stop)
	return rs
}

// member adds a member with one loopback router and starts its speaker.
func (l *loopLab) member(asn uint32, host string, m Member) *speaker {
	l.t.Helper()
	a := addr(host)
	m.ASN = asn
	m.Addresses = []netip.Addr{a}
	if err := l.rs.AddMember(context.Background(), m); err != nil {
		l.t.Fatal(err)
	}
	l.members[asn] = m
	return newSpeaker(l.t, asn, a, addr("127.0.0.1"), l.port, m.AddPathReceive)
}

func (l *loopLab) waitAccepted(asn uint32, n int) {
	l.t.Helper()
	waitAccepted(l.t, l.rs, asn, n)
}

// waitAccepted waits until rs has accepted n routes from asn.
func waitAccepted(t *testing.T, rs *Server, asn uint32, n int) {
	t.Helper()
	eventually(t, waitBGP, fmt.Sprintf("AS%d routes checked", asn), func() string {
		if st := rs.Stats(asn); st.Accepted != n {
			return fmt.Sprintf("stats %+v, want %d accepted", st, n)
		}
		return ""
	})
}

// hasOnly waits until sp's routes for p are exactly the next hops nhs.
func hasOnly(t *testing.T, sp *speaker, p string, nhs ...string) []ribRoute {
	t.Helper()
	var got []ribRoute
	eventually(t, waitBGP, fmt.Sprintf("AS%d has %s via %v", sp.asn, p, nhs), func() string {
		got = routesFor(sp.rib(), p)
		var have []string
		for _, r := range got {
			have = append(have, r.NextHop.String())
		}
		slices.Sort(have)
		want := slices.Sorted(slices.Values(nhs))
		if !slices.Equal(have, want) {
			return fmt.Sprintf("next hops %v", have)
		}
		return ""
	})
	return got
}

func TestReceivedRoutesAreCheckedAndRecorded(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	var mu sync.Mutex
	var events []RouteEvent
	l.rs.OnRoute(func(e RouteEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24")
	l.checker.invalid[netip.MustParsePrefix("198.51.101.0/24")] = true
	seller := l.member(64501, "127.0.0.2", Member{})
	l.member(64502, "127.0.0.3", Member{}) // another member's router
	waitEstablished(t, l.rs, waitBGP)

	seller.announce("198.51.100.0/24", netip.Addr{}, 64510)
	seller.announce("198.51.101.0/24", netip.Addr{})
	seller.announce("203.0.113.0/24", netip.Addr{})
	// Its own registered prefix, with the other member's router as next hop.
	seller.announce("198.51.102.0/24", addr("127.0.0.3"))
	eventually(t, waitBGP, "four routes received", func() string {
		if n := len(l.rs.Received(64501)); n != 4 {
			return fmt.Sprintf("%d received", n)
		}
		return ""
	})
	foreign := l.rs.Received(64501)[2]
	if foreign.Prefix.String() != "198.51.102.0/24" || foreign.Accepted || foreign.Reason != ReasonNextHop || foreign.NextHop != addr("127.0.0.3") {
		t.Errorf("route with another member's next hop: %+v, want rejected: %s", foreign, ReasonNextHop)
	}
	if st := l.rs.Stats(64501); st.Reasons[ReasonNextHop] != 1 {
		t.Errorf("stats %+v: want one %q", st, ReasonNextHop)
	}
	seller.withdraw("198.51.102.0/24")
	eventually(t, waitBGP, "foreign next hop withdrawn", func() string {
		if n := len(l.rs.Received(64501)); n != 3 {
			return fmt.Sprintf("%d received", n)
		}
		return ""
	})
	got := l.rs.Received(64501)
	want := []struct {
		p        string
		ok       bool
		reason   string
		path     []uint32
		originAS uint32
	}{
		{"198.51.100.0/24", true, "", []uint32{64501, 64510}, 64510},
		{"198.51.101.0/24", false, reasonRPKIInvalid, []uint32{64501}, 64501},
		{"203.0.113.0/24", false, reasonNotRegistered, []uint32{64501}, 64501},
	}
	for i, w := range want {
		r := got[i]
		if r.Prefix.String() != w.p || r.Accepted != w.ok || r.Reason != w.reason || !slices.Equal(r.ASPath, w.path) ||
			r.OriginAS != w.originAS || r.NextHop != addr("127.0.0.2") || r.Neighbor != addr("127.0.0.2") || r.Origin != "i" {
			t.Errorf("received[%d] = %+v, want %+v", i, r, w)
		}
	}
	st := l.rs.Stats(64501)
	if st.Received != 3 || st.Accepted != 1 || st.Rejected != 2 || st.Reasons[reasonNotRegistered] != 1 || st.Reasons[reasonRPKIInvalid] != 1 {
		t.Errorf("stats %+v", st)
	}

	// Registry change: the unregistered prefix gets registered.
	l.checker.register(64501, "203.0.113.0/24")
	if err := l.rs.Recheck(context.Background(), 64501); err != nil {
		t.Fatal(err)
	}
	if st := l.rs.Stats(64501); st.Accepted != 2 {
		t.Errorf("after recheck: %+v", st)
	}
	seller.withdraw("198.51.100.0/24")
	eventually(t, waitBGP, "withdrawal recorded", func() string {
		if n := len(l.rs.Received(64501)); n != 2 {
			return fmt.Sprintf("%d received", n)
		}
		return ""
	})

	mu.Lock()
	defer mu.Unlock()
	var lines []string
	for _, e := range events {
		lines = append(lines, fmt.Sprintf("%v accepted=%v withdrawn=%v %s", e.Prefix, e.Accepted, e.Withdrawn, e.Reason))
	}
	slices.Sort(lines[:4]) // one UPDATE each, but keep the test independent of batching
	wantLines := []string{
		"198.51.100.0/24 accepted=true withdrawn=false ",
		"198.51.101.0/24 accepted=false withdrawn=false " + reasonRPKIInvalid,
		"198.51.102.0/24 accepted=false withdrawn=false " + ReasonNextHop,
		"203.0.113.0/24 accepted=false withdrawn=false " + reasonNotRegistered,
		"198.51.102.0/24 accepted=false withdrawn=true " + ReasonNextHop,
		"203.0.113.0/24 accepted=true withdrawn=false ",
		"198.51.100.0/24 accepted=true withdrawn=true ",
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("route events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}

	var buf bytes.Buffer
	if err := FormatReceived(&buf, l.rs.Received(64501)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "REJECTED: "+reasonRPKIInvalid) || !strings.Contains(buf.String(), "203.0.113.0/24") {
		t.Errorf("FormatReceived:\n%s", buf.String())
	}
	t.Logf("received:\n%s", buf.String())
}

func TestBuiltInChecks(t *testing.T) {
	t.Parallel()
	c := newFakeChecker()
	c.register(64501, "198.51.100.0/24")
	rs, err := New(Config{ASN: rsASN, RouterID: addr("192.0.2.1"), Checker: c})
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	p6 := netip.MustParsePrefix("2001:db8:100::/48")
	c.register(64501, p6.String())
	// The member's routers; 192.0.2.9 and 2001:db8::9 are another member's.
	own := []netip.Addr{addr("192.0.2.2"), addr("2001:db8::2"), addr("192.0.2.3")}
	long := slices.Repeat([]uint32{64501}, MaxASPathLen+1)
	for _, tc := range []struct {
		r    ReceivedRoute
		ok   bool
		want string
	}{
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: []uint32{64501, 64510}, OriginAS: 64510, NextHop: addr("192.0.2.2")}, true, ""},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: []uint32{64501}, OriginAS: 64501, NextHop: addr("192.0.2.3")}, true, ""},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: long[1:], OriginAS: 64501, NextHop: addr("192.0.2.3")}, true, ""},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: long, OriginAS: 64501, NextHop: addr("192.0.2.3")}, false, ReasonASPathTooLong},
		{ReceivedRoute{ASN: 64501, Prefix: p6, ASPath: []uint32{64501}, OriginAS: 64501, NextHop: addr("2001:db8::2")}, true, ""},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: []uint32{64999, 64501}, NextHop: addr("192.0.2.2")}, false, ReasonFirstAS},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: []uint32{64501, 64510, 64511}, asSet: true, NextHop: addr("192.0.2.2")}, false, ReasonASSet},
		{ReceivedRoute{ASN: 64501, Prefix: p, NextHop: addr("192.0.2.2")}, false, ReasonNoPath},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: []uint32{64501}, OriginAS: 64501, NextHop: addr("192.0.2.9")}, false, ReasonNextHop},
		{ReceivedRoute{ASN: 64501, Prefix: p6, ASPath: []uint32{64501}, OriginAS: 64501, NextHop: addr("2001:db8::9")}, false, ReasonNextHop},
		{ReceivedRoute{ASN: 64501, Prefix: p6, ASPath: []uint32{64501}, OriginAS: 64501, NextHop: addr("fe80::2")}, false, ReasonNextHop},
		{ReceivedRoute{ASN: 64501, Prefix: p, ASPath: []uint32{64501}, OriginAS: 64501}, false, ReasonNextHop},
		{ReceivedRoute{ASN: 64502, Prefix: p, ASPath: []uint32{64502}, NextHop: addr("192.0.2.2")}, false, reasonNotRegistered},
	} {
		r := tc.r
		rs.judge(&r, own)
		if r.Accepted != tc.ok || r.Reason != tc.want {
			t.Errorf("%v: accepted=%v reason=%q, want %v %q", tc.r.ASPath, r.Accepted, r.Reason, tc.ok, tc.want)
		}
	}
	if c.calls != 5 {
		t.Errorf("Checker called %d times, want 5 (only for routes passing the built-in checks)", c.calls)
	}
}

func TestTradeDelivery(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24", "198.51.100.0/22")
	l.checker.register(64504, "198.51.100.0/24")
	seller := l.member(64501, "127.0.0.2", Member{})
	buyer := l.member(64502, "127.0.0.3", Member{})
	third := l.member(64503, "127.0.0.4", Member{AddPathReceive: true})
	seller2 := l.member(64504, "127.0.0.5", Member{})
	waitEstablished(t, l.rs, waitBGP)
	ctx := context.Background()

	seller.announce("198.51.100.0/24", netip.Addr{}, 64510)
	seller.announce("203.0.113.0/24", netip.Addr{}) // not registered
	l.waitAccepted(64501, 1)

	trade := Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"), NextHop4: addr("127.0.0.2")}
	if err := l.rs.AnnounceTrade(ctx, trade); err != nil {
		t.Fatal(err)
	}
	got := hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")[0]
	if got.ASPath != "65000 64501 64510" || !slices.Equal(got.Communities, []string{"65535:65281"}) ||
		!slices.Equal(got.Large, []string{"65000:1:64502", "65000:2:1"}) {
		t.Errorf("buyer's route: %v", got)
	}
	if rib := third.rib(); len(rib) != 0 {
		t.Errorf("third member got %v", rib)
	}
	if rib := seller.rib(); len(rib) != 0 {
		t.Errorf("seller got %v", rib)
	}
	if rib := buyer.rib(); len(rib) != 1 {
		t.Errorf("buyer got more than the trade: %v", rib)
	}

	// A trade for a prefix the seller does not (validly) announce is
	// registered but not delivered.
	l.checker.register(64501, "203.0.113.0/24")
	bad := Trade{ID: 2, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("203.0.113.0/24"), NextHop4: addr("127.0.0.2")}
	l.checker.unregister(64501, "203.0.113.0/24")
	if err := l.rs.AnnounceTrade(ctx, bad); err != nil {
		t.Fatal(err)
	}
	// ...until a recheck accepts the route.
	l.checker.register(64501, "203.0.113.0/24")
	if err := l.rs.Recheck(ctx, 64501); err != nil {
		t.Fatal(err)
	}
	hasOnly(t, buyer, "203.0.113.0/24", "127.0.0.2")
	l.checker.unregister(64501, "203.0.113.0/24")
	if err := l.rs.Recheck(ctx, 64501); err != nil {
		t.Fatal(err)
	}
	hasOnly(t, buyer, "203.0.113.0/24")
	if err := l.rs.WithdrawTrade(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// The seller withdraws its route: the trade goes; it comes back with
	// the route. A covering route is enough.
	seller.withdraw("198.51.100.0/24")
	hasOnly(t, buyer, "198.51.100.0/24")
	seller.announce("198.51.100.0/22", netip.Addr{}, 64511)
	got = hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")[0]
	if got.ASPath != "65000 64501 64511" {
		t.Errorf("path through the covering route: %v", got)
	}
	seller.announce("198.51.100.0/24", netip.Addr{}, 64510)
	eventually(t, waitBGP, "AS_PATH follows the most specific route", func() string {
		if r := routesFor(buyer.rib(), "198.51.100.0/24"); len(r) != 1 || r[0].ASPath != "65000 64501 64510" {
			return fmt.Sprint(r)
		}
		return ""
	})

	// A second buyer of the same path: both have it; the first one's
	// trade ends: it loses it, the other keeps it without a flap.
	trade3 := Trade{ID: 3, BuyerASN: 64503, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"), NextHop4: addr("127.0.0.2")}
	if err := l.rs.AnnounceTrade(ctx, trade3); err != nil {
		t.Fatal(err)
	}
	hasOnly(t, third, "198.51.100.0/24", "127.0.0.2")
	// Each buyer's path names only that buyer and its trade.
	got = hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")[0]
	if !slices.Equal(got.Large, []string{"65000:1:64502", "65000:2:1"}) {
		t.Errorf("first buyer's path: %v", got)
	}
	got = hasOnly(t, third, "198.51.100.0/24", "127.0.0.2")[0]
	if !slices.Equal(got.Large, []string{"65000:1:64503", "65000:2:3"}) {
		t.Errorf("second buyer's path: %v", got)
	}
	flaps := third.watchWithdrawals()
	if err := l.rs.WithdrawTrade(ctx, 1); err != nil {
		t.Fatal(err)
	}
	hasOnly(t, buyer, "198.51.100.0/24")
	eventually(t, waitBGP, "the remaining buyer's path replaced", func() string {
		r := routesFor(third.rib(), "198.51.100.0/24")
		if len(r) != 1 || !slices.Equal(r[0].Large, []string{"65000:1:64503", "65000:2:3"}) {
			return fmt.Sprint(r)
		}
		return ""
	})
	if n := flaps(); n != 0 {
		t.Errorf("the remaining ADD-PATH buyer lost the prefix %d times while the other buyer was removed", n)
	}

	// Two sellers of one prefix to one ADD-PATH buyer: both paths.
	seller2.announce("198.51.100.0/24", netip.Addr{})
	l.waitAccepted(64504, 1)
	trade4 := Trade{ID: 4, BuyerASN: 64503, SellerASN: 64504, Prefixes: pfxs("198.51.100.0/24"), NextHop4: addr("127.0.0.5")}
	if err := l.rs.AnnounceTrade(ctx, trade4); err != nil {
		t.Fatal(err)
	}
	hasOnly(t, third, "198.51.100.0/24", "127.0.0.2", "127.0.0.5")

	// The seller's session goes down: its path goes at once, the other
	// seller's stays.
	seller.down()
	hasOnly(t, third, "198.51.100.0/24", "127.0.0.5")
	if len(l.rs.Received(64501)) != 0 {
		t.Errorf("routes of a down session kept: %v", l.rs.Received(64501))
	}

	var buf bytes.Buffer
	FormatAnnounced(&buf, l.rs.Announced())
	t.Logf("announced:\n%s", buf.String())
	sent, err := l.rs.Sent(ctx, 64503)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	FormatSent(&buf, sent)
	t.Logf("sent to AS64503:\n%s", buf.String())
	if len(sent) != 1 || sent[0].NextHop != addr("127.0.0.5") || !slices.Equal(sent[0].ASPath, []uint32{65000, 64504}) ||
		!slices.Contains(sent[0].LargeCommunities, "65000:1:64503") || !slices.Contains(sent[0].Communities, "65535:65281") {
		t.Errorf("Sent(64503) = %+v", sent)
	}
	ss, err := l.rs.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	FormatSessions(&buf, ss)
	t.Logf("sessions:\n%s", buf.String())
	for _, s := range ss {
		if s.ASN == 64503 && s.Sent != 1 || s.ASN == 64504 && (s.Received != 1 || s.Accepted != 1 || s.Sent != 0) || s.ASN == 64501 && s.Established() {
			t.Errorf("session %+v", s)
		}
	}

	// The seller comes back (and announces again): so does its path.
	seller.up()
	hasOnly(t, third, "198.51.100.0/24", "127.0.0.2", "127.0.0.5")
}

// Two sellers of one prefix, buyers without ADD-PATH: each buyer gets
// exactly its own seller's path, with only its own communities, whatever
// the other buyer bought; a seller's session flap takes only its own
// buyer's route, and gives it back. A member that bought nothing is sent
// no UPDATE at all.
func TestPerBuyerDeliveryWithoutAddPath(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24")
	l.checker.register(64504, "198.51.100.0/24")
	s1 := l.member(64501, "127.0.0.2", Member{})
	b1 := l.member(64502, "127.0.0.3", Member{})
	b2 := l.member(64503, "127.0.0.4", Member{})
	s2 := l.member(64504, "127.0.0.5", Member{})
	b3 := l.member(64505, "127.0.0.6", Member{})
	idle := l.member(64506, "127.0.0.7", Member{})
	waitEstablished(t, l.rs, waitBGP)
	ctx := context.Background()
	s1.announce("198.51.100.0/24", netip.Addr{})
	s2.announce("198.51.100.0/24", netip.Addr{})
	l.waitAccepted(64501, 1)
	l.waitAccepted(64504, 1)
	quiet := idle.updates()

	nh1, nh2 := addr("127.0.0.2"), addr("127.0.0.5")
	for _, tr := range []Trade{
		{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"), NextHop4: nh1},
		{ID: 2, BuyerASN: 64503, SellerASN: 64504, Prefixes: pfxs("198.51.100.0/24"), NextHop4: nh2},
		{ID: 3, BuyerASN: 64505, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"), NextHop4: nh1},
		{ID: 4, BuyerASN: 64505, SellerASN: 64504, Prefixes: pfxs("198.51.100.0/24"), NextHop4: nh2},
	} {
		if err := l.rs.AnnounceTrade(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	got := hasOnly(t, b1, "198.51.100.0/24", "127.0.0.2")[0]
	if !slices.Equal(got.Large, []string{"65000:1:64502", "65000:2:1"}) {
		t.Errorf("B1's path carries %v, want only its own buyer and trade communities", got.Large)
	}
	got = hasOnly(t, b2, "198.51.100.0/24", "127.0.0.5")[0]
	if !slices.Equal(got.Large, []string{"65000:1:64503", "65000:2:2"}) {
		t.Errorf("B2's path carries %v, want only its own buyer and trade communities", got.Large)
	}
	// B3 bought from both and has no ADD-PATH: one of its own sellers'.
	got = hasOnly(t, b3, "198.51.100.0/24", "127.0.0.2")[0]
	if !slices.Contains(got.Large, "65000:1:64505") || slices.Contains(got.Large, "65000:1:64502") {
		t.Errorf("B3's path carries %v", got.Large)
	}

	// S1's session drops: B1 loses the route, B2 keeps its own, B3 falls
	// back to S2. S1 comes back: so do the paths.
	s1.down()
	hasOnly(t, b1, "198.51.100.0/24")
	hasOnly(t, b3, "198.51.100.0/24", "127.0.0.5")
	hasOnly(t, b2, "198.51.100.0/24", "127.0.0.5")
	s1.up()
	s1.announce("198.51.100.0/24", netip.Addr{})
	hasOnly(t, b1, "198.51.100.0/24", "127.0.0.2")
	hasOnly(t, b3, "198.51.100.0/24", "127.0.0.2")
	for _, id := range []uint64{1, 2, 3, 4} {
		if err := l.rs.WithdrawTrade(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	hasOnly(t, b1, "198.51.100.0/24")
	hasOnly(t, b2, "198.51.100.0/24")
	hasOnly(t, b3, "198.51.100.0/24")
	if n := idle.updates(); n != quiet {
		t.Errorf("a member that bought nothing was sent %d UPDATEs while others' trades came and went", n-quiet)
	}
}

// A trade's delivery on its buyer's session, with the reason and whom a
// gap falls on, follows what really reaches the buyer: the seller's route
// withdrawn, rejected, its session down, the buyer's own session down.
func TestDeliveryStateFollowsThePath(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	var mu sync.Mutex
	var changes []DeliveryChange
	l.rs.OnDelivery(func(cs []DeliveryChange) {
		mu.Lock()
		changes = append(changes, cs...)
		mu.Unlock()
	})
	l.checker.register(64501, "198.51.100.0/24")
	seller := l.member(64501, "127.0.0.2", Member{})
	buyer := l.member(64502, "127.0.0.3", Member{})
	waitEstablished(t, l.rs, waitBGP)
	ctx := context.Background()
	seller.announce("198.51.100.0/24", netip.Addr{})
	l.waitAccepted(64501, 1)
	if err := l.rs.AnnounceTrade(ctx, Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"), NextHop4: addr("127.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	state := func(want Delivery) {
		t.Helper()
		want.TradeID, want.BuyerASN, want.Session = 1, 64502, addr("127.0.0.3")
		eventually(t, waitBGP, fmt.Sprintf("delivery %+v", want), func() string {
			if ds := l.rs.Deliveries(); len(ds) != 1 || ds[0] != want {
				return fmt.Sprintf("%+v", ds)
			}
			return ""
		})
	}
	state(Delivery{Delivered: true})
	hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")

	seller.withdraw("198.51.100.0/24")
	state(Delivery{Reason: ReasonUnannounced, Cause: CauseSeller})
	seller.announce("198.51.100.0/24", netip.Addr{})
	state(Delivery{Delivered: true})
	l.checker.unregister(64501, "198.51.100.0/24")
	if err := l.rs.Recheck(ctx, 64501); err != nil {
		t.Fatal(err)
	}
	state(Delivery{Reason: ReasonRejected + ": " + reasonNotRegistered, Cause: CauseSeller})
	l.checker.register(64501, "198.51.100.0/24")
	if err := l.rs.Recheck(ctx, 64501); err != nil {
		t.Fatal(err)
	}
	state(Delivery{Delivered: true})
	seller.down()
	state(Delivery{Reason: ReasonSellerDown, Cause: CauseSeller})
	// The buyer's own session down decides, whatever the seller's state.
	buyer.down()
	state(Delivery{Reason: ReasonBuyerDown, Cause: CauseBuyer})
	seller.up()
	seller.announce("198.51.100.0/24", netip.Addr{})
	buyer.up()
	state(Delivery{Delivered: true})
	hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")
	if err := l.rs.WithdrawTrade(ctx, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitBGP, "no delivery left", func() string {
		if ds := l.rs.Deliveries(); len(ds) != 0 {
			return fmt.Sprintf("%+v", ds)
		}
		return ""
	})

	// Reported in order, each change once, the last one the end.
	mu.Lock()
	defer mu.Unlock()
	var seen []string
	for i, c := range changes {
		if i > 0 && c.At.Before(changes[i-1].At) {
			t.Errorf("change %d at %v before the one before it (%v)", i, c.At, changes[i-1].At)
		}
		s := "delivered"
		switch {
		case c.Ended:
			s = "ended"
		case !c.Delivered:
			s = c.Reason
		}
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
	}
	want := []string{"delivered", ReasonUnannounced, "delivered", ReasonRejected + ": " + reasonNotRegistered, "delivered",
		ReasonSellerDown, ReasonBuyerDown, "delivered", "ended"}
	// Between the states the test waited for, transient ones may show up
	// (the route being announced again, the seller up before the buyer).
	i := 0
	for _, s := range seen {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Errorf("reported %q, want in it, in order, %q", seen, want)
	}
}

// A seller with two routers keeps a trade delivered while either is up and
// announcing: the path moves to the standby router when the preferred one
// goes, and back when it returns; the delivery record sees no gap.
func TestSellerRouterFailover(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24")
	r1, r2 := addr("127.0.0.2"), addr("127.0.0.8")
	if err := l.rs.AddMember(context.Background(), Member{ASN: 64501, Addresses: []netip.Addr{r1, r2}}); err != nil {
		t.Fatal(err)
	}
	s1 := newSpeaker(t, 64501, r1, addr("127.0.0.1"), l.port, false)
	s2 := newSpeaker(t, 64501, r2, addr("127.0.0.1"), l.port, false)
	buyer := l.member(64502, "127.0.0.3", Member{})
	waitEstablished(t, l.rs, waitBGP)
	ctx := context.Background()
	s1.announce("198.51.100.0/24", netip.Addr{})
	s2.announce("198.51.100.0/24", netip.Addr{})
	l.waitAccepted(64501, 2)
	var mu sync.Mutex
	var gaps []DeliveryChange
	l.rs.OnDelivery(func(cs []DeliveryChange) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			if !c.Delivered && !c.Ended {
				gaps = append(gaps, c)
			}
		}
	})
	if err := l.rs.AnnounceTrade(ctx, Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"),
		NextHop4: r1, Standby: []netip.Addr{r2}}); err != nil {
		t.Fatal(err)
	}
	hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")
	s1.down()
	hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.8")
	s1.up()
	s1.announce("198.51.100.0/24", netip.Addr{})
	hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")
	if ds := l.rs.Deliveries(); len(ds) != 1 || !ds[0].Delivered {
		t.Errorf("deliveries %+v", ds)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) != 0 {
		t.Errorf("the delivery record saw gaps while a seller router could deliver: %+v", gaps)
	}
	// Both down: a gap, the seller's.
	s1.down()
	s2.down()
	eventually(t, waitBGP, "a seller gap once both routers are down", func() string {
		if ds := l.rs.Deliveries(); len(ds) != 1 || ds[0].Delivered || ds[0].Reason != ReasonSellerDown {
			return fmt.Sprintf("%+v", ds)
		}
		return ""
	})
}

func TestMaxPrefix(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24")
	seller := l.member(64501, "127.0.0.2", Member{MaxPrefixes: 2})
	waitEstablished(t, l.rs, waitBGP)
	seller.announce("198.51.100.0/24", netip.Addr{})
	seller.announce("198.51.101.0/24", netip.Addr{})
	l.waitAccepted(64501, 2)
	seller.announce("198.51.102.0/24", netip.Addr{})
	eventually(t, waitBGP, "session shut by max-prefix", func() string {
		ss, _ := l.rs.Sessions(context.Background())
		if len(ss) != 1 || ss[0].State != "Idle (max prefix)" {
			return fmt.Sprintf("%+v", ss)
		}
		return ""
	})
	// The session's routes go with it, through the same watch as any
	// peer-down, so a moment after the state says Idle.
	eventually(t, waitBGP, "routes of a session closed by max-prefix dropped", func() string {
		if n := len(l.rs.Received(64501)); n != 0 {
			return fmt.Sprintf("%d routes kept", n)
		}
		return ""
	})
	// Stays down until the operator resets it, then comes back.
	seller.withdraw("198.51.102.0/24")
	if err := l.rs.ResetMember(context.Background(), 64501); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, l.rs, waitBGP)
	l.waitAccepted(64501, 2)
}

func TestRestartReannouncesActiveTrades(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24")
	seller := l.member(64501, "127.0.0.2", Member{})
	buyer := l.member(64502, "127.0.0.3", Member{})
	waitEstablished(t, l.rs, waitBGP)
	for _, p := range []string{"198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"} {
		seller.announce(p, netip.Addr{})
	}
	l.waitAccepted(64501, 3)
	ctx := context.Background()
	active := []Trade{
		{ID: 10, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24"), NextHop4: addr("127.0.0.2")},
		{ID: 11, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.101.0/24"), NextHop4: addr("127.0.0.2")},
	}
	ended := Trade{ID: 12, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.102.0/24"), NextHop4: addr("127.0.0.2")}
	if err := l.rs.SetActive(ctx, append(slices.Clone(active), ended)); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitBGP, "three trades at the buyer", func() string {
		if r := buyer.rib(); len(r) != 3 {
			return fmt.Sprint(r)
		}
		return ""
	})

	// The arbiter restarts; meanwhile trade 12 ended.
	l.rs.Stop()
	eventually(t, waitBGP, "buyer lost the routes with the session", func() string {
		if r := buyer.rib(); len(r) != 0 {
			return fmt.Sprint(r)
		}
		return ""
	})
	l.rs = l.newServer()
	for _, m := range l.members {
		if err := l.rs.AddMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.rs.SetActive(ctx, active); err != nil {
		t.Fatal(err)
	}
	if err := l.rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*waitBGP, "exactly the active trades at the buyer", func() string {
		r := buyer.rib()
		if len(r) != 2 || r[0].Prefix.String() != "198.51.100.0/24" || r[1].Prefix.String() != "198.51.101.0/24" {
			return fmt.Sprint(r)
		}
		return ""
	})
	_ = seller
}

func TestValidation(t *testing.T) {
	t.Parallel()
	c := newFakeChecker()
	if _, err := New(Config{ASN: 0, RouterID: addr("192.0.2.1"), Checker: c}); err == nil || !strings.Contains(err.Error(), "ASN 0") {
		t.Errorf("ASN 0: %v", err)
	}
	if _, err := New(Config{ASN: rsASN, RouterID: addr("2001:db8::1"), Checker: c}); err == nil || !strings.Contains(err.Error(), "router ID") {
		t.Errorf("v6 router ID: %v", err)
	}
	if _, err := New(Config{ASN: rsASN, RouterID: addr("192.0.2.1")}); err == nil || !strings.Contains(err.Error(), "Checker") {
		t.Errorf("no checker: %v", err)
	}
	if _, err := New(Config{ASN: rsASN, RouterID: addr("192.0.2.1"), Checker: c, FlapDamp: -time.Second}); err == nil || !strings.Contains(err.Error(), "damping -1s") {
		t.Errorf("negative flap damping: %v", err)
	}
	rs, err := New(Config{ASN: rsASN, RouterID: addr("192.0.2.1"), Checker: c, ListenPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		m    Member
		want string
	}{
		{Member{ASN: rsASN, Addresses: []netip.Addr{addr("192.0.2.2")}}, "same as the route server"},
		{Member{ASN: 64501}, "no router addresses"},
		{Member{ASN: 64501, Addresses: []netip.Addr{addr("::ffff:192.0.2.2")}}, "IPv4-mapped"},
		{Member{ASN: 64501, Addresses: []netip.Addr{addr("fe80::1%eth0")}}, "zones"},
		{Member{ASN: 64501, Addresses: []netip.Addr{addr("192.0.2.2"), addr("192.0.2.2")}}, "listed twice"},
	} {
		if err := rs.AddMember(ctx, tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddMember(%+v) = %v, want %q", tc.m, err, tc.want)
		}
	}
	for _, m := range []Member{
		{ASN: 64501, Addresses: []netip.Addr{addr("192.0.2.2"), addr("2001:db8::2")}},
		{ASN: 64502, Addresses: []netip.Addr{addr("192.0.2.3")}},
	} {
		if err := rs.AddMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.AddMember(ctx, Member{ASN: 64503, Addresses: []netip.Addr{addr("192.0.2.3")}}); err == nil || !strings.Contains(err.Error(), "belongs to AS64502") {
		t.Errorf("shared address: %v", err)
	}
	md5 := Member{ASN: 64504, Addresses: []netip.Addr{addr("192.0.2.4")}, Password: "secret"}
	if err := md5Supported(); err != nil {
		// A password the kernel cannot sign with is refused, not ignored.
		if err := rs.AddMember(ctx, md5); err == nil || !strings.Contains(err.Error(), "kernel refuses TCP MD5") {
			t.Errorf("password without kernel support: %v", err)
		}
	} else if err := rs.AddMember(ctx, md5); err != nil {
		t.Errorf("password: %v", err)
	}
	ok := Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs("198.51.100.0/24", "2001:db8:100::/48"),
		NextHop4: addr("192.0.2.2"), NextHop6: addr("2001:db8::2")}
	for _, tc := range []struct {
		edit func(*Trade)
		want string
	}{
		{func(t *Trade) { t.ID = 0 }, "ID 0"},
		{func(t *Trade) { t.ID = 1 << 32 }, "32-bit"},
		{func(t *Trade) { t.BuyerASN = 64501 }, "both AS64501"},
		{func(t *Trade) { t.BuyerASN = 64999 }, "buyer AS64999 is not a member"},
		{func(t *Trade) { t.SellerASN = 64999 }, "seller AS64999 is not a member"},
		{func(t *Trade) { t.Prefixes = nil }, "no prefixes"},
		{func(t *Trade) { t.Prefixes = pfxs("198.51.100.1/24") }, "host bits"},
		{func(t *Trade) { t.Prefixes = pfxs("198.51.100.0/24", "198.51.100.0/24") }, "listed twice"},
		{func(t *Trade) { t.NextHop6 = netip.Addr{} }, "no NextHop6"},
		{func(t *Trade) { t.NextHop4 = addr("192.0.2.3") }, "not a router address of seller AS64501"},
		{func(t *Trade) { t.NextHop4 = addr("2001:db8::2") }, "not an IPv4 address"},
	} {
		tr := ok
		tr.Prefixes = slices.Clone(ok.Prefixes)
		tc.edit(&tr)
		if err := rs.AnnounceTrade(ctx, tr); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AnnounceTrade: %v, want %q", err, tc.want)
		}
		if err := rs.SetActive(ctx, []Trade{ok, tr}); err == nil {
			t.Errorf("SetActive accepted a bad trade (%q)", tc.want)
		}
	}
	if n := len(rs.Trades()); n != 0 {
		t.Errorf("%d trades stored by failed calls", n)
	}
	// Before Start, trades are kept and members configured later.
	if err := rs.AnnounceTrade(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Sessions(ctx); err != ErrNotStarted {
		t.Errorf("Sessions before Start: %v", err)
	}
	rs.Stop()
	if err := rs.Start(ctx); err != ErrStopped {
		t.Errorf("Start after Stop: %v", err)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	rs, err := New(Config{ASN: rsASN, RouterID: addr("127.0.0.1"), ListenAddrs: []string{"127.0.0.1"}, ListenPort: int32(port), Checker: newFakeChecker()})
	if err != nil {
		t.Fatal(err)
	}
	err = rs.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d", port)) {
		t.Errorf("Start on a busy port: %v", err)
	}
	if err := rs.AddMember(context.Background(), Member{ASN: 64501, Addresses: []netip.Addr{addr("127.0.0.2")}}); err != ErrStopped {
		t.Errorf("AddMember after a failed start: %v, want ErrStopped", err)
	}
	rs.Stop() // returns: the event loop is gone
}
