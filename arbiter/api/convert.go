package api

import (
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTS(field string, t *timestamppb.Timestamp) (time.Time, error) {
	if t == nil {
		return time.Time{}, nil
	}
	if err := t.CheckValid(); err != nil {
		return time.Time{}, invalidArg(field, "%v", err)
	}
	return t.AsTime().UTC(), nil
}

func specFromProto(s *pb.OrderSpec) (book.Spec, error) {
	if s == nil {
		return book.Spec{}, invalidArg("spec", "is required")
	}
	out := book.Spec{
		Side: book.Side(s.Side), Protocol: book.Protocol(s.Protocol), CapacityBps: s.CapacityBps,
		MinBlockBps: s.MinBlockBps, PriceMicros: s.PriceMicros, TrafficType: book.TrafficType(s.TrafficType),
		Type: book.OrderType(s.OrderType), Ranking: book.Ranking(s.Ranking), PriceWeight: s.PriceWeightPercent,
		SingleSeller: s.SingleSeller,
	}
	var err error
	if out.Start, err = fromTS("spec.delivery_start", s.DeliveryStart); err != nil {
		return out, err
	}
	if out.End, err = fromTS("spec.delivery_end", s.DeliveryEnd); err != nil {
		return out, err
	}
	if d := s.Destination; d != nil {
		switch k := d.Kind.(type) {
		case *pb.Destination_Prefix:
			p, err := registry.ParsePrefix("spec.destination.prefix", k.Prefix)
			if err != nil {
				return out, toStatus(err)
			}
			out.Destination.Prefix = p
		case *pb.Destination_OriginAsn:
			if k.OriginAsn == 0 {
				return out, invalidArg("spec.destination.origin_asn", "must not be 0")
			}
			out.Destination.OriginASN = k.OriginAsn
		case *pb.Destination_RouteType:
			if k.RouteType == pb.RouteType_ROUTE_TYPE_UNSPECIFIED {
				return out, invalidArg("spec.destination.route_type", "must be customer, peer, transit or specific")
			}
			out.Destination.RouteType = registry.RouteType(k.RouteType)
		}
	}
	if q := s.Quality; q != nil {
		out.Quality = book.Quality{
			MaxLatencyUs: q.MaxLatencyUs, MaxJitterUs: q.MaxJitterUs, MaxLossPPM: q.MaxLossPpm,
			MaxASHops: q.MaxAsHops, AllowUnverified: q.AllowUnverified,
		}
	}
	return out, nil
}

func destToProto(d book.Destination) *pb.Destination {
	switch {
	case d.Prefix.IsValid():
		return &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: d.Prefix.String()}}
	case d.OriginASN != 0:
		return &pb.Destination{Kind: &pb.Destination_OriginAsn{OriginAsn: d.OriginASN}}
	}
	return &pb.Destination{Kind: &pb.Destination_RouteType{RouteType: pb.RouteType(d.RouteType)}}
}

func qualityToProto(q book.Quality) *pb.Quality {
	return &pb.Quality{
		MaxLatencyUs: q.MaxLatencyUs, MaxJitterUs: q.MaxJitterUs, MaxLossPpm: q.MaxLossPPM,
		MaxAsHops: q.MaxASHops, AllowUnverified: q.AllowUnverified,
	}
}

func specToProto(s book.Spec) *pb.OrderSpec {
	return &pb.OrderSpec{
		Side: pb.Side(s.Side), Destination: destToProto(s.Destination), Protocol: pb.Protocol(s.Protocol),
		CapacityBps: s.CapacityBps, MinBlockBps: s.MinBlockBps, PriceMicros: s.PriceMicros,
		Quality: qualityToProto(s.Quality), TrafficType: pb.TrafficType(s.TrafficType),
		DeliveryStart: ts(s.Start), DeliveryEnd: ts(s.End), OrderType: pb.OrderType(s.Type),
		Ranking: pb.Ranking(s.Ranking), PriceWeightPercent: s.PriceWeight, SingleSeller: s.SingleSeller,
	}
}

func orderToProto(o book.Order) *pb.Order {
	return &pb.Order{
		Id: uint64(o.ID), MemberAsn: o.MemberASN, Spec: specToProto(o.Spec), Status: pb.OrderStatus(o.Status),
		FilledBps: o.FilledBps, ClientOrderId: o.ClientOrderID, CreatedAt: ts(o.Created), UpdatedAt: ts(o.Updated),
	}
}

