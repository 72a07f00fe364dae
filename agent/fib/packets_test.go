package fib

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"golang.org/x/sys/unix"
)

// Traded destinations: the sellers and the upstream all have these
// addresses on lo, so where a datagram arrives tells which way it went.
var (
	dst4 = netip.MustParseAddr("198.51.100.1")
	dst6 = netip.MustParseAddr("2001:db8:beef::1")
)

const dstPort = 9999

// tradeLab is a buyer, two sellers (A .2, B .3) and the buyer's upstream
// (.4) on one switch, and on request two more sellers (C .5, D .6); the
// buyer's default routes point at the upstream.
type tradeLab struct {
	buyer, sellerA, sellerB, upstream *labnet.Host
	sellerC, sellerD                  *labnet.Host
	got                               chan arrival
}

type arrival struct {
	host    string
	payload string
}

func newTradeLab(t *testing.T, fourSellers bool) *tradeLab {
	t.Helper()
	lab := labtest.New(t, "fibpkt")
	l := &tradeLab{
		buyer:    labtest.AddHost(t, lab, "buyer", hostAddrs(1)...),
		sellerA:  labtest.AddHost(t, lab, "sellerA", hostAddrs(2)...),
		sellerB:  labtest.AddHost(t, lab, "sellerB", hostAddrs(3)...),
		upstream: labtest.AddHost(t, lab, "upstream", hostAddrs(4)...),
		got:      make(chan arrival, 1024),
	}
	hosts := []*labnet.Host{l.sellerA, l.sellerB, l.upstream}
	if fourSellers {
		l.sellerC = labtest.AddHost(t, lab, "sellerC", hostAddrs(5)...)
		l.sellerD = labtest.AddHost(t, lab, "sellerD", hostAddrs(6)...)
		hosts = append(hosts, l.sellerC, l.sellerD)
	}
	ip(t, l.buyer, "-4", "route", "add", "default", "via", lanAddr4(4).String())
	ip(t, l.buyer, "-6", "route", "add", "default", "via", lanAddr6(4).String())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // cleanups run last first: after the listeners close
	for _, h := range hosts {
		ip(t, h, "addr", "add", dst4.String()+"/32", "dev", "lo")
		ip(t, h, "addr", "add", dst6.String()+"/128", "dev", "lo", "nodad")
		for _, addr := range []netip.Addr{dst4, dst6} {
			c, err := h.ListenPacket("udp", netip.AddrPortFrom(addr, dstPort).String())
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1500)
				for {
					n, _, err := c.ReadFrom(buf)
					if err != nil {
						return
					}
					select {
					case l.got <- arrival{h.Name, string(buf[:n])}:
					default:
					}
				}
			}()
			t.Cleanup(func() { c.Close() })
		}
	}
	return l
}

// arrivesAt sends datagrams from the buyer to dst until one arrives at
// want, and fails if one arrives anywhere else.
func (l *tradeLab) arrivesAt(t *testing.T, dst netip.Addr, want *labnet.Host) {
	t.Helper()
	c, err := l.buyer.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var tag [8]byte
	rand.Read(tag[:])
	payload := hex.EncodeToString(tag[:])
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, dstPort))
	deadline := clock.Now().Add(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := c.WriteTo([]byte(payload), to); err != nil {
			t.Fatalf("send to %v: %v", dst, err)
		}
		select {
		case a := <-l.got:
			if a.payload != payload {
				continue // from an earlier step
			}
			if a.host != want.Name {
				t.Fatalf("datagram to %v arrived at %s, want %s", dst, a.host, want.Name)
			}
			return
		case <-tick.C:
		}
		if clock.Now().After(deadline) {
			t.Fatalf("no datagram to %v arrived at %s", dst, want.Name)
		}
	}
}

func TestPacketsFollowRoutes(t *testing.T) {
	t.Parallel()
	l := newTradeLab(t, false)
	f := newFIB(t, l.buyer, Config{})
	p4, p6 := "198.51.100.0/24", "2001:db8:beef::/48"

	l.arrivesAt(t, dst4, l.upstream) // before any trade: the default path
	l.arrivesAt(t, dst6, l.upstream)

	mustSync(t, f, r4(p4, 2), r6(p6, 2))
	l.arrivesAt(t, dst4, l.sellerA)
	l.arrivesAt(t, dst6, l.sellerA)

	res := mustSync(t, f, r4(p4, 3), r6(p6, 3))
	if len(res.Changed) != 2 {
		t.Errorf("changed %+v, want both routes", res.Changed)
	}
	l.arrivesAt(t, dst4, l.sellerB)
	l.arrivesAt(t, dst6, l.sellerB)

	// Seller B's router is reported down: back to the default path.
	f.SetNextHopDown(lanAddr4(3), true)
	f.SetNextHopDown(lanAddr6(3), true)
	l.arrivesAt(t, dst4, l.upstream)
	l.arrivesAt(t, dst6, l.upstream)
	f.SetNextHopDown(lanAddr4(3), false)
	f.SetNextHopDown(lanAddr6(3), false)
	l.arrivesAt(t, dst4, l.sellerB)

	mustSync(t, f) // the trade ended
	l.arrivesAt(t, dst4, l.upstream)
	l.arrivesAt(t, dst6, l.upstream)
}

