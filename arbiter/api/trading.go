package api

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/delivery"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// TradingServer serves the order book.
type TradingServer struct {
	pb.UnimplementedTradingServiceServer
	Book    *book.Book
	Broker  *Broker
	Metrics *Metrics
	// Delivery is the delivery record (nil: none kept, BGP off).
	Delivery *delivery.Record
	// Now is the clock for trade status; tests replace it.
	Now func() time.Time
	// Stopping ends open event streams when the arbiter shuts down, so a
	// graceful stop does not wait on them.
	Stopping <-chan struct{}
}

// The credit check (a member at its credit limit places no new buys, claim
// 19) is the book's: book.Options.CreditCheck, made inside its serialized
// section so that two buys cannot both pass on the same exposure. Its
// refusal (*book.RefusedError) is FailedPrecondition.

func (s *TradingServer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return clock.Now()
}

func (s *TradingServer) PlaceOrder(ctx context.Context, r *pb.PlaceOrderRequest) (*pb.PlaceOrderResponse, error) {
	return s.place(ctx, "place", r.Spec, 0, func(asn uint32, spec book.Spec) (book.Order, []book.Trade, error) {
		return s.Book.Place(ctx, asn, spec, r.ClientOrderId)
	})
}

func (s *TradingServer) TakeOffer(ctx context.Context, r *pb.TakeOfferRequest) (*pb.PlaceOrderResponse, error) {
	return s.place(ctx, "take", r.Spec, book.Buy, func(asn uint32, spec book.Spec) (book.Order, []book.Trade, error) {
		return s.Book.Take(ctx, asn, int64(r.OfferOrderId), spec, r.ClientOrderId)
	})
}

// place is what PlaceOrder and TakeOffer share: the calling member's spec
// (side, when the spec gives none: a take is a buy), the book's answer
// timed as op, and the order with the trades it made.
func (s *TradingServer) place(ctx context.Context, op string, ps *pb.OrderSpec, side book.Side,
	call func(asn uint32, spec book.Spec) (book.Order, []book.Trade, error)) (*pb.PlaceOrderResponse, error) {
	asn, err := requireMember(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := specFromProto(ps)
	if err != nil {
		return nil, err
	}
	if spec.Side == 0 {
		spec.Side = side
	}
	start := clock.Now()
	o, trades, err := call(asn, spec)
	s.Metrics.observeBook(op, spec.Side, start, err)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PlaceOrderResponse{Order: orderToProto(o), Trades: tradesToProto(trades, s.now())}, nil
}

func (s *TradingServer) ModifyOrder(ctx context.Context, r *pb.ModifyOrderRequest) (*pb.Order, error) {
	c := callerFrom(ctx)
	if r.OrderId == 0 {
		return nil, invalidArg("order_id", "is required")
	}
	if !c.IsMember() {
		return nil, status.Error(codes.PermissionDenied, "only the member that placed an order may change it")
	}
	start := clock.Now()
	o, _, err := s.Book.Modify(ctx, c.ASN(), int64(r.OrderId), r.CapacityBps, r.PriceMicros)
	s.Metrics.observeBook("modify", 0, start, err)
	if err != nil {
		return nil, toStatus(err)
	}
	return orderToProto(o), nil
}

func (s *TradingServer) CancelOrder(ctx context.Context, r *pb.CancelOrderRequest) (*pb.Order, error) {
	if r.OrderId == 0 {
		return nil, invalidArg("order_id", "is required")
	}
	start := clock.Now()
	o, err := s.Book.Cancel(ctx, callerFrom(ctx).ASN(), int64(r.OrderId))
	s.Metrics.observeBook("cancel", 0, start, err)
	if err != nil {
		return nil, toStatus(err)
	}
	return orderToProto(o), nil
}

func (s *TradingServer) GetOrder(ctx context.Context, r *pb.GetOrderRequest) (*pb.Order, error) {
	o, err := s.Book.Get(ctx, callerFrom(ctx).ASN(), int64(r.OrderId))
	if err != nil {
		return nil, toStatus(err)
	}
	return orderToProto(o), nil
}

func (s *TradingServer) ListOrders(ctx context.Context, r *pb.ListOrdersRequest) (*pb.ListOrdersResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "orders", r.PageSize, r.PageToken, asn, r.OpenOnly)
	if err != nil {
		return nil, err
	}
	os, err := s.Book.OrdersPage(ctx, asn, r.OpenOnly, pg.afterID(), pg.fetch())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListOrdersResponse{}
	os, out.NextPageToken = cut(pg, os, func(o book.Order) string { return idKey(o.ID) })
	for _, o := range os {
		out.Orders = append(out.Orders, orderToProto(o))
	}
	return out, nil
}

