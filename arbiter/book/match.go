package book

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
)

// Compatible reports whether a sell can serve a buy on the order terms alone:
// protocol, traffic type, delivery period and price, as seen at now (each
// period taken from its effective start: a start that has passed is now).
func Compatible(buy, sell Spec, now time.Time) bool { return mismatch(&buy, &sell, now) == "" }

// mismatch names the first order term on which a sell cannot serve a buy at
// now.
func mismatch(buy, sell *Spec, now time.Time) string {
	switch {
	case buy.Protocol != sell.Protocol:
		return "protocol differs"
	case !(buy.TrafficType == AnyTraffic || sell.TrafficType == AnyTraffic || buy.TrafficType == sell.TrafficType):
		return "traffic type differs"
	case sell.EffectiveStart(now).After(buy.EffectiveStart(now)) || sell.End.Before(buy.End):
		return "its delivery period does not cover yours"
	case sell.PriceMicros > buy.PriceMicros:
		return "its price is above your limit"
	}
	return ""
}

// TradedPrefixes resolves what a buy would get from a sell: the seller's
// registered routes inside the sell's destination, of the protocol, that the
// buy's destination asks for. A buy for one prefix is served by a covering
// route and trades exactly that prefix.
func TradedPrefixes(buy, sell Spec, sellerRoutes []registry.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range sellerRoutes {
		if !sell.Destination.Includes(r) || !sell.Protocol.Fits(r.Prefix.Addr()) {
			continue
		}
		if p := buy.Destination.Prefix; p.IsValid() {
			if r.Prefix.Bits() <= p.Bits() && r.Prefix.Contains(p.Addr()) {
				return []netip.Prefix{p}
			}
			continue
		}
		if buy.Destination.Includes(r) {
			out = append(out, r.Prefix)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// FillSize is the largest whole number of blocks (the larger of the two
// minimum blocks) within want and available.
func FillSize(want, available, blockA, blockB int64) int64 {
	b := max(blockA, blockB)
	n := min(want, available)
	if b <= 0 || n < b {
		return 0
	}
	return n / b * b
}

type candidate struct {
	order    *Order
	prefixes []netip.Prefix
	measured *Measured
	asked    bool // measured is the quality source's answer (nil: none)
}

// firstVisit reports whether a candidates call meets order id for the
// first time (an order reached through several routes is considered once).
// The few orders of most calls are kept in a slice, searched faster than a
// map is cleared and filled.
func (e *Engine) firstVisit(id int64) bool {
	if e.seenMap {
		if e.seen[id] {
			return false
		}
		e.seen[id] = true
		return true
	}
	if slices.Contains(e.seenIDs, id) {
		return false
	}
	if len(e.seenIDs) < 32 {
		e.seenIDs = append(e.seenIDs, id)
		return true
	}
	for _, x := range e.seenIDs {
		e.seen[x] = true
	}
	e.seen[id], e.seenMap = true, true
	return true
}

// candidates lists the resting orders o could trade with, ranked. The list
// is the engine's scratch space: good until the next call.
func (e *Engine) candidates(o *Order, now time.Time, only int64) []candidate {
	e.seenIDs = e.seenIDs[:0]
	if e.seenMap {
		clear(e.seen)
		e.seenMap = false
	}
	clear(e.cands[:cap(e.cands)]) // drops the last calls' pointers
	out := e.cands[:0]
	defer func() { e.cands = out }()
	// A resting buy met by an incoming sell is checked against its
	// member's credit too, once per buyer here: it may have been placed
	// before the member reached its limit.
	var refused map[uint32]bool
	creditOK := func(asn uint32) bool {
		if e.CreditCheck == nil || o.Spec.Side == Buy {
			return true // an incoming buy was checked before matching
		}
		if refused == nil {
			refused = map[uint32]bool{}
		}
		r, ok := refused[asn]
		if !ok {
			r = e.CreditCheck(asn, nil, now) != nil
			refused[asn] = r
		}
		return !r
	}
	// An incoming sell's resolution, found once: its candidates are looked
	// up by it and each one trades from it.
	var own []registry.Prefix
	if o.Spec.Side == Sell {
		own = e.routesOf(o)
	}
	// A resting order of a member that may no longer trade is passed
	// over, asked once per member here.
	var inactive map[uint32]bool
	activeOK := func(asn uint32) bool {
		if e.Active == nil {
			return true
		}
		if inactive == nil {
			inactive = map[uint32]bool{}
		}
		r, ok := inactive[asn]
		if !ok {
			r = e.Active(asn) != nil
			inactive[asn] = r
		}
		return !r
	}
	// via, when set, is the traded prefix already known from the index: a
	// buy for a prefix reached through a covering route trades that prefix.
	consider := func(r *Order, via []netip.Prefix) {
		if r.MemberASN == o.MemberASN || !r.Spec.End.After(now) || !e.firstVisit(r.ID) {
			return
		}
		if only != 0 && r.ID != only {
			return
		}
		if !activeOK(r.MemberASN) {
			return
		}
		buy, sell := o, r
		if o.Spec.Side == Sell {
			buy, sell = r, o
		}
		if mismatch(&buy.Spec, &sell.Spec, now) != "" || !creditOK(buy.MemberASN) {
			return
		}
		sm := e.members[sell.MemberASN]
		if sm == nil {
			return
		}
		prefixes := via
		if prefixes == nil {
			// The sell's own resolution: a sell for a prefix inside a
			// registered route sells that prefix (the route as registered
			// would not be inside the sell's destination).
			routes := own
			if sell != o {
				routes = e.routesOf(sell)
			}
			prefixes = TradedPrefixes(buy.Spec, sell.Spec, routes)
		}
		if prefixes = sm.sellable(buy.MemberASN, prefixes); len(prefixes) == 0 {
			return
		}
		c := candidate{order: r, prefixes: prefixes}
		if buy.Spec.Quality.Limited() || (buy.Spec.Ranking != ByPrice && buy.Spec.Ranking != 0) {
			c.measured, c.asked = e.Quality.Measured(buy.MemberASN, sell.MemberASN, prefixes, now), true
		}
		if !buy.Spec.Quality.Meets(c.measured) {
			return
		}
		out = append(out, c)
	}
	if o.Spec.Side == Buy {
		// A sell above the buy's limit fails Compatible: passed over
		// here without reading it.
		limit := o.Spec.PriceMicros
		switch d := o.Spec.Destination; {
		case d.Prefix.IsValid():
			traded := []netip.Prefix{d.Prefix}
			for _, v := range e.sellsByPrefix.Supernets(d.Prefix) {
				for _, sr := range v {
					if sr.price <= limit {
						consider(sr.order, traded)
					}
				}
			}
		case d.OriginASN != 0:
			for _, sr := range e.sellsByOrigin[d.OriginASN] {
				if sr.price <= limit {
					consider(sr.order, nil)
				}
			}
		default:
			for _, sr := range e.sellsByType[d.RouteType] {
				if sr.price <= limit {
					consider(sr.order, nil)
				}
			}
		}
	} else {
		for _, r := range own {
			for _, v := range e.buysByPrefix.Subnets(r.Prefix) {
				for _, b := range v {
					consider(b, nil)
				}
			}
			for _, b := range e.buysByOrigin[r.OriginASN] {
				consider(b, nil)
			}
			for _, b := range e.buysByType[r.Type] {
				consider(b, nil)
			}
		}
	}
	rank(o, out)
	return out
}

// available is what a candidate can trade with o now: its remaining
// capacity and both ports' free capacity over the buy's period from its
// effective start.
func (e *Engine) available(o *Order, c candidate, now time.Time) int64 {
	buy, sell := o, c.order
	if o.Spec.Side == Sell {
		buy, sell = c.order, o
	}
	bm, sm := e.members[buy.MemberASN], e.members[sell.MemberASN]
	if bm == nil || sm == nil {
		return 0
	}
	s, t := buy.Spec.EffectiveStart(now).UnixMicro(), buy.Spec.End.UnixMicro()
	free := min(bm.Capacity-e.port(bm.PortID).peak(s, t), sm.Capacity-e.port(sm.PortID).peak(s, t))
	return min(c.order.Remaining(), o.Remaining(), free)
}

type fill struct {
	c    candidate
	bps  int64
	hops []netip.Addr
}

// match fills o against the book, applies the fills (trades, port loads,
// resting orders) and records them in ch. An IOC or FOK never rests.
// sweep says o was resting too (Wake): it is recorded in ch only if it
// traded, and each trade takes the price of whichever order rested first.
// Otherwise o is not in the book (a new order, or one Modify took out).
func (e *Engine) match(o *Order, now time.Time, only int64, ch *Change, sweep bool) []Trade {
	fills := e.fills[:0]
	defer func() {
		clear(fills[:cap(fills)]) // drops the pointers
		e.fills = fills[:0]
	}()
	remaining := o.Remaining()
	for _, c := range e.candidates(o, now, only) {
		if remaining <= 0 {
			break
		}
		buy, sell := o, c.order
		if o.Spec.Side == Sell {
			buy, sell = c.order, o
		}
		hops := e.members[sell.MemberASN].routers(sell.Spec.Protocol)
		if len(hops) == 0 {
			continue // no router of this family to be the next hop
		}
		avail := min(e.available(o, c, now), remaining)
		bps := FillSize(remaining, avail, buy.Spec.MinBlockBps, sell.Spec.MinBlockBps)
		if bps == 0 || (buy.Spec.SingleSeller && bps != buy.Remaining()) {
			continue
		}
		e.reserve(buy, sell, bps, now)
		fills = append(fills, fill{c, bps, hops})
		remaining -= bps
	}
	if o.Spec.Type == FOK && remaining > 0 {
		for _, f := range fills {
			buy, sell := o, f.c.order
			if o.Spec.Side == Sell {
				buy, sell = f.c.order, o
			}
			e.reserve(buy, sell, -f.bps, now)
		}
		fills = fills[:0]
	}
	first := len(ch.Trades)
	if n := len(fills); n > 0 {
		// Each fill makes a trade, two events and (with Place's or
		// Modify's own) an order's new state and an event.
		ch.Trades = slices.Grow(ch.Trades, n)
		ch.Events = slices.Grow(ch.Events, 3*n+1)
		ch.Orders = slices.Grow(ch.Orders, n+1)
	}
	for _, f := range fills {
		buy, sell := o, f.c.order
		if o.Spec.Side == Sell {
			buy, sell = f.c.order, o
		}
		e.lastTrade++
		// Every trade records the path's quality at match time (claim
		// 18): ranking or limits already asked; otherwise one lookup.
		m := f.c.measured
		if m == nil && !f.c.asked {
			if e.DeferQuality {
				ch.lookups = append(ch.lookups, len(ch.Trades))
			} else {
				m = e.Quality.Measured(buy.MemberASN, sell.MemberASN, f.c.prefixes, now)
			}
		}
		if m != nil && m.Samples == 0 {
			m = nil
		}
		m = m.Recorded()
		// The trade price is the resting order's; in a sweep both rested,
		// and the one that rested first sets it.
		price := f.c.order.Spec.PriceMicros
		if sweep && o.Priority < f.c.order.Priority {
			price = o.Spec.PriceMicros
		}
		// A trade starts when it is made at the earliest, never before.
		t := Trade{ID: e.lastTrade, BuyOrderID: buy.ID, SellOrderID: sell.ID, BuyerASN: buy.MemberASN, SellerASN: sell.MemberASN,
			Prefixes: f.c.prefixes, Protocol: buy.Spec.Protocol, CapacityBps: f.bps, PriceMicros: price,
			Start: buy.Spec.EffectiveStart(now), End: buy.Spec.End, SellerNextHops: f.hops, Created: now, Quality: m}
		if bm := e.members[buy.MemberASN]; bm != nil {
			t.BuyerRouters = bm.routers(buy.Spec.Protocol)
		}
		ch.Trades = append(ch.Trades, t)
		r := f.c.order
		r.FilledBps += f.bps
		o.FilledBps += f.bps
		tc := &t // both parties' events share the copy
		e.eventOf(ch, t.BuyerASN, TradeCreated, now, tc, nil)
		e.eventOf(ch, t.SellerASN, TradeCreated, now, tc, nil)
		e.filledResting(r, now, ch)
	}
	var trades []Trade
	if len(ch.Trades) > first {
		trades = slices.Clip(ch.Trades[first:])
	}
	if sweep {
		// o rested (and stays in the index: it is never its own
		// candidate) and stays as it was unless it traded.
		if len(trades) > 0 {
			e.filledResting(o, now, ch)
		}
		return trades
	}
	o.Updated = now
	switch {
	case o.Remaining() == 0:
		o.Status = Filled
	case o.Spec.Type != Limit:
		o.Status = Cancelled // IOC and FOK never rest
	default:
		o.Status = Open
	}
	if o.Status == Open {
		e.add(o)
		if o.Spec.Side == Sell && o.Spec.Start.After(now) {
			// Before its start it cannot cover a buy that starts
			// earlier: Wake matches it again then.
			e.wakeAt(wake{at: o.Spec.Start.UnixMicro(), order: o.ID})
		}
	}
	return trades
}

// filledResting records a fill of resting order r in ch: r leaves the
// book when nothing of it remains.
func (e *Engine) filledResting(r *Order, now time.Time, ch *Change) {
	r.Updated = now
	if r.Remaining() == 0 {
		r.Status = Filled
		e.remove(r)
		e.event(ch, r.MemberASN, OrderFilled, now, nil, r)
	}
	ch.touched(*r, r.Status == Open)
}

// reserve holds bps on both ports over the trade's period: from the buy's
// effective start at now to its end (bps < 0 undoes it).
func (e *Engine) reserve(buy, sell *Order, bps int64, now time.Time) {
	s, t := buy.Spec.EffectiveStart(now).UnixMicro(), buy.Spec.End.UnixMicro()
	for _, id := range []int64{e.members[buy.MemberASN].PortID, e.members[sell.MemberASN].PortID} {
		c := e.port(id)
		c.add(s, t, bps)
		if bps > 0 && !(c.wokenSet && c.woken == t) {
			e.wakeAt(wake{at: t, port: id})
			c.woken, c.wokenSet = t, true
		}
	}
}
