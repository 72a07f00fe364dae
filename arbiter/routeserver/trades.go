package routeserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/bwxchange/bwx/shared/clock"
)

// Trade is a delivery the route server makes: the seller's prefixes to the
// buyer, with the seller's router as next hop.
type Trade struct {
	// ID names the trade; it appears in the paths as the large community
	// <route server ASN>:2:<ID>, so it must fit in 32 bits.
	ID        uint64
	BuyerASN  uint32
	SellerASN uint32
	// Prefixes are delivered as they are (IPv4 and IPv6 may mix).
	Prefixes []netip.Prefix
	// NextHop4 and NextHop6 are the seller's router addresses on the LAN
	// for the IPv4 and the IPv6 prefixes; each must be one of the seller's
	// Member.Addresses. The path is announced only while that router's
	// session is up and it announces an accepted route covering the prefix.
	NextHop4, NextHop6 netip.Addr
	// Standby are the seller's other routers, in order of preference,
	// each one of its Member.Addresses: a prefix is delivered through the
	// first of its family's next hops (NextHop4 or NextHop6, then these)
	// whose session is up and that announces an accepted route covering
	// it, so the trade stays delivered while any of them can.
	Standby []netip.Addr
	// Prepends says, per prefix, how many times the seller's ASN is
	// prepended to the delivered AS_PATH (the seller's routing policy);
	// absent means none. Trades of one buyer sharing a path use the largest.
	Prepends map[netip.Prefix]int
	// Withheld are prefixes of the booked trade the route server must not
	// deliver (the seller's allow list no longer lets this buyer have
	// them, the seller has no router of their family), with why: they show
	// as not delivered in the delivery record, the seller's doing.
	Withheld map[netip.Prefix]string
	// Exportable lists the prefixes the seller lets the buyer pass on
	// (its routing policy): their path carries no NO_EXPORT. Every other
	// prefix is delivered with NO_EXPORT. A path shared by several trades
	// of one buyer drops NO_EXPORT only if all of them allow it.
	Exportable map[netip.Prefix]bool
}

// MaxPrepends bounds Trade.Prepends.
const MaxPrepends = 10

// Large community functions (the middle field) under the route server's ASN.
const (
	lcDeliverTo = 1 // <ASN>:1:<buyer ASN>
	lcTrade     = 2 // <ASN>:2:<trade ID>
)

// nextHops are the seller routers that may deliver p, preferred first.
func (t *Trade) nextHops(p netip.Prefix) []netip.Addr {
	first := t.NextHop6
	if p.Addr().Is4() {
		first = t.NextHop4
	}
	out := []netip.Addr{first}
	for _, a := range t.Standby {
		if a.Is4() == p.Addr().Is4() && a != first {
			out = append(out, a)
		}
	}
	return out
}

// validate checks t against the members; s.mu is held.
func (s *Server) validateTrade(t *Trade) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("routeserver: trade %d: %s", t.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case t.ID == 0:
		return bad("ID 0 is not a valid trade ID")
	case t.ID > math.MaxUint32:
		return bad("ID does not fit the 32-bit field of the large community")
	case t.BuyerASN == t.SellerASN:
		return bad("buyer and seller are both AS%d", t.BuyerASN)
	case len(t.Prefixes) == 0 && len(t.Withheld) == 0:
		return bad("no prefixes")
	}
	if _, ok := s.members[t.BuyerASN]; !ok {
		return bad("buyer AS%d is not a member", t.BuyerASN)
	}
	seller, ok := s.members[t.SellerASN]
	if !ok {
		return bad("seller AS%d is not a member", t.SellerASN)
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range t.Prefixes {
		switch {
		case !p.IsValid():
			return bad("invalid prefix")
		case p.Addr().Is4In6():
			return bad("prefix %v: use plain IPv4, not IPv4-mapped IPv6", p)
		case p.Addr().Zone() != "":
			return bad("prefix %v has a zone", p)
		case p != p.Masked():
			return bad("prefix %v has host bits set (want %v)", p, p.Masked())
		case seen[p]:
			return bad("prefix %v listed twice", p)
		}
		seen[p] = true
		nh, fam, field := t.NextHop4, "IPv4", "NextHop4"
		if p.Addr().Is6() {
			nh, fam, field = t.NextHop6, "IPv6", "NextHop6"
		}
		switch {
		case !nh.IsValid():
			return bad("%s prefix %v but no %s", fam, p, field)
		case nh.Is4() != p.Addr().Is4():
			return bad("%s %v is not an %s address", field, nh, fam)
		case !slices.Contains(seller.Addresses, nh):
			return bad("%s %v is not a router address of seller AS%d", field, nh, t.SellerASN)
		}
	}
	for p := range t.Withheld {
		if seen[p] || !p.IsValid() {
			return bad("withheld %v, which it also delivers", p)
		}
	}
	for _, a := range t.Standby {
		if !slices.Contains(seller.Addresses, a) {
			return bad("standby %v is not a router address of seller AS%d", a, t.SellerASN)
		}
	}
	for p := range t.Exportable {
		if !seen[p] {
			return bad("exportable %v, which is not one of its prefixes", p)
		}
	}
	for p, n := range t.Prepends {
		switch {
		case !seen[p]:
			return bad("prepends for %v, which is not one of its prefixes", p)
		case n < 0 || n > MaxPrepends:
			return bad("prepends for %v: %d, want 0 to %d", p, n, MaxPrepends)
		}
	}
	return nil
}

