package bird

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// Two BIRDs peer over the lab switch in both families: what one announces
// reaches the other's RIB (and its kernel table) with the sender's LAN
// address as next hop; a withdraw takes it away.
func TestPeeringAndRoutes(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	lab := labtest.New(t, "bird")
	ha := labtest.AddHost(t, lab, "a", "192.0.2.1/24", "2001:db8:ffff::1/64")
	hb := labtest.AddHost(t, lab, "b", "192.0.2.2/24", "2001:db8:ffff::2/64")
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	sessions := func(local, peer netip.Addr, local6, peer6 netip.Addr, as, peerAS uint32) []Session {
		return []Session{
			{Name: "p4", Local: local, Neighbor: peer, LocalASN: as, NeighborASN: peerAS},
			{Name: "p6", Local: local6, Neighbor: peer6, LocalASN: as, NeighborASN: peerAS},
		}
	}
	a, err := Start(t.Context(), ha, t.TempDir(), Config{RouterID: ha.Addr4(), Static: []netip.Prefix{p4, p6},
		Sessions: sessions(ha.Addr4(), hb.Addr4(), ha.Addr6(), hb.Addr6(), 64501, 64510)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(t.Context(), hb, t.TempDir(), Config{RouterID: hb.Addr4(), Kernel: true,
		Sessions: sessions(hb.Addr4(), ha.Addr4(), hb.Addr6(), ha.Addr6(), 64510, 64501)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Prefix: p4, NextHop: ha.Addr4(), Protocol: "p4", ASPath: "64501"},
		{Prefix: p6, NextHop: ha.Addr6(), Protocol: "p6", ASPath: "64501"},
	}
	waitRoutes(t, b, want)
	for _, p := range []netip.Prefix{p4, p6} {
		fam := "-4"
		if p.Addr().Is6() {
			fam = "-6"
		}
		out, err := hb.Command(t.Context(), "ip", fam, "route", "show", p.String()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "proto bird") {
			t.Errorf("%v not in b's kernel table by BIRD: %v %s", p, err, out)
		}
	}
	if !a.Established("p4") || !a.Established("p6") {
		t.Error("a's sessions are not Established")
	}
	if err := a.Announce(p6); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, b, want[1:])
}

func waitRoutes(t *testing.T, r *Router, want []Route) {
	t.Helper()
	deadline := clock.Now().Add(20 * time.Second)
	for {
		got, err := r.Routes("p4", "p6")
		if err != nil {
			t.Fatal(err)
		}
		if slices.EqualFunc(got, want, func(a, b Route) bool { return a.String() == b.String() }) {
			return
		}
		if clock.Now().After(deadline) {
			t.Fatalf("routes %v, want %v\n%s", got, want, Render(r.Config()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A table as BIRD 2.0.12 prints it, with two paths for one prefix.
const sample = `BIRD 2.0.12 ready.
Table master4:
198.51.100.0/24      unicast [rs4 12:00:01.000] * (100) [AS64501i]
	via 192.0.2.11 on eth0
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 65000 64501
	BGP.next_hop: 192.0.2.11
	BGP.community: (65535,65281)
	BGP.large_community: (65000, 1, 64510) (65000, 2, 7)
                     unicast [rs4 12:00:02.000] (100) [AS64502i]
	via 192.0.2.12 on eth0
	Type: BGP univ
	BGP.as_path: 65000 64502
203.0.113.0/24       unreachable [st_ipv4 12:00:00.000] * (200)
	Type: static univ
`

func TestParseRoutes(t *testing.T) {
	rs, err := ParseRoutes(sample, "rs4")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("routes %v, want the two rs4 paths", rs)
	}
	first := rs[0]
	if first.NextHop.String() != "192.0.2.11" || first.ASPath != "65000 64501" ||
		!slices.Equal(first.Communities, []string{"65535:65281"}) || !slices.Equal(first.Large, []string{"65000:1:64510", "65000:2:7"}) {
		t.Errorf("first path: %v", first)
	}
	if rs[1].NextHop.String() != "192.0.2.12" || rs[1].ASPath != "65000 64502" {
		t.Errorf("second path: %v", rs[1])
	}
	all, err := ParseRoutes(sample)
	if err != nil || len(all) != 3 || all[2].Protocol != "st_ipv4" {
		t.Errorf("every protocol: %v, %v", all, err)
	}
	if _, err := ParseRoutes("garbage line\n"); err == nil {
		t.Error("an unexpected line must be an error")
	}
}
