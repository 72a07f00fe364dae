package fib

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Route is a route the agent wants in the kernel: traffic to Prefix leaves
// through the exchange interface toward NextHops (several: ECMP, equal
// weights). Prefix and next hops are of one family, IPv4 or IPv6.
type Route struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Prefix.String())
	b.WriteString(" via ")
	for i, nh := range r.NextHops {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(nh.String())
	}
	return b.String()
}

// dest is a validated desired route.
type dest struct {
	prefix netip.Prefix
	hops   []netip.Addr // sorted, zones stripped
	idx    int          // index in the caller's slice, for errors
}

// validate checks the desired routes and returns the good ones sorted by
// prefix. A bad route (an invalid or unmasked prefix, a bad next hop, a
// prefix listed twice) is refused on its own (ReasonInvalid, naming its
// index): it is not installed, a route of ours for its prefix is removed,
// and the other routes are applied as usual, so one bad route never blocks
// the others or the removals.
func validate(desired []Route, ifname string) ([]dest, []Refusal) {
	out := make([]dest, 0, len(desired))
	// One array for every route's next hops: one allocation, not one
	// per route.
	total := 0
	for _, r := range desired {
		total += len(r.NextHops)
	}
	all := make([]netip.Addr, 0, total)
	var refused []Refusal
	bad := func(i int, r Route, format string, args ...any) {
		refused = append(refused, Refusal{Prefix: r.Prefix, Reason: ReasonInvalid,
			Detail: fmt.Sprintf("route %d (%v): %s", i, r, fmt.Sprintf(format, args...))})
	}
	for i, r := range desired {
		p := r.Prefix
		switch {
		case !p.IsValid():
			bad(i, r, "invalid prefix")
			continue
		case p.Addr().Zone() != "":
			bad(i, r, "prefix has a zone")
			continue
		case p.Addr().Is4In6():
			bad(i, r, "IPv4-mapped IPv6 prefix: use the IPv4 form")
			continue
		case p.Masked() != p:
			bad(i, r, "host bits set (want %v)", p.Masked())
			continue
		case len(r.NextHops) == 0:
			bad(i, r, "no next hop")
			continue
		}
		n := len(all)
		hops := all[n:n:min(n+len(r.NextHops), cap(all))]
		ok := true
		for _, nh := range r.NextHops {
			if z := nh.Zone(); z != "" && z != ifname {
				bad(i, r, "next hop %v: zone is not the exchange interface %s", nh, ifname)
				ok = false
				break
			}
			nh = nh.WithZone("")
			switch {
			case !nh.IsValid():
				bad(i, r, "invalid next hop")
			case nh.Is4() != p.Addr().Is4() || nh.Is4In6():
				bad(i, r, "next hop %v is not of the prefix's family", nh)
			case nh.IsUnspecified() || nh.IsMulticast() || nh.IsLoopback() ||
				(nh.Is4() && nh == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
				bad(i, r, "next hop %v is not a unicast address", nh)
			case slices.Contains(hops, nh):
				bad(i, r, "next hop %v listed twice", nh)
			default:
				hops = append(hops, nh)
				continue
			}
			ok = false
			break
		}
		if !ok {
			continue
		}
		slices.SortFunc(hops, netip.Addr.Compare)
		all = all[:n+len(hops)]
		out = append(out, dest{prefix: p, hops: hops, idx: i})
	}
	// Sorted slices rather than maps: on this class of machine a map of
	// 600k prefixes costs ~300 ns per operation (cache misses), a sort of
	// an already sorted slice next to nothing.
	slices.SortFunc(out, func(a, b dest) int { return comparePrefix(a.prefix, b.prefix) })
	// A prefix listed twice: which route is meant is unknown, so every
	// copy is refused.
	dup := false
	for k := 1; k < len(out); k++ {
		if out[k].prefix == out[k-1].prefix {
			dup = true
			break
		}
	}
	if dup {
		kept := out[:0]
		for k := 0; k < len(out); {
			n := k + 1
			for n < len(out) && out[n].prefix == out[k].prefix {
				n++
			}
			if n-k == 1 {
				kept = append(kept, out[k])
			} else {
				for _, d := range out[k:n] {
					bad(d.idx, desired[d.idx], "prefix listed %d times", n-k)
				}
			}
			k = n
		}
		out = kept
	}
	return out, refused
}

// kroute is a route as it is (or is to be) in the kernel: our protocol and
// table are implied.
type kroute struct {
	prefix netip.Prefix
	metric uint32
	typ    uint8  // RTN_*; ours are RTN_UNICAST
	hops   []khop // sorted by gw
	// nhid is the route's next-hop object (RTA_NH_ID), 0 if the next
	// hops are in the route itself. owned: it is a group of ours that
	// this route alone uses, with members of ours that no other group
	// has, so it may be changed in place (see nexthop.go).
	nhid  uint32
	owned bool
}

// khop is one next hop. weight is the kernel's rtnh_hops (weight-1), kept
// so that a hand-set weight counts as a change.
type khop struct {
	gw      netip.Addr
	ifindex int
	weight  uint8
}

// equal compares what the route does (prefix, metric, type, next hops),
// not how the kernel holds its next hops.
func (r kroute) equal(o kroute) bool {
	return r.prefix == o.prefix && r.metric == o.metric && r.typ == o.typ && slices.Equal(r.hops, o.hops)
}

func (r kroute) route() Route {
	out := Route{Prefix: r.prefix, NextHops: make([]netip.Addr, 0, len(r.hops))}
	for _, h := range r.hops {
		if h.gw.IsValid() {
			out.NextHops = append(out.NextHops, h.gw)
		}
	}
	return out
}

func sortHops(h []khop) {
	slices.SortFunc(h, func(a, b khop) int {
		return cmp.Or(a.gw.Compare(b.gw), cmp.Compare(a.ifindex, b.ifindex), cmp.Compare(a.weight, b.weight))
	})
}

// comparePrefix orders IPv4 before IPv6, then by address, then by length:
// netip.Prefix.Compare's order for the masked prefixes the FIB holds, by
// hand because it sorts and searches 600k routes and Compare masks both
// prefixes on every call. Prefixes here never have zones.
func comparePrefix(a, b netip.Prefix) int {
	x, y := a.Addr(), b.Addr()
	if c := cmp.Compare(x.BitLen(), y.BitLen()); c != 0 {
		return c
	}
	xa, ya := x.As16(), y.As16()
	if c := cmp.Compare(binary.BigEndian.Uint64(xa[:8]), binary.BigEndian.Uint64(ya[:8])); c != 0 {
		return c
	}
	if c := cmp.Compare(binary.BigEndian.Uint64(xa[8:]), binary.BigEndian.Uint64(ya[8:])); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func sortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) })
}
