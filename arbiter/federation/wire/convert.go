// Package wire carries federation over gRPC: the book stream a peer
// exchange subscribes to (Server), and the link that keeps this
// exchange's view of a peer (Link). What they carry is judged in
// arbiter/federation.
package wire

import (
	"fmt"
	"math"
	"net/netip"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/federation"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// OfferToProto is an offer as the wire carries it.
func OfferToProto(o federation.Offer) *pb.RemoteOffer {
	ps := make([]string, len(o.Prefixes))
	for i, p := range o.Prefixes {
		ps[i] = p.String()
	}
	r := &pb.RemoteOffer{OrderId: uint64(o.ID), SellerAsn: o.SellerASN, Prefixes: ps, CapacityBps: o.CapacityBps, MinBlockBps: o.MinBlockBps,
		PriceMicros: o.PriceMicros, DeliveryStart: timestamppb.New(o.Start), DeliveryEnd: timestamppb.New(o.End),
		TrafficType: pb.TrafficType(o.TrafficType), Revision: o.Revision}
	if m := o.Measured; m != nil {
		r.Measured = &pb.PathQuality{LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPpm: m.LossPPM, AsHops: m.ASHops, Samples: int64(m.Samples),
			Probes: m.Probes, LatencyErrUs: m.LatencyErrUs, JitterErrUs: m.JitterErrUs, LossDispersion: m.LossDispersion, Vantages: int32(m.Vantages)}
	}
	return r
}

// OfferFromProto converts what a peer sent; an error is a reason to
// reject the offer (the view judges the rest).
func OfferFromProto(r *pb.RemoteOffer) (federation.Offer, error) {
	if r.OrderId == 0 || r.OrderId > math.MaxInt64 {
		return federation.Offer{}, fmt.Errorf("order_id: %d out of range", r.OrderId)
	}
	o := federation.Offer{ID: int64(r.OrderId), SellerASN: r.SellerAsn, CapacityBps: r.CapacityBps, MinBlockBps: r.MinBlockBps,
		PriceMicros: r.PriceMicros, TrafficType: book.TrafficType(r.TrafficType), Revision: r.Revision}
	if len(r.Prefixes) > federation.MaxPrefixesPerOffer {
		return o, fmt.Errorf("prefixes: %d, more than %d", len(r.Prefixes), federation.MaxPrefixesPerOffer)
	}
	for i, s := range r.Prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return o, fmt.Errorf("prefixes[%d]: %q is not a prefix", i, s)
		}
		o.Prefixes = append(o.Prefixes, p)
	}
	if r.DeliveryStart != nil {
		if err := r.DeliveryStart.CheckValid(); err != nil {
			return o, fmt.Errorf("delivery_start: %v", err)
		}
		o.Start = r.DeliveryStart.AsTime()
	}
	if r.DeliveryEnd != nil {
		if err := r.DeliveryEnd.CheckValid(); err != nil {
			return o, fmt.Errorf("delivery_end: %v", err)
		}
		o.End = r.DeliveryEnd.AsTime()
	}
	if m := r.Measured; m != nil {
		if m.Samples < 0 || m.Samples > math.MaxInt32 || m.Vantages < 0 {
			return o, fmt.Errorf("measured: samples or vantages out of range")
		}
		o.Measured = &book.Measured{LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPPM: m.LossPpm, ASHops: m.AsHops, Samples: int(m.Samples),
			Probes: m.Probes, LatencyErrUs: m.LatencyErrUs, JitterErrUs: m.JitterErrUs, LossDispersion: m.LossDispersion, Vantages: int(m.Vantages)}
	}
	return o, nil
}

// updateFromProto converts one message; offers that do not convert are
// listed as invalid.
func updateFromProto(m *pb.BookUpdate) federation.Update {
	u := federation.Update{Epoch: m.Epoch, Seq: m.Seq}
	switch m.Kind {
	case pb.BookUpdate_SNAPSHOT:
		u.Kind = federation.SnapshotPart
	case pb.BookUpdate_SNAPSHOT_END:
		u.Kind = federation.SnapshotEnd
	case pb.BookUpdate_CHANGE:
		u.Kind = federation.ChangeUpdate
	case pb.BookUpdate_HEARTBEAT:
		u.Kind = federation.Heartbeat
	}
	for _, r := range m.Offers {
		o, err := OfferFromProto(r)
		if err != nil {
			u.Invalid = append(u.Invalid, federation.Rejected{ID: int64(min(r.OrderId, math.MaxInt64)), Reason: err.Error()})
			continue
		}
		u.Offers = append(u.Offers, o)
	}
	for _, id := range m.Removed {
		if id > 0 && id <= math.MaxInt64 {
			u.Removed = append(u.Removed, int64(id))
		}
	}
	return u
}