// TestReplaceLeavesNoGap changes the next hops of a route over and over,
// through every kind of change (one next hop to another, to several, from
// several, several to others that share one or none), while a goroutine
// per family asks the kernel, as fast as it can, which way destinations
// under the prefix go: the answer is always a next hop of the route before
// or after the change in progress, never an error (the kernel's null
// route) nor the default route through the upstream. The destinations
// vary so that ECMP hashing picks every next hop of a group. With plain
// IPv6 routes (withPlainIPv6) this fails in most runs on Linux 6.18.
//
// One exception, counted: an IPv4 lookup may take the default route
// while a change is in progress. IPv4 replace swaps the route at once,
// but a lookup that read the old one just then skips it (its fib_info is
// dead) and goes on to a shorter prefix: the member's normal path, not a
// blackhole. About one IPv4 change in 40,000 does that here; more than one
// in 100 fails the test (as a delete and add would).
//
// It also checks how: the IPv6 route keeps its next-hop group, whose
// members are new at every change, and nothing of ours is left over.
func TestReplaceLeavesNoGap(t *testing.T) {
	t.Parallel()
	l := newTradeLab(t, true)
	f := newFIB(t, l.buyer, Config{})
	p4, p6 := "198.51.100.0/24", "2001:db8:beef::/48"
	// Sellers A .2, B .3, C .5, D .6. Each step of the cycle is a kind of
	// change; the last one leads back to the first state.
	cycle := [][]byte{
		{2},    // from {2,3}: several to one of them
		{3},    // one to another
		{2, 3}, // one to several, sharing it
		{3, 5}, // several to several, sharing one
		{2, 6}, // several to several, sharing none
		{5},    // several to one, not among them
		{2, 3}, // one to several, not among them
	}
	states := make([][]Route, len(cycle))
	for i, hops := range cycle {
		states[i] = []Route{r4(p4, hops...), r6(p6, hops...)}
	}

	// allowed is the next hops a lookup may see now; version counts its
	// stores. A lookup that overlapped more than one change is only
	// checked for an error and for the upstream.
	type allowedHops struct {
		version  int64
		changing bool
		gw       map[string]bool
	}
	var allowed atomic.Pointer[allowedHops]
	setAllowed := func(hops ...[]byte) {
		a := &allowedHops{gw: map[string]bool{}, changing: len(hops) > 1}
		if prev := allowed.Load(); prev != nil {
			a.version = prev.version + 1
		}
		for _, hs := range hops {
			for _, h := range hs {
				a.gw[lanAddr4(h).String()] = true
				a.gw[lanAddr6(h).String()] = true
			}
		}
		allowed.Store(a)
	}
	mustSync(t, f, states[0]...)
	setAllowed(cycle[0])

	var samples [2]atomic.Int64
	var normalPath4 atomic.Int64                                              // IPv4 lookups that took the default route during a change
	ticks := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)} // a lookup ended
	quit := [2]chan struct{}{make(chan struct{}), make(chan struct{})}        // a reader returned
	stop := make(chan struct{})
	bad := make(chan string, 2)
	var wg sync.WaitGroup
	for fam, base := range []netip.Addr{dst4, dst6} {
		nh := handleIn(t, l.buyer) // one socket each: lookups in parallel
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(quit[fam])
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				d := base.As16()
				d[15] = byte(k % 64) // in 198.51.100.0/24 and 2001:db8:beef::/48
				dst := netip.AddrFrom16(d)
				if base.Is4() {
					dst = dst.Unmap()
				}
				before := allowed.Load()
				rs, err := nh.RouteGet(dst.AsSlice())
				after := allowed.Load()
				samples[fam].Add(1)
				var why string
				switch {
				case err != nil:
					why = err.Error()
				case len(rs) != 1:
					why = fmt.Sprintf("routes %v", rs)
				case rs[0].Gw.Equal(lanAddr4(4).AsSlice()) && (before.changing || after.changing || before.version != after.version):
					normalPath4.Add(1)
				case rs[0].Gw.Equal(lanAddr4(4).AsSlice()) || rs[0].Gw.Equal(lanAddr6(4).AsSlice()):
					why = fmt.Sprintf("route %v through the upstream", rs[0])
				case after.version-before.version <= 1 && !before.gw[rs[0].Gw.String()] && !after.gw[rs[0].Gw.String()]:
					why = fmt.Sprintf("route %v, not through a next hop of the change in progress", rs[0])
				}
				if why != "" {
					bad <- fmt.Sprintf("route to %v: %s", dst, why)
					return
				}
				select {
				case ticks[fam] <- struct{}{}:
				default:
				}
				// Two CPUs: without this, the lookups starve the
				// goroutine that makes the changes.
				runtime.Gosched()
			}
		}()
	}

	// probe reads the kernel's state beside the FIB.
	probe, err := openWriter(nsOf(t, l.buyer), DefaultTable, DefaultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.close()
	var group uint32
	var members []uint32
	checkGroup := func(step string, hops []byte) {
		t.Helper()
		var rt kroute
		if err := probe.dump(unix.AF_INET6, func(kr kroute) { rt = kr }); err != nil {
			t.Fatal(err)
		}
		nhs, err := probe.listNexthops()
		if err != nil {
			t.Fatal(err)
		}
		g, ok := nhs.obj(rt.nhid)
		switch {
		case rt.nhid == 0 || !ok || !g.isGroup:
			t.Fatalf("%s: IPv6 route %+v is not on a next-hop group of ours", step, rt)
		case group != 0 && rt.nhid != group:
			t.Fatalf("%s: IPv6 route moved from group %d to %d: replaced, not changed in place", step, group, rt.nhid)
		}
		group = rt.nhid
		var gws []string
		var now []uint32
		for _, m := range g.group {
			if slices.Contains(members, m.id) {
				t.Fatalf("%s: member %d of the group before is still in it: its cached routes are freed under lookups", step, m.id)
			}
			o, _ := nhs.obj(m.id)
			gws = append(gws, o.gw.String())
			now = append(now, m.id)
		}
		members = now
		slices.Sort(gws)
		want := routeLines([]Route{r6(p6, hops...)})[0]
		if got := p6 + " via " + strings.Join(gws, ","); got != want {
			t.Fatalf("%s: group has %s, want %s", step, got, want)
		}
	}
	checkGroup("install", cycle[0])

	changes := 0
	const rounds = 150
	for i := 1; i <= rounds*len(cycle) && len(bad) == 0; i++ {
		prev, next := cycle[(i-1)%len(cycle)], cycle[i%len(cycle)]
		for _, tick := range ticks {
			select {
			case <-tick:
			default:
			}
		}
		setAllowed(prev, next)
		res := mustSync(t, f, states[i%len(states)]...)
		setAllowed(next)
		changes += len(res.Changed)
		if len(res.Changed) != 2 || res.Changes() != len(res.Changed) {
			t.Fatalf("change %v -> %v: want both routes changed in place, got %+v", prev, next, res)
		}
		checkGroup(fmt.Sprintf("change %d %v -> %v", i, prev, next), next)
		// A lookup of each family ended after the change began, however
		// loaded the machine.
		for fam, tick := range ticks {
			select {
			case <-tick:
			case <-quit[fam]:
			}
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	if changes != 2*rounds*len(cycle) {
		t.Fatalf("%d changes, want %d", changes, 2*rounds*len(cycle))
	}
	t.Logf("%d changes, %d IPv4 and %d IPv6 route lookups, each through a next hop of the route but %d IPv4 ones through the default route",
		changes, samples[0].Load(), samples[1].Load(), normalPath4.Load())
	if n := normalPath4.Load(); n > int64(changes/2/100) {
		t.Errorf("%d IPv4 lookups took the default route during %d IPv4 changes: not a replace in place", n, changes/2)
	}

	// What is left: our IPv6 route's group and its members, nothing else.
	equalLines(t, "routes", ourRoutesShown(t, l.buyer, unix.RT_TABLE_MAIN), routeLines(states[0]))
	if got := ourNexthops(t, l.buyer); len(got) != len(cycle[0])+1 {
		t.Errorf("next-hop objects of ours left: %q, want a group of %d and its members", got, len(cycle[0]))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ourNexthops(t, l.buyer); len(got) != 0 {
		t.Errorf("next-hop objects of ours left after Close: %q", got)
	}
}
