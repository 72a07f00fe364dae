package routeserver

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// BenchmarkTradeToRIB measures how long a trade takes from AnnounceTrade
// to a route in the buyer's kernel, installed by the buyer's BIRD from the
// route server's UPDATE (netlink event in the buyer's namespace). The
// route server has `sessions` member sessions: the measured buyer and a
// crowd of sellers (one BIRD with a session per address), which announce
// `routes` registered routes between them. Each iteration is one new
// trade; trades accumulate. Run with -benchtime=1000x for p50/p99 over
// 1,000 trades:
//
//	go test -run '^$' -bench TradeToRIB -benchtime 1000x ./arbiter/routeserver/
//
// baseline_2sessions is the same path with one seller and nothing else.
func BenchmarkTradeToRIB(b *testing.B) {
	for _, c := range []struct {
		name             string
		sessions, routes int
	}{
		{"baseline_2sessions", 2, 1000},
		{"sessions=10/routes=10k", 10, 10_000},
		{"sessions=50/routes=50k", 50, 50_000},
		{"sessions=50/routes=200k", 50, 200_000},
	} {
		b.Run(c.name, func(b *testing.B) { benchTradeToRIB(b, c.sessions, c.routes) })
	}
}

func benchTradeToRIB(b *testing.B, sessions, routes int) {
	needBIRD(b)
	if os.Getenv("ROUTESERVER_BENCH_MAXROUTES") != "" {
		var max int
		fmt.Sscan(os.Getenv("ROUTESERVER_BENCH_MAXROUTES"), &max)
		if routes > max {
			b.Skipf("routes %d > ROUTESERVER_BENCH_MAXROUTES", routes)
		}
	}
	lab := labtest.New(b, "bench")
	sellers := sessions - 1
	// BIRD holds one session per neighbor address: each crowd session
	// dials its own address of the route server.
	rsAddrs := []string{"192.0.2.1/24"}
	var crowdAddrs []string
	for i := range sellers {
		crowdAddrs = append(crowdAddrs, fmt.Sprintf("192.0.2.%d/24", 10+i))
		rsAddrs = append(rsAddrs, fmt.Sprintf("192.0.2.%d/24", 100+i))
	}
	rsHost := labtest.AddHost(b, lab, "rs", rsAddrs...)
	buyerHost := labtest.AddHost(b, lab, "buyer", "192.0.2.2/24")
	crowdHost := labtest.AddHost(b, lab, "crowd", crowdAddrs...)

	// Registered routes: /24s from 10.0.0.0/8 on, dealt round robin.
	owner := make(map[netip.Prefix]uint32, routes)
	perSeller := make([][]netip.Prefix, sellers)
	for i := range routes {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0}), 24)
		s := i % sellers
		perSeller[s] = append(perSeller[s], p)
		owner[p] = sellerASN(s)
	}
	checker := CheckerFunc(func(asn uint32, p netip.Prefix, _ uint32) (bool, string) {
		if owner[p] == asn {
			return true, ""
		}
		return false, "not registered"
	})
	rs, err := New(Config{ASN: rsASN, RouterID: rs4, ListenAddrs: []string{"0.0.0.0"}, Checker: checker,
		HoldTime: 90 * time.Second, Passive: true, RunIn: rsHost.Do})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rs.Stop)
	ctx := context.Background()
	if err := rs.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := rs.AddMember(ctx, Member{ASN: 64502, Addresses: []netip.Addr{buyerHost.Addr4()}}); err != nil {
		b.Fatal(err)
	}
	for s := range sellers {
		a := netip.MustParsePrefix(crowdAddrs[s]).Addr()
		if err := rs.AddMember(ctx, Member{ASN: sellerASN(s), Addresses: []netip.Addr{a}}); err != nil {
			b.Fatal(err)
		}
	}
	startCrowd(b, crowdHost, crowdAddrs, perSeller)
	startBuyer(b, buyerHost)

	setup := clock.Now()
	eventually(b, 10*time.Minute, "registered routes received", func() string {
		n := 0
		for s := range sellers {
			n += rs.Stats(sellerASN(s)).Accepted
		}
		if n != routes {
			return fmt.Sprintf("%d of %d accepted", n, routes)
		}
		return ""
	})
	b.Logf("%d sessions, %d routes accepted %v after the routers started", sessions, routes, clock.Since(setup).Round(time.Millisecond))

	installed := watchRoutes(b, buyerHost)
	lat := make([]time.Duration, 0, b.N)
	var announce time.Duration
	b.ResetTimer()
	for i := range b.N {
		s := i % sellers
		p := perSeller[s][(i/sellers)%len(perSeller[s])]
		t := Trade{ID: uint64(i + 1), BuyerASN: 64502, SellerASN: sellerASN(s), Prefixes: []netip.Prefix{p},
			NextHop4: netip.MustParsePrefix(crowdAddrs[s]).Addr()}
		start := clock.Now()
		if err := rs.AnnounceTrade(ctx, t); err != nil {
			b.Fatal(err)
		}
		announce += clock.Since(start)
		if err := installed.wait(p, 30*time.Second); err != nil {
			b.Fatalf("trade %d (%v): %v", t.ID, p, err)
		}
		lat = append(lat, clock.Since(start))
	}
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	// The trades end: time to the route leaving the buyer's kernel.
	end := make([]time.Duration, 0, b.N)
	for i := range b.N {
		s := i % sellers
		p := perSeller[s][(i/sellers)%len(perSeller[s])]
		start := clock.Now()
		if err := rs.WithdrawTrade(ctx, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
		if err := installed.waitGone(p, 30*time.Second); err != nil {
			b.Fatalf("trade %d (%v): %v", i+1, p, err)
		}
		end = append(end, clock.Since(start))
	}
	pct := func(l []time.Duration, q float64) float64 {
		slices.Sort(l)
		return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(lat, 0.5), "p50_ms")
	b.ReportMetric(pct(lat, 0.99), "p99_ms")
	b.ReportMetric(float64(announce.Microseconds())/1000/float64(b.N), "announce_ms/op")
	b.ReportMetric(pct(end, 0.5), "end_p50_ms")
	b.ReportMetric(pct(end, 0.99), "end_p99_ms")
	b.ReportMetric(float64(ms.HeapInuse)/1e6, "heap_MB")
	b.ReportMetric(0, "ns/op") // the wall time per op is mostly the wait; the percentiles say it
}

