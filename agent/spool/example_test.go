package spool_test

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bwxchange/bwx/agent/spool"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// How the agent's daemon wires the spool to ReportUsage: samples are
// spooled as marshalled protos under their idempotency keys, and a batch
// the arbiter refuses as invalid is split until the bad samples are parked.
func ExampleDrain() {
	ctx := context.Background()
	s, err := spool.Open("/var/lib/bwx-agent/spool.db", spool.Options{})
	if err != nil {
		slog.Error("spool", "err", err)
		return
	}
	defer s.Close()

	// The producer (the capture's emit callback).
	sample := &pb.UsageSample{IdempotencyKey: "buyer/42/2026-01-01T00:05:00Z", TradeId: 42, BitsPerSecond: 1_000_000, SampleCount: 512}
	b, _ := proto.Marshal(sample)
	if err := s.Put(ctx, "usage", sample.IdempotencyKey, b); err != nil {
		slog.Error("usage sample not spooled", "err", err) // and count it
	}

	// The consumer.
	var client pb.UsageServiceClient // from the agent's connection
	send := func(ctx context.Context, items []spool.Item) error {
		req := &pb.ReportUsageRequest{}
		for _, it := range items {
			var u pb.UsageSample
			if err := proto.Unmarshal(it.Payload, &u); err != nil {
				return spool.Reject(err)
			}
			req.Samples = append(req.Samples, &u)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := client.ReportUsage(ctx, req)
		if status.Code(err) == codes.InvalidArgument {
			return spool.Reject(err)
		}
		return err // nil, or try again later
	}
	go spool.Drain(ctx, s, "usage", send, spool.DrainOptions{
		OnError: func(err error, wait time.Duration) { slog.Warn("usage report", "err", err, "retry_in", wait) },
	})
}