// route is a prefix through one seller router.
type route struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
}

// pathKey names one path the route server originates: a route, in one
// buyer's table.
type pathKey struct {
	Buyer uint32
	route
}

// AnnounceTrade starts delivering a trade (or changes one with the same
// ID). It returns once the paths that can be delivered now are in the
// route server's RIB; the others follow when the seller's route appears.
func (s *Server) AnnounceTrade(ctx context.Context, t Trade) error {
	t.Prefixes, t.Standby, t.Withheld = slices.Clone(t.Prefixes), slices.Clone(t.Standby), maps.Clone(t.Withheld)
	t.Prepends = maps.Clone(t.Prepends)
	t.Exportable = maps.Clone(t.Exportable)
	s.mu.Lock()
	if err := s.validateTrade(&t); err != nil {
		s.mu.Unlock()
		return err
	}
	if old, ok := s.trades[t.ID]; ok {
		s.unindexTrade(&old)
	}
	s.trades[t.ID] = t
	s.indexTrade(&t)
	s.mu.Unlock()
	return s.reconcile(ctx)
}

// WithdrawTrade stops delivering a trade. Withdrawing an unknown trade is
// not an error (it may have been withdrawn already).
func (s *Server) WithdrawTrade(ctx context.Context, id uint64) error {
	s.mu.Lock()
	t, ok := s.trades[id]
	if ok {
		s.unindexTrade(&t)
		delete(s.trades, id)
	}
	s.mu.Unlock()
	return s.reconcile(ctx)
}

// SetActive makes trades the complete set of trades to deliver: trades not
// in it are withdrawn, the others announced. After an arbiter restart it
// re-announces exactly the active trades. Nothing changes if one is
// invalid.
func (s *Server) SetActive(ctx context.Context, trades []Trade) error {
	s.mu.Lock()
	next := make(map[uint64]Trade, len(trades))
	for _, t := range trades {
		t.Prefixes, t.Standby, t.Withheld = slices.Clone(t.Prefixes), slices.Clone(t.Standby), maps.Clone(t.Withheld)
		t.Prepends = maps.Clone(t.Prepends)
		t.Exportable = maps.Clone(t.Exportable)
		if err := s.validateTrade(&t); err != nil {
			s.mu.Unlock()
			return err
		}
		if _, dup := next[t.ID]; dup {
			s.mu.Unlock()
			return fmt.Errorf("routeserver: trade %d listed twice", t.ID)
		}
		next[t.ID] = t
	}
	for id, t := range s.trades {
		if nt, ok := next[id]; !ok || !sameTrade(&t, &nt) {
			s.unindexTrade(&t)
			delete(s.trades, id)
		}
	}
	for id, t := range next {
		if _, ok := s.trades[id]; !ok {
			s.trades[id] = t
			s.indexTrade(&t)
		}
	}
	s.mu.Unlock()
	return s.reconcile(ctx)
}

func sameTrade(a, b *Trade) bool {
	return a.ID == b.ID && a.BuyerASN == b.BuyerASN && a.SellerASN == b.SellerASN &&
		a.NextHop4 == b.NextHop4 && a.NextHop6 == b.NextHop6 && slices.Equal(a.Standby, b.Standby) && slices.Equal(a.Prefixes, b.Prefixes) &&
		maps.Equal(a.Withheld, b.Withheld) &&
		maps.Equal(a.Prepends, b.Prepends) && maps.Equal(a.Exportable, b.Exportable)
}

