package fib

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/vishvananda/netlink"
)

// BenchmarkRoutes installs BWX_FIB_BENCH_V4 IPv4 routes (default 500,000)
// and, apart, BWX_FIB_BENCH_V6 IPv6 routes (default 100,000) with Sync,
// changes the next hop of 10 % of them, and removes them all; beside it,
// in the same run and each in a fresh namespace, `ip -batch` does the
// same work on the same routes, and netlink.Handle.RouteReplace installs
// them one by one. It reports routes/s per phase, the ratio FIB / ip
// -batch, how long a Sync that finds nothing to do takes, and how long
// Watch's periodic resync (which reads the kernel) takes. Run as root:
//
//	go test -run '^$' -bench Routes -benchtime 1x ./agent/fib
func BenchmarkRoutes(b *testing.B) {
	n4, n6 := benchSize(b, "BWX_FIB_BENCH_V4", 500_000), benchSize(b, "BWX_FIB_BENCH_V6", 100_000)
	for _, fam := range []struct {
		name   string
		n4, n6 int
	}{{"IPv4", n4, 0}, {"IPv6", 0, n6}} {
		if fam.n4+fam.n6 == 0 {
			continue
		}
		b.Run(fam.name, func(b *testing.B) { benchRoutesOf(b, fam.n4, fam.n6) })
	}
}

func benchRoutesOf(b *testing.B, n4, n6 int) {
	total := float64(n4 + n6)
	changed := float64((n4+9)/10 + (n6+9)/10)
	lab := labtest.New(b, "fibbench")
	install, change := benchRoutes(n4, n6)

	dir := b.TempDir()
	files := map[string]string{}
	for _, phase := range []string{"install", "change", "remove"} {
		files[phase] = filepath.Join(dir, phase+".batch")
	}
	writeBatch(b, files["install"], "add", install, nil)
	writeBatch(b, files["change"], "replace", change, func(i int) bool { return i%10 == 0 })
	writeBatch(b, files["remove"], "del", change, nil)

	var fibT, ipT [3]time.Duration
	var libT, noopT, resyncT time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		h := labtest.AddHost(b, lab, fmt.Sprintf("fib%d", i), hostAddrs(1)...)
		f := newFIB(b, h, Config{Log: slog.New(slog.DiscardHandler)})
		b.StartTimer()
		for phase, desired := range [][]Route{install, change, nil} {
			start := clock.Now()
			res, err := f.Sync(desired)
			fibT[phase] += clock.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if n := res.Changes(); (phase != 1 && n != len(install)) || (phase == 1 && float64(n) != changed) {
				b.Fatalf("phase %d: %d changes", phase, n)
			}
			if phase == 0 {
				// A Sync that finds nothing to do, and Watch's
				// periodic resync, which reads the kernel.
				start := clock.Now()
				if res, err := f.Sync(install); err != nil || res.Changes() != 0 {
					b.Fatalf("no-op Sync: %v, %d changes", err, res.Changes())
				}
				noopT += clock.Since(start)
				start = clock.Now()
				f.repair("resync")
				resyncT += clock.Since(start)
				if st := f.Stats(); st.Repairs != 0 || st.Errors != 0 {
					b.Fatalf("resync: %+v", st)
				}
			}
		}
		b.StopTimer()
		f.Close()

		h = labtest.AddHost(b, lab, fmt.Sprintf("ip%d", i), hostAddrs(1)...)
		for phase, name := range []string{"install", "change", "remove"} {
			start := clock.Now()
			ipBatch(b, h, files[name])
			ipT[phase] += clock.Since(start)
		}

		h = labtest.AddHost(b, lab, fmt.Sprintf("lib%d", i), hostAddrs(1)...)
		libT += libInstall(b, h, install)
	}
	rate := func(n float64, d time.Duration) float64 { return n * float64(b.N) / d.Seconds() }
	for phase, name := range []string{"install", "change", "remove"} {
		n := total
		if phase == 1 {
			n = changed
		}
		fr, ir := rate(n, fibT[phase]), rate(n, ipT[phase])
		b.ReportMetric(fr, "fib-"+name+"-routes/s")
		b.ReportMetric(ir, "ipbatch-"+name+"-routes/s")
		b.ReportMetric(fr/ir, name+"-ratio")
	}
	b.ReportMetric(rate(total, libT), "handle-install-routes/s")
	b.ReportMetric(noopT.Seconds()/float64(b.N), "noop-sync-s")
	b.ReportMetric(resyncT.Seconds()/float64(b.N), "resync-s")
}

