package book

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/gaissmai/bart"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/invalid"
	"github.com/bwxchange/bwx/shared/units"
)

// MemberInfo is what matching needs to know of a member.
type MemberInfo struct {
	ASN      uint32
	ID       int64 // the store's member id
	PortID   int64
	Capacity int64 // of its switch port, bits/s
	Routers  []netip.Addr
	Routes   []registry.Prefix

	restricted int8 // 0 unknown, 1 some route has an allow list, -1 none

	// routersOf caches Routers by family ([0] IPv6, [1] IPv4), each
	// clipped so that an append to one copies it: trades share them.
	routersOf    [2][]netip.Addr
	routersKnown bool
}

// routers are m's routers that fit protocol p (nil: none), the same slice
// each time: matching asks for them per fill.
func (m *MemberInfo) routers(p Protocol) []netip.Addr {
	if !m.routersKnown {
		m.routersKnown = true
		for _, a := range m.Routers {
			i := 0
			if a.Is4() {
				i = 1
			}
			m.routersOf[i] = append(m.routersOf[i], a)
		}
		for i := range m.routersOf {
			m.routersOf[i] = slices.Clip(m.routersOf[i])
		}
	}
	if p == IPv4 {
		return m.routersOf[1]
	}
	return m.routersOf[0]
}

// sellable keeps the traded prefixes buyer may buy from this member: a
// registered route with an allow list (the routing policy) sells only to the
// members on it. Most members have none, so that is checked once.
func (m *MemberInfo) sellable(buyer uint32, prefixes []netip.Prefix) []netip.Prefix {
	if m.restricted == 0 {
		m.restricted = -1
		for _, r := range m.Routes {
			if len(r.AllowedBuyers) > 0 {
				m.restricted = 1
				break
			}
		}
	}
	if m.restricted < 0 {
		return prefixes
	}
	var out []netip.Prefix
	for _, p := range prefixes {
		// The most specific registered route covering p sets its policy.
		var best *registry.Prefix
		for i := range m.Routes {
			r := &m.Routes[i]
			if r.Prefix.Bits() <= p.Bits() && r.Prefix.Contains(p.Addr()) && (best == nil || r.Prefix.Bits() > best.Prefix.Bits()) {
				best = r
			}
		}
		if best != nil && best.AllowsBuyer(buyer) {
			out = append(out, p)
		}
	}
	return out
}

// Change is what one operation did, made durable as a unit before anyone
// is told it happened.
type Change struct {
	New    []Order // orders placed
	Orders []Order // orders whose state changed (fill, status, price, capacity, priority)
	Trades []Trade
	Events []Event
	// Ended are trades ended early (EndTrades), in their new state.
	Ended []Trade

	// fills are the orders in Orders whose only change is a fill that
	// left them open: the commit writes just their filled and updated
	// columns, which keeps the status index untouched.
	fills []int64

	// lookups are the indexes in Trades whose quality is still to be
	// looked up (Engine.DeferQuality).
	lookups []int
}

func (c *Change) empty() bool {
	return len(c.New)+len(c.Orders)+len(c.Trades)+len(c.Events)+len(c.Ended) == 0
}

// touched records o's new state; fill says the change was a fill that left
// it open. An order recorded again in the same change (a sweep fills one
// resting order from several) is a fill only if every change to it was.
func (c *Change) touched(o Order, fill bool) {
	c.Orders = append(c.Orders, o)
	if fill {
		if !slices.Contains(c.fills, o.ID) && !slices.ContainsFunc(c.Orders[:len(c.Orders)-1], func(x Order) bool { return x.ID == o.ID }) {
			c.fills = append(c.fills, o.ID)
		}
	} else {
		c.fills = without(c.fills, func(id int64) bool { return id == o.ID })
	}
}

// ErrOfferGone means the offer taken is no longer in the book.
var ErrOfferGone = errors.New("offer is gone")

// ErrOfferChanged means the offer taken no longer fits the taker's order.
var ErrOfferChanged = errors.New("offer changed")