// Trades returns the registered trades by ID, delivered or not.
func (s *Server) Trades() []Trade {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Trade, 0, len(s.trades))
	for _, t := range s.trades {
		t.Prefixes, t.Standby, t.Withheld = slices.Clone(t.Prefixes), slices.Clone(t.Standby), maps.Clone(t.Withheld)
		t.Prepends = maps.Clone(t.Prepends)
		t.Exportable = maps.Clone(t.Exportable)
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Trade) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// indexTrade adds t's path keys, one per prefix and seller router that
// may deliver it; s.mu is held.
func (s *Server) indexTrade(t *Trade) {
	s.rejudge[t.ID] = true
	for _, p := range t.Prefixes {
		for _, nh := range t.nextHops(p) {
			k := pathKey{t.BuyerASN, route{p, nh}}
			ids := s.keys[k]
			if ids == nil {
				ids = map[uint64]bool{}
				s.keys[k] = ids
				bs := s.buyersOf[k.route]
				if bs == nil {
					bs = map[uint32]bool{}
					s.buyersOf[k.route] = bs
					if n := s.nbrs[k.NextHop]; n != nil {
						n.tradePfx.Insert(p, true)
					}
				}
				bs[k.Buyer] = true
			}
			ids[t.ID] = true
			s.dirty[k] = true
		}
	}
}

// unindexTrade removes t's path keys; s.mu is held.
func (s *Server) unindexTrade(t *Trade) {
	s.rejudge[t.ID] = true
	for _, p := range t.Prefixes {
		for _, nh := range t.nextHops(p) {
			k := pathKey{t.BuyerASN, route{p, nh}}
			ids := s.keys[k]
			delete(ids, t.ID)
			if len(ids) == 0 {
				delete(s.keys, k)
				bs := s.buyersOf[k.route]
				delete(bs, k.Buyer)
				if len(bs) == 0 {
					delete(s.buyersOf, k.route)
					if n := s.nbrs[k.NextHop]; n != nil {
						n.tradePfx.Delete(p)
					}
				}
			}
			s.dirty[k] = true
		}
	}
}

// dirtyRoute marks every buyer's path of r, and the paths through the
// other routers its trades may fail over to; s.mu is held.
func (s *Server) dirtyRoute(r route) {
	for b := range s.buyersOf[r] {
		k := pathKey{b, r}
		s.dirty[k] = true
		for id := range s.keys[k] {
			t := s.trades[id]
			for _, nh := range t.nextHops(r.Prefix) {
				s.dirty[pathKey{b, route{r.Prefix, nh}}] = true
			}
		}
	}
}

// usable tells whether the seller router at nh can deliver p now: its
// session is up and it announces an accepted route covering p, the most
// specific of which it returns the attributes of; s.mu is held.
func (s *Server) usable(nh netip.Addr, p netip.Prefix) (*neighbor, *routeAttrs) {
	n := s.nbrs[nh]
	if n == nil || !n.established() {
		return nil, nil
	}
	r, ok := n.acceptedLPM(p)
	if !ok {
		return nil, nil
	}
	return n, r.attrs
}

// chosen is the router t delivers p through now: the first usable one of
// its next hops (the preferred one when none is); s.mu is held.
func (s *Server) chosen(t *Trade, p netip.Prefix) netip.Addr {
	nhs := t.nextHops(p)
	for _, nh := range nhs {
		if n, _ := s.usable(nh, p); n != nil {
			return nh
		}
	}
	return nhs[0]
}

// dirtyCovered marks the trade paths through n within q; s.mu is held.
func (s *Server) dirtyCovered(n *neighbor, q netip.Prefix) {
	for p := range n.tradePfx.Subnets(q) {
		s.dirtyRoute(route{p, n.addr})
	}
}

// dirtyNeighbor marks every trade path through n; s.mu is held.
func (s *Server) dirtyNeighbor(n *neighbor) {
	for p := range n.tradePfx.All() {
		s.dirtyRoute(route{p, n.addr})
	}
}

// dirtyBuyer marks every path in buyer's table; s.mu is held.
func (s *Server) dirtyBuyer(buyer uint32) {
	for k := range s.keys {
		if k.Buyer == buyer {
			s.dirty[k] = true
		}
	}
}

// wantPath is a path as it should be announced.
type wantPath struct {
	key    pathKey
	vrf    string // the buyer's table; "" for the global one (ADD-PATH buyers)
	seller uint32
	asPath []uint32 // as the seller announced it, prepends added
	origin string
	trades []uint64 // sorted
	export bool     // no NO_EXPORT: every trade on the path allows it
}

func (w *wantPath) equal(o *wantPath) bool {
	return w.key == o.key && w.vrf == o.vrf && w.seller == o.seller && w.origin == o.origin && w.export == o.export &&
		slices.Equal(w.asPath, o.asPath) && slices.Equal(w.trades, o.trades)
}

