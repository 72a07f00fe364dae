package api

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/quality"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// The fuzz targets below take the bytes of a request as they arrive on
// the wire and run them through what the arbiter does before it touches
// the book or the database: decoding, conversion and the domain's own
// checks. A refusal is a gRPC status naming the field; what is accepted is
// canonical and survives being written back out.

var fuzzNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// refused fails unless err is a status with one of codes and a message
// that names a field.
func refused(t *testing.T, err error, cs ...codes.Code) {
	t.Helper()
	st, ok := status.FromError(toStatus(err))
	if !ok || !slicesContains(cs, st.Code()) || st.Message() == "" {
		t.Fatalf("refused with %v (%T), want one of %v with a message", err, err, cs)
	}
}

func slicesContains(cs []codes.Code, c codes.Code) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func marshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzOrderRequest: a PlaceOrder request. An accepted spec has exactly one
// destination, a canonical prefix of its protocol's family, a positive
// capacity with a block that fits, and a delivery period ahead; written
// back as the API does it reads the same.
func FuzzOrderRequest(f *testing.F) {
	f.Add(marshal(f, &pb.PlaceOrderRequest{Spec: fullSpec(), ClientOrderId: "agent-1"}))
	v6 := fullSpec()
	v6.Destination = &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: "2001:db8:300::/48"}}
	v6.Protocol = pb.Protocol_PROTOCOL_IPV6
	v6.Quality = nil
	f.Add(marshal(f, &pb.PlaceOrderRequest{Spec: v6}))
	sell := fullSpec()
	sell.Side = pb.Side_SIDE_SELL
	sell.Destination = &pb.Destination{Kind: &pb.Destination_RouteType{RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}}
	f.Add(marshal(f, &pb.PlaceOrderRequest{Spec: sell}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pb.PlaceOrderRequest
		if proto.Unmarshal(b, &r) != nil {
			return // grpc refuses it before the handler
		}
		spec, err := specFromProto(r.Spec)
		if err != nil {
			refused(t, err, codes.InvalidArgument)
			return
		}
		if err := spec.Validate(fuzzNow); err != nil {
			refused(t, err, codes.InvalidArgument)
			return
		}
		d := spec.Destination
		n := 0
		for _, set := range []bool{d.Prefix.IsValid(), d.OriginASN != 0, d.RouteType != 0} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("accepted destination %+v", d)
		}
		if p := d.Prefix; p.IsValid() && (p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" || !spec.Protocol.Fits(p.Addr())) {
			t.Fatalf("accepted prefix %v for %v", p, spec.Protocol)
		}
		if spec.CapacityBps <= 0 || spec.MinBlockBps <= 0 || spec.MinBlockBps > spec.CapacityBps || spec.PriceMicros < 0 ||
			!spec.End.After(spec.Start) || !spec.End.After(fuzzNow) || spec.Start.Location() != time.UTC {
			t.Fatalf("accepted spec %+v", spec)
		}
		again, err := specFromProto(specToProto(spec))
		if err != nil || !reflect.DeepEqual(again, spec) {
			t.Fatalf("accepted spec written back: %v\n%+v\n%+v", err, again, spec)
		}
	})
}

