package manager

import (
	"fmt"
	"slices"
)

// Spare is the port capacity a seller can offer: capacity minus what trades
// commit, other measured use and the safety margin, in whole blocks.
func Spare(port Port, margin, block int64) int64 {
	spare := port.CapacityBps - port.CommittedBps - port.OtherUseBps - margin
	if spare <= 0 || block <= 0 {
		return 0
	}
	return spare / block * block
}

// sell keeps one sell order of the manager's per configured destination
// offering the spare capacity: placed when there is a block to spare,
// lowered or cancelled at once when the spare shrinks (never subject to the
// change cap: the port must not be oversold), raised or repriced only when
// it moved by more than sell.adjust_percent and the cap allows, and placed
// anew when its delivery period nears its end.
func (s *step) sell() {
	m := s.m
	sp := &m.pol.Sell
	if !sp.Enabled {
		return
	}
	block := int64(sp.MinBlock)
	spare := Spare(s.in.Port, int64(sp.SafetyMargin), block)
	price := int64(sp.Price)
	for _, dest := range sp.Destinations {
		var mine []Order
		for _, o := range s.in.Orders {
			if o.Side == Sell && ours(o) && (o.Destination == dest || o.Prefix.IsValid() && o.Prefix.String() == dest) {
				mine = append(mine, o)
			}
		}
		if m.pol.Mode == ModeShadow {
			mine = nil
			if o, ok := m.shadowSells[dest]; ok && o.End.After(s.now) {
				mine = []Order{o}
			}
		}
		// Newest period first; older duplicates go.
		slices.SortFunc(mine, func(a, b Order) int { return b.End.Compare(a.End) })
		for _, o := range mine[min(1, len(mine)):] {
			s.sellDecision(KindSellCancel, dest, o, spare, "a newer offer replaces it", Intent{Type: CancelOrder, OrderID: o.ID})
		}
		subject := "sell " + dest
		place := Intent{Type: PlaceSell, Destination: dest, CapacityBps: spare, MinBlockBps: block, PriceMicros: price,
			Limits: sp.Quality.Limits(), Start: s.now, End: s.now.Add(sp.Term)}
		if len(mine) == 0 {
			if spare < block {
				continue
			}
			if m.capReached(s.now) {
				m.hold(&s.out, subject, Decision{At: s.now, Destination: dest, SizeBps: spare, Reason: "stability.max_changes_per_hour reached"})
				continue
			}
			place.ClientOrderID = m.clientID(s.now)
			s.sellDecision(KindSellPlace, dest, Order{}, spare, "spare port capacity to offer", place)
			continue
		}
		o := mine[0]
		rem := o.Remaining()
		switch {
		case spare < block:
			s.sellDecision(KindSellCancel, dest, o, spare, "no block of spare port capacity left", Intent{Type: CancelOrder, OrderID: o.ID})
		case o.End.Sub(s.now) < sp.RenewBefore:
			if m.capReached(s.now) {
				m.hold(&s.out, subject, Decision{At: s.now, Destination: dest, OrderID: o.ID, Reason: "offer ends soon; stability.max_changes_per_hour reached"})
				continue
			}
			place.ClientOrderID = m.clientID(s.now)
			s.sellDecision(KindSellPlace, dest, o, spare, "offer ends soon: placed anew", Intent{Type: CancelOrder, OrderID: o.ID}, place)
		case spare < rem:
			s.sellDecision(KindSellModify, dest, o, spare, fmt.Sprintf("spare capacity fell from %v to %v", Bandwidth(rem), Bandwidth(spare)),
				Intent{Type: ModifySell, OrderID: o.ID, CapacityBps: o.FilledBps + spare, PriceMicros: price})
		case o.PriceMicros != price || (spare-rem >= block && (spare-rem)*100 > int64(sp.Adjust)*rem):
			if m.capReached(s.now) {
				m.hold(&s.out, subject, Decision{At: s.now, Destination: dest, OrderID: o.ID, Reason: "offer could grow; stability.max_changes_per_hour reached"})
				continue
			}
			s.sellDecision(KindSellModify, dest, o, spare, fmt.Sprintf("spare capacity %v (offered %v), price %v (was %v)", Bandwidth(spare), Bandwidth(rem), Money(price), Money(o.PriceMicros)),
				Intent{Type: ModifySell, OrderID: o.ID, CapacityBps: o.FilledBps + spare, PriceMicros: price})
		}
	}
}

func (s *step) sellDecision(k Kind, dest string, o Order, spare int64, reason string, in ...Intent) {
	d := Decision{At: s.now, Kind: k, Destination: dest, OrderID: o.ID, SizeBps: spare, PriceMicros: int64(s.m.pol.Sell.Price),
		MonthlyMicros: monthly(int64(s.m.pol.Sell.Price), spare), Reason: reason, Intents: in}
	s.out = append(s.out, s.m.record(d))
	if s.m.pol.Mode != ModeShadow {
		return
	}
	// Shadow mode keeps the order it would have.
	for _, in := range in {
		switch in.Type {
		case CancelOrder:
			delete(s.m.shadowSells, dest)
		case PlaceSell:
			s.m.shadowSells[dest] = Order{ID: 0, Side: Sell, Destination: dest, CapacityBps: in.CapacityBps, MinBlockBps: in.MinBlockBps,
				PriceMicros: in.PriceMicros, Start: in.Start, End: in.End, ClientOrderID: in.ClientOrderID}
		case ModifySell:
			o := s.m.shadowSells[dest]
			o.CapacityBps, o.PriceMicros = in.CapacityBps, in.PriceMicros
			s.m.shadowSells[dest] = o
		}
	}
}