// DuplicateError reports an order placed before with the same client id.
type DuplicateError struct{ ID int64 }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("order %d has this client order id", e.ID)
}

type clientKey struct {
	asn uint32
	id  string
}

// sellRoute is a sell order reachable through one of its seller's routes,
// with its price: a buy passes over the sells priced above its limit
// without reading them. (An order's spec changes only out of the index:
// Modify takes it out first.)
type sellRoute struct {
	order *Order
	price int64
}

// Engine is the order book in memory: the open orders indexed by what they
// can trade, the port load curves, and the counters for new ids. It is not
// safe for concurrent use; Book serializes it. Every operation returns the
// Change it made so the caller can make it durable.
type Engine struct {
	Quality QualitySource
	// CreditCheck, when set, may refuse a buy before it is matched (the Book
	// sets it for the operation at hand: the credit check). buy is the buy
	// to add as it would stand (a new order, ID 0; or an open one modified
	// to spend more), nil when one of asn's open buys is about to trade
	// (met by an incoming sell, or woken); OpenBuys says what asn already
	// has in the book.
	CreditCheck func(asn uint32, buy *Order, now time.Time) error
	// DeferQuality leaves a trade's quality lookup to the caller (listed in
	// the Change), so the Book can make it outside its lock; matching never
	// needs it.
	DeferQuality bool
	// Active, when set, says whether a member may trade (nil) or not (its
	// error: suspended or removed, see registry.MemberStatus). Its new and
	// modified orders are refused, and its resting orders never match,
	// from the moment it says no: an order resting until CancelMember
	// runs cannot trade in between.
	Active func(asn uint32) error

	members map[uint32]*MemberInfo
	open    map[int64]*Order
	clients map[clientKey]int64

	// Sells are indexed by each registered route they resolve to; buys by
	// their destination.
	sellsByPrefix bart.Table[[]sellRoute]
	sellsByOrigin map[uint32][]sellRoute
	sellsByType   map[registry.RouteType][]sellRoute
	buysByPrefix  bart.Table[[]*Order]
	buysByOrigin  map[uint32][]*Order
	buysByType    map[registry.RouteType][]*Order
	// buysOf are the open buys by member: what its credit check counts.
	buysOf map[uint32]map[int64]*Order

	ports map[int64]*curve

	// Scratch space reused by every match: the orders a candidates call
	// has met (seenIDs while few, then seen), its candidates, and match's
	// fills.
	seenIDs []int64
	seen    map[int64]bool
	seenMap bool
	cands   []candidate
	fills   []fill

	// wakes are the instants at which time alone may make resting orders
	// tradable with each other: a resting sell's start (before it, it
	// cannot cover a buy that starts earlier) and the end of a port
	// reservation (the capacity it held is free from then on). Wake
	// re-matches the orders concerned. sweepAll, set when the book is
	// rebuilt or the registry changes, re-matches every resting sell once.
	wakes    wakeHeap
	queued   map[wake]bool
	sweepAll bool

	lastOrder, lastTrade, lastSeq, lastPriority int64
}

// NewEngine returns an empty book.
func NewEngine() *Engine {
	e := &Engine{Quality: NoQuality{}, members: map[uint32]*MemberInfo{}, clients: map[clientKey]int64{}, ports: map[int64]*curve{}, seen: map[int64]bool{},
		queued: map[wake]bool{}}
	e.resetIndex()
	return e
}

func (e *Engine) resetIndex() {
	e.open = map[int64]*Order{}
	e.sellsByPrefix, e.buysByPrefix = bart.Table[[]sellRoute]{}, bart.Table[[]*Order]{}
	e.sellsByOrigin, e.sellsByType = map[uint32][]sellRoute{}, map[registry.RouteType][]sellRoute{}
	e.buysByOrigin, e.buysByType = map[uint32][]*Order{}, map[registry.RouteType][]*Order{}
	e.buysOf = map[uint32]map[int64]*Order{}
}

