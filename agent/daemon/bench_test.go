package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
)

// BenchmarkTradeToKernel measures, per trade, the time from the route
// server's AnnounceTrade until the route is in the buyer's kernel, and
// from WithdrawTrade until it is gone: "agent" is bwx-agent (speaker +
// FIB), "bird" the baseline in the same run: BIRD 2 as the buyer's router
// with a kernel protocol, getting the same trade from the same route
// server. Run (root):
//
//	go test -run '^$' -bench TradeToKernel -benchtime 200x ./agent/daemon/
func BenchmarkTradeToKernel(b *testing.B) {
	l := newRouteLab(b)
	l.startAgent()
	l.waitAgentReady()
	bb := labtestHost(b, l, "bb", "192.0.2.13/24", "2001:db8::d/64")
	const bbASN = 64502
	m := routeserver.Member{ASN: bbASN, Addresses: []netip.Addr{bb.Addr4(), bb.Addr6()}}
	if err := l.rs.AddMember(context.Background(), m); err != nil {
		b.Fatal(err)
	}
	l.members = append(l.members, m)
	l.birdBuyer(bb, bbASN)

	for _, c := range []struct {
		name  string
		host  *labnet.Host
		buyer uint32
	}{{"agent", l.buyer, buyerASN}, {"bird", bb, bbASN}} {
		b.Run(c.name, func(b *testing.B) {
			w := watchRoutes(b, c.host)
			var add, del []time.Duration
			for i := 0; b.Loop(); i++ {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 250)}), 32)
				id := uint64(10000 + i)
				t := routeserver.Trade{ID: id, BuyerASN: c.buyer, SellerASN: seller1AS, Prefixes: []netip.Prefix{p}, NextHop4: l.s1.Addr4()}
				if c.buyer == buyerASN {
					// The agent installs only what its arbiter says it
					// bought: the trade event goes first, as the arbiter
					// commits it before the route server announces it,
					// and is taken in before the clock starts (what is
					// measured is the route's way, as before the check).
					l.arb.bought(id, l.s1, seller1AS, p)
					l.waitTradesKnown(b, i+1)
				}
				start := clock.Now()
				if err := l.rs.AnnounceTrade(context.Background(), t); err != nil {
					b.Fatal(err)
				}
				w.wait(b, p, true)
				add = append(add, clock.Since(start))
				start = clock.Now()
				if err := l.rs.WithdrawTrade(context.Background(), id); err != nil {
					b.Fatal(err)
				}
				w.wait(b, p, false)
				del = append(del, clock.Since(start))
			}
			report(b, "add", add)
			report(b, "withdraw", del)
		})
	}
}

// waitTradesKnown waits until the agent's route check knows n trades.
func (l *routeLab) waitTradesKnown(b *testing.B, n int) {
	deadline := clock.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := daemon.FetchStatus(ctx, l.socketPath)
		cancel()
		if err == nil && st.Routing != nil && st.Routing.Checks.Trades >= n {
			return
		}
		if clock.Now().After(deadline) {
			b.Fatalf("the agent knows %v trades, want %d (%v)", st.Routing, n, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func report(b *testing.B, what string, ds []time.Duration) {
	slices.Sort(ds)
	pct := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), what+"-p50-ms")
	b.ReportMetric(pct(0.99), what+"-p99-ms")
}

func labtestHost(b *testing.B, l *routeLab, name string, addrs ...string) *labnet.Host {
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.MustParsePrefix(a))
	}
	h, err := l.lab.AddHost(name, ps...)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// birdBuyer runs BIRD 2 as a buyer's router that installs what the route
// server sends into its kernel.
func (l *routeLab) birdBuyer(h *labnet.Host, asn uint32) {
	l.t.Helper()
	dir := filepath.Join(l.dir, "bird-"+h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	conf := fmt.Sprintf(`log stderr all;
router id %s;
protocol device {}
protocol kernel k4 { ipv4 { export all; }; }
protocol bgp rs4 {
  local %s as %d; neighbor 192.0.2.1 as %d;
  hold time 30; keepalive time 3; connect retry time 1; error wait time 1,2;
  ipv4 { import all; export none; add paths rx; };
}
`, h.Addr4(), h.Addr4(), asn, rsASN)
	p := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if _, err := h.Start(l.t.Context(), filepath.Join(dir, "bird.log"), "bird", "-f", "-c", p, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid")); err != nil {
		l.t.Fatal(err)
	}
	eventually(l.t, 20*time.Second, "BIRD buyer's session established", func() string {
		ss, err := l.rs.Sessions(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, s := range ss {
			if s.Address == h.Addr4() && !s.Established() {
				return s.State
			}
		}
		return ""
	})
}

// routeWatch follows a host's IPv4 route events.
type routeWatch struct {
	ch chan netlink.RouteUpdate
}

func watchRoutes(b *testing.B, h *labnet.Host) *routeWatch {
	ns, err := netns.GetFromName(h.Netns)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	w := &routeWatch{ch: make(chan netlink.RouteUpdate, 1024)}
	done := make(chan struct{})
	b.Cleanup(func() { close(done) })
	if err := netlink.RouteSubscribeAt(ns, w.ch, done); err != nil {
		b.Fatal(err)
	}
	return w
}

func (w *routeWatch) wait(b *testing.B, p netip.Prefix, added bool) {
	want := uint16(unix.RTM_NEWROUTE)
	if !added {
		want = unix.RTM_DELROUTE
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case u := <-w.ch:
			if u.Type != want || u.Dst == nil {
				continue
			}
			ones, _ := u.Dst.Mask.Size()
			a, _ := netip.AddrFromSlice(u.Dst.IP)
			if netip.PrefixFrom(a.Unmap(), ones) == p {
				return
			}
		case <-timeout:
			b.Fatalf("route %v (added %v) not seen in the kernel within 10s", p, added)
		}
	}
}
