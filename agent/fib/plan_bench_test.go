package fib

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkPlan is makePlan for 600,000 routes of which 10 % changed.
func BenchmarkPlan(b *testing.B) {
	install, change := benchRoutes(500_000, 100_000)
	desired, refused := validate(change, "eth0")
	if len(refused) > 0 {
		b.Fatal(refused)
	}
	e := &env{ifname: "eth0", ifindex: 2, metric: 10, subnets: []netip.Prefix{lan4, lan6}}
	actual := make([]kroute, len(install))
	for i, r := range install {
		actual[i] = kroute{prefix: r.Prefix, metric: 10, typ: unix.RTN_UNICAST, hops: []khop{{gw: r.NextHops[0], ifindex: 2}}}
	}
	b.ResetTimer()
	for range b.N {
		p := makePlan(desired, actual, e)
		if len(p.replace) != 60_000 {
			b.Fatal(len(p.replace))
		}
	}
}
