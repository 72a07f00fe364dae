package rpc_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/rpc"
)

// arbiter is one of a pair: it takes orders, or, as a follower, refuses
// them naming the matcher.
type arbiter struct {
	pb.UnimplementedTradingServiceServer
	name string
	mu   sync.Mutex
	// matcher: refuse PlaceOrder naming it (in the trailer, or in an
	// ErrorInfo detail with detail set).
	matcher string
	detail  bool
	// unavailable: answer Unavailable (an arbiter that lost its store).
	unavailable bool
	// hang: never answer (a frozen arbiter).
	hang   bool
	placed []string // client order IDs taken
	health *health.Server
}

func (a *arbiter) PlaceOrder(ctx context.Context, r *pb.PlaceOrderRequest) (*pb.PlaceOrderResponse, error) {
	a.mu.Lock()
	if a.hang {
		a.mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	defer a.mu.Unlock()
	if a.unavailable {
		return nil, status.Error(codes.Unavailable, "store unreachable")
	}
	if a.matcher != "" {
		if a.detail {
			st, _ := status.New(codes.FailedPrecondition, "not the matcher").WithDetails(&errdetails.ErrorInfo{
				Reason: "NOT_MATCHER", Domain: "bwx", Metadata: map[string]string{rpc.MatcherKey: a.matcher}})
			return nil, st.Err()
		}
		grpc.SetTrailer(ctx, metadata.Pairs(rpc.MatcherKey, a.matcher))
		return nil, status.Error(codes.FailedPrecondition, "not the matcher")
	}
	a.placed = append(a.placed, r.ClientOrderId)
	return &pb.PlaceOrderResponse{Order: &pb.Order{ClientOrderId: r.ClientOrderId + "@" + a.name}}, nil
}

func (a *arbiter) StreamTradeEvents(r *pb.StreamTradeEventsRequest, s pb.TradingService_StreamTradeEventsServer) error {
	if err := s.Send(&pb.TradeEvent{Sequence: r.AfterSequence + 1}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (a *arbiter) taken() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.placed...)
}

func start(t *testing.T, name string) (*arbiter, string, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &arbiter{name: name, health: health.NewServer()}
	s := grpc.NewServer()
	pb.RegisterTradingServiceServer(s, a)
	healthpb.RegisterHealthServer(s, a.health)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return a, lis.Addr().String(), s
}

func dialInsecure(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(rpc.HealthServiceConfig))
}

