package api

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

var start = time.Date(2026, 12, 1, 0, 0, 0, 123456789, time.UTC)

func fullSpec() *pb.OrderSpec {
	return &pb.OrderSpec{
		Side:        pb.Side_SIDE_BUY,
		Destination: &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: "198.51.100.0/24"}},
		Protocol:    pb.Protocol_PROTOCOL_IPV4,
		CapacityBps: 2_000_000_000, MinBlockBps: 500_000_000, PriceMicros: 350_000,
		Quality: &pb.Quality{MaxLatencyUs: proto.Int64(20_000), MaxJitterUs: proto.Int64(5_000),
			MaxLossPpm: proto.Int32(1_000), MaxAsHops: proto.Int32(3), AllowUnverified: true},
		TrafficType:        pb.TrafficType_TRAFFIC_TYPE_REALTIME,
		DeliveryStart:      timestamppb.New(start),
		DeliveryEnd:        timestamppb.New(start.Add(30 * 24 * time.Hour)),
		OrderType:          pb.OrderType_ORDER_TYPE_FOK,
		Ranking:            pb.Ranking_RANKING_WEIGHTED,
		PriceWeightPercent: 40,
		SingleSeller:       true,
	}
}

func TestSpecFromProtoErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*pb.OrderSpec)
		field string
	}{
		{"bad prefix", func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_Prefix{Prefix: "198.51.100/24"} }, "spec.destination.prefix"},
		{"empty prefix", func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_Prefix{Prefix: ""} }, "spec.destination.prefix"},
		{"prefix with host bits", func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_Prefix{Prefix: "198.51.100.1/24"} }, "spec.destination.prefix"},
		{"4in6 prefix", func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_Prefix{Prefix: "::ffff:198.51.100.0/120"} }, "spec.destination.prefix"},
		{"origin asn 0", func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_OriginAsn{OriginAsn: 0} }, "spec.destination.origin_asn"},
		{"route type unspecified", func(s *pb.OrderSpec) {
			s.Destination.Kind = &pb.Destination_RouteType{RouteType: pb.RouteType_ROUTE_TYPE_UNSPECIFIED}
		}, "spec.destination.route_type"},
		{"start seconds out of range", func(s *pb.OrderSpec) { s.DeliveryStart = &timestamppb.Timestamp{Seconds: 253402300800} }, "spec.delivery_start"},
		{"start before year 1", func(s *pb.OrderSpec) { s.DeliveryStart = &timestamppb.Timestamp{Seconds: -62135596801} }, "spec.delivery_start"},
		{"end nanos out of range", func(s *pb.OrderSpec) { s.DeliveryEnd = &timestamppb.Timestamp{Seconds: 1, Nanos: 1_000_000_000} }, "spec.delivery_end"},
		{"end negative nanos", func(s *pb.OrderSpec) { s.DeliveryEnd = &timestamppb.Timestamp{Seconds: 1, Nanos: -1} }, "spec.delivery_end"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := fullSpec()
			c.edit(s)
			_, err := specFromProto(s)
			wantField(t, err, c.field)
		})
	}
	_, err := specFromProto(nil)
	wantField(t, err, "spec")
}