// BenchmarkFailover is the real case of a next-hop change: seller A
// (192.0.2.10) fails, and every route through it, BWX_FIB_BENCH_FAILOVER
// of them (default 100,000; IPv6 BWX_FIB_BENCH_FAILOVER_V6, default
// 2,000, because this kernel walks the whole IPv6 table for each next-hop
// group replace: 100,000 would take over an hour), moves to seller B
// (192.0.2.11), which already carries as many others. It times one Sync from the decision
// (the new desired state) to its return, when the kernel has acked the
// last route moved; beside it, in the same run and in a fresh namespace,
// `ip -batch` replaces the same routes. IPv4 and IPv6 apart. Run as root:
//
//	go test -run '^$' -bench Failover -benchtime 1x ./agent/fib
func BenchmarkFailover(b *testing.B) {
	n4, n6 := benchSize(b, "BWX_FIB_BENCH_FAILOVER", 100_000), benchSize(b, "BWX_FIB_BENCH_FAILOVER_V6", 2_000)
	for _, v6 := range []bool{false, true} {
		name, n := "IPv4", n4
		if v6 {
			name, n = "IPv6", n6
		}
		b.Run(name, func(b *testing.B) { benchFailover(b, n, v6) })
	}
}

func benchFailover(b *testing.B, n int, v6 bool) {
	lab := labtest.New(b, "fibfail")
	var routes []Route // A's n, then B's n
	if v6 {
		routes, _ = benchRoutes(0, 2*n)
	} else {
		routes, _ = benchRoutes(2*n, 0)
	}
	before := make([]Route, len(routes))
	after := make([]Route, len(routes))
	for i, r := range routes {
		seller := byte(10 + min(1, i/n)) // A for the first n, then B
		hop := lanAddr4(seller)
		if v6 {
			hop = lanAddr6(seller)
		}
		before[i] = Route{Prefix: r.Prefix, NextHops: []netip.Addr{hop}}
		after[i] = before[i]
		if i < n {
			after[i].NextHops = []netip.Addr{lanAddr4(11)}
			if v6 {
				after[i].NextHops = []netip.Addr{lanAddr6(11)}
			}
		}
	}
	dir := b.TempDir()
	installFile, failFile := filepath.Join(dir, "install.batch"), filepath.Join(dir, "failover.batch")
	writeBatch(b, installFile, "add", before, nil)
	writeBatch(b, failFile, "replace", after, func(i int) bool { return i < n })

	var fibT, ipT time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		h := labtest.AddHost(b, lab, fmt.Sprintf("fib%d", i), hostAddrs(1)...)
		f := newFIB(b, h, Config{Log: slog.New(slog.DiscardHandler)})
		if _, err := f.Sync(before); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := clock.Now()
		res, err := f.Sync(after)
		fibT += clock.Since(start)
		b.StopTimer()
		if err != nil || len(res.Changed) != n || res.Changes() != n {
			b.Fatalf("failover: %v, %d changed, %d changes", err, len(res.Changed), res.Changes())
		}
		f.Close()

		h = labtest.AddHost(b, lab, fmt.Sprintf("ip%d", i), hostAddrs(1)...)
		ipBatch(b, h, installFile)
		start = clock.Now()
		ipBatch(b, h, failFile)
		ipT += clock.Since(start)
	}
	fr := float64(n*b.N) / fibT.Seconds()
	ir := float64(n*b.N) / ipT.Seconds()
	b.ReportMetric(fr, "fib-failover-routes/s")
	b.ReportMetric(ir, "ipbatch-failover-routes/s")
	b.ReportMetric(fr/ir, "failover-ratio")
	b.ReportMetric(float64(fibT.Milliseconds())/float64(b.N), "fib-failover-ms")
	b.ReportMetric(float64(ipT.Milliseconds())/float64(b.N), "ipbatch-failover-ms")
}

