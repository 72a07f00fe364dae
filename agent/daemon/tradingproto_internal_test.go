package daemon

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bwxchange/bwx/agent/manager"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

func TestProtoConversions(t *testing.T) {
	o := orderFromProto(&pb.Order{Id: 7, ClientOrderId: "bwxm-1", FilledBps: 1e6, Spec: &pb.OrderSpec{Side: pb.Side_SIDE_SELL,
		Destination: &pb.Destination{Kind: &pb.Destination_RouteType{RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}}, CapacityBps: 5e6}}, 64501)
	if o.Side != manager.Sell || o.Destination != "customer" || o.Remaining() != 4e6 || o.ClientOrderID != "bwxm-1" {
		t.Errorf("order %+v", o)
	}
	tr := tradeFromProto(&pb.Trade{Id: 3, SellerAsn: 64501, BuyerAsn: 64510, Prefixes: []string{"2001:db8:300::/48", "198.18.0.0/24"}}, 64510)
	if tr.Side != manager.Buy || !tr.Covers(netip.MustParsePrefix("2001:db8:300:1::/64")) || !tr.Covers(netip.MustParsePrefix("198.18.0.0/24")) {
		t.Errorf("trade %+v", tr)
	}
	q := limitsToProto(manager.Limits{MaxLatencyUs: 45000})
	if q.MaxLatencyUs == nil || *q.MaxLatencyUs != 45000 || q.MaxLossPpm != nil || q.MaxJitterUs != nil {
		t.Errorf("limits %v", q)
	}
	if protoOf(netip.MustParsePrefix("2001:db8::/32")) != pb.Protocol_PROTOCOL_IPV6 || protoOf(netip.MustParsePrefix("198.18.0.0/24")) != pb.Protocol_PROTOCOL_IPV4 {
		t.Error("protocol of a prefix")
	}
}

// An offer's measurement reaches the manager with its samples; one
// without them (an older arbiter) has no probe count, which justifies no
// buy.
func TestOfferMeasurementCarriesSamples(t *testing.T) {
	p := netip.MustParsePrefix("198.51.100.0/24")
	o := offerFromProto(&pb.Offer{OrderId: 1, SellerAsn: 64501, Measured: &pb.Quality{},
		MeasuredPath: &pb.PathQuality{LatencyUs: 20_000, LossPpm: 5000, Samples: 3, Probes: 200, LatencyErrUs: 150, JitterErrUs: 40}}, p)
	want := manager.Quality{LatencyUs: 20_000, LossPPM: 5000, Probes: 200, Rounds: 3, LatencyErrUs: 150, JitterErrUs: 40}
	if o.Measured == nil || *o.Measured != want {
		t.Fatalf("measured %+v, want %+v", o.Measured, want)
	}
	old := offerFromProto(&pb.Offer{OrderId: 1, SellerAsn: 64501, Measured: &pb.Quality{MaxLatencyUs: proto.Int64(20_000)}}, p)
	if old.Measured == nil || old.Measured.Probes != 0 || old.Measured.LatencyUs != 20_000 {
		t.Fatalf("measured without samples %+v", old.Measured)
	}
}