func (s *TradingServer) ListOffers(ctx context.Context, r *pb.ListOffersRequest) (*pb.ListOffersResponse, error) {
	asn, err := requireMember(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := specFromProto(r.Spec)
	if err != nil {
		return nil, err
	}
	if spec.Side == book.Sell {
		return nil, invalidArg("spec.side", "offers are listed for a buy")
	}
	specBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Spec)
	if err != nil {
		return nil, invalidArg("spec", "%v", err)
	}
	pg, err := pageOf(ctx, "offers", r.PageSize, r.PageToken, string(specBytes))
	if err != nil {
		return nil, err
	}
	offers, err := s.Book.Offers(ctx, asn, spec)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListOffersResponse{}
	// Offers are a ranking made for each request: a page continues after
	// the offer it ended at, wherever that offer ranks now.
	if offers, out.NextPageToken, err = cutAt(pg, offers, func(o book.Offer) string { return idKey(o.Order.ID) }); err != nil {
		return nil, err
	}
	for _, o := range offers {
		out.Offers = append(out.Offers, &pb.Offer{
			OrderId: uint64(o.Order.ID), SellerAsn: o.Order.MemberASN, Destination: destToProto(o.Order.Spec.Destination),
			Protocol: pb.Protocol(o.Order.Spec.Protocol), AvailableBps: o.AvailableBps, MinBlockBps: o.Order.Spec.MinBlockBps,
			PriceMicros: o.Order.Spec.PriceMicros, Measured: measuredToProto(o.Measured), MeasuredPath: pathQualityToProto(o.Measured),
			DeliveryStart: ts(o.Order.Spec.Start), DeliveryEnd: ts(o.Order.Spec.End), TrafficType: pb.TrafficType(o.Order.Spec.TrafficType),
		})
	}
	return out, nil
}

func (s *TradingServer) ListTrades(ctx context.Context, r *pb.ListTradesRequest) (*pb.ListTradesResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "trades", r.PageSize, r.PageToken, asn, r.ActiveOnly, r.WithDelivery)
	if err != nil {
		return nil, err
	}
	ts, err := s.Book.TradesPage(ctx, asn, r.ActiveOnly, pg.afterID(), pg.fetch())
	if err != nil {
		return nil, toStatus(err)
	}
	var next string
	ts, next = cut(pg, ts, func(t book.Trade) string { return idKey(t.ID) })
	out := tradesToProto(ts, s.now())
	if r.WithDelivery && s.Delivery != nil {
		ids := make([]int64, len(out))
		for i, t := range out {
			ids[i] = int64(t.Id)
		}
		record, err := s.Delivery.Of(ctx, ids)
		if err != nil {
			return nil, toStatus(err)
		}
		for _, t := range out {
			for _, iv := range record[int64(t.Id)] {
				d := &pb.DeliveryInterval{Session: iv.Session.String(), From: timestamppb.New(iv.From), Delivered: iv.Delivered, Reason: iv.Reason, Cause: iv.Cause}
				if !iv.To.IsZero() {
					d.To = timestamppb.New(iv.To)
				}
				t.Delivery = append(t.Delivery, d)
			}
		}
	}
	return &pb.ListTradesResponse{Trades: out, NextPageToken: next}, nil
}

// StreamTradeEvents subscribes before reading the log, so an event committed
// between the read and the subscription still wakes the stream.
func (s *TradingServer) StreamTradeEvents(r *pb.StreamTradeEventsRequest, stream pb.TradingService_StreamTradeEventsServer) error {
	ctx := stream.Context()
	asn, err := requireMember(ctx)
	if err != nil {
		return err
	}
	wake, cancel := s.Broker.Subscribe(asn)
	defer cancel()
	if s.Metrics != nil {
		s.Metrics.Subscribers.Inc()
		defer s.Metrics.Subscribers.Dec()
	}
	last := int64(r.AfterSequence)
	for {
		for {
			evs, err := s.Book.Events(ctx, asn, last, 500)
			if err != nil {
				return toStatus(err)
			}
			for _, e := range evs {
				if err := stream.Send(eventToProto(e, s.now())); err != nil {
					return err
				}
				last = e.Seq
			}
			if len(evs) < 500 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.Stopping:
			return status.Error(codes.Unavailable, "arbiter is shutting down")
		case <-wake:
		}
	}
}
