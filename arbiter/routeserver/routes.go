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
	"google.golang.org/protobuf/encoding/protowire"
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
		s.log.Debug("member session down", "asn", n.asn, "neighbor", addr, "state", st.SessionState.String(), "admin", st.AdminState.String())
	case now && !was:
		s.log.Info("member session up", "asn", n.asn, "neighbor", addr)
	}
	if down {
		s.sessionClosed(n, st)
		// GoBGP drops the session's Adj-RIB-In without UPDATE events.
		s.dropRoutes(n)
	}
	if err := s.reconcile(context.Background()); err != nil && !errors.Is(err, ErrStopped) {
		s.log.Error("reconcile trades after a session change", "neighbor", addr, "err", err)
	}
}

// incoming is one announcement or withdrawal from the watch.
type incoming struct {
	n      *neighbor
	prefix netip.Prefix
	held   heldRoute // attrs nil: withdrawn
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
		pfx, attrs, err := pp.parseHeld(p)
		if err != nil {
			bad, badAddrs = append(bad, err), append(badAddrs, addr)
			continue
		}
		in = append(in, incoming{prefix: pfx, held: heldRoute{attrs: attrs}})
		addrs = append(addrs, addr)
	}
	s.mu.Lock()
	for i, err := range bad {
		if n := s.nbrs[badAddrs[i]]; n != nil {
			s.log.Warn("unreadable route from a member", "asn", n.asn, "neighbor", n.addr, "err", err)
		}
	}
	kept := in[:0]
	var last *neighbor // the paths of an event mostly come from one session
	for i, x := range in {
		if last == nil || last.addr != addrs[i] {
			last = s.nbrs[addrs[i]]
		}
		if last == nil {
			continue
		}
		x.n = last
		kept = append(kept, x)
	}
	in = kept
	s.mu.Unlock()
	if len(in) == 0 {
		return
	}
	// The Checker may be slow (database, RPKI): no lock held.
	for i := range in {
		x := &in[i]
		if x.held.attrs != nil {
			x.held.accepted, x.held.reason = s.verdict(x.n.asn, x.prefix, x.held.attrs, x.n.routers)
		}
	}
	var events []RouteEvent
	s.mu.Lock()
	fn := s.onRoute
	if fn != nil {
		events = make([]RouteEvent, 0, len(in))
	}
	var live *neighbor // x.n is still the session's
	for _, x := range in {
		if x.n != live {
			if s.nbrs[x.n.addr] != x.n {
				continue // removed meanwhile
			}
			live = x.n
		}
		if x.held.attrs == nil {
			if old, ok := x.n.routes.Get(x.prefix); ok {
				s.forget(x.n, x.prefix, old)
				if fn != nil {
					events = append(events, RouteEvent{ReceivedRoute: old.received(x.n, x.prefix), Withdrawn: true})
				}
			}
			continue
		}
		s.store(x.n, x.prefix, x.held)
		if fn != nil {
			events = append(events, RouteEvent{ReceivedRoute: x.held.received(x.n, x.prefix)})
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
	a := routeAttrs{nextHop: r.NextHop, asPath: r.ASPath, originAS: r.OriginAS, origin: r.Origin, asSet: r.asSet}
	r.Accepted, r.Reason = s.verdict(r.ASN, r.Prefix, &a, routers)
}

// verdict is judge's decision on a route of member asn.
func (s *Server) verdict(asn uint32, p netip.Prefix, a *routeAttrs, routers []netip.Addr) (ok bool, reason string) {
	switch {
	case len(a.asPath) == 0:
		return false, ReasonNoPath
	case a.asPath[0] != asn:
		return false, ReasonFirstAS
	case a.asSet:
		return false, ReasonASSet
	case len(a.asPath) > MaxASPathLen:
		return false, ReasonASPathTooLong
	case !slices.Contains(routers, a.nextHop):
		return false, ReasonNextHop
	}
	ok, reason = s.cfg.Checker.Check(asn, p, a.originAS)
	if !ok && reason == "" {
		reason = "rejected"
	}
	return ok, reason
}

// store records h as the neighbor's route for p (replacing the one it
// had) and marks the trade paths it may feed. s.mu is held.
func (s *Server) store(n *neighbor, p netip.Prefix, h heldRoute) {
	var old heldRoute
	n.routes.Modify(p, func(v heldRoute, _ bool) (heldRoute, bool) {
		old = v
		return h, false
	})
	switch {
	case h.accepted && !old.accepted:
		n.nAcc++
	case !h.accepted && old.accepted:
		n.nAcc--
	}
	s.dirtyCovered(n, p)
}

// forget removes the neighbor's route h for p. s.mu is held.
func (s *Server) forget(n *neighbor, p netip.Prefix, h heldRoute) {
	n.routes.Delete(p)
	if h.accepted {
		n.nAcc--
	}
	s.dirtyCovered(n, p)
}

// dropRoutes forgets every route of n (session down, member removed).
func (s *Server) dropRoutes(n *neighbor) {
	s.mu.Lock()
	events := make([]RouteEvent, 0, n.routes.Size())
	for p, h := range n.routes.All() {
		events = append(events, RouteEvent{ReceivedRoute: h.received(n, p), Withdrawn: true})
	}
	n.routes = new(bart.Table[heldRoute])
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
		p netip.Prefix
		h heldRoute
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
		for p, h := range n.routes.All() {
			items = append(items, item{n, p, h})
		}
	}
	s.mu.Unlock()
	fresh := make([]heldRoute, len(items))
	for i, it := range items {
		fresh[i] = it.h
		fresh[i].accepted, fresh[i].reason = s.verdict(it.n.asn, it.p, it.h.attrs, it.n.routers)
	}
	var events []RouteEvent
	s.mu.Lock()
	for i, it := range items {
		// Skip routes replaced or gone meanwhile: their new version was
		// judged with the new data already. (A new version has attributes
		// of its own: they are never shared across watch events.)
		if cur, ok := it.n.routes.Get(it.p); s.nbrs[it.n.addr] != it.n || !ok || cur != it.h {
			continue
		}
		if fresh[i] == it.h {
			continue
		}
		s.store(it.n, it.p, fresh[i])
		events = append(events, RouteEvent{ReceivedRoute: fresh[i].received(it.n, it.p)})
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
		for p, h := range n.routes.All() {
			c := h.received(n, p)
			c.ASPath = slices.Clone(c.ASPath)
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
		st.Received += n.routes.Size()
		st.Accepted += n.nAcc
		if n.routes.Size() == n.nAcc {
			continue // nothing rejected: skip the walk over every route
		}
		for _, h := range n.routes.All() {
			if !h.accepted {
				st.Reasons[h.reason]++
			}
		}
	}
	st.Rejected = st.Received - st.Accepted
	return st
}

// routeAttrs are what the route server keeps of a received route beside
// its prefix and verdict. The routes of one watch event (one UPDATE) with
// the same attributes share one routeAttrs, which is never modified, and
// a new event makes new ones.
type routeAttrs struct {
	nextHop  netip.Addr
	asPath   []uint32
	originAS uint32
	origin   string
	asSet    bool
	since    time.Time
}

// heldRoute is a received route as its neighbor keeps it, by prefix.
type heldRoute struct {
	attrs    *routeAttrs
	reason   string
	accepted bool
}

// received is h as a ReceivedRoute (its AS_PATH shared, not copied).
func (h heldRoute) received(n *neighbor, p netip.Prefix) ReceivedRoute {
	a := h.attrs
	return ReceivedRoute{ASN: n.asn, Neighbor: n.addr, Prefix: p, NextHop: a.nextHop, ASPath: a.asPath,
		OriginAS: a.originAS, Origin: a.origin, Accepted: h.accepted, Reason: h.reason, Since: a.since, asSet: a.asSet}
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
	if !familyFits(p, pfx.Addr()) {
		// GoBGP reads an IPv4 string under IPv6 as ::ffff:a.b.c.d, which
		// masks to another prefix (0.0.0.0/0 became ::/0).
		return r, fmt.Errorf("prefix %q is not of the path's address family %v", nlri.String(), p.Family)
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

// familyFits reports whether a, a path's prefix address as written,
// is of the path's address family.
func familyFits(p *api.Path, a netip.Addr) bool {
	switch p.GetFamily().GetAfi() {
	case api.Family_AFI_IP:
		return a.Is4()
	case api.Family_AFI_IP6:
		return a.Is6() && !a.Is4In6()
	}
	return false
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

	last *routeAttrs // the previous path's
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
	pfx, a, err := pp.parseHeld(p)
	if err != nil || a == nil {
		return ReceivedRoute{Prefix: pfx, Since: pp.now}, err
	}
	return heldRoute{attrs: a}.received(&neighbor{}, pfx), nil
}

// parseHeld parses p into its prefix and attributes (nil for a
// withdrawal); a run of paths with equal attributes shares one routeAttrs.
func (pp *pathParser) parseHeld(p *api.Path) (netip.Prefix, *routeAttrs, error) {
	if p.Nlri == nil || p.Nlri.TypeUrl != urlPrefix {
		return pp.slow(p)
	}
	pfx, ok := parseIPPrefix(p.Nlri.Value)
	if !ok || !familyFits(p, pfx.Addr()) {
		return pp.slow(p)
	}
	if p.IsWithdraw {
		return pfx, nil, nil
	}
	origin := "?"
	var asPath []uint32
	var asSet bool
	var originAS uint32
	var nextHop netip.Addr
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
			origin = pp.origin
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
			asPath, asSet, originAS = pp.asPath, pp.asSet, pp.originAS
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
			nextHop = pp.nextHop
		case urlMPReach:
			// Carries this path's NLRI too: different for every path.
			a, ok := mpReachNextHop(at.Value)
			if !ok {
				return pp.slow(p)
			}
			nextHop = a
		}
	}
	return pfx, pp.intern(routeAttrs{nextHop: nextHop, asPath: asPath, originAS: originAS, origin: origin, asSet: asSet}), nil
}

// intern returns the attributes of the previous path if a equals them, or
// a new routeAttrs of a, stamped with the event's time.
func (pp *pathParser) intern(a routeAttrs) *routeAttrs {
	a.since = pp.now
	if l := pp.last; l != nil && l.nextHop == a.nextHop && l.originAS == a.originAS && l.origin == a.origin &&
		l.asSet == a.asSet && (l.asPath == nil) == (a.asPath == nil) && slices.Equal(l.asPath, a.asPath) {
		return l
	}
	pp.last = &a
	return pp.last
}

// slow parses p with parsePath.
func (pp *pathParser) slow(p *api.Path) (netip.Prefix, *routeAttrs, error) {
	r, err := parsePath(p)
	if err != nil || p.IsWithdraw {
		return r.Prefix, nil, err
	}
	return r.Prefix, pp.intern(routeAttrs{nextHop: r.NextHop, asPath: r.ASPath, originAS: r.OriginAS, origin: r.Origin, asSet: r.asSet}), nil
}

// parseIPPrefix decodes an api.IPAddressPrefix (prefix_len = 1, prefix = 2)
// without allocating the message; false for anything unexpected, which
// parsePath handles.
func parseIPPrefix(b []byte) (netip.Prefix, bool) {
	var bits uint64
	var addr []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return netip.Prefix{}, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			bits, n = protowire.ConsumeVarint(b)
		case num == 2 && typ == protowire.BytesType:
			addr, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return netip.Prefix{}, false
		}
		b = b[n:]
	}
	a, err := netip.ParseAddr(string(addr))
	if err != nil || bits > uint64(a.BitLen()) || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, int(bits)).Masked(), true
}

// mpReachNextHop decodes the first next hop of an api.MpReachNLRIAttribute
// (next_hops = 2), skipping its NLRI.
func mpReachNextHop(b []byte) (netip.Addr, bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return netip.Addr{}, false
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return netip.Addr{}, false
			}
			a, err := netip.ParseAddr(string(v))
			return a.Unmap(), err == nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return netip.Addr{}, false
		}
		b = b[n:]
	}
	return netip.Addr{}, false
}
