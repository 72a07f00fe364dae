package daemon

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/agent/spool"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// busyArbiter refuses the first `refuse` ReportUsage calls as the
// arbiter's Fairness does (ResourceExhausted with a RetryInfo), then
// takes every sample.
type busyArbiter struct {
	pb.UnimplementedUsageServiceServer
	refuse int
	hint   time.Duration

	mu    sync.Mutex
	calls []time.Time
	got   map[string]int
}

func (a *busyArbiter) ReportUsage(_ context.Context, r *pb.ReportUsageRequest) (*pb.ReportUsageResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, clock.Now())
	if len(a.calls) <= a.refuse {
		st, _ := status.New(codes.ResourceExhausted, "member AS64510 has 8 calls in flight").
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(a.hint)})
		return nil, st.Err()
	}
	for _, s := range r.Samples {
		a.got[s.IdempotencyKey]++
	}
	return &pb.ReportUsageResponse{}, nil
}

// The agent's usage reports go over real gRPC to an arbiter that pushes
// back three times: the agent waits the hinted time (not its own backoff,
// an hour here), keeps the reports in its spool meanwhile, and delivers
// each one once when the arbiter takes them.
func TestAgentHonoursPushBack(t *testing.T) {
	const refusals, hint, n = 3, 100 * time.Millisecond, 12
	arb := &busyArbiter{refuse: refusals, hint: hint, got: map[string]int{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterUsageServiceServer(srv, arb)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool.db"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	for i := range n {
		iv := capture.Interval{From: from.Add(time.Duration(i) * time.Minute), To: from.Add(time.Duration(i+1) * time.Minute)}
		r, _ := usageRecord(42, pb.ReporterRole_REPORTER_ROLE_BUYER, iv, 1000, 4)
		if err := sp.Put(ctx, KindUsage, r.Key, r.Payload); err != nil {
			t.Fatal(err)
		}
	}
	m := &Measure{conn: conn, sp: sp}
	var mu sync.Mutex
	var waits []time.Duration
	go spool.Drain(ctx, sp, KindUsage, m.sendUsage, spool.DrainOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour,
		OnError: func(err error, wait time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, wait)
			if l := sp.Len(KindUsage); l != n {
				t.Errorf("pushed back: %d reports in the spool, want all %d", l, n)
			}
		}})
	deadline := clock.Now().Add(10 * time.Second)
	for sp.Len(KindUsage) > 0 && clock.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	arb.mu.Lock()
	defer arb.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if sp.Len(KindUsage) != 0 || len(arb.got) != n {
		t.Fatalf("%d reports left in the spool, %d delivered; want 0 and %d", sp.Len(KindUsage), len(arb.got), n)
	}
	for k, c := range arb.got {
		if c != 1 {
			t.Errorf("%s delivered %d times", k, c)
		}
	}
	if len(waits) != refusals {
		t.Fatalf("%d waits, want %d", len(waits), refusals)
	}
	for i, w := range waits {
		if w < hint || w > hint+hint/4 {
			t.Errorf("wait %d: %s, want the hint %s plus at most a quarter", i, w, hint)
		}
		if gap := arb.calls[i+1].Sub(arb.calls[i]); gap < hint {
			t.Errorf("call %d came %s after the push-back, before the hint %s", i+2, gap, hint)
		}
	}
}