// localPref ranks a buyer's paths of one prefix: its oldest trade's
// (lowest ID) is best, and a buyer without ADD-PATH gets that one. It
// never leaves the route server (eBGP strips LOCAL_PREF).
func (w *wantPath) localPref() uint32 { return math.MaxUint32 - uint32(w.trades[0]) }

// announcedPath is a path in GoBGP's RIB.
type announcedPath struct {
	want  wantPath
	id    uint32 // ADD-PATH identifier given to GoBGP
	uuid  []byte
	since time.Time
}

// desired computes the path for k, or nil if none should be announced;
// s.mu is held.
func (s *Server) desired(k pathKey) *wantPath {
	ids := s.keys[k]
	buyer := s.members[k.Buyer]
	if len(ids) == 0 || buyer == nil {
		return nil
	}
	n, r := s.usable(k.NextHop, k.Prefix)
	if n == nil {
		return nil
	}
	w := &wantPath{key: k, seller: n.asn, origin: r.origin, export: true}
	if !buyer.AddPathReceive {
		w.vrf = vrfName(k.Buyer)
	}
	prepend := 0
	for id := range ids {
		t := s.trades[id]
		if s.chosen(&t, k.Prefix) != k.NextHop {
			continue // delivered through a router it prefers
		}
		prepend = max(prepend, t.Prepends[k.Prefix])
		w.export = w.export && t.Exportable[k.Prefix]
		w.trades = append(w.trades, id)
	}
	if len(w.trades) == 0 {
		return nil
	}
	slices.Sort(w.trades)
	w.asPath = make([]uint32, 0, prepend+len(r.asPath))
	for range prepend {
		w.asPath = append(w.asPath, n.asn)
	}
	w.asPath = append(w.asPath, r.asPath...)
	return w
}

// reconcile brings GoBGP's RIB in line with the dirty path keys, then
// reports the changes of delivery this made (or a session change did).
// Before Start it does nothing (Start reconciles everything).
func (s *Server) reconcile(ctx context.Context) error {
	s.syncMu.Lock()
	if err := s.begin(); err != nil {
		s.syncMu.Unlock()
		if errors.Is(err, ErrNotStarted) {
			return nil
		}
		return err
	}
	err := s.reconcilePaths(ctx)
	s.end()
	changes := s.deliveryChanges()
	// Reported in the order they were made: deliveryMu is taken before
	// the next reconcile can run.
	s.deliveryMu.Lock()
	s.syncMu.Unlock()
	if fn := s.onDelivery; fn != nil && len(changes) > 0 {
		fn(changes)
	}
	s.deliveryMu.Unlock()
	return err
}

