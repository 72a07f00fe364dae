package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// TestLargestReportsFit: the largest report the arbiter accepts (a full
// batch, every field at its longest) is within MaxRecvMsgSize, so the bound
// refuses only what would be refused anyway.
func TestLargestReportsFit(t *testing.T) {
	key := strings.Repeat("k", 128)
	at := timestamppb.New(time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC))
	m := &pb.ReportMeasurementsRequest{}
	for range quality.MaxBatch {
		m.Measurements = append(m.Measurements, &pb.Measurement{IdempotencyKey: key, ViaAsn: 4294967295,
			DestinationPrefix: "2001:db8:ffff:ffff:ffff:ffff:ffff:ff00/120", Target: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
			MeasuredAt: at, LatencyUs: -1, JitterUs: -1, LossPpm: -1, AsHops: -1, IpHops: -1, ProbesSent: -1, VantageAsn: 4294967295})
	}
	u := &pb.ReportUsageRequest{}
	for range settle.MaxBatch {
		u.Samples = append(u.Samples, &pb.UsageSample{IdempotencyKey: key, TradeId: 1 << 63, Role: pb.ReporterRole_REPORTER_ROLE_SELLER,
			IntervalStart: at, IntervalEnd: at, BitsPerSecond: -1, SampleCount: -1})
	}
	for name, msg := range map[string]proto.Message{"measurements": m, "usage": u} {
		if n := proto.Size(msg); n >= daemon.MaxRecvMsgSize {
			t.Errorf("a full %s report is %d bytes, over MaxRecvMsgSize %d", name, n, daemon.MaxRecvMsgSize)
		}
	}
}

// TestOversizedRequestRefused: a member sending a request over
// MaxRecvMsgSize gets ResourceExhausted, and the arbiter goes on serving
// it and every other member.
func TestOversizedRequestRefused(t *testing.T) {
	x := startExchange(t)
	liar, other := x.member(64500, "192.0.2.10"), x.member(64501, "192.0.2.11")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	huge := &pb.ReportUsageRequest{Samples: []*pb.UsageSample{{IdempotencyKey: strings.Repeat("x", daemon.MaxRecvMsgSize)}}}
	_, err := pb.NewUsageServiceClient(liar).ReportUsage(ctx, huge)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a %d-byte request: %v, want ResourceExhausted", proto.Size(huge), err)
	}
	for name, c := range map[string]pb.UsageServiceClient{"the sender": pb.NewUsageServiceClient(liar), "another member": pb.NewUsageServiceClient(other)} {
		if _, err := c.GetCredit(ctx, &pb.GetCreditRequest{}); err != nil {
			t.Errorf("%s after the oversized request: %v", name, err)
		}
		// A report just under the bound is read (and judged on its content).
		_, err := c.ReportUsage(ctx, &pb.ReportUsageRequest{Samples: []*pb.UsageSample{{IdempotencyKey: strings.Repeat("x", daemon.MaxRecvMsgSize-64)}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "idempotency_key") {
			t.Errorf("%s, a request under the bound: %v, want InvalidArgument on idempotency_key", name, err)
		}
	}
}

// TestStreamsPerConnectionBounded: one connection holding
// MaxConcurrentStreams streams open gets no more until one ends, while
// another member's connection is served. The caller's own stream bound
// (grpc.per_caller.streams) is raised above it here, so that this is the
// transport's bound at work, not Fairness's.
func TestStreamsPerConnectionBounded(t *testing.T) {
	x := startExchangeWith(t, func(c *daemon.Config) { c.GRPC.PerCaller.Streams = 4 * daemon.MaxConcurrentStreams })
	hog, other := x.member(64500, "192.0.2.10"), x.member(64501, "192.0.2.11")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A first call makes the connection: the client then knows the bound
	// from the arbiter's HTTP/2 SETTINGS and holds further streams back.
	if _, err := pb.NewUsageServiceClient(hog).GetCredit(ctx, &pb.GetCreditRequest{}); err != nil {
		t.Fatal(err)
	}
	var first context.CancelFunc
	for i := range daemon.MaxConcurrentStreams {
		sctx, scancel := context.WithCancel(ctx)
		t.Cleanup(scancel)
		if i == 0 {
			first = scancel
		}
		if _, err := pb.NewTradingServiceClient(hog).StreamTradeEvents(sctx, &pb.StreamTradeEventsRequest{}); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	short, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	if _, err := pb.NewUsageServiceClient(hog).GetCredit(short, &pb.GetCreditRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a call over the stream bound: %v, want it to wait (DeadlineExceeded)", err)
	}
	if _, err := pb.NewUsageServiceClient(other).GetCredit(ctx, &pb.GetCreditRequest{}); err != nil {
		t.Fatalf("another member while the first holds every stream: %v", err)
	}
	first()
	wait, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if _, err := pb.NewUsageServiceClient(hog).GetCredit(wait, &pb.GetCreditRequest{}); err != nil {
		t.Fatalf("a call after one stream ended: %v", err)
	}
}
