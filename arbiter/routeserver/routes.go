package routeserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gaissmai/bart"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/proto"

	"github.com/bwxchange/bwx/shared/clock"
)

// ReceivedRoute is a route a member announced, with the verdict.
type ReceivedRoute struct {
	ASN      uint32       // the member
	Neighbor netip.Addr   // the session (member router) it came from
	Prefix   netip.Prefix //
	NextHop  netip.Addr   //
	ASPath   []uint32     // as received (AS_SEQUENCE; an AS_SET is flattened)
	OriginAS uint32       // last AS of the AS_PATH; 0 if it ends in an AS_SET
	Origin   string       // ORIGIN attribute: "i" (IGP), "e" (EGP) or "?" (incomplete)
	Accepted bool         //
	Reason   string       // why not accepted (or the Checker's note)
	Since    time.Time    // when this version was received (UTC)

	asSet bool // an AS_SET anywhere in the AS_PATH
}

// RouteEvent reports a change of what a member announces: a route
// received (Withdrawn false, with its verdict) or gone (Withdrawn true;
// also when its session goes down or the member is removed).
type RouteEvent struct {
	ReceivedRoute
	Withdrawn bool
}

// OnRoute sets the function called for every RouteEvent, for example to
// record in the registry which routes each member really announces. It is
// called after the route server's own state has changed, one call at a
// time, and must not block for long (it delays route processing).
func (s *Server) OnRoute(fn func(RouteEvent)) {
	s.mu.Lock()
	s.onRoute = fn
	s.mu.Unlock()
}

// Reasons set by the route server itself (the Checker adds its own).
const (
	ReasonFirstAS = "first AS is not the member's"
	ReasonASSet   = "AS_SET in AS_PATH"
	ReasonNoPath  = "empty AS_PATH"
	// ReasonNextHop: the next hop is not one of the announcing member's
	// registered router addresses (another member's router, or none on
	// the exchange LAN): traffic would go where that member cannot answer
	// for it.
	ReasonNextHop = "next hop is not the member's router"
)

// onEvent is GoBGP's watch callback (its own goroutine, events in order).
func (s *Server) onEvent(ev *api.WatchEventResponse) {
	switch e := ev.Event.(type) {
	case *api.WatchEventResponse_Peer:
		s.onPeer(e.Peer)
	case *api.WatchEventResponse_Table:
		s.onPaths(e.Table.Paths)
	}
}

func (s *Server) onPeer(pe *api.WatchEventResponse_PeerEvent) {
	// State changes come as STATE, except the last one of a deleted
	// session, which GoBGP sends with the type unset.
	if pe.Type == api.WatchEventResponse_PeerEvent_END_OF_INIT || pe.Peer == nil || pe.Peer.State == nil {
		return
	}
	st := pe.Peer.State
	addr, err := netip.ParseAddr(st.NeighborAddress)
	if err != nil {
		return
	}
	addr = addr.Unmap()
	s.mu.Lock()
	n := s.nbrs[addr]
	if n == nil {
		s.mu.Unlock()
		return
	}
	was := n.established()
	if n.state != st.SessionState {
		n.since = clock.Now()
	}
	n.state, n.admin = st.SessionState, st.AdminState
	now := n.established()
	down := was && !now
	if now != was {
		s.dirtyNeighbor(n)
		s.judgeBuyer(n.asn) // its trades as a buyer reach it, or not
	}
	if !now && n.gone != nil {
		close(n.gone)
		n.gone = nil
	}
	s.mu.Unlock()
	switch {
	case down:
		s.log.Info("member session down", "asn", n.asn, "neighbor", addr, "state", st.SessionState.String(), "admin", st.AdminState.String())
	case now && !was:
		s.log.Info("member session up", "asn", n.asn, "neighbor", addr)
	}
	if down {
		// GoBGP drops the session's Adj-RIB-In without UPDATE events.
		s.dropRoutes(n)
	}
	if err := s.reconcile(context.Background()); err != nil && !errors.Is(err, ErrStopped) {
		s.log.Error("reconcile trades after a session change", "neighbor", addr, "err", err)
	}
}