// OpenBuys are member asn's open buy orders, each at its worst case as of
// now (Order.Commitment), except order except (0: none).
func (e *Engine) OpenBuys(asn uint32, now time.Time, except int64) []Commitment {
	os := e.buysOf[asn]
	if len(os) == 0 {
		return nil
	}
	out := make([]Commitment, 0, len(os))
	for id, o := range os {
		if id != except {
			out = append(out, o.Commitment(now))
		}
	}
	return out
}

// Snapshot is the durable state the engine starts from.
type Snapshot struct {
	Members      map[uint32]*MemberInfo
	Open         []Order
	Clients      map[uint32]map[string]int64
	Reservations []PortReservation
	LastOrder    int64
	LastTrade    int64
	LastSeq      int64
	LastPriority int64
}

// PortReservation is capacity a trade holds on a port.
type PortReservation struct {
	PortID      int64
	CapacityBps int64
	Start, End  time.Time
}

// Restore replaces the engine's state with a snapshot.
func (e *Engine) Restore(s Snapshot) {
	e.members = s.Members
	e.clients = map[clientKey]int64{}
	for asn, ids := range s.Clients {
		for id, o := range ids {
			e.clients[clientKey{asn, id}] = o
		}
	}
	e.ports = map[int64]*curve{}
	// What time did while the book was not in memory is not known: every
	// resting sell is matched again at the first Wake, and wakes are kept
	// from here on.
	e.wakes, e.queued, e.sweepAll = nil, map[wake]bool{}, true
	for _, r := range s.Reservations {
		e.port(r.PortID).add(r.Start.UnixMicro(), r.End.UnixMicro(), r.CapacityBps)
		e.wakeAt(wake{at: r.End.UnixMicro(), port: r.PortID})
	}
	e.lastOrder, e.lastTrade, e.lastSeq, e.lastPriority = s.LastOrder, s.LastTrade, s.LastSeq, s.LastPriority
	e.resetIndex()
	for i := range s.Open {
		o := s.Open[i]
		e.add(&o)
		if o.Spec.Side == Sell { // for a start still ahead
			e.wakeAt(wake{at: o.Spec.Start.UnixMicro(), order: o.ID})
		}
	}
}

// SetMembers replaces the registry view (after members or routes change)
// and re-resolves every open sell against the new routes; a new route may
// let a resting sell serve a resting buy, so the next Wake matches every
// resting sell again.
func (e *Engine) SetMembers(m map[uint32]*MemberInfo) {
	e.members = m
	e.sweepAll = true
	open := e.open
	e.resetIndex()
	for _, o := range open {
		e.add(o)
	}
}

func (e *Engine) port(id int64) *curve {
	c := e.ports[id]
	if c == nil {
		c = &curve{}
		e.ports[id] = c
	}
	return c
}

// routesOf resolves a sell: the seller's registered routes of its protocol
// inside its destination.
func (e *Engine) routesOf(o *Order) []registry.Prefix {
	m := e.members[o.MemberASN]
	if m == nil {
		return nil
	}
	var out []registry.Prefix
	for _, r := range m.Routes {
		if !o.Spec.Protocol.Fits(r.Prefix.Addr()) {
			continue
		}
		d := o.Spec.Destination
		if d.Prefix.IsValid() {
			// A sell for a prefix is served by the route that covers it and
			// trades that prefix.
			if r.Prefix.Bits() <= d.Prefix.Bits() && r.Prefix.Contains(d.Prefix.Addr()) {
				sub := r // keeps the route's type, origin and policy
				sub.Prefix = d.Prefix
				out = append(out, sub)
				break
			}
		} else if d.Includes(r) {
			out = append(out, r)
		}
	}
	return out
}