func benchSize(b testing.TB, env string, def int) int {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<20 {
		b.Fatalf("%s=%q: want 0-%d", env, s, 1<<20)
	}
	return n
}

// benchRoutes makes n4 /30s in 100.64.0.0/10 and n6 /56s in 2001:db8::/32,
// spread over four next hops, and the same with every tenth next hop moved
// to the following one.
func benchRoutes(n4, n6 int) (install, change []Route) {
	for i := range n4 {
		a := 100<<24 | 64<<16 + uint32(i)*4
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 30)
		install = append(install, Route{Prefix: p, NextHops: []netip.Addr{lanAddr4(byte(10 + i%4))}})
	}
	for i := range n6 {
		hi := 0x1000 + i>>8
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(hi >> 8), byte(hi), byte(i)}
		p := netip.PrefixFrom(netip.AddrFrom16(a), 56)
		install = append(install, Route{Prefix: p, NextHops: []netip.Addr{lanAddr6(byte(10 + i%4))}})
	}
	change = make([]Route, len(install))
	copy(change, install)
	for i := range change {
		if i%10 != 0 {
			continue
		}
		nh := change[i].NextHops[0]
		if nh.Is4() {
			nh = lanAddr4(10 + byte(i+1)%4)
		} else {
			nh = lanAddr6(10 + byte(i+1)%4)
		}
		change[i].NextHops = []netip.Addr{nh}
	}
	return install, change
}

// writeBatch writes `route <verb>` lines for routes (those where keep is
// true, if keep is set) with our protocol and metric in the main table.
func writeBatch(b *testing.B, path, verb string, routes []Route, keep func(int) bool) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i, r := range routes {
		if keep != nil && !keep(i) {
			continue
		}
		if verb == "del" {
			fmt.Fprintf(w, "route del %v proto %d metric %d\n", r.Prefix, DefaultProtocol, DefaultMetric)
			continue
		}
		fmt.Fprintf(w, "route %s %v via %v dev eth0 proto %d metric %d\n", verb, r.Prefix, r.NextHops[0], DefaultProtocol, DefaultMetric)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

func ipBatch(b *testing.B, h *labnet.Host, file string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// ip enters the namespace itself: no `ip netns exec` in the timing.
	out, err := exec.CommandContext(ctx, "ip", "-n", h.Netns, "-batch", file).CombinedOutput()
	if err != nil {
		b.Fatalf("ip -batch %s: %v\n%.2000s", file, err, out)
	}
}

// libInstall installs routes with netlink.Handle.RouteReplace one by one,
// the library's fastest path.
func libInstall(b *testing.B, h *labnet.Host, routes []Route) time.Duration {
	nh := handleIn(b, h)
	link, err := nh.LinkByName("eth0")
	if err != nil {
		b.Fatal(err)
	}
	rs := make([]netlink.Route, len(routes))
	for i, r := range routes {
		rs[i] = netlink.Route{
			Dst:       &net.IPNet{IP: r.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(r.Prefix.Bits(), r.Prefix.Addr().BitLen())},
			Gw:        r.NextHops[0].AsSlice(),
			LinkIndex: link.Attrs().Index,
			Protocol:  DefaultProtocol,
			Priority:  DefaultMetric,
			Table:     DefaultTable,
		}
	}
	start := clock.Now()
	for i := range rs {
		if err := nh.RouteReplace(&rs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return clock.Since(start)
}
