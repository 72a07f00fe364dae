package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/agent/speaker"
)

func TestRoutingPreference(t *testing.T) {
	a := netip.MustParseAddr
	p4, p6 := netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:db8:300::/48")
	r := &Routing{log: slog.New(slog.NewTextHandler(io.Discard, nil)), prefs: map[netip.Prefix]preference{}, resync: make(chan struct{}, 1)}
	route := func(p netip.Prefix, hops ...string) speaker.Route {
		rt := speaker.Route{Prefix: p}
		for _, h := range hops {
			rt.NextHops = append(rt.NextHops, speaker.NextHop{Addr: a(h)})
		}
		return rt
	}
	check := func(rt speaker.Route, ok bool, want ...string) {
		t.Helper()
		got, gotOK := r.preferred(rt)
		var hops []netip.Addr
		for _, h := range want {
			hops = append(hops, a(h))
		}
		if gotOK != ok || (ok && !slices.Equal(got.NextHops, hops)) {
			t.Errorf("%v: got %v %v, want %v %v", rt.Prefix, got.NextHops, gotOK, hops, ok)
		}
	}
	two4 := route(p4, "192.0.2.11", "192.0.2.12")
	two6 := route(p6, "2001:db8:ffff::11", "2001:db8:ffff::12")
	// No preference: every seller's next hop (ECMP), as before.
	check(two4, true, "192.0.2.11", "192.0.2.12")
	r.Prefer(p4, 64502, []netip.Addr{a("192.0.2.12"), a("2001:db8:ffff::12")})
	r.Prefer(p6, 64502, []netip.Addr{a("192.0.2.12"), a("2001:db8:ffff::12")})
	check(two4, true, "192.0.2.12")
	check(two6, true, "2001:db8:ffff::12")
	// A more specific traded route inside the preferred destination too.
	check(route(netip.MustParsePrefix("198.18.0.128/25"), "192.0.2.11", "192.0.2.12"), true, "192.0.2.12")
	// The preferred seller delivers nothing for it: keep what there is.
	check(route(p4, "192.0.2.11"), true, "192.0.2.11")
	// The default path: no traded route at all.
	r.Prefer(p4, manager.DefaultPath, nil)
	check(two4, false)
	check(two6, true, "2001:db8:ffff::12")
	select {
	case <-r.resync:
	default:
		t.Error("Prefer did not ask for a resync")
	}
	var _ fib.Route // the type preferred returns
}

// BenchmarkRoutePreference measures the preference filter per learned
// route over a full-size table: "none" (no preference: what sync did
// before) is the baseline beside "prefs" (20 and 100000 preferred
// destinations). Run:
//
//	go test -run '^$' -bench RoutePreference ./agent/daemon/
func BenchmarkRoutePreference(b *testing.B) {
	const n = 100000
	routes := make([]speaker.Route, n)
	for i := range routes {
		a := netip.AddrFrom4([4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 0})
		routes[i] = speaker.Route{Prefix: netip.PrefixFrom(a, 24), NextHops: []speaker.NextHop{{Addr: netip.MustParseAddr("192.0.2.11")}, {Addr: netip.MustParseAddr("192.0.2.12")}}}
	}
	for _, np := range []int{0, 20, n} {
		name := map[int]string{0: "none", 20: "prefs=20", n: "prefs=100000"}[np]
		b.Run(name, func(b *testing.B) {
			r := &Routing{log: slog.New(slog.NewTextHandler(io.Discard, nil)), prefs: map[netip.Prefix]preference{}, resync: make(chan struct{}, 1)}
			for i := range np {
				r.prefs[routes[i*(n/np)].Prefix] = preference{seller: 64502, hops: []netip.Addr{netip.MustParseAddr("192.0.2.12")}}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.preferred(routes[i%n])
			}
		})
	}
}