// incoming is one announcement or withdrawal from the watch.
type incoming struct {
	n         *neighbor
	route     ReceivedRoute
	withdrawn bool
}

func (s *Server) onPaths(paths []*api.Path) {
	// Parse without the lock: a full table arrives as many thousands of
	// paths. x.n holds nothing yet.
	in := make([]incoming, 0, len(paths))
	addrs := make([]netip.Addr, 0, len(paths))
	var bad []error // parse errors, by address in badAddrs
	var badAddrs []netip.Addr
	pp := pathParser{now: clock.Now().UTC()}
	for _, p := range paths {
		addr, err := pp.neighbor(p.NeighborIp)
		if err != nil || p.IsWithdraw && p.Nlri == nil {
			continue
		}
		r, err := pp.parse(p)
		if err != nil {
			bad, badAddrs = append(bad, err), append(badAddrs, addr)
			continue
		}
		in = append(in, incoming{route: r, withdrawn: p.IsWithdraw})
		addrs = append(addrs, addr)
	}
	s.mu.Lock()
	for i, err := range bad {
		if n := s.nbrs[badAddrs[i]]; n != nil {
			s.log.Warn("unreadable route from a member", "asn", n.asn, "neighbor", n.addr, "err", err)
		}
	}
	kept := in[:0]
	for i, x := range in {
		n := s.nbrs[addrs[i]]
		if n == nil {
			continue
		}
		x.n = n
		x.route.ASN, x.route.Neighbor = n.asn, n.addr
		kept = append(kept, x)
	}
	in = kept
	s.mu.Unlock()
	if len(in) == 0 {
		return
	}
	// The Checker may be slow (database, RPKI): no lock held.
	for i := range in {
		if !in[i].withdrawn {
			s.judge(&in[i].route, in[i].n.routers)
		}
	}
	var events []RouteEvent
	s.mu.Lock()
	fn := s.onRoute
	if fn != nil {
		events = make([]RouteEvent, 0, len(in))
	}
	for _, x := range in {
		if s.nbrs[x.n.addr] != x.n {
			continue // removed meanwhile
		}
		if x.withdrawn {
			if old := x.n.routes[x.route.Prefix]; old != nil {
				s.forget(x.n, old)
				if fn != nil {
					events = append(events, RouteEvent{ReceivedRoute: *old, Withdrawn: true})
				}
			}
			continue
		}
		r := x.route
		s.store(x.n, &r)
		if fn != nil {
			events = append(events, RouteEvent{ReceivedRoute: r})
		}
	}
	s.mu.Unlock()
	s.emit(fn, events)
	if err := s.reconcile(context.Background()); err != nil && !errors.Is(err, ErrStopped) {
		s.log.Error("reconcile trades after route changes", "err", err)
	}
}

// judge fills in r's verdict; routers are the announcing member's
// registered router addresses (a next hop must be one of them).
func (s *Server) judge(r *ReceivedRoute, routers []netip.Addr) {
	r.Accepted, r.Reason = false, ""
	switch {
	case len(r.ASPath) == 0:
		r.Reason = ReasonNoPath
	case r.ASPath[0] != r.ASN:
		r.Reason = ReasonFirstAS
	case r.asSet:
		r.Reason = ReasonASSet
	case !slices.Contains(routers, r.NextHop):
		r.Reason = ReasonNextHop
	default:
		r.Accepted, r.Reason = s.cfg.Checker.Check(r.ASN, r.Prefix, r.OriginAS)
		if !r.Accepted && r.Reason == "" {
			r.Reason = "rejected"
		}
	}
}

// store records r (replacing the neighbor's route for its prefix) and
// marks the trade paths it may feed. s.mu is held.
func (s *Server) store(n *neighbor, r *ReceivedRoute) {
	if old := n.routes[r.Prefix]; old != nil {
		s.forget(n, old)
	}
	n.routes[r.Prefix] = r
	if r.Accepted {
		n.accepted.Insert(r.Prefix, r)
		n.nAcc++
	}
	s.dirtyCovered(n, r.Prefix)
}

