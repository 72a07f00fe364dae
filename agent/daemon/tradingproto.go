package daemon

import (
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/manager"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// buySpec is the buy behind ListOffers and TakeOffer, with lim as its
// quality limits (for a take, the trade's SLA). The manager chose the
// seller from its own probe rounds, so an offer the exchange has not
// measured yet is acceptable.
func (l *TradingLoop) buySpec(p netip.Prefix, capacity, block int64, start, end time.Time, lim manager.Limits) *pb.OrderSpec {
	pol := l.cfg.Manager.Policy.Buy
	q := limitsToProto(lim)
	q.AllowUnverified = true
	// The arbiter wants both; ListOffers only needs the destination.
	capacity, block = max(capacity, 1), max(block, 1)
	s := &pb.OrderSpec{Side: pb.Side_SIDE_BUY, Destination: &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: p.String()}},
		Protocol: protoOf(p), CapacityBps: capacity, MinBlockBps: block, Quality: q, TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY,
		DeliveryStart: timestamppb.New(start), DeliveryEnd: timestamppb.New(end), OrderType: pb.OrderType_ORDER_TYPE_FOK,
		SingleSeller: true, PriceMicros: int64(pol.MaxPrice)}
	switch pol.Ranking {
	case manager.ByPerformance:
		s.Ranking = pb.Ranking_RANKING_PERFORMANCE
	case manager.Weighted:
		s.Ranking = pb.Ranking_RANKING_WEIGHTED
		s.PriceWeightPercent = uint32(pol.PriceWeight)
	default:
		s.Ranking = pb.Ranking_RANKING_PRICE
	}
	return s
}

func protoOf(p netip.Prefix) pb.Protocol {
	if p.Addr().Is4() {
		return pb.Protocol_PROTOCOL_IPV4
	}
	return pb.Protocol_PROTOCOL_IPV6
}

func limitsToProto(l manager.Limits) *pb.Quality {
	q := &pb.Quality{}
	if l.MaxLatencyUs > 0 {
		q.MaxLatencyUs = proto.Int64(l.MaxLatencyUs)
	}
	if l.MaxJitterUs > 0 {
		q.MaxJitterUs = proto.Int64(l.MaxJitterUs)
	}
	if l.MaxLossPPM > 0 {
		q.MaxLossPpm = proto.Int32(l.MaxLossPPM)
	}
	return q
}

func routeType(s string) pb.RouteType {
	switch s {
	case "customer":
		return pb.RouteType_ROUTE_TYPE_CUSTOMER
	case "peer":
		return pb.RouteType_ROUTE_TYPE_PEER
	case "transit":
		return pb.RouteType_ROUTE_TYPE_TRANSIT
	}
	return pb.RouteType_ROUTE_TYPE_UNSPECIFIED
}

func orderFromProto(o *pb.Order, asn uint32) manager.Order {
	s := o.GetSpec()
	mo := manager.Order{ID: o.Id, Side: manager.Buy, CapacityBps: s.GetCapacityBps(), FilledBps: o.FilledBps,
		MinBlockBps: s.GetMinBlockBps(), PriceMicros: s.GetPriceMicros(), Start: s.GetDeliveryStart().AsTime(),
		End: s.GetDeliveryEnd().AsTime(), ClientOrderID: o.ClientOrderId}
	if s.GetSide() == pb.Side_SIDE_SELL {
		mo.Side = manager.Sell
	}
	switch d := s.GetDestination().GetKind().(type) {
	case *pb.Destination_Prefix:
		if p, err := netip.ParsePrefix(d.Prefix); err == nil {
			mo.Prefix = p.Masked()
		}
		mo.Destination = d.Prefix
	case *pb.Destination_RouteType:
		switch d.RouteType {
		case pb.RouteType_ROUTE_TYPE_CUSTOMER:
			mo.Destination = "customer"
		case pb.RouteType_ROUTE_TYPE_PEER:
			mo.Destination = "peer"
		case pb.RouteType_ROUTE_TYPE_TRANSIT:
			mo.Destination = "transit"
		default:
			mo.Destination = d.RouteType.String()
		}
	case *pb.Destination_OriginAsn:
		mo.Destination = "AS" + strconv.FormatUint(uint64(d.OriginAsn), 10)
	}
	return mo
}

func tradeFromProto(t *pb.Trade, asn uint32) manager.Trade {
	mt := manager.Trade{ID: t.Id, Side: manager.Buy, Seller: t.SellerAsn, Buyer: t.BuyerAsn, CapacityBps: t.CapacityBps,
		PriceMicros: t.PriceMicros, Start: t.GetDeliveryStart().AsTime(), End: t.GetDeliveryEnd().AsTime()}
	if t.SellerAsn == asn {
		mt.Side = manager.Sell
	}
	for _, s := range t.Prefixes {
		if p, err := netip.ParsePrefix(s); err == nil {
			mt.Prefixes = append(mt.Prefixes, p.Masked())
		}
	}
	return mt
}

func offerFromProto(o *pb.Offer, asked netip.Prefix) manager.Offer {
	mo := manager.Offer{OrderID: o.OrderId, Seller: o.SellerAsn, Prefix: asked, AvailableBps: o.AvailableBps,
		MinBlockBps: o.MinBlockBps, PriceMicros: o.PriceMicros, Start: o.GetDeliveryStart().AsTime()}
	if o.DeliveryEnd != nil {
		mo.End = o.DeliveryEnd.AsTime()
	}
	if q := o.Measured; q != nil {
		mo.Measured = &manager.Quality{LatencyUs: q.GetMaxLatencyUs(), JitterUs: q.GetMaxJitterUs(), LossPPM: q.GetMaxLossPpm()}
	}
	if q := o.MeasuredPath; q != nil {
		// With its samples: an answer without a probe count cannot
		// justify a buy (quality.min_probes).
		mo.Measured = &manager.Quality{LatencyUs: q.LatencyUs, JitterUs: q.JitterUs, LossPPM: q.LossPpm, Probes: q.Probes,
			Rounds: int(q.Samples), LatencyErrUs: q.LatencyErrUs, JitterErrUs: q.JitterErrUs, LossDispersion: q.LossDispersion}
	}
	return mo
}
