package fib

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// Traded destinations: the sellers and the upstream all have these
// addresses on lo, so where a datagram arrives tells which way it went.
var (
	dst4 = netip.MustParseAddr("198.51.100.1")
	dst6 = netip.MustParseAddr("2001:db8:beef::1")
)

const dstPort = 9999

// tradeLab is a buyer, two sellers and the buyer's upstream on one switch;
// the buyer's default routes point at the upstream.
type tradeLab struct {
	buyer, sellerA, sellerB, upstream *labnet.Host
	got                               chan arrival
}

type arrival struct {
	host    string
	payload string
}

func newTradeLab(t *testing.T) *tradeLab {
	t.Helper()
	lab := labtest.New(t, "fibpkt")
	l := &tradeLab{
		buyer:    labtest.AddHost(t, lab, "buyer", hostAddrs(1)...),
		sellerA:  labtest.AddHost(t, lab, "sellerA", hostAddrs(2)...),
		sellerB:  labtest.AddHost(t, lab, "sellerB", hostAddrs(3)...),
		upstream: labtest.AddHost(t, lab, "upstream", hostAddrs(4)...),
		got:      make(chan arrival, 1024),
	}
	ip(t, l.buyer, "-4", "route", "add", "default", "via", lanAddr4(4).String())
	ip(t, l.buyer, "-6", "route", "add", "default", "via", lanAddr6(4).String())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // cleanups run last first: after the listeners close
	for _, h := range []*labnet.Host{l.sellerA, l.sellerB, l.upstream} {
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
	deadline := time.Now().Add(5 * time.Second)
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
		if time.Now().After(deadline) {
			t.Fatalf("no datagram to %v arrived at %s", dst, want.Name)
		}
	}
}

func TestPacketsFollowRoutes(t *testing.T) {
	t.Parallel()
	l := newTradeLab(t)
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

// TestReplaceLeavesNoGap changes the next hop of a route over and over
// while another goroutine asks the kernel, as fast as it can, which way
// the destination goes: the answer is always a seller, never the default
// route through the upstream.
func TestReplaceLeavesNoGap(t *testing.T) {
	t.Parallel()
	l := newTradeLab(t)
	f := newFIB(t, l.buyer, Config{})
	nh := handleIn(t, l.buyer)
	sellers := map[string]bool{}
	for _, a := range []netip.Addr{lanAddr4(2), lanAddr4(3), lanAddr6(2), lanAddr6(3)} {
		sellers[a.String()] = true
	}
	states := [][]Route{
		{r4("198.51.100.0/24", 2), r6("2001:db8:beef::/48", 2)},
		{r4("198.51.100.0/24", 3), r6("2001:db8:beef::/48", 3)},
		{r4("198.51.100.0/24", 2, 3), r6("2001:db8:beef::/48", 2, 3)},
		{r4("198.51.100.0/24", 3), r6("2001:db8:beef::/48", 2)},
	}
	mustSync(t, f, states[0]...)

	var samples atomic.Int64
	stop := make(chan struct{})
	bad := make(chan string, 1)
	var wg sync.WaitGroup
	for _, dst := range []netip.Addr{dst4, dst6} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rs, err := nh.RouteGet(dst.AsSlice())
				samples.Add(1)
				var why string
				switch {
				case err != nil:
					why = err.Error()
				case len(rs) != 1 || !sellers[rs[0].Gw.String()]:
					why = fmt.Sprintf("routes %v", rs)
				default:
					continue
				}
				select {
				case bad <- fmt.Sprintf("route to %v: %s", dst, why):
				default:
				}
				return
			}
		}()
	}
	changes := 0
	for i := 1; i <= 200; i++ {
		res := mustSync(t, f, states[i%len(states)]...)
		changes += len(res.Changed)
		if res.Changes() != len(res.Changed) {
			t.Fatalf("next-hop change did more than replace: %+v", res)
		}
		// Let the lookups interleave with every change, however
		// loaded the machine.
		for n := samples.Load() + 4; samples.Load() < n && len(bad) == 0; {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	if changes < 300 {
		t.Fatalf("test too weak: %d replaces, %d samples", changes, samples.Load())
	}
	t.Logf("%d replaces, %d route lookups, none without a seller's route", changes, samples.Load())
}