// forget removes r from the neighbor's tables. s.mu is held.
func (s *Server) forget(n *neighbor, r *ReceivedRoute) {
	delete(n.routes, r.Prefix)
	if r.Accepted {
		n.accepted.Delete(r.Prefix)
		n.nAcc--
	}
	s.dirtyCovered(n, r.Prefix)
}

// dropRoutes forgets every route of n (session down, member removed).
func (s *Server) dropRoutes(n *neighbor) {
	s.mu.Lock()
	events := make([]RouteEvent, 0, len(n.routes))
	for _, r := range n.routes {
		events = append(events, RouteEvent{ReceivedRoute: *r, Withdrawn: true})
	}
	clear(n.routes)
	n.accepted = new(bart.Table[*ReceivedRoute])
	n.nAcc = 0
	s.dirtyNeighbor(n)
	fn := s.onRoute
	s.mu.Unlock()
	slices.SortFunc(events, func(a, b RouteEvent) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	s.emit(fn, events)
}

func (s *Server) emit(fn func(RouteEvent), events []RouteEvent) {
	if fn == nil || len(events) == 0 {
		return
	}
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	for _, e := range events {
		e.ASPath = slices.Clone(e.ASPath)
		fn(e)
	}
}

// Recheck runs the Checker again over the routes the member announces now
// (asn 0: every member), after registry, IRR or RPKI data changed. Routes
// whose verdict changes are reported through OnRoute and trades follow.
func (s *Server) Recheck(ctx context.Context, asn uint32) error {
	type item struct {
		n *neighbor
		r *ReceivedRoute
	}
	var items []item
	s.mu.Lock()
	if asn != 0 {
		if _, ok := s.members[asn]; !ok {
			s.mu.Unlock()
			return fmt.Errorf("routeserver: AS%d is not a member", asn)
		}
	}
	for _, n := range s.nbrs {
		if asn != 0 && n.asn != asn {
			continue
		}
		for _, r := range n.routes {
			items = append(items, item{n, r})
		}
	}
	s.mu.Unlock()
	fresh := make([]ReceivedRoute, len(items))
	for i, it := range items {
		fresh[i] = *it.r
		s.judge(&fresh[i], it.n.routers)
	}
	var events []RouteEvent
	s.mu.Lock()
	for i, it := range items {
		// Skip routes replaced or gone meanwhile: their new version was
		// judged with the new data already.
		if s.nbrs[it.n.addr] != it.n || it.n.routes[it.r.Prefix] != it.r {
			continue
		}
		if fresh[i].Accepted == it.r.Accepted && fresh[i].Reason == it.r.Reason {
			continue
		}
		r := fresh[i]
		s.store(it.n, &r)
		events = append(events, RouteEvent{ReceivedRoute: r})
	}
	fn := s.onRoute
	s.mu.Unlock()
	s.emit(fn, events)
	return s.reconcile(ctx)
}

// Received returns the routes the member announces now, accepted or not,
// sorted by prefix and session.
func (s *Server) Received(asn uint32) []ReceivedRoute {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ReceivedRoute
	for _, n := range s.nbrs {
		if n.asn != asn {
			continue
		}
		for _, r := range n.routes {
			c := *r
			c.ASPath = slices.Clone(r.ASPath)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b ReceivedRoute) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		return a.Neighbor.Compare(b.Neighbor)
	})
	return out
}

// RouteStats counts a member's current routes.
type RouteStats struct {
	Received, Accepted, Rejected int
	// Rejected routes by reason.
	Reasons map[string]int
}