func (e *Engine) add(o *Order) {
	e.open[o.ID] = o
	if o.Spec.Side == Sell {
		for _, r := range e.routesOf(o) {
			sr := sellRoute{o, o.Spec.PriceMicros}
			e.sellsByPrefix.Modify(r.Prefix, func(v []sellRoute, _ bool) ([]sellRoute, bool) { return append(v, sr), false })
			e.sellsByOrigin[r.OriginASN] = append(e.sellsByOrigin[r.OriginASN], sr)
			e.sellsByType[r.Type] = append(e.sellsByType[r.Type], sr)
		}
		return
	}
	if e.buysOf[o.MemberASN] == nil {
		e.buysOf[o.MemberASN] = map[int64]*Order{}
	}
	e.buysOf[o.MemberASN][o.ID] = o
	switch d := o.Spec.Destination; {
	case d.Prefix.IsValid():
		e.buysByPrefix.Modify(d.Prefix, func(v []*Order, _ bool) ([]*Order, bool) { return append(v, o), false })
	case d.OriginASN != 0:
		e.buysByOrigin[d.OriginASN] = append(e.buysByOrigin[d.OriginASN], o)
	default:
		e.buysByType[d.RouteType] = append(e.buysByType[d.RouteType], o)
	}
}

func without[T any](s []T, drop func(T) bool) []T {
	out := s[:0]
	for _, x := range s {
		if !drop(x) {
			out = append(out, x)
		}
	}
	return out
}

func (e *Engine) remove(o *Order) {
	delete(e.open, o.ID)
	isO := func(x *Order) bool { return x.ID == o.ID }
	isS := func(x sellRoute) bool { return x.order.ID == o.ID }
	if o.Spec.Side == Sell {
		for _, r := range e.routesOf(o) {
			e.sellsByPrefix.Modify(r.Prefix, func(v []sellRoute, ok bool) ([]sellRoute, bool) {
				v = without(v, isS)
				return v, len(v) == 0
			})
			e.sellsByOrigin[r.OriginASN] = without(e.sellsByOrigin[r.OriginASN], isS)
			e.sellsByType[r.Type] = without(e.sellsByType[r.Type], isS)
		}
		return
	}
	if m := e.buysOf[o.MemberASN]; m != nil {
		if delete(m, o.ID); len(m) == 0 {
			delete(e.buysOf, o.MemberASN)
		}
	}
	switch d := o.Spec.Destination; {
	case d.Prefix.IsValid():
		e.buysByPrefix.Modify(d.Prefix, func(v []*Order, ok bool) ([]*Order, bool) {
			v = without(v, isO)
			return v, len(v) == 0
		})
	case d.OriginASN != 0:
		e.buysByOrigin[d.OriginASN] = without(e.buysByOrigin[d.OriginASN], isO)
	default:
		e.buysByType[d.RouteType] = without(e.buysByType[d.RouteType], isO)
	}
}

// check validates a spec against the registry, beyond Spec.Validate.
func (e *Engine) check(asn uint32, spec Spec, now time.Time) error {
	if err := spec.Validate(now); err != nil {
		return err
	}
	if e.members[asn] == nil {
		return fmt.Errorf("member AS%d: %w", asn, registry.ErrNotFound)
	}
	// The monthly charge must fit the money type.
	if _, err := units.PriceFor(units.Money(spec.PriceMicros), units.Bandwidth(spec.CapacityBps)); err != nil {
		return invalid.New("spec.price_micros", "price %d for %d bit/s overflows the monthly charge", spec.PriceMicros, spec.CapacityBps)
	}
	if spec.Side == Sell {
		probe := &Order{MemberASN: asn, Spec: spec}
		if len(e.routesOf(probe)) == 0 {
			return invalid.New("spec.destination", "AS%d has no registered %v route for %v", asn, spec.Protocol, spec.Destination)
		}
		return nil
	}
	if o := spec.Destination.OriginASN; o != 0 {
		for _, m := range e.members {
			for _, r := range m.Routes {
				if r.OriginASN == o {
					return nil
				}
			}
		}
		return invalid.New("spec.destination.origin_asn", "no member has registered a route with origin AS%d", o)
	}
	return nil
}

func (e *Engine) event(ch *Change, asn uint32, typ EventType, now time.Time, t *Trade, o *Order) {
	var tc *Trade
	if t != nil {
		c := *t
		tc = &c
	}
	e.eventOf(ch, asn, typ, now, tc, o)
}

