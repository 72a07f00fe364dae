package fib

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// env is what the plan needs to know about the exchange interface and the
// next hops' health.
type env struct {
	ifname  string
	ifindex int
	ifDown  bool                // administratively down
	subnets []netip.Prefix      // connected subnets of the interface
	own     map[netip.Addr]bool // the interface's own addresses
	failed  map[netip.Addr]bool // neighbor entries in state FAILED
	down    map[netip.Addr]bool // marked down by SetNextHopDown
	metric  uint32
	nh6     bool // IPv6 routes use next-hop groups of their own (nexthop.go)
}

func (e *env) onLink(a netip.Addr) bool {
	for _, p := range e.subnets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// plan is the difference between what we want and what is ours in the
// table. Adds and replaces are applied before deletes, so moving a prefix
// to another metric never leaves it without a route. All lists are sorted
// by prefix.
type plan struct {
	add     []kroute
	replace []kroute // new versions
	old     []kroute // replace[i] replaces old[i]
	del     []kroute
	refused []Refusal
	want    []kroute // what the table should hold afterwards
	keep    []kroute // routes of ours kept as they are, as the kernel has them
	keepNH  []uint32 // next-hop objects of the routes kept as they are
}

// makePlan compares desired (validated, sorted) with actual (our routes in
// our table, any metric; sorted here) under e. It is pure: the kernel is
// not consulted. With e.nh6, an IPv6 route whose next hops are right but
// not in a group of its own is replaced (once) by one that is.
func makePlan(desired []dest, actual []kroute, e *env) plan {
	p := plan{want: make([]kroute, 0, len(desired)), keep: make([]kroute, 0, min(len(desired), len(actual)))}
	// Next hops are few (the sellers' routers) and routes many: each next
	// hop is judged once, and the routes with just that one share one
	// slice of it (never written to).
	type judged struct {
		refusal Refusal // Reason "" if usable
		alone   []khop  // the hop, if usable
	}
	seen := make(map[netip.Addr]*judged)
	judge := func(nh netip.Addr) *judged {
		j, ok := seen[nh]
		if !ok {
			j = &judged{}
			if r, bad := refuseHop(e, netip.Prefix{}, nh); bad {
				j.refusal = r
			} else {
				j.alone = []khop{{gw: nh, ifindex: e.ifindex}}
			}
			seen[nh] = j
		}
		return j
	}
	for _, d := range desired {
		kr := kroute{prefix: d.prefix, metric: e.metric, typ: unix.RTN_UNICAST, owned: e.nh6 && d.prefix.Addr().Is6()}
		for _, nh := range d.hops {
			j := judge(nh)
			switch {
			case j.alone == nil:
				r := j.refusal
				r.Prefix = d.prefix
				p.refused = append(p.refused, r)
			case len(d.hops) == 1:
				kr.hops = j.alone
			default:
				kr.hops = append(kr.hops, j.alone[0])
			}
		}
		if len(kr.hops) == 0 {
			p.refused = append(p.refused, Refusal{Prefix: d.prefix, Reason: ReasonNoNextHop,
				Detail: fmt.Sprintf("none of %d next hops is usable: traffic takes the normal path", len(d.hops))})
			continue
		}
		if len(kr.hops) > 1 {
			sortHops(kr.hops)
		}
		p.want = append(p.want, kr)
	}

	sortKroutes(actual) // the kernel dumps IPv4 nearly sorted: cheap
	i, j := 0, 0
	for i < len(p.want) || j < len(actual) {
		var c int
		switch {
		case i == len(p.want):
			c = 1
		case j == len(actual):
			c = -1
		default:
			c = comparePrefix(p.want[i].prefix, actual[j].prefix)
		}
		if c < 0 {
			p.add = append(p.add, p.want[i])
			i++
			continue
		}
		if c > 0 {
			p.del = append(p.del, actual[j])
			j++
			continue
		}
		// Ours for this prefix, by metric: the one at our metric is kept
		// or replaced; others (an older config's metric, or a second
		// route at our key appended by hand) go.
		w, matched := p.want[i], false
		for ; j < len(actual) && actual[j].prefix == w.prefix; j++ {
			a := actual[j]
			switch {
			case a.metric != w.metric || matched:
				p.del = append(p.del, a)
			case a.equal(w) && (a.owned || !w.owned):
				matched = true
				p.keep = append(p.keep, a)
				if a.nhid != 0 {
					p.keepNH = append(p.keepNH, a.nhid)
				}
			default:
				matched = true
				p.replace = append(p.replace, w)
				p.old = append(p.old, a)
			}
		}
		if !matched {
			p.add = append(p.add, w)
		}
		i++
	}
	return p
}

func refuseHop(e *env, pfx netip.Prefix, nh netip.Addr) (Refusal, bool) {
	r := Refusal{Prefix: pfx, NextHop: nh}
	switch {
	case e.ifDown:
		r.Reason, r.Detail = ReasonInterfaceDown, fmt.Sprintf("exchange interface %s is down", e.ifname)
	case e.down[nh]:
		r.Reason, r.Detail = ReasonDown, fmt.Sprintf("%v is marked down (SetNextHopDown)", nh)
	case e.own[nh]:
		r.Reason, r.Detail = ReasonOwnAddress, fmt.Sprintf("%v is an address of %s itself", nh, e.ifname)
	case !e.onLink(nh):
		r.Reason, r.Detail = ReasonOffLink, fmt.Sprintf("%v is in no subnet of %s %v", nh, e.ifname, e.subnets)
	case e.failed[nh]:
		r.Reason, r.Detail = ReasonNeighborFailed, fmt.Sprintf("neighbor %v on %s is FAILED (no ARP/ND answer)", nh, e.ifname)
	default:
		return Refusal{}, false
	}
	return r, true
}

// mergeKroutes merges a and b, each sorted by prefix and metric, into one
// sorted slice.
func mergeKroutes(a, b []kroute) []kroute {
	out := make([]kroute, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if c := comparePrefix(a[0].prefix, b[0].prefix); c < 0 || c == 0 && a[0].metric <= b[0].metric {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

func sortKroutes(rs []kroute) {
	slices.SortFunc(rs, func(a, b kroute) int {
		if c := comparePrefix(a.prefix, b.prefix); c != 0 {
			return c
		}
		return cmp.Compare(a.metric, b.metric)
	})
}
