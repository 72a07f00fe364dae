package routeserver

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bwxchange/bwx/shared/clock"
)

// FuzzBGPPath: any bytes as the NLRI and the ORIGIN, AS_PATH, NEXT_HOP and
// MP_REACH_NLRI attributes of a path GoBGP hands the route server. The
// route server's own decoding of them (pathParser, which reads the
// protobuf wire format itself) agrees with GoBGP's (parsePath): both
// refuse, or both give the same route; a route's prefix is canonical
// (masked, IPv4 in dotted form), its next hop is not IPv4-mapped, and its
// origin AS is the last of its AS path unless that ends in a set.
func FuzzBGPPath(f *testing.F) {
	for _, s := range []struct {
		pfx     string
		nh      string
		segs    [][]uint32
		set     bool
		origin  uint8
		withdr  bool
		linkLoc bool
	}{
		{pfx: "198.51.100.0/24", nh: "192.0.2.11", segs: [][]uint32{{64501, 64510}}},
		{pfx: "2001:db8:300::/48", nh: "2001:db8:ffff::12", segs: [][]uint32{{64502}}, linkLoc: true},
		{pfx: "203.0.113.0/24", nh: "192.0.2.12", segs: [][]uint32{{64501}, {64999, 65000}}, set: true, origin: 2},
		{pfx: "0.0.0.0/0", nh: "192.0.2.13", withdr: true},
	} {
		n, o, ap, nh, mp, v6, w := pathParts(f, s.pfx, s.nh, s.segs, s.set, s.origin, s.withdr, s.linkLoc)
		f.Add(n, o, ap, nh, mp, v6, w)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, nlri, origin, asPath, nextHop, mpReach []byte, v6, withdraw bool) {
		p := &api.Path{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, IsWithdraw: withdraw,
			Nlri: &anypb.Any{TypeUrl: urlPrefix, Value: nlri}, NeighborIp: "192.0.2.9"}
		if v6 {
			p.Family.Afi = api.Family_AFI_IP6
		}
		for _, a := range []struct {
			url string
			b   []byte
		}{{urlOrigin, origin}, {urlASPath, asPath}, {urlNextHop, nextHop}, {urlMPReach, mpReach}} {
			if a.b != nil {
				p.Pattrs = append(p.Pattrs, &anypb.Any{TypeUrl: a.url, Value: a.b})
			}
		}
		want, werr := parsePathSafely(p)
		pp := pathParser{now: now}
		got, gerr := pp.parse(p)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("GoBGP's decoding: %v; the route server's: %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		want.Since, got.Since = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("the route server decodes\n%+v\nGoBGP\n%+v", got, want)
		}
		a := got.Prefix.Addr()
		if !got.Prefix.IsValid() || got.Prefix != got.Prefix.Masked() || a.Is4In6() || a.Zone() != "" || got.NextHop.Is4In6() {
			t.Fatalf("route %+v is not canonical", got)
		}
		if n := len(got.ASPath); !got.asSet && n > 0 && got.OriginAS != got.ASPath[n-1] {
			t.Fatalf("route %+v: origin AS is not the last of the path", got)
		}
	})
}

// parsePathSafely is parsePath with a panic in GoBGP's decoding turned into
// an error, so the fuzzer reports the disagreement, not GoBGP's panic.
func parsePathSafely(p *api.Path) (r ReceivedRoute, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = errPanic{v}
		}
	}()
	return parsePath(p)
}

type errPanic struct{ v any }

func (e errPanic) Error() string { return "panic" }

// pathParts is what GoBGP's watch gives for a real path, as the fuzz
// target's arguments.
func pathParts(t testing.TB, pfx, nh string, segs [][]uint32, set bool, origin uint8, withdraw, linkLoc bool) ([]byte, []byte, []byte, []byte, []byte, bool, bool) {
	p := netip.MustParsePrefix(pfx)
	v6 := p.Addr().Is6()
	var nlri bgp.AddrPrefixInterface
	if v6 {
		nlri = bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
	} else {
		nlri = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
	}
	var params []bgp.AsPathParamInterface
	for i, s := range segs {
		typ := uint8(bgp.BGP_ASPATH_ATTR_TYPE_SEQ)
		if set && i == len(segs)-1 {
			typ = bgp.BGP_ASPATH_ATTR_TYPE_SET
		}
		params = append(params, bgp.NewAs4PathParam(typ, s))
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(origin), bgp.NewPathAttributeAsPath(params)}
	if v6 {
		mp := bgp.NewPathAttributeMpReachNLRI(nh, []bgp.AddrPrefixInterface{nlri})
		if linkLoc {
			mp.LinkLocalNexthop = netip.MustParseAddr("fe80::1").AsSlice()
		}
		attrs = append(attrs, mp)
	} else {
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nh))
	}
	ap, err := apiutil.NewPath(nlri, withdraw, attrs, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]byte{}
	for _, a := range ap.Pattrs {
		parts[a.TypeUrl] = a.Value
	}
	return ap.Nlri.Value, parts[urlOrigin], parts[urlASPath], parts[urlNextHop], parts[urlMPReach], v6, withdraw
}
