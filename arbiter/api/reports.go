package api

import (
	"context"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// QualityServer serves the quality matrix.
type QualityServer struct {
	pb.UnimplementedQualityServiceServer
	Matrix *quality.Matrix
}

func (s *QualityServer) ReportMeasurements(ctx context.Context, r *pb.ReportMeasurementsRequest) (*pb.ReportMeasurementsResponse, error) {
	asn, err := requireMember(ctx)
	if err != nil {
		return nil, err
	}
	ms := make([]quality.Measurement, 0, len(r.Measurements))
	for i, m := range r.Measurements {
		f := "measurements[" + strconv.Itoa(i) + "]."
		p, err := netip.ParsePrefix(m.DestinationPrefix)
		if err != nil {
			return nil, invalidArg(f+"destination_prefix", "%q is not a CIDR prefix", m.DestinationPrefix)
		}
		t, err := netip.ParseAddr(m.Target)
		if err != nil {
			return nil, invalidArg(f+"target", "%q is not an IP address", m.Target)
		}
		at, err := fromTS(f+"measured_at", m.MeasuredAt)
		if err != nil {
			return nil, err
		}
		ms = append(ms, quality.Measurement{IdempotencyKey: m.IdempotencyKey, ViaASN: m.ViaAsn, Prefix: p, Target: t, At: at,
			LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPPM: m.LossPpm, ASHops: m.AsHops, IPHops: m.IpHops, ProbesSent: m.ProbesSent})
	}
	acc, dup, err := s.Matrix.Report(ctx, asn, ms)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReportMeasurementsResponse{Accepted: int32(acc), Duplicates: int32(dup)}, nil
}

// DefaultMatrixAge is the window QueryMatrix uses when the caller gives none.
const DefaultMatrixAge = time.Hour

func (s *QualityServer) QueryMatrix(ctx context.Context, r *pb.QueryMatrixRequest) (*pb.QueryMatrixResponse, error) {
	var p netip.Prefix
	if r.DestinationPrefix != "" {
		var err error
		if p, err = netip.ParsePrefix(r.DestinationPrefix); err != nil {
			return nil, invalidArg("destination_prefix", "%q is not a CIDR prefix", r.DestinationPrefix)
		}
	}
	age := DefaultMatrixAge
	if r.MaxAge != nil {
		if err := r.MaxAge.CheckValid(); err != nil || r.MaxAge.AsDuration() < 0 {
			return nil, invalidArg("max_age", "must be a positive duration")
		}
		if d := r.MaxAge.AsDuration(); d > 0 {
			age = d
		}
	}
	es, err := s.Matrix.Query(ctx, r.ViaAsn, p, age)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.QueryMatrixResponse{}
	for _, e := range es {
		out.Entries = append(out.Entries, &pb.MatrixEntry{ViaAsn: e.ViaASN, DestinationPrefix: e.Prefix, LatencyUs: e.LatencyUs,
			JitterUs: e.JitterUs, LossPpm: e.LossPPM, AsHops: e.ASHops, Samples: int32(e.Samples), LastMeasuredAt: ts(e.Last)})
	}
	return out, nil
}

func (s *QualityServer) StreamProbeTasks(*pb.StreamProbeTasksRequest, pb.QualityService_StreamProbeTasksServer) error {
	return status.Error(codes.Unimplemented, "probe scheduling (route analysis) is not in this arbiter version yet")
}

// UsageServer takes usage samples.
type UsageServer struct {
	pb.UnimplementedUsageServiceServer
	Usage *settle.Usage
}

func (s *UsageServer) ReportUsage(ctx context.Context, r *pb.ReportUsageRequest) (*pb.ReportUsageResponse, error) {
	asn, err := requireMember(ctx)
	if err != nil {
		return nil, err
	}
	ss := make([]settle.Sample, 0, len(r.Samples))
	for i, x := range r.Samples {
		f := "samples[" + strconv.Itoa(i) + "]."
		start, err := fromTS(f+"interval_start", x.IntervalStart)
		if err != nil {
			return nil, err
		}
		end, err := fromTS(f+"interval_end", x.IntervalEnd)
		if err != nil {
			return nil, err
		}
		ss = append(ss, settle.Sample{IdempotencyKey: x.IdempotencyKey, TradeID: int64(x.TradeId), Role: settle.Role(x.Role),
			Start: start, End: end, Bps: x.BitsPerSecond, SampleCount: x.SampleCount})
	}
	acc, dup, err := s.Usage.Report(ctx, asn, ss)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReportUsageResponse{Accepted: int32(acc), Duplicates: int32(dup)}, nil
}

func (s *UsageServer) ListInvoices(context.Context, *pb.ListInvoicesRequest) (*pb.ListInvoicesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "invoicing is not in this arbiter version yet; usage samples are being stored")
}