// FuzzMeasurementReport: a ReportMeasurements request from AS64510. An
// accepted measurement is the caller's own, of a canonical prefix holding
// its target, not in the future, with no negative figure and a loss of at
// most 100 %.
func FuzzMeasurementReport(f *testing.F) {
	at := timestamppb.New(fuzzNow.Add(-time.Minute))
	f.Add(marshal(f, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{
		{IdempotencyKey: "probe:64501:198.51.100.0/24:1", ViaAsn: 64501, DestinationPrefix: "198.51.100.0/24", Target: "198.51.100.1",
			MeasuredAt: at, LatencyUs: 20_300, JitterUs: 600, LossPpm: 0, AsHops: 2, IpHops: 5, ProbesSent: 10},
		{IdempotencyKey: "probe:64502:2001:db8:300::/48:1", ViaAsn: 64502, DestinationPrefix: "2001:db8:300::/48", Target: "2001:db8:300::1",
			MeasuredAt: at, LatencyUs: 1_700, JitterUs: 500, LossPpm: 100_000, ProbesSent: 10, VantageAsn: 64510},
	}}))
	f.Add(marshal(f, &pb.ReportMeasurementsRequest{Measurements: []*pb.Measurement{
		{IdempotencyKey: "k", ViaAsn: 64501, DestinationPrefix: "198.51.100.1/24", Target: "198.51.100.1", MeasuredAt: at},
	}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pb.ReportMeasurementsRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		ms, err := measurementsFromProto(64510, &r)
		if err != nil {
			refused(t, err, codes.InvalidArgument, codes.PermissionDenied)
			return
		}
		for i, m := range ms {
			if err := m.Validate(i, fuzzNow); err != nil {
				refused(t, err, codes.InvalidArgument)
				if !strings.Contains(err.Error(), "measurements[") {
					t.Fatalf("error %v names no measurement", err)
				}
				return
			}
		}
		for i, m := range ms {
			p, pm := m.Prefix, r.Measurements[i]
			if p != p.Masked() || p.Addr().Is4In6() || !p.Contains(m.Target) || m.Target.Zone() != "" {
				t.Fatalf("accepted %v toward %v", m.Target, p)
			}
			if m.At.After(fuzzNow.Add(quality.MaxSkew)) || m.LatencyUs < 0 || m.JitterUs < 0 || m.LossPPM < 0 || m.LossPPM > 1_000_000 ||
				m.ViaASN == 0 || (pm.VantageAsn != 0 && pm.VantageAsn != 64510) {
				t.Fatalf("accepted %+v", m)
			}
		}
	})
}

// FuzzUsageReport: a ReportUsage request. An accepted sample has a key, a
// trade, a role, an interval that ends after it starts and no negative
// figure; written back it is the request's own.
func FuzzUsageReport(f *testing.F) {
	s := fuzzNow.Add(-10 * time.Minute)
	f.Add(marshal(f, &pb.ReportUsageRequest{Samples: []*pb.UsageSample{
		{IdempotencyKey: "use:3:buyer:1796464800", TradeId: 3, Role: pb.ReporterRole_REPORTER_ROLE_BUYER,
			IntervalStart: timestamppb.New(s), IntervalEnd: timestamppb.New(s.Add(5 * time.Minute)), BitsPerSecond: 826_000, SampleCount: 402},
		{IdempotencyKey: "use:3:seller:1796464800", TradeId: 3, Role: pb.ReporterRole_REPORTER_ROLE_SELLER,
			IntervalStart: timestamppb.New(s), IntervalEnd: timestamppb.New(s.Add(5 * time.Minute)), BitsPerSecond: 825_960, SampleCount: 401},
	}}))
	f.Add(marshal(f, &pb.ReportUsageRequest{Samples: []*pb.UsageSample{
		{IdempotencyKey: "x", TradeId: 1 << 63, Role: 1, IntervalStart: timestamppb.New(s), IntervalEnd: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}},
	}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r pb.ReportUsageRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		ss, err := samplesFromProto(&r)
		if err != nil {
			refused(t, err, codes.InvalidArgument)
			return
		}
		for i, x := range ss {
			if err := x.Validate(i); err != nil {
				refused(t, err, codes.InvalidArgument)
				return
			}
		}
		for i, x := range ss {
			ps := r.Samples[i]
			if x.TradeID <= 0 || uint64(x.TradeID) != ps.TradeId || !x.End.After(x.Start) || x.Bps < 0 || x.SampleCount < 0 ||
				x.Start.Location() != time.UTC || x.IdempotencyKey != ps.IdempotencyKey ||
				!x.Start.Equal(ps.IntervalStart.AsTime()) || !x.End.Equal(ps.IntervalEnd.AsTime()) || int32(x.Role) != int32(ps.Role) {
				t.Fatalf("accepted %+v from %v", x, ps)
			}
		}
	})
}