// eventOf is event with the trade copied already: events about the same
// trade may share the copy (nothing changes an event's trade but the
// quality lookup, which sets it on all of them).
func (e *Engine) eventOf(ch *Change, asn uint32, typ EventType, now time.Time, t *Trade, o *Order) {
	e.lastSeq++
	ev := Event{Seq: e.lastSeq, MemberASN: asn, Type: typ, Time: now, Trade: t}
	if o != nil {
		oc := *o
		ev.Order = &oc
	}
	ch.Events = append(ch.Events, ev)
}

// Place validates spec, puts the order in the book for member asn and
// matches it. only, when non-zero, restricts matching to that one resting
// order (taking an offer).
func (e *Engine) Place(now time.Time, asn uint32, spec Spec, clientID string, only int64) (Order, []Trade, *Change, error) {
	now = now.UTC()
	if len(clientID) > 128 {
		return Order{}, nil, nil, invalid.New("client_order_id", "longer than 128 characters")
	}
	if clientID != "" {
		if id, ok := e.clients[clientKey{asn, clientID}]; ok {
			return Order{}, nil, nil, &DuplicateError{ID: id}
		}
	}
	if err := e.check(asn, spec, now); err != nil {
		return Order{}, nil, nil, err
	}
	if err := e.active(asn); err != nil {
		return Order{}, nil, nil, err
	}
	// A start within StartSkew before now is taken as now.
	spec.Start = spec.EffectiveStart(now)
	if spec.Side == Buy && e.CreditCheck != nil {
		if err := e.CreditCheck(asn, &Order{MemberASN: asn, Spec: spec}, now); err != nil {
			return Order{}, nil, nil, err
		}
	}
	e.lastOrder++
	e.lastPriority++
	o := &Order{ID: e.lastOrder, MemberASN: asn, Spec: spec, Status: Open, ClientOrderID: clientID,
		Created: now, Updated: now, Priority: e.lastPriority}
	if only != 0 {
		if err := e.checkOffer(o, only, now); err != nil {
			e.lastOrder--
			e.lastPriority--
			return Order{}, nil, nil, err
		}
	}
	ch := &Change{}
	trades := e.match(o, now, only, ch, false)
	if only != 0 && o.Remaining() > 0 {
		// checkOffer saw enough capacity, so this is a race the lock
		// prevents; fail loudly rather than store a half-taken offer.
		return Order{}, nil, nil, fmt.Errorf("offer %d: %w", only, ErrOfferChanged)
	}
	if clientID != "" {
		e.clients[clientKey{asn, clientID}] = o.ID
	}
	ch.New = []Order{*o}
	e.event(ch, asn, OrderAccepted, now, nil, o)
	return *o, trades, ch, nil
}

// checkOffer explains why taking sell order id would fail, before anything
// changes.
func (e *Engine) checkOffer(buy *Order, id int64, now time.Time) error {
	sell := e.open[id]
	if sell == nil || sell.Spec.Side != Sell || !sell.Spec.End.After(now) {
		return fmt.Errorf("offer %d is no longer available (filled, cancelled or expired): %w", id, ErrOfferGone)
	}
	if sell.MemberASN == buy.MemberASN {
		return invalid.New("offer_order_id", "offer %d is your own", id)
	}
	if sell.Spec.PriceMicros > buy.Spec.PriceMicros {
		return fmt.Errorf("offer %d now asks %s per Mbps, above your limit %s: %w", id,
			units.Money(sell.Spec.PriceMicros), units.Money(buy.Spec.PriceMicros), ErrOfferChanged)
	}
	if why := mismatch(&buy.Spec, &sell.Spec, now); why != "" {
		return fmt.Errorf("offer %d no longer fits your order: %s: %w", id, why, ErrOfferChanged)
	}
	cs := e.candidates(buy, now, id)
	if len(cs) == 0 {
		return fmt.Errorf("offer %d does not serve %v with the quality you ask: %w", id, buy.Spec.Destination, ErrOfferChanged)
	}
	avail := e.available(buy, cs[0], now)
	if avail < buy.Remaining() {
		return fmt.Errorf("offer %d has %s available for your period and ports, you asked %s: %w", id,
			units.Bandwidth(avail), units.Bandwidth(buy.Remaining()), ErrOfferChanged)
	}
	if block := max(buy.Spec.MinBlockBps, sell.Spec.MinBlockBps); FillSize(buy.Remaining(), avail, buy.Spec.MinBlockBps, sell.Spec.MinBlockBps) != buy.Remaining() {
		return invalid.New("capacity_bps", "%s is not a whole number of blocks of %s (the larger of your min_block_bps and offer %d's)",
			units.Bandwidth(buy.Remaining()), units.Bandwidth(block), id)
	}
	return nil
}