func TestSpecFromProtoValues(t *testing.T) {
	got, err := specFromProto(fullSpec())
	if err != nil {
		t.Fatal(err)
	}
	q := got.Quality
	if got.Side != book.Buy || got.Destination.Prefix.String() != "198.51.100.0/24" || got.Destination.OriginASN != 0 ||
		got.Destination.RouteType != 0 || got.Protocol != book.IPv4 || got.CapacityBps != 2_000_000_000 ||
		got.MinBlockBps != 500_000_000 || got.PriceMicros != 350_000 || got.TrafficType != book.Realtime ||
		!got.Start.Equal(start) || got.Start.Location() != time.UTC || !got.End.Equal(start.Add(30*24*time.Hour)) ||
		got.Type != book.FOK || got.Ranking != book.Weighted || got.PriceWeight != 40 || !got.SingleSeller {
		t.Errorf("spec = %+v", got)
	}
	if q.MaxLatencyUs == nil || *q.MaxLatencyUs != 20_000 || q.MaxJitterUs == nil || *q.MaxJitterUs != 5_000 ||
		q.MaxLossPPM == nil || *q.MaxLossPPM != 1_000 || q.MaxASHops == nil || *q.MaxASHops != 3 || !q.AllowUnverified {
		t.Errorf("quality = %+v", q)
	}

	// Absent parts stay absent: no times, no destination, no limits.
	bare, err := specFromProto(&pb.OrderSpec{Side: pb.Side_SIDE_SELL})
	if err != nil {
		t.Fatal(err)
	}
	if !bare.Start.IsZero() || !bare.End.IsZero() || bare.Destination != (book.Destination{}) || bare.Quality.Limited() || bare.Quality.AllowUnverified {
		t.Errorf("bare spec = %+v, want zero times, destination and quality", bare)
	}
	// A quality with zero limits set is not "no limit".
	zero, err := specFromProto(&pb.OrderSpec{Quality: &pb.Quality{MaxLossPpm: proto.Int32(0)}})
	if err != nil || zero.Quality.MaxLossPPM == nil || *zero.Quality.MaxLossPPM != 0 || !zero.Quality.Limited() {
		t.Errorf("explicit 0 loss limit: %+v, %v", zero.Quality, err)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*pb.OrderSpec)
	}{
		{"IPv4 prefix, all limits", func(*pb.OrderSpec) {}},
		{"IPv6 prefix", func(s *pb.OrderSpec) {
			s.Destination.Kind = &pb.Destination_Prefix{Prefix: "2001:db8:100::/48"}
			s.Protocol = pb.Protocol_PROTOCOL_IPV6
		}},
		{"origin ASN", func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_OriginAsn{OriginAsn: 4200000000} }},
		{"route type", func(s *pb.OrderSpec) {
			s.Destination.Kind = &pb.Destination_RouteType{RouteType: pb.RouteType_ROUTE_TYPE_SPECIFIC}
		}},
		{"some limits", func(s *pb.OrderSpec) {
			s.Quality = &pb.Quality{MaxLatencyUs: proto.Int64(0), MaxAsHops: proto.Int32(1)}
		}},
		{"sell", func(s *pb.OrderSpec) {
			s.Side, s.Ranking, s.PriceWeightPercent, s.SingleSeller = pb.Side_SIDE_SELL, 0, 0, false
			s.OrderType = pb.OrderType_ORDER_TYPE_LIMIT
			s.TrafficType = pb.TrafficType_TRAFFIC_TYPE_BULK
		}},
		{"extreme times", func(s *pb.OrderSpec) {
			s.DeliveryStart = &timestamppb.Timestamp{Seconds: -62135596800 + 1, Nanos: 1}
			s.DeliveryEnd = &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999_999_999}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := fullSpec()
			c.edit(in)
			d, err := specFromProto(in)
			if err != nil {
				t.Fatal(err)
			}
			if out := specToProto(d); !proto.Equal(out, in) {
				t.Errorf("round trip changed the spec:\n in  %v\n out %v", in, out)
			}
		})
	}
}

func TestDestToProtoKinds(t *testing.T) {
	// Each domain destination comes back as the same oneof kind.
	for _, d := range []book.Destination{{OriginASN: 64500}, {RouteType: registry.Peer}} {
		s := book.Spec{Destination: d}
		back, err := specFromProto(specToProto(s))
		if err != nil || back.Destination != d {
			t.Errorf("destination %+v came back as %+v, %v", d, back.Destination, err)
		}
	}
}

// An offer's measured path carries the samples the agent's path score
// needs (shared/pathscore): without them its figures justify nothing.
func TestPathQualityCarriesSamples(t *testing.T) {
	q := pathQualityToProto(&book.Measured{LatencyUs: 20_000, JitterUs: 300, LossPPM: 5000, ASHops: 2, Samples: 4,
		Probes: 200, LatencyErrUs: 150, JitterErrUs: 40})
	if q.GetProbes() != 200 || q.GetLatencyErrUs() != 150 || q.GetJitterErrUs() != 40 || q.GetSamples() != 4 || q.GetLossPpm() != 5000 {
		t.Fatalf("path quality %v", q)
	}
	if pathQualityToProto(nil) != nil {
		t.Fatal("unmeasured path has a quality")
	}
}
