package quality

import (
	"net/netip"
	"sort"
	"time"
)

// Route analysis (claims 5, 6, 10): every member's agent is a vantage point,
// and every seller's registered prefixes are destinations; a path is measured
// by the vantage's agent sending probes through the seller's router. A path
// never measured (a member just joined, or registered a prefix) is due at
// once; a measured one is due again when its latest measurement is older
// than the revalidation interval. The planner is pure: the arbiter feeds it
// the registry and the matrix's latest measurement times.

// Path is what one probe task measures: from a vantage member, through a
// seller, toward one of the seller's prefixes.
type Path struct {
	Vantage, Via uint32
	Prefix       netip.Prefix
}

// Seller is a member whose prefixes can be measured through its router.
type Seller struct {
	ASN                uint32
	NextHop4, NextHop6 netip.Addr // its router on the exchange LAN
	Prefixes           []netip.Prefix
	// ASHops is the AS path length of the route it announces for a prefix
	// (what the route server received); absent: unknown.
	ASHops map[netip.Prefix]int32
}

// Task asks a vantage's agent to measure a path through NextHop.
type Task struct {
	Path
	NextHop netip.Addr
	// Targets are hints; the agent may prefer addresses it saw traffic to.
	Targets []netip.Addr
	// Never is true for a path with no measurement at all (route analysis
	// of a new member or prefix), false for a revalidation.
	Never bool
	// ASHops is the network distance of the seller's route (0: unknown).
	ASHops int32
}

// Planner hands out probe tasks. It remembers what it handed out so a task
// is not repeated before Retry, even when no result came back.
type Planner struct {
	// Revalidate is how old a path's latest measurement may get before the
	// path is measured again (claim 10).
	Revalidate time.Duration
	// Retry is how long a handed-out task waits for its result before it is
	// handed out again.
	Retry time.Duration
	// MaxPerRound bounds the tasks one vantage gets per call, so a new
	// member with many prefixes does not flood the agents.
	MaxPerRound int

	issued map[Path]time.Time
}

// Due returns the tasks due now for vantage, most urgent first: never
// measured, then the stalest. last gives a path's latest measurement time
// (zero if none).
func (p *Planner) Due(vantage uint32, sellers []Seller, last func(Path) time.Time, now time.Time) []Task {
	if p.issued == nil {
		p.issued = map[Path]time.Time{}
	}
	type cand struct {
		t    Task
		last time.Time
	}
	var due []cand
	for _, s := range sellers {
		if s.ASN == vantage {
			continue // a member does not buy its own routes
		}
		for _, pfx := range s.Prefixes {
			nh := s.nextHop(pfx)
			if !nh.IsValid() {
				continue // no router of that family: nothing to probe through
			}
			path := Path{Vantage: vantage, Via: s.ASN, Prefix: pfx.Masked()}
			l := last(path)
			if !l.IsZero() && now.Sub(l) < p.Revalidate {
				continue
			}
			if at, ok := p.issued[path]; ok && now.Sub(at) < p.Retry && !at.Before(l) {
				continue
			}
			due = append(due, cand{Task{Path: path, NextHop: nh, Targets: []netip.Addr{DefaultTarget(pfx)}, Never: l.IsZero(),
				ASHops: s.ASHops[pfx.Masked()]}, l})
		}
	}
	sort.SliceStable(due, func(i, j int) bool {
		if due[i].t.Never != due[j].t.Never {
			return due[i].t.Never
		}
		return due[i].last.Before(due[j].last)
	})
	if p.MaxPerRound > 0 && len(due) > p.MaxPerRound {
		due = due[:p.MaxPerRound]
	}
	out := make([]Task, len(due))
	for i, c := range due {
		out[i] = c.t
		p.issued[c.t.Path] = now
	}
	return out
}

// nextHop is s's router of p's family (invalid: none).
func (s Seller) nextHop(p netip.Prefix) netip.Addr {
	if p.Addr().Is6() {
		return s.NextHop6
	}
	return s.NextHop4
}

// Plans reports whether the planner asks vantage's agent to measure the
// path through s toward p (Due hands it out when it is due): s is another
// member with a router of p's family and p is one of its prefixes or
// inside one.
func (s Seller) Plans(vantage uint32, p netip.Prefix) bool {
	if s.ASN == vantage || !s.nextHop(p).IsValid() {
		return false
	}
	for _, q := range s.Prefixes {
		if within(p, q) {
			return true
		}
	}
	return false
}

// DefaultTarget is the probe target used when the agent has seen no traffic
// into a prefix: its first host address (commonly a router or an anycast
// service that answers).
func DefaultTarget(p netip.Prefix) netip.Addr {
	p = p.Masked()
	a := p.Addr()
	if p.Bits() < a.BitLen() {
		a = a.Next()
	}
	return a
}