func sellerASN(i int) uint32 { return 65100 + uint32(i) }

// startCrowd runs one BIRD with a session per address, each a member
// announcing its share of the registered routes.
func startCrowd(b *testing.B, h *labnet.Host, addrs []string, perSeller [][]netip.Prefix) {
	dir := b.TempDir()
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr { warning, error, fatal };\nrouter id %s;\nprotocol device {}\n", h.Addr4())
	for s, a := range addrs {
		fmt.Fprintf(&w, "protocol static st%d { ipv4;\n", s)
		for _, p := range perSeller[s] {
			fmt.Fprintf(&w, " route %s unreachable;\n", p)
		}
		fmt.Fprintf(&w, "}\nprotocol bgp m%d {\n local %s as %d;\n neighbor 192.0.2.%d as %d;\n", s, netip.MustParsePrefix(a).Addr(), sellerASN(s), 100+s, rsASN)
		fmt.Fprintf(&w, " connect retry time 1; error wait time 1,2;\n ipv4 { import none; export where proto = \"st%d\"; };\n}\n", s)
	}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(w.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := h.Start(b.Context(), filepath.Join(dir, "bird.log"), "bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid")); err != nil {
		b.Fatal(err)
	}
}

// startBuyer runs the measured buyer: BIRD taking the route server's
// paths into its kernel table.
func startBuyer(b *testing.B, h *labnet.Host) {
	dir := b.TempDir()
	conf := filepath.Join(dir, "bird.conf")
	text := fmt.Sprintf(`log stderr { warning, error, fatal };
router id %s;
protocol device {}
protocol kernel { ipv4 { export all; }; }
protocol bgp rs4 {
 local %s as 64502;
 neighbor %s as %d;
 connect retry time 1; error wait time 1,2;
 ipv4 { import all; export none; };
}
`, h.Addr4(), h.Addr4(), rs4, rsASN)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := h.Start(b.Context(), filepath.Join(dir, "bird.log"), "bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid")); err != nil {
		b.Fatal(err)
	}
}

// routeWatch follows the kernel routes of a namespace.
type routeWatch struct {
	ch      chan netlink.RouteUpdate
	present map[netip.Prefix]bool
}

func watchRoutes(b *testing.B, h *labnet.Host) *routeWatch {
	ns, err := netns.GetFromName(h.Netns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	w := &routeWatch{ch: make(chan netlink.RouteUpdate, 4096), present: map[netip.Prefix]bool{}}
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	err = netlink.RouteSubscribeWithOptions(w.ch, done, netlink.RouteSubscribeOptions{
		Namespace: &ns,
		ErrorCallback: func(err error) {
			select {
			case <-done: // closing
			default:
				b.Logf("route watch: %v", err)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// wait waits until p is in the kernel table; waitGone until it is not.
func (w *routeWatch) wait(p netip.Prefix, timeout time.Duration) error {
	return w.until(p, true, timeout)
}

func (w *routeWatch) waitGone(p netip.Prefix, timeout time.Duration) error {
	return w.until(p, false, timeout)
}

func (w *routeWatch) until(p netip.Prefix, present bool, timeout time.Duration) error {
	deadline := time.After(timeout)
	for w.present[p] != present {
		select {
		case u, ok := <-w.ch:
			if !ok {
				return fmt.Errorf("route watch closed")
			}
			if u.Dst == nil || u.Type != unix.RTM_NEWROUTE && u.Type != unix.RTM_DELROUTE {
				continue
			}
			ones, _ := u.Dst.Mask.Size()
			a, _ := netip.AddrFromSlice(u.Dst.IP)
			w.present[netip.PrefixFrom(a.Unmap(), ones)] = u.Type == unix.RTM_NEWROUTE
		case <-deadline:
			return fmt.Errorf("present=%v not reached in the buyer's kernel after %v", present, timeout)
		}
	}
	return nil
}