func newFailover(t *testing.T, addrs ...string) *rpc.Failover {
	t.Helper()
	f, err := rpc.NewFailover(addrs, dialInsecure, rpc.FailoverOptions{HoldDown: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func place(t *testing.T, f *rpc.Failover, id string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := pb.NewTradingServiceClient(f).PlaceOrder(ctx, &pb.PlaceOrderRequest{ClientOrderId: id})
	return r.GetOrder().GetClientOrderId(), err
}

// The first arbiter takes the calls; when it dies the call in flight
// goes to the second at once (no error to the caller), and later calls
// stay there.
func TestFailoverUnaryMovesToTheNextArbiter(t *testing.T) {
	a, addrA, srvA := start(t, "a")
	b, addrB, _ := start(t, "b")
	f := newFailover(t, addrA, addrB)
	if got, err := place(t, f, "o1"); err != nil || got != "o1@a" {
		t.Fatalf("first call: %q %v, want o1@a", got, err)
	}
	srvA.Stop()
	for _, id := range []string{"o2", "o3"} {
		if got, err := place(t, f, id); err != nil || got != id+"@b" {
			t.Fatalf("after a stopped: %q %v, want %s@b", got, err, id)
		}
	}
	if f.Current() != addrB {
		t.Fatalf("current %s, want %s", f.Current(), addrB)
	}
	if got := strings.Join(a.taken(), ","); got != "o1" {
		t.Errorf("a took %s", got)
	}
	if got := strings.Join(b.taken(), ","); got != "o2,o3" {
		t.Errorf("b took %s", got)
	}
	var st []string
	for _, x := range f.Arbiters() {
		st = append(st, x.Address+"="+x.State+"/"+map[bool]string{true: "current", false: "standby"}[x.Current])
		if x.Address == addrA && !strings.Contains(x.LastError, "Unavailable") && !strings.HasPrefix(x.LastError, "connection ") {
			t.Errorf("a's last error %q, want what moved the calls (a failed call or its connection's state)", x.LastError)
		}
	}
	if !strings.HasSuffix(st[1], "=ready/current") || strings.HasSuffix(st[0], "current") {
		t.Errorf("arbiters %v", st)
	}
}

// An arbiter that is connected but answers Unavailable: the call is
// retried on the next, and calls stay there for the hold-down time even
// though the first one's connection is ready.
func TestFailoverUnavailableAnswerIsRetriedOnTheNext(t *testing.T) {
	a, addrA, _ := start(t, "a")
	b, addrB, _ := start(t, "b")
	f := newFailover(t, addrA, addrB)
	if got, err := place(t, f, "o1"); err != nil || got != "o1@a" {
		t.Fatalf("%q %v", got, err)
	}
	a.mu.Lock()
	a.unavailable = true
	a.mu.Unlock()
	if got, err := place(t, f, "o2"); err != nil || got != "o2@b" {
		t.Fatalf("%q %v, want o2@b", got, err)
	}
	a.mu.Lock()
	a.unavailable = false
	a.mu.Unlock()
	if got, err := place(t, f, "o3"); err != nil || got != "o3@b" {
		t.Fatalf("%q %v, want o3@b (a is held down)", got, err)
	}
	if got := strings.Join(b.taken(), ","); got != "o2,o3" {
		t.Errorf("b took %s", got)
	}
}

// A call that runs past its deadline (a frozen arbiter) fails, and the
// next call goes to the other arbiter.
func TestFailoverDeadlineMovesToTheNext(t *testing.T) {
	a, addrA, _ := start(t, "a")
	_, addrB, _ := start(t, "b")
	a.hang = true
	f := newFailover(t, addrA, addrB)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := pb.NewTradingServiceClient(f).PlaceOrder(ctx, &pb.PlaceOrderRequest{ClientOrderId: "o1"})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
	if got, err := place(t, f, "o2"); err != nil || got != "o2@b" {
		t.Fatalf("%q %v, want o2@b", got, err)
	}
}

// An arbiter that says NOT_SERVING (grpc.health.v1, as on shutdown) gets
// no calls while the other serves.
func TestFailoverFollowsHealth(t *testing.T) {
	a, addrA, _ := start(t, "a")
	_, addrB, _ := start(t, "b")
	f := newFailover(t, addrA, addrB)
	if got, err := place(t, f, "o1"); err != nil || got != "o1@a" {
		t.Fatalf("%q %v", got, err)
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	deadline := clock.Now().Add(5 * time.Second)
	for f.Arbiters()[0].State != "transient_failure" {
		if clock.Now().After(deadline) {
			t.Fatalf("a's channel %s after NOT_SERVING", f.Arbiters()[0].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := place(t, f, "o2"); err != nil || got != "o2@b" {
		t.Fatalf("%q %v, want o2@b", got, err)
	}
}

// The first arbiter's address does not answer at all (a dead box): a
// call does not wait for its connection attempt while the second is up.
func TestFailoverDoesNotWaitForADeadFirstArbiter(t *testing.T) {
	_, addrB, _ := start(t, "b")
	f := newFailover(t, "192.0.2.99:7443", addrB) // TEST-NET-1: nobody answers
	deadline := clock.Now().Add(5 * time.Second)
	for f.Arbiters()[1].State != "ready" {
		if clock.Now().After(deadline) {
			t.Fatalf("b %s", f.Arbiters()[1].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := clock.Now()
	if got, err := place(t, f, "o1"); err != nil || got != "o1@b" {
		t.Fatalf("%q %v, want o1@b", got, err)
	}
	if d := clock.Since(start); d > time.Second {
		t.Errorf("the call took %v", d)
	}
}

// Both arbiters away: the call fails with Unavailable (the caller backs
// off), once per arbiter, no loop.
func TestFailoverBothDown(t *testing.T) {
	a, addrA, _ := start(t, "a")
	b, addrB, _ := start(t, "b")
	a.unavailable, b.unavailable = true, true
	f := newFailover(t, addrA, addrB)
	if _, err := place(t, f, "o1"); status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v, want Unavailable", err)
	}
	for _, x := range f.Arbiters() {
		if x.LastError == "" {
			t.Errorf("%s: no last error", x.Address)
		}
	}
}

// A follower refuses a trading call naming the matcher (trailer, or an
// ErrorInfo detail): the call is retried there once, and the matcher
// becomes current.
func TestFailoverFollowsTheMatcherNamed(t *testing.T) {
	for _, detail := range []bool{false, true} {
		a, addrA, _ := start(t, "a")
		b, addrB, _ := start(t, "b")
		a.matcher, a.detail = addrB, detail // a follows, b matches
		f := newFailover(t, addrA, addrB)
		if got, err := place(t, f, "o1"); err != nil || got != "o1@b" {
			t.Fatalf("detail %v: %q %v, want o1@b", detail, got, err)
		}
		if f.Current() != addrB {
			t.Errorf("detail %v: current %s, want the matcher %s", detail, f.Current(), addrB)
		}
		if n := len(a.taken()) + len(b.taken()); n != 1 {
			t.Errorf("detail %v: %d orders taken, want 1", detail, n)
		}
	}
}

// The matcher named may be an address outside arbiter.addresses.
func TestFailoverMatcherOutsideTheList(t *testing.T) {
	a, addrA, _ := start(t, "a")
	_, addrC, _ := start(t, "c")
	a.matcher = addrC
	f := newFailover(t, addrA)
	if got, err := place(t, f, "o1"); err != nil || got != "o1@c" {
		t.Fatalf("%q %v, want o1@c", got, err)
	}
	if f.Current() != addrA {
		t.Errorf("current %s: an address outside the list never becomes current", f.Current())
	}
}

// Two arbiters that name each other (a confused or hostile pair) cost one
// retry, not a loop; a malformed name is ignored.
func TestFailoverMatcherRedirectIsFollowedOnce(t *testing.T) {
	a, addrA, _ := start(t, "a")
	b, addrB, _ := start(t, "b")
	a.matcher, b.matcher = addrB, addrA
	f := newFailover(t, addrA, addrB)
	if _, err := place(t, f, "o1"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("err %v, want the refusal FailedPrecondition", err)
	}
	a.mu.Lock()
	a.matcher = "not an address"
	a.mu.Unlock()
	if _, err := place(t, f, "o2"); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not the matcher") {
		t.Fatalf("err %v, want a's own refusal", err)
	}
}

// A stream whose arbiter dies makes the next arbiter current, so the
// caller's next stream opens there.
func TestFailoverStreamErrorMovesToTheNextArbiter(t *testing.T) {
	_, addrA, srvA := start(t, "a")
	_, addrB, _ := start(t, "b")
	f := newFailover(t, addrA, addrB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := pb.NewTradingServiceClient(f).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{AfterSequence: 4})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Recv(); err != nil || e.Sequence != 5 {
		t.Fatalf("%v %v", e, err)
	}
	if on := f.StreamArbiter(s); on != addrA {
		t.Fatalf("stream on %s, want %s", on, addrA)
	}
	srvA.Stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after a stopped: %v, want Unavailable", err)
	}
	if f.Current() != addrB {
		t.Fatalf("current %s, want %s", f.Current(), addrB)
	}
	s, err = pb.NewTradingServiceClient(f).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{AfterSequence: 5})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Recv(); err != nil || e.Sequence != 6 || f.StreamArbiter(s) != addrB {
		t.Fatalf("second stream: %v %v on %s", e, err, f.StreamArbiter(s))
	}
}

// A caller's own cancellation says nothing about the arbiter.
func TestFailoverCancelIsNotAFailure(t *testing.T) {
	_, addrA, _ := start(t, "a")
	_, addrB, _ := start(t, "b")
	f := newFailover(t, addrA, addrB)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := pb.NewTradingServiceClient(f).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.Recv()
	cancel()
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("%v", err)
	}
	if f.Current() != addrA {
		t.Fatalf("current %s after a cancel, want %s", f.Current(), addrA)
	}
}