// ownOpen finds an open order asn may change; the operator (0) may change any.
func (e *Engine) ownOpen(asn uint32, id int64) (*Order, error) {
	o := e.open[id]
	if o == nil || (asn != Operator && o.MemberASN != asn) {
		return nil, fmt.Errorf("order %d: %w", id, ErrNotOpen)
	}
	return o, nil
}

// active is Active's answer for asn (nil without a check).
func (e *Engine) active(asn uint32) error {
	if e.Active == nil {
		return nil
	}
	return e.Active(asn)
}

// CancelMember cancels every resting order of member asn (a suspension or
// a removal), as Cancel would one by one, in one change; nil if it has
// none. Trades its orders made stand.
func (e *Engine) CancelMember(now time.Time, asn uint32) *Change {
	now = now.UTC()
	var os []*Order
	for _, o := range e.open {
		if o.MemberASN == asn {
			os = append(os, o)
		}
	}
	if len(os) == 0 {
		return nil
	}
	slices.SortFunc(os, func(a, b *Order) int { return cmp.Compare(a.ID, b.ID) })
	ch := &Change{}
	for _, o := range os {
		e.remove(o)
		o.Status, o.Updated = Cancelled, now
		ch.Orders = append(ch.Orders, *o)
		e.event(ch, o.MemberASN, OrderCancelled, now, nil, o)
	}
	return ch
}

// EndTrades ends trades early at now, for reason (a party was removed):
// a running trade's delivery ends now (its agreed end kept in
// ContractEnd), one not started yet is cancelled, one already over is
// left as it is. Both parties get the event (TradeEnded or TradeCancelledEvent)
// with the trade as it now stands. The capacity each held on both ports
// from now on is released, and the orders resting on those ports are
// matched again at the next Wake, as when a trade ends on its own.
func (e *Engine) EndTrades(now time.Time, trades []Trade, reason string) *Change {
	now = now.UTC()
	at := now.UnixMicro()
	ch := &Change{}
	for _, t := range trades {
		if t.Cancelled || !t.End.After(now) || !t.ContractEnd.IsZero() {
			continue
		}
		from := max(t.Start.UnixMicro(), at)
		typ := TradeEnded
		if t.Start.After(now) || t.Start.Equal(now) {
			// Nothing delivered yet: a trade must end after it starts.
			t.Cancelled, typ = true, TradeCancelledEvent
		}
		t.ContractEnd, t.EndReason = t.End, reason
		if !t.Cancelled {
			t.End = now
		}
		for _, asn := range []uint32{t.BuyerASN, t.SellerASN} {
			if m := e.members[asn]; m != nil {
				e.port(m.PortID).add(from, t.ContractEnd.UnixMicro(), -t.CapacityBps)
				e.wakeAt(wake{at: at, port: m.PortID})
			}
		}
		ch.Ended = append(ch.Ended, t)
		e.event(ch, t.BuyerASN, typ, now, &t, nil)
		e.event(ch, t.SellerASN, typ, now, &t, nil)
	}
	return ch
}

// Cancel takes an open order out of the book. Trades it made stand.
func (e *Engine) Cancel(now time.Time, asn uint32, id int64) (Order, *Change, error) {
	o, err := e.ownOpen(asn, id)
	if err != nil {
		return Order{}, nil, err
	}
	e.remove(o)
	o.Status, o.Updated = Cancelled, now.UTC()
	ch := &Change{Orders: []Order{*o}}
	e.event(ch, o.MemberASN, OrderCancelled, now.UTC(), nil, o)
	return *o, ch, nil
}

