package routeserver

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// Delivery is whether a trade reaches its buyer through one of the buyer's
// sessions: every prefix of the session's family in the trade has its
// path announced on the established session. It is what the record of
// delivery (and so billing) is made of.
type Delivery struct {
	TradeID   uint64
	BuyerASN  uint32
	Session   netip.Addr // the buyer's router
	Delivered bool
	// Reason says why not, when not delivered; Cause is whom it falls on
	// (CauseBuyer or CauseSeller).
	Reason string
	Cause  string
}

// Why a trade is not delivered on a session.
const (
	ReasonBuyerDown   = "buyer session down"
	ReasonSellerDown  = "seller session down"
	ReasonUnannounced = "seller does not announce the prefix"
	// ReasonRejected is followed by the route's reason: "seller route not
	// accepted: RPKI invalid".
	ReasonRejected = "seller route not accepted"
	ReasonLoop     = "seller's AS path holds the buyer's ASN"
	// ReasonWithheld is followed by why: "withheld: AS64503 is not on the
	// seller's allow list".
	ReasonWithheld = "withheld"
	ReasonPending  = "being announced"
)

// Who a gap in delivery falls on.
const (
	CauseBuyer  = "buyer"
	CauseSeller = "seller"
)

// DeliveryChange is a change of a trade's delivery on a session, at At:
// its new state, or Ended when the trade (or the buyer's session) is no
// longer on the route server.
type DeliveryChange struct {
	Delivery
	At    time.Time
	Ended bool
}

// OnDelivery sets the function called with each batch of delivery changes,
// in order, one call at a time, after the paths behind them changed. It
// must not block for long (it delays the next change of routes) nor call
// back into the Server.
func (s *Server) OnDelivery(fn func([]DeliveryChange)) {
	s.deliveryMu.Lock()
	s.onDelivery = fn
	s.deliveryMu.Unlock()
}

// Deliveries returns every trade's delivery on each of its buyer's
// sessions now, by trade and session.
func (s *Server) Deliveries() []Delivery {
	s.syncMu.Lock()
	var out []Delivery
	for _, ds := range s.delivery {
		for _, d := range ds {
			out = append(out, d)
		}
	}
	s.syncMu.Unlock()
	slices.SortFunc(out, compareDelivery)
	return out
}

func compareDelivery(a, b Delivery) int {
	switch {
	case a.TradeID < b.TradeID:
		return -1
	case a.TradeID > b.TradeID:
		return 1
	}
	return a.Session.Compare(b.Session)
}

// judgeBuyer marks the buyer's trades for judging (its session changed);
// s.mu is held.
func (s *Server) judgeBuyer(buyer uint32) {
	for id, t := range s.trades {
		if t.BuyerASN == buyer {
			s.rejudge[id] = true
		}
	}
}

// deliveryChanges judges again the trades whose paths or buyer sessions
// changed (s.rejudge) and returns what changed since the last time.
// s.syncMu is held (announced is current).
func (s *Server) deliveryChanges() []DeliveryChange {
	now := clock.Now().UTC()
	var out []DeliveryChange
	s.mu.Lock()
	for id := range s.rejudge {
		next := map[netip.Addr]Delivery{}
		if t, ok := s.trades[id]; ok {
			if m := s.members[t.BuyerASN]; m != nil {
				for _, a := range m.Addresses {
					if d, ok := s.deliveryOn(&t, a); ok {
						next[a] = d
					}
				}
			}
		}
		old := s.delivery[id]
		for a, d := range next {
			if o, ok := old[a]; !ok || o != d {
				out = append(out, DeliveryChange{Delivery: d, At: now})
			}
		}
		for a, d := range old {
			if _, ok := next[a]; !ok {
				out = append(out, DeliveryChange{Delivery: d, At: now, Ended: true})
			}
		}
		if len(next) == 0 {
			delete(s.delivery, id)
		} else {
			s.delivery[id] = next
		}
	}
	clear(s.rejudge)
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b DeliveryChange) int { return compareDelivery(a.Delivery, b.Delivery) })
	return out
}

// deliveryOn is t's delivery on the buyer's session at a, false if t has
// no prefix of a's family. s.mu and s.syncMu are held.
func (s *Server) deliveryOn(t *Trade, a netip.Addr) (Delivery, bool) {
	d := Delivery{TradeID: t.ID, BuyerASN: t.BuyerASN, Session: a, Delivered: true}
	var any bool
	for _, p := range t.Prefixes {
		if p.Addr().Is4() != a.Is4() {
			continue
		}
		any = true
		if why := s.pathProblem(t, p); why != "" && d.Delivered {
			d.Delivered, d.Reason, d.Cause = false, why, CauseSeller
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(t.Withheld), netip.Prefix.Compare) {
		if p.Addr().Is4() != a.Is4() {
			continue
		}
		any = true
		if d.Delivered {
			d.Delivered, d.Reason, d.Cause = false, ReasonWithheld+": "+t.Withheld[p], CauseSeller
		}
	}
	if n := s.nbrs[a]; any && (n == nil || !n.established()) {
		// The buyer's own session decides first: nothing reaches a
		// session that is down, whatever the seller does.
		d.Delivered, d.Reason, d.Cause = false, ReasonBuyerDown, CauseBuyer
	}
	return d, any
}

// pathProblem says why t's path for p is not announced to its buyer ("":
// it is). s.mu and s.syncMu are held.
func (s *Server) pathProblem(t *Trade, p netip.Prefix) string {
	k := pathKey{t.BuyerASN, route{p, s.chosen(t, p)}}
	n := s.nbrs[k.NextHop]
	if n == nil || !n.established() {
		return ReasonSellerDown
	}
	r, ok := n.acceptedLPM(p)
	if !ok {
		// The most specific route it announces covering p (Supernets'
		// first), rejected.
		for _, rr := range n.routes.Supernets(p) {
			return ReasonRejected + ": " + rr.reason
		}
		return ReasonUnannounced
	}
	if slices.Contains(r.attrs.asPath, t.BuyerASN) {
		return ReasonLoop // GoBGP does not send it (BGP loop prevention)
	}
	if s.announced[k] == nil {
		return ReasonPending
	}
	return ""
}
