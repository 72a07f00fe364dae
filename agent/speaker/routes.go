package speaker

import (
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/bwxchange/bwx/shared/clock"
)

// NextHop is one way to a traded prefix: a seller's router.
type NextHop struct {
	Addr netip.Addr `json:"addr"`
	// Trades are the trade IDs the route server named for this path.
	Trades []uint64 `json:"trades"`
	// Stale: the route server is restarting and has not confirmed it yet.
	Stale bool `json:"stale,omitempty"`
}

// Route is a traded prefix and its next hops, sorted by address.
type Route struct {
	Prefix   netip.Prefix `json:"prefix"`
	NextHops []NextHop    `json:"next_hops"`
}

func (s *Speaker) onPaths(paths []*api.Path) {
	changed := false
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		if changed {
			s.notify()
		}
	}()
	if s.stopped {
		return
	}
	for _, p := range paths {
		peer, err := netip.ParseAddr(p.NeighborIp)
		if err != nil {
			continue
		}
		peer = peer.Unmap()
		ss := s.sessions[peer]
		if ss == nil {
			continue
		}
		if p.Nlri == nil && len(p.NlriBinary) == 0 {
			s.endOfRIB(ss)
			continue
		}
		k, h, err := s.parse(peer, p)
		if err != nil {
			s.log.Warn("unreadable path from the route server", "route_server", peer, "err", err)
			continue
		}
		s.stats.Updates++
		old := s.paths[k]
		if h == nil {
			// A stale path withdrawn (End-of-RIB after a restart, or
			// GoBGP's own restart timer) stays until our restart time
			// ends: after an arbiter restart a trade comes back only
			// once the seller's session is up again, which may be after
			// the route server's End-of-RIB to us.
			if old != nil && old.stale && clock.Now().Before(ss.staleUntil) {
				continue
			}
			if old != nil {
				delete(s.paths, k)
				changed = changed || old.trades != nil
			}
			continue
		}
		if h.stale {
			s.startOutage(ss)
		}
		if h.trades == nil {
			s.stats.Ignored++
			s.log.Debug("ignored a path that is not a trade of ours", "route_server", peer, "prefix", k.prefix, "next_hop", h.nextHop)
		}
		s.paths[k] = h
		if old == nil || old.trades != nil || h.trades != nil {
			changed = true
		}
	}
}

// parse reads a path; h is nil for a withdrawal.
func (s *Speaker) parse(peer netip.Addr, p *api.Path) (pathKey, *held, error) {
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return pathKey{}, nil, err
	}
	pfx, err := netip.ParsePrefix(nlri.String())
	if err != nil {
		return pathKey{}, nil, fmt.Errorf("prefix %q: %w", nlri.String(), err)
	}
	k := pathKey{peer: peer, prefix: pfx.Masked(), id: p.Identifier}
	if p.IsWithdraw {
		return k, nil, nil
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return k, nil, err
	}
	h := &held{stale: p.Stale}
	var large []*bgp.LargeCommunity
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			h.nextHop, _ = netip.AddrFromSlice(a.Value)
		case *bgp.PathAttributeMpReachNLRI:
			h.nextHop, _ = netip.AddrFromSlice(a.Nexthop)
		case *bgp.PathAttributeLargeCommunities:
			large = a.Values
		}
	}
	h.nextHop = h.nextHop.Unmap()
	h.trades = TradeIDs(s.cfg.RouteServerASN, s.cfg.ASN, large)
	return k, h, nil
}

// TradeIDs returns the trade IDs of a path for buyer asn, or nil if the
// path is not a trade for it: it must carry <rs>:1:<asn> and at least one
// <rs>:2:<trade ID>.
func TradeIDs(rs, asn uint32, large []*bgp.LargeCommunity) []uint64 {
	forUs := false
	var ids []uint64
	for _, c := range large {
		if c == nil || c.ASN != rs {
			continue
		}
		switch c.LocalData1 {
		case lcDeliverTo:
			forUs = forUs || c.LocalData2 == asn
		case lcTrade:
			ids = append(ids, uint64(c.LocalData2))
		}
	}
	if !forUs || len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Routes returns the traded routes learned now, sorted by prefix: the
// desired state of the FIB.
func (s *Speaker) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock.Now()
	type nhAcc struct {
		trades []uint64
		stale  bool
	}
	byPfx := map[netip.Prefix]map[netip.Addr]*nhAcc{}
	for k, h := range s.paths {
		if !s.usable(k, h, now) {
			continue
		}
		m := byPfx[k.prefix]
		if m == nil {
			m = map[netip.Addr]*nhAcc{}
			byPfx[k.prefix] = m
		}
		a := m[h.nextHop]
		if a == nil {
			a = &nhAcc{stale: true}
			m[h.nextHop] = a
		}
		a.trades = append(a.trades, h.trades...)
		a.stale = a.stale && h.stale
	}
	out := make([]Route, 0, len(byPfx))
	for p, m := range byPfx {
		r := Route{Prefix: p}
		for nh, a := range m {
			slices.Sort(a.trades)
			r.NextHops = append(r.NextHops, NextHop{Addr: nh, Trades: slices.Compact(a.trades), Stale: a.stale})
		}
		slices.SortFunc(r.NextHops, func(a, b NextHop) int { return a.Addr.Compare(b.Addr) })
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	return out
}