// Modify changes an open order's capacity and/or price and matches it
// again. Raising the capacity or changing the price loses time priority;
// lowering the capacity keeps it (the usual exchange convention).
func (e *Engine) Modify(now time.Time, asn uint32, id int64, capacity, price *int64) (Order, []Trade, *Change, error) {
	now = now.UTC()
	if capacity == nil && price == nil {
		return Order{}, nil, nil, invalid.New("capacity_bps", "give capacity_bps and/or price_micros to change")
	}
	o, err := e.ownOpen(asn, id)
	if err != nil {
		return Order{}, nil, nil, err
	}
	if err := e.active(o.MemberASN); err != nil {
		return Order{}, nil, nil, err
	}
	if !o.Spec.End.After(now) {
		// Its period is over (the expiry sweep has not run yet): it could
		// only make a trade that ends before it starts.
		return Order{}, nil, nil, fmt.Errorf("order %d: its delivery period ended at %s: %w", id, o.Spec.End.Format(time.RFC3339), ErrNotOpen)
	}
	spec := o.Spec
	if capacity != nil {
		if *capacity <= o.FilledBps {
			return Order{}, nil, nil, invalid.New("capacity_bps", "%d is not above the %d bit/s already traded (cancel the order instead)", *capacity, o.FilledBps)
		}
		if *capacity < spec.MinBlockBps {
			return Order{}, nil, nil, invalid.New("capacity_bps", "%d is below min_block_bps %d", *capacity, spec.MinBlockBps)
		}
		if left := *capacity - o.FilledBps; left < spec.MinBlockBps {
			// A remainder below one block can never trade.
			return Order{}, nil, nil, invalid.New("capacity_bps", "%d leaves %d bit/s after the %d already traded, below min_block_bps %d",
				*capacity, left, o.FilledBps, spec.MinBlockBps)
		}
		spec.CapacityBps = *capacity
	}
	if price != nil {
		if *price < 0 {
			return Order{}, nil, nil, invalid.New("price_micros", "must not be negative")
		}
		spec.PriceMicros = *price
	}
	if _, err := units.PriceFor(units.Money(spec.PriceMicros), units.Bandwidth(spec.CapacityBps)); err != nil {
		return Order{}, nil, nil, invalid.New("price_micros", "price %d for %d bit/s overflows the monthly charge", spec.PriceMicros, spec.CapacityBps)
	}
	losesPriority := spec.PriceMicros != o.Spec.PriceMicros || spec.CapacityBps > o.Spec.CapacityBps
	// A buy that may spend more is a new commitment: the credit check
	// applies as to a new buy, counting the order as it would stand.
	// Lowering either never needs it.
	if o.Spec.Side == Buy && e.CreditCheck != nil && (spec.PriceMicros > o.Spec.PriceMicros || spec.CapacityBps > o.Spec.CapacityBps) {
		raised := *o
		raised.Spec = spec
		if err := e.CreditCheck(o.MemberASN, &raised, now); err != nil {
			return Order{}, nil, nil, err
		}
	}
	e.remove(o)
	o.Spec = spec
	if losesPriority {
		e.lastPriority++
		o.Priority = e.lastPriority
	}
	ch := &Change{}
	trades := e.match(o, now, 0, ch, false)
	ch.Orders = append([]Order{*o}, ch.Orders...)
	e.event(ch, o.MemberASN, OrderModified, now, nil, o)
	return *o, trades, ch, nil
}