func strs[T interface{ String() string }](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

func tradeToProto(t book.Trade, now time.Time) *pb.Trade {
	out := &pb.Trade{
		Id: uint64(t.ID), BuyOrderId: uint64(t.BuyOrderID), SellOrderId: uint64(t.SellOrderID),
		BuyerAsn: t.BuyerASN, SellerAsn: t.SellerASN, Prefixes: strs(t.Prefixes), Protocol: pb.Protocol(t.Protocol),
		CapacityBps: t.CapacityBps, PriceMicros: t.PriceMicros, DeliveryStart: ts(t.Start), DeliveryEnd: ts(t.End),
		Status: pb.TradeStatus(t.StatusAt(now)), SellerNextHops: strs(t.SellerNextHops), BuyerRouters: strs(t.BuyerRouters), CreatedAt: ts(t.Created),
		Quality: pathQualityToProto(t.Quality), EndReason: t.EndReason,
	}
	if !t.ContractEnd.IsZero() {
		out.ContractEnd = ts(t.ContractEnd)
	}
	return out
}

func pathQualityToProto(m *book.Measured) *pb.PathQuality {
	if m == nil {
		return nil
	}
	return &pb.PathQuality{LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPpm: m.LossPPM, AsHops: m.ASHops, Samples: int64(m.Samples),
		Probes: m.Probes, LatencyErrUs: m.LatencyErrUs, JitterErrUs: m.JitterErrUs, LossDispersion: m.LossDispersion, Vantages: int32(m.Vantages)}
}

// eventToProto is one entry of a member's event stream; the book's event
// types use the contract's numbers.
func eventToProto(e book.Event, now time.Time) *pb.TradeEvent {
	ev := &pb.TradeEvent{Sequence: uint64(e.Seq), Type: pb.TradeEventType(e.Type), Time: ts(e.Time)}
	if e.Trade != nil {
		ev.Trade = tradeToProto(*e.Trade, now)
	}
	if e.Order != nil {
		ev.Order = orderToProto(*e.Order)
	}
	if u := e.Use; u != nil && e.Trade != nil {
		kind := pb.UseKind_USE_KIND_OVERUSE
		if e.Type == book.UseUnder {
			kind = pb.UseKind_USE_KIND_UNDERUSE
		}
		ev.Use = &pb.UseEvent{TradeId: uint64(e.Trade.ID), Kind: kind, Start: ts(u.Start), End: ts(u.End), CapacityBps: u.CapacityBps,
			PeakBps: u.PeakBps, MinBps: u.MinBps, BuyerAsn: e.Trade.BuyerASN, SellerAsn: e.Trade.SellerASN}
	}
	if c := e.Credit; c != nil {
		st := pb.CreditState_CREDIT_STATE_WARNING
		if e.Type == book.CreditStopped {
			st = pb.CreditState_CREDIT_STATE_STOPPED
		}
		ev.Credit = &pb.Credit{MemberAsn: e.MemberASN, Limited: true, LimitMicros: c.LimitMicros, UnpaidMicros: c.UnpaidMicros,
			AccruedMicros: c.AccruedMicros, OrdersMicros: c.OrdersMicros, ExposureMicros: c.ExposureMicros, State: st}
	}
	return ev
}

func tradesToProto(ts []book.Trade, now time.Time) []*pb.Trade {
	out := make([]*pb.Trade, len(ts))
	for i, t := range ts {
		out[i] = tradeToProto(t, now)
	}
	return out
}

func memberToProto(m registry.Member) *pb.Member {
	out := &pb.Member{
		Asn: m.ASN, Name: m.Name, Port: &pb.Port{Name: m.Port.Name, CapacityBps: m.Port.CapacityBps},
		RouterAddresses: strs(m.Routers), CreatedAt: ts(m.Created),
		Status: pb.MemberStatus(m.Status), StatusReason: m.StatusReason, // the registry's numbers are the contract's
	}
	if !m.StatusSince.IsZero() {
		out.StatusSince = ts(m.StatusSince)
	}
	return out
}

func measuredToProto(m *book.Measured) *pb.Quality {
	if m == nil {
		return nil
	}
	return &pb.Quality{MaxLatencyUs: proto.Int64(m.LatencyUs), MaxJitterUs: proto.Int64(m.JitterUs),
		MaxLossPpm: proto.Int32(m.LossPPM), MaxAsHops: proto.Int32(m.ASHops)}
}

func parseAddrs(field string, ss []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(ss))
	for i, s := range ss {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, invalidArg(field+"["+strconv.Itoa(i)+"]", "%q is not an IP address", s)
		}
		out = append(out, a)
	}
	return out, nil
}