// Stats counts the routes the member announces now, by verdict and reason.
func (s *Server) Stats(asn uint32) RouteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := RouteStats{Reasons: map[string]int{}}
	for _, n := range s.nbrs {
		if n.asn != asn {
			continue
		}
		st.Received += len(n.routes)
		st.Accepted += n.nAcc
		if len(n.routes) == n.nAcc {
			continue // nothing rejected: skip the walk over every route
		}
		for _, r := range n.routes {
			if !r.Accepted {
				st.Reasons[r.Reason]++
			}
		}
	}
	st.Rejected = st.Received - st.Accepted
	return st
}

// parsePath turns a watched path into a ReceivedRoute (verdict unset).
func parsePath(p *api.Path) (ReceivedRoute, error) {
	var r ReceivedRoute
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return r, err
	}
	pfx, err := netip.ParsePrefix(nlri.String())
	if err != nil {
		return r, fmt.Errorf("prefix %q: %w", nlri.String(), err)
	}
	r.Prefix = pfx.Masked()
	r.Since = clock.Now().UTC()
	if p.IsWithdraw {
		return r, nil
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return r, err
	}
	r.Origin = "?"
	lastSet := false
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeOrigin:
			r.Origin = originString(a.Value)
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				asns := seg.GetAS()
				r.ASPath = append(r.ASPath, asns...)
				t := seg.GetType()
				lastSet = t == bgp.BGP_ASPATH_ATTR_TYPE_SET || t == bgp.BGP_ASPATH_ATTR_TYPE_CONFED_SET
				r.asSet = r.asSet || lastSet
			}
		case *bgp.PathAttributeNextHop:
			r.NextHop, _ = netip.AddrFromSlice(a.Value)
		case *bgp.PathAttributeMpReachNLRI:
			r.NextHop, _ = netip.AddrFromSlice(a.Nexthop)
		}
	}
	r.NextHop = r.NextHop.Unmap()
	if n := len(r.ASPath); n > 0 && !lastSet {
		r.OriginAS = r.ASPath[n-1]
	}
	return r, nil
}

func originString(v uint8) string {
	switch v {
	case bgp.BGP_ORIGIN_ATTR_TYPE_IGP:
		return "i"
	case bgp.BGP_ORIGIN_ATTR_TYPE_EGP:
		return "e"
	}
	return "?"
}

func originValue(s string) uint8 {
	switch s {
	case "i":
		return bgp.BGP_ORIGIN_ATTR_TYPE_IGP
	case "e":
		return bgp.BGP_ORIGIN_ATTR_TYPE_EGP
	}
	return bgp.BGP_ORIGIN_ATTR_TYPE_INCOMPLETE
}

func asPathString(p []uint32) string {
	var b strings.Builder
	for i, a := range p {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, a)
	}
	return b.String()
}

// pathParser parses the paths of one watch event. GoBGP marshals the
// attributes of every path of an UPDATE on their own, so consecutive
// paths mostly carry byte-identical ORIGIN, AS_PATH and NEXT_HOP values:
// each is decoded only when it differs from the previous path's, and the
// routes share the decoded AS_PATH (ReceivedRoute.ASPath is never
// modified in place; what leaves the package is a copy). Anything but
// plain IPv4/IPv6 unicast goes to parsePath.
type pathParser struct {
	now time.Time // Since of every route

	nbrIP  string
	nbr    netip.Addr
	nbrErr error

	originRaw []byte
	origin    string

	asPathRaw []byte
	asPath    []uint32
	asSet     bool
	originAS  uint32

	nextHopRaw []byte
	nextHop    netip.Addr
}

// Type URLs of the attributes and NLRI pathParser decodes itself.
var (
	urlOrigin  = anyURL(&api.OriginAttribute{})
	urlASPath  = anyURL(&api.AsPathAttribute{})
	urlNextHop = anyURL(&api.NextHopAttribute{})
	urlMPReach = anyURL(&api.MpReachNLRIAttribute{})
	urlPrefix  = anyURL(&api.IPAddressPrefix{})
)

func anyURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// neighbor parses a path's NeighborIp (the same for a whole event, mostly).
func (pp *pathParser) neighbor(ip string) (netip.Addr, error) {
	if ip != pp.nbrIP || (!pp.nbr.IsValid() && pp.nbrErr == nil) {
		a, err := netip.ParseAddr(ip)
		pp.nbrIP, pp.nbr, pp.nbrErr = ip, a.Unmap(), err
	}
	return pp.nbr, pp.nbrErr
}

// parse is parsePath, faster for a run of paths from one UPDATE.
func (pp *pathParser) parse(p *api.Path) (ReceivedRoute, error) {
	if p.Nlri == nil || p.Nlri.TypeUrl != urlPrefix {
		return pp.slow(p)
	}
	var nlri api.IPAddressPrefix
	if err := proto.Unmarshal(p.Nlri.Value, &nlri); err != nil {
		return ReceivedRoute{}, fmt.Errorf("NLRI: %w", err)
	}
	a, err := netip.ParseAddr(nlri.Prefix)
	if err != nil || nlri.PrefixLen > uint32(a.BitLen()) || a.Zone() != "" || a.Is4In6() {
		return pp.slow(p)
	}
	r := ReceivedRoute{Prefix: netip.PrefixFrom(a, int(nlri.PrefixLen)).Masked(), Since: pp.now}
	if p.IsWithdraw {
		return r, nil
	}
	r.Origin = "?"
	for _, at := range p.Pattrs {
		switch at.TypeUrl {
		case urlOrigin:
			if pp.origin == "" || !bytes.Equal(at.Value, pp.originRaw) {
				var o api.OriginAttribute
				if err := proto.Unmarshal(at.Value, &o); err != nil {
					return pp.slow(p)
				}
				pp.originRaw, pp.origin = at.Value, originString(uint8(o.Origin))
			}
			r.Origin = pp.origin
		case urlASPath:
			if pp.asPathRaw == nil || !bytes.Equal(at.Value, pp.asPathRaw) {
				var ap api.AsPathAttribute
				if err := proto.Unmarshal(at.Value, &ap); err != nil {
					return pp.slow(p)
				}
				pp.asPath, pp.asSet, pp.originAS = nil, false, 0
				lastSet := false
				for _, seg := range ap.Segments {
					pp.asPath = append(pp.asPath, seg.Numbers...)
					lastSet = seg.Type == bgp.BGP_ASPATH_ATTR_TYPE_SET || seg.Type == bgp.BGP_ASPATH_ATTR_TYPE_CONFED_SET
					pp.asSet = pp.asSet || lastSet
				}
				if n := len(pp.asPath); n > 0 && !lastSet {
					pp.originAS = pp.asPath[n-1]
				}
				pp.asPathRaw = at.Value
				if pp.asPathRaw == nil {
					pp.asPathRaw = []byte{} // decoded, though empty
				}
			}
			r.ASPath, r.asSet, r.OriginAS = pp.asPath, pp.asSet, pp.originAS
		case urlNextHop:
			if !pp.nextHop.IsValid() || !bytes.Equal(at.Value, pp.nextHopRaw) {
				var nh api.NextHopAttribute
				if err := proto.Unmarshal(at.Value, &nh); err != nil {
					return pp.slow(p)
				}
				a, err := netip.ParseAddr(nh.NextHop)
				if err != nil {
					return pp.slow(p)
				}
				pp.nextHopRaw, pp.nextHop = at.Value, a.Unmap()
			}
			r.NextHop = pp.nextHop
		case urlMPReach:
			// Carries this path's NLRI too: different for every path.
			var mp api.MpReachNLRIAttribute
			if err := proto.Unmarshal(at.Value, &mp); err != nil || len(mp.NextHops) == 0 {
				return pp.slow(p)
			}
			a, err := netip.ParseAddr(mp.NextHops[0])
			if err != nil {
				return pp.slow(p)
			}
			r.NextHop = a.Unmap()
		}
	}
	return r, nil
}

// slow parses p with parsePath.
func (pp *pathParser) slow(p *api.Path) (ReceivedRoute, error) {
	r, err := parsePath(p)
	r.Since = pp.now
	return r, err
}
