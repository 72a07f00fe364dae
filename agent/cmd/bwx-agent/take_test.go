package main

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// fakeTrading answers ListOffers with offers and TakeOffer with takeErr (or
// a filled order), and records what it was asked.
type fakeTrading struct {
	pb.TradingServiceClient // other methods are not used
	offers                  []*pb.Offer
	takeErr                 error
	listed                  []*pb.OrderSpec
	taken                   []*pb.TakeOfferRequest
}

func (f *fakeTrading) ListOffers(_ context.Context, r *pb.ListOffersRequest, _ ...grpc.CallOption) (*pb.ListOffersResponse, error) {
	f.listed = append(f.listed, proto.Clone(r.Spec).(*pb.OrderSpec))
	return &pb.ListOffersResponse{Offers: f.offers}, nil
}

func (f *fakeTrading) TakeOffer(_ context.Context, r *pb.TakeOfferRequest, _ ...grpc.CallOption) (*pb.PlaceOrderResponse, error) {
	f.taken = append(f.taken, proto.Clone(r).(*pb.TakeOfferRequest))
	if f.takeErr != nil {
		return nil, f.takeErr
	}
	return &pb.PlaceOrderResponse{Order: &pb.Order{Id: 99, Status: pb.OrderStatus_ORDER_STATUS_FILLED}, Trades: []*pb.Trade{{Id: 1, SellOrderId: r.OfferOrderId}}}, nil
}

func take(t *testing.T, f *fakeTrading, id uint64, args ...string) (*pb.PlaceOrderResponse, error) {
	t.Helper()
	sf := &specFlags{}
	fs := pflag.NewFlagSet("take", pflag.ContinueOnError)
	sf.register(fs, true)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	spec, fillCapacity, fillPrice, err := sf.takeSpec(fs)
	if err != nil {
		return nil, err
	}
	return takeOffer(context.Background(), f, id, spec, fillCapacity, fillPrice, sf.clientOrderID)
}

func TestTakeFillsCapacityAndPriceFromTheOffer(t *testing.T) {
	f := &fakeTrading{offers: []*pb.Offer{
		{OrderId: 6, AvailableBps: 5e9, MinBlockBps: 1e9, PriceMicros: 300_000},
		{OrderId: 7, AvailableBps: 2e9, MinBlockBps: 5e8, PriceMicros: 400_000},
	}}
	if _, err := take(t, f, 7, "--prefix", "198.51.100.0/24", "--duration", "30d"); err != nil {
		t.Fatal(err)
	}
	if len(f.listed) != 1 || f.listed[0].CapacityBps < 1e12 || f.listed[0].PriceMicros < 400_000 {
		t.Fatalf("offers asked with %v; want the spec with no capacity or price cap", f.listed)
	}
	if len(f.taken) != 1 {
		t.Fatalf("took %d times", len(f.taken))
	}
	r := f.taken[0]
	s := r.Spec
	if r.OfferOrderId != 7 || s.CapacityBps != 2e9 || s.MinBlockBps != 5e8 || s.PriceMicros != 400_000 ||
		s.OrderType != pb.OrderType_ORDER_TYPE_FOK || s.Side != pb.Side_SIDE_BUY || s.GetDestination().GetPrefix() != "198.51.100.0/24" {
		t.Fatalf("take request %v; want offer 7's 2G in 500M blocks at its ask, all or nothing", r)
	}
}

func TestTakeWithCapacityAndPriceAsksTheArbiterOnly(t *testing.T) {
	f := &fakeTrading{}
	resp, err := take(t, f, 7, "--prefix", "198.51.100.0/24", "--capacity", "1G", "--price", "0.5", "--client-id", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.listed) != 0 || len(f.taken) != 1 || resp.Trades[0].SellOrderId != 7 {
		t.Fatalf("listed %v taken %v", f.listed, f.taken)
	}
	if s := f.taken[0].Spec; s.CapacityBps != 1e9 || s.PriceMicros != 500_000 || f.taken[0].ClientOrderId != "k1" {
		t.Fatalf("take request %v", f.taken[0])
	}
}

func TestTakeErrors(t *testing.T) {
	// The arbiter's refusals come back as it gave them (code and message).
	for _, apiErr := range []error{
		status.Error(codes.FailedPrecondition, "offer 7 is no longer available (filled, cancelled or expired): offer is gone"),
		status.Error(codes.InvalidArgument, "offer_order_id: offer 7 is your own"),
		status.Error(codes.FailedPrecondition, "offer 7 has 1G available for your period and ports, you asked 2G: offer changed"),
	} {
		f := &fakeTrading{takeErr: apiErr}
		_, err := take(t, f, 7, "--prefix", "198.51.100.0/24", "--capacity", "2G", "--price", "1")
		if status.Code(err) != status.Code(apiErr) || status.Convert(err).Message() != status.Convert(apiErr).Message() {
			t.Errorf("got %v, want the arbiter's %v", err, apiErr)
		}
	}
	// An offer the listing does not have: nothing is taken.
	f := &fakeTrading{offers: []*pb.Offer{{OrderId: 6, AvailableBps: 1e9, MinBlockBps: 1e9, PriceMicros: 1}}}
	if _, err := take(t, f, 9, "--prefix", "198.51.100.0/24"); err == nil || !strings.Contains(err.Error(), "offer 9 is not available") || len(f.taken) != 0 {
		t.Fatalf("taking an unlisted offer: %v (took %v)", err, f.taken)
	}
	// Bad flags are refused before anything is asked.
	f = &fakeTrading{}
	if _, err := take(t, f, 7); err == nil || !strings.Contains(err.Error(), "destination") || len(f.listed)+len(f.taken) != 0 {
		t.Fatalf("no destination: %v", err)
	}
}

func TestTakeNeedsAnOfferID(t *testing.T) {
	for _, args := range [][]string{{"abc", "--prefix", "198.51.100.0/24"}, {"0", "--prefix", "198.51.100.0/24"}, {}} {
		c := takeCmd(&globals{configPath: "/nonexistent/agent.yaml"})
		c.SilenceUsage, c.SilenceErrors = true, true
		c.SetArgs(args)
		if err := c.Execute(); err == nil {
			t.Errorf("take %q: no error", args)
		}
	}
}
