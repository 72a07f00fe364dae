package routeserver

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/shared/clock"
)

// TestPathParserMatchesParsePath: the fast parser of watch events gives
// what parsePath gives, path by path, over runs of paths that share some
// attributes and differ in others (its caches must notice every change).
func TestPathParserMatchesParsePath(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// A few attribute sets, reused, so runs of equal ones occur.
		sets := rapid.SliceOfN(attrSetGen(), 1, 4).Draw(t, "attrs")
		n := rapid.IntRange(1, 20).Draw(t, "paths")
		pp := pathParser{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		for i := range n {
			set := sets[rapid.IntRange(0, len(sets)-1).Draw(t, "set")]
			pfx := prefixGen(set.v6).Draw(t, "prefix")
			withdraw := rapid.Float64Range(0, 1).Draw(t, "withdraw") < 0.2
			p := set.path(t, pfx, withdraw)
			want, werr := parsePath(p)
			got, gerr := pp.parse(p)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("path %d: parsePath error %v, pathParser error %v", i, werr, gerr)
			}
			want.Since, got.Since = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("path %d (%v):\n got %+v\nwant %+v", i, pfx, got, want)
			}
		}
	})
}

func TestPathParserNeighbor(t *testing.T) {
	var pp pathParser
	for _, c := range []struct {
		in   string
		want netip.Addr
		err  bool
	}{
		{"192.0.2.1", addr("192.0.2.1"), false},
		{"192.0.2.1", addr("192.0.2.1"), false},
		{"::ffff:192.0.2.2", addr("192.0.2.2"), false},
		{"2001:db8::1", addr("2001:db8::1"), false},
		{"bogus", netip.Addr{}, true},
		{"bogus", netip.Addr{}, true},
		{"2001:db8::1", addr("2001:db8::1"), false},
	} {
		got, err := pp.neighbor(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("neighbor(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

type attrSet struct {
	v6      bool
	origin  int // -1: none
	segs    []segment
	noPath  bool
	nextHop netip.Addr
	linkLoc bool
	med     int // -1: none
	comms   []uint32
	lcomm   bool
}

type segment struct {
	typ  uint8
	asns []uint32
}

func attrSetGen() *rapid.Generator[attrSet] {
	return rapid.Custom(func(t *rapid.T) attrSet {
		var s attrSet
		s.v6 = rapid.Bool().Draw(t, "v6")
		s.origin = rapid.IntRange(-1, 2).Draw(t, "origin")
		s.noPath = rapid.Float64Range(0, 1).Draw(t, "nopath") < 0.1
		types := []uint8{bgp.BGP_ASPATH_ATTR_TYPE_SEQ, bgp.BGP_ASPATH_ATTR_TYPE_SET, bgp.BGP_ASPATH_ATTR_TYPE_CONFED_SEQ, bgp.BGP_ASPATH_ATTR_TYPE_CONFED_SET}
		for range rapid.IntRange(0, 3).Draw(t, "segments") {
			s.segs = append(s.segs, segment{
				typ:  rapid.SampledFrom(types).Draw(t, "segtype"),
				asns: rapid.SliceOfN(rapid.Uint32Range(1, 70000), 1, 4).Draw(t, "asns"),
			})
		}
		if s.v6 {
			s.nextHop = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: rapid.Byte().Draw(t, "nh")})
			s.linkLoc = rapid.Bool().Draw(t, "linklocal")
		} else {
			s.nextHop = netip.AddrFrom4([4]byte{192, 0, 2, rapid.Byte().Draw(t, "nh")})
		}
		s.med = rapid.IntRange(-1, 100).Draw(t, "med")
		s.comms = rapid.SliceOfN(rapid.Uint32(), 0, 3).Draw(t, "communities")
		s.lcomm = rapid.Bool().Draw(t, "large")
		return s
	})
}

func prefixGen(v6 bool) *rapid.Generator[netip.Prefix] {
	return rapid.Custom(func(t *rapid.T) netip.Prefix {
		if v6 {
			var b [16]byte
			copy(b[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "addr6"))
			return netip.PrefixFrom(netip.AddrFrom16(b), rapid.IntRange(0, 128).Draw(t, "bits6")).Masked()
		}
		var b [4]byte
		copy(b[:], rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "addr4"))
		return netip.PrefixFrom(netip.AddrFrom4(b), rapid.IntRange(0, 32).Draw(t, "bits4")).Masked()
	})
}

// path builds the api.Path GoBGP's watch would give for pfx with s.
func (s attrSet) path(t *rapid.T, pfx netip.Prefix, withdraw bool) *api.Path {
	var nlri bgp.AddrPrefixInterface
	if s.v6 {
		nlri = bgp.NewIPv6AddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
	} else {
		nlri = bgp.NewIPAddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
	}
	var attrs []bgp.PathAttributeInterface
	if s.origin >= 0 {
		attrs = append(attrs, bgp.NewPathAttributeOrigin(uint8(s.origin)))
	}
	if !s.noPath {
		var params []bgp.AsPathParamInterface
		for _, seg := range s.segs {
			params = append(params, bgp.NewAs4PathParam(seg.typ, seg.asns))
		}
		attrs = append(attrs, bgp.NewPathAttributeAsPath(params))
	}
	if s.v6 {
		mp := bgp.NewPathAttributeMpReachNLRI(s.nextHop.String(), []bgp.AddrPrefixInterface{nlri})
		if s.linkLoc {
			mp.LinkLocalNexthop = netip.MustParseAddr("fe80::1").AsSlice()
		}
		attrs = append(attrs, mp)
	} else {
		attrs = append(attrs, bgp.NewPathAttributeNextHop(s.nextHop.String()))
	}
	if s.med >= 0 {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(uint32(s.med)))
	}
	if len(s.comms) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(s.comms))
	}
	if s.lcomm {
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{bgp.NewLargeCommunity(65000, 1, 64501)}))
	}
	p, err := apiutil.NewPath(nlri, withdraw, attrs, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.NeighborIp = "192.0.2.9"
	return p
}