// Notify validates settlement's notifications and numbers them as events
// of the members' logs. Each must be a settlement type for a known
// member: a use event names its trade and carries Use, a credit event
// carries Credit and neither trade nor order.
func (e *Engine) Notify(now time.Time, evs []Event) (*Change, error) {
	now = now.UTC()
	for i, ev := range evs {
		field := fmt.Sprintf("events[%d]", i)
		if e.members[ev.MemberASN] == nil {
			return nil, fmt.Errorf("%s: member AS%d: %w", field, ev.MemberASN, registry.ErrNotFound)
		}
		if ev.Order != nil {
			return nil, invalid.New(field+".order", "settlement events are not about an order")
		}
		switch ev.Type {
		case UseOver, UseUnder:
			if ev.Trade == nil || ev.Trade.ID <= 0 || ev.Use == nil {
				return nil, invalid.New(field, "a %v event needs its trade and use figures", ev.Type)
			}
			if !ev.Use.End.After(ev.Use.Start) {
				return nil, invalid.New(field+".use", "end %s is not after start %s", ev.Use.End.Format(time.RFC3339), ev.Use.Start.Format(time.RFC3339))
			}
			if ev.Credit != nil {
				return nil, invalid.New(field+".credit", "a use event carries no credit figures")
			}
		case CreditWarning, CreditStopped:
			if ev.Credit == nil || ev.Trade != nil || ev.Use != nil {
				return nil, invalid.New(field, "a %v event carries the credit figures only", ev.Type)
			}
		default:
			return nil, invalid.New(field+".type", "%v is not a settlement event", ev.Type)
		}
	}
	ch := &Change{}
	for _, ev := range evs {
		e.lastSeq++
		ev.Seq = e.lastSeq
		if ev.Time.IsZero() {
			ev.Time = now
		}
		ev.Time = ev.Time.UTC()
		ch.Events = append(ch.Events, ev)
	}
	return ch, nil
}

// Expire takes out every open order whose delivery period is over.
func (e *Engine) Expire(now time.Time) *Change {
	now = now.UTC()
	ch := &Change{}
	for _, o := range e.open {
		if !o.Spec.End.After(now) {
			e.remove(o)
			o.Status, o.Updated = Expired, now
			ch.Orders = append(ch.Orders, *o)
			e.event(ch, o.MemberASN, OrderExpired, now, nil, o)
		}
	}
	for _, c := range e.ports {
		c.prune(now.UnixMicro())
	}
	return ch
}

// Offers lists the sell orders a buy spec would match now, ranked as the
// spec asks, with the capacity each could trade (claim 24).
func (e *Engine) Offers(now time.Time, asn uint32, spec Spec) ([]Offer, error) {
	now = now.UTC()
	spec.Side = Buy
	if spec.Type == 0 {
		spec.Type = Limit
	}
	if err := e.check(asn, spec, now); err != nil {
		return nil, err
	}
	o := &Order{MemberASN: asn, Spec: spec}
	var out []Offer
	for _, c := range e.candidates(o, now, 0) {
		avail := e.available(o, c, now)
		avail = FillSize(avail, avail, c.order.Spec.MinBlockBps, spec.MinBlockBps)
		if avail == 0 {
			continue
		}
		m := c.measured
		if m == nil {
			m = e.Quality.Measured(asn, c.order.MemberASN, c.prefixes, now)
		}
		out = append(out, Offer{Order: *c.order, Prefixes: c.prefixes, AvailableBps: avail, Measured: m})
	}
	return out, nil
}

// Open returns a copy of an open order.
func (e *Engine) Open(id int64) (Order, bool) {
	o, ok := e.open[id]
	if !ok {
		return Order{}, false
	}
	return *o, true
}

// OpenCount is the number of resting orders.
func (e *Engine) OpenCount() int { return len(e.open) }

// PortPeak is the peak load on a port over [start, end), for tests and
// status.
func (e *Engine) PortPeak(portID int64, start, end time.Time) int64 {
	return e.port(portID).peak(start.UnixMicro(), end.UnixMicro())
}

// OpenOrders returns copies of the resting orders, by id.
func (e *Engine) OpenOrders() []Order {
	out := make([]Order, 0, len(e.open))
	for _, o := range e.open {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b Order) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Members returns the engine's registry view.
func (e *Engine) Members() map[uint32]*MemberInfo { return e.members }