// reconcilePaths applies the dirty path keys; s.syncMu and life are held.
func (s *Server) reconcilePaths(ctx context.Context) error {

	type job struct {
		k pathKey
		w *wantPath
	}
	s.mu.Lock()
	jobs := make([]job, 0, len(s.dirty))
	for k := range s.dirty {
		jobs = append(jobs, job{k, s.desired(k)})
		for id := range s.keys[k] {
			s.rejudge[id] = true
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	slices.SortFunc(jobs, func(a, b job) int {
		if c := a.k.Prefix.Compare(b.k.Prefix); c != 0 {
			return c
		}
		return cmp.Or(a.k.NextHop.Compare(b.k.NextHop), cmp.Compare(a.k.Buyer, b.k.Buyer))
	})
	var errs []error
	for _, j := range jobs {
		if err := s.apply(ctx, j.k, j.w); err != nil {
			errs = append(errs, err)
			s.mu.Lock()
			s.dirty[j.k] = true // try again on the next change
			s.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// apply makes GoBGP announce w for k (nil: nothing). s.syncMu and life
// are held. A path never changes buyer (its key holds the buyer), so a
// change replaces it in place under the same identifier.
func (s *Server) apply(ctx context.Context, k pathKey, w *wantPath) error {
	have := s.announced[k]
	switch {
	case w == nil && have == nil:
		return nil
	case w == nil:
		if err := s.deletePath(ctx, have); err != nil {
			return err
		}
		delete(s.announced, k)
		return nil
	case have != nil && w.equal(&have.want):
		return nil
	case have != nil && have.want.vrf != w.vrf:
		// The buyer moved tables (ADD-PATH turned on or off).
		if err := s.deletePath(ctx, have); err != nil {
			return err
		}
		delete(s.announced, k)
		have = nil
	}
	a := &announcedPath{want: *w, id: s.newPathID(), since: clock.Now()}
	if have != nil {
		a.id, a.since = have.id, have.since
	}
	if err := s.addPath(ctx, a); err != nil {
		return err
	}
	s.announced[k] = a
	return nil
}

func (s *Server) newPathID() uint32 {
	s.lastID++
	if s.lastID == 0 {
		s.lastID++
	}
	return s.lastID
}

func (s *Server) addPath(ctx context.Context, a *announcedPath) error {
	p, err := s.apiPath(&a.want, a.id)
	if err != nil {
		return fmt.Errorf("routeserver: path %v via %v: %w", a.want.key.Prefix, a.want.key.NextHop, err)
	}
	rsp, err := s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: tableOf(a.want.vrf), VrfId: a.want.vrf, Path: p})
	if err != nil {
		return fmt.Errorf("routeserver: announce %v via %v: %w", a.want.key.Prefix, a.want.key.NextHop, err)
	}
	a.uuid = rsp.Uuid
	return nil
}

func (s *Server) deletePath(ctx context.Context, a *announcedPath) error {
	if len(a.uuid) == 0 {
		// Never call DeletePath without a UUID: that deletes every path.
		return fmt.Errorf("routeserver: withdraw %v via %v: no UUID recorded", a.want.key.Prefix, a.want.key.NextHop)
	}
	err := s.bgp.DeletePath(ctx, &api.DeletePathRequest{TableType: tableOf(a.want.vrf), VrfId: a.want.vrf, Uuid: a.uuid})
	if err != nil && !strings.Contains(err.Error(), "can't find") {
		return fmt.Errorf("routeserver: withdraw %v via %v: %w", a.want.key.Prefix, a.want.key.NextHop, err)
	}
	return nil
}

func tableOf(vrf string) api.TableType {
	if vrf == "" {
		return api.TableType_GLOBAL
	}
	return api.TableType_VRF
}

// apiPath builds the GoBGP path for w (see the package documentation).
func (s *Server) apiPath(w *wantPath, id uint32) (*api.Path, error) {
	p := w.key.Prefix
	var nlri bgp.AddrPrefixInterface
	if p.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
	}
	nlri.SetPathIdentifier(id)
	var segs []bgp.AsPathParamInterface
	for rest := w.asPath; len(rest) > 0; {
		n := min(len(rest), 255)
		segs = append(segs, bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, slices.Clone(rest[:n])))
		rest = rest[n:]
	}
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(originValue(w.origin)),
		bgp.NewPathAttributeAsPath(segs),
	}
	if p.Addr().Is4() {
		attrs = append(attrs, bgp.NewPathAttributeNextHop(w.key.NextHop.String()))
	} else {
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(w.key.NextHop.String(), []bgp.AddrPrefixInterface{nlri}))
	}
	if !w.export {
		attrs = append(attrs, bgp.NewPathAttributeCommunities([]uint32{uint32(bgp.COMMUNITY_NO_EXPORT)}))
	}
	attrs = append(attrs, bgp.NewPathAttributeLocalPref(w.localPref()))
	lcs := make([]*bgp.LargeCommunity, 0, 1+len(w.trades))
	lcs = append(lcs, bgp.NewLargeCommunity(s.cfg.ASN, lcDeliverTo, w.key.Buyer))
	for _, t := range w.trades {
		lcs = append(lcs, bgp.NewLargeCommunity(s.cfg.ASN, lcTrade, uint32(t)))
	}
	attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lcs))
	return apiutil.NewPath(nlri, false, attrs, clock.Now())
}

// AnnouncedPath is a path the route server originates now.
type AnnouncedPath struct {
	Prefix    netip.Prefix
	NextHop   netip.Addr // the seller's router
	SellerASN uint32
	ASPath    []uint32 // before the route server's ASN is prepended (with the seller's prepends)
	Origin    string
	Buyer     uint32
	Trades    []uint64
	PathID    uint32 // identifier in the route server's RIB
	Since     time.Time
}

// Announced returns the paths in the route server's RIB, by prefix.
func (s *Server) Announced() []AnnouncedPath {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	out := make([]AnnouncedPath, 0, len(s.announced))
	for _, a := range s.announced {
		out = append(out, AnnouncedPath{
			Prefix: a.want.key.Prefix, NextHop: a.want.key.NextHop, SellerASN: a.want.seller,
			ASPath: slices.Clone(a.want.asPath), Origin: a.want.origin,
			Buyer: a.want.key.Buyer, Trades: slices.Clone(a.want.trades),
			PathID: a.id, Since: a.since.UTC(),
		})
	}
	slices.SortFunc(out, func(a, b AnnouncedPath) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		return cmp.Or(a.NextHop.Compare(b.NextHop), cmp.Compare(a.Buyer, b.Buyer))
	})
	return out
}
