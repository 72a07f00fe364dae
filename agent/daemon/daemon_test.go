package daemon_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/agent/daemon"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// fakeArbiter serves a fixed event log and records what each stream asked for.
type fakeArbiter struct {
	pb.UnimplementedTradingServiceServer
	mu     sync.Mutex
	events []*pb.TradeEvent
	asked  []uint64
	// replay: send every event, whatever the request's after_sequence
	// (a buggy or hostile arbiter).
	replay bool
	// refuse: answer every stream with Unavailable.
	refuse bool
}

func (f *fakeArbiter) StreamTradeEvents(r *pb.StreamTradeEventsRequest, s pb.TradingService_StreamTradeEventsServer) error {
	f.mu.Lock()
	f.asked = append(f.asked, r.AfterSequence)
	evs, refuse := f.events, f.refuse
	f.mu.Unlock()
	if refuse {
		return status.Error(codes.Unavailable, "store unreachable")
	}
	for _, e := range evs {
		if e.Sequence > r.AfterSequence || f.replay {
			if err := s.Send(e); err != nil {
				return err
			}
		}
	}
	<-s.Context().Done()
	return nil
}

func (f *fakeArbiter) lastAsked() (uint64, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		return 0, 0
	}
	return f.asked[len(f.asked)-1], len(f.asked)
}

func ev(seq uint64) *pb.TradeEvent {
	return &pb.TradeEvent{Sequence: seq, Type: pb.TradeEventType_TRADE_EVENT_TYPE_CREATED, Trade: &pb.Trade{Id: seq, BuyerAsn: 64510, SellerAsn: 64501}}
}

func serve(t *testing.T, ca *pki.CA, addr string, f *fakeArbiter) *grpc.Server {
	t.Helper()
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after a stop
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(ca.ServerCertificate(), ca.Pool()))))
	pb.RegisterTradingServiceServer(s, f)
	go s.Serve(lis)
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := clock.Now().Add(10 * time.Second)
	for !cond() {
		if clock.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testCA makes a CA for an arbiter on 127.0.0.1 in dir, and the bundle
// of the agent (AS64510) from it.
func testCA(t *testing.T, dir string) (ca *pki.CA, bundle string) {
	t.Helper()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), "test", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	bundle = filepath.Join(dir, "agent.pem")
	if err := pki.IssueBundle(ca, pki.MemberIdentity(64510), bundle); err != nil {
		t.Fatal(err)
	}
	return ca, bundle
}

// freeAddr is a 127.0.0.1 host:port nobody listens on.
func freeAddr() string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().String()
}

// pairAgent serves fa and fb as an arbiter pair (until the test ends) and
// returns an agent for it, not yet running, with the servers and their
// addresses.
func pairAgent(t *testing.T, fa, fb *fakeArbiter) (a *daemon.Agent, srvA, srvB *grpc.Server, addrA, addrB string) {
	t.Helper()
	dir := t.TempDir()
	ca, bundle := testCA(t, dir)
	addrA, addrB = freeAddr(), freeAddr()
	srvA, srvB = serve(t, ca, addrA, fa), serve(t, ca, addrB, fb)
	t.Cleanup(srvA.Stop)
	t.Cleanup(srvB.Stop)
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Addresses, cfg.Bundle, cfg.StateDir = []string{addrA, addrB}, bundle, filepath.Join(dir, "state")
	cfg.Metrics.Listen = ""
	a, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return a, srvA, srvB, addrA, addrB
}

// run runs a until stop, which waits for Run to return and closes a.
func run(a *daemon.Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); a.Close(); close(done) }()
	return func() { cancel(); <-done }
}

func TestReconnectsAndResumesAfterLastEvent(t *testing.T) {
	dir := t.TempDir()
	ca, bundle := testCA(t, dir)
	addr := freeAddr()

	f := &fakeArbiter{events: []*pb.TradeEvent{ev(1), ev(2)}}
	srv := serve(t, ca, addr, f)
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Address, cfg.Bundle, cfg.StateDir = addr, bundle, filepath.Join(dir, "state")
	cfg.Metrics.Listen = "" // not the host's 127.0.0.1:9480: a real agent may hold it

	var mu sync.Mutex
	var got []uint64
	start := func() (context.CancelFunc, chan struct{}) {
		a, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		a.MinBackoff, a.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
		a.OnEvent = func(e *pb.TradeEvent) { mu.Lock(); got = append(got, e.Sequence); mu.Unlock() }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.Run(ctx); a.Close(); close(done) }()
		return cancel, done
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	cancel, done := start()
	waitFor(t, "events 1 and 2", func() bool { return count() == 2 })

	// The arbiter goes away and comes back with one more event.
	srv.Stop()
	f2 := &fakeArbiter{events: []*pb.TradeEvent{ev(1), ev(2), ev(3)}}
	srv = serve(t, ca, addr, f2)
	defer srv.Stop()
	waitFor(t, "event 3 after reconnect", func() bool { return count() == 3 })
	if after, _ := f2.lastAsked(); after != 2 {
		t.Fatalf("reconnected stream asked after %d, want 2", after)
	}

	// A restarted agent resumes from its saved cursor: nothing replayed.
	cancel()
	<-done
	f2.mu.Lock()
	f2.asked = nil
	f2.mu.Unlock()
	cancel, done = start()
	defer func() { cancel(); <-done }()
	waitFor(t, "the restarted agent's stream", func() bool { _, n := f2.lastAsked(); return n > 0 })
	if after, _ := f2.lastAsked(); after != 3 {
		t.Fatalf("restarted agent asked after %d, want 3", after)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("events seen %v, want [1 2 3] once each", got)
	}
}

func TestRefusesOperatorBundleAndBadConfig(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.InitCA(filepath.Join(dir, "ca"), "test", nil)
	op := filepath.Join(dir, "op.pem")
	if err := pki.IssueBundle(ca, pki.OperatorIdentity("alice"), op); err != nil {
		t.Fatal(err)
	}
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Address, cfg.Bundle, cfg.StateDir = "127.0.0.1:1", op, dir
	if _, err := daemon.New(cfg, slog.Default()); err == nil {
		t.Fatal("agent accepted an operator's bundle")
	}
	cfg.Arbiter.Address = "no-port"
	if err := cfg.Validate(); err == nil {
		t.Fatal("address without a port accepted")
	}
}

// An arbiter pair: the agent streams from the first; when it stops
// mid-stream the stream resumes on the second from the agent's cursor:
// nothing missed, nothing applied twice (even from an arbiter that
// replays events the cursor says the agent has).
func TestEventStreamFailsOverToTheOtherArbiter(t *testing.T) {
	for _, replay := range []bool{false, true} {
		fa := &fakeArbiter{events: []*pb.TradeEvent{ev(1), ev(2)}}
		// The second arbiter has the events the first committed, and
		// more since (one store behind both).
		fb := &fakeArbiter{events: []*pb.TradeEvent{ev(1), ev(2), ev(3), ev(4)}, replay: replay}
		a, srvA, _, addrA, addrB := pairAgent(t, fa, fb)
		a.MinBackoff, a.MaxBackoff = 20*time.Millisecond, time.Minute
		var mu sync.Mutex
		var got []uint64
		a.OnEvent = func(e *pb.TradeEvent) { mu.Lock(); got = append(got, e.Sequence); mu.Unlock() }
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
		stop := run(a)
		waitFor(t, "events 1 and 2 from the first arbiter", func() bool { return count() == 2 })
		if st := a.Status(); st.EventStream != addrA || st.Arbiter != addrA || len(st.Arbiters) != 2 {
			t.Fatalf("status %+v, want the stream and calls on %s", st, addrA)
		}
		if _, n := fb.lastAsked(); n != 0 {
			t.Fatalf("the second arbiter was asked %d times while the first answered", n)
		}

		srvA.Stop()
		// Within the backoff's first step (MaxBackoff is a minute: a
		// retry of the same arbiter would not come in time).
		waitFor(t, "events 3 and 4 from the second arbiter", func() bool { return count() >= 4 })
		if after, _ := fb.lastAsked(); after != 2 {
			t.Fatalf("replay %v: the second arbiter was asked after %d, want 2 (the cursor)", replay, after)
		}
		waitFor(t, "the status to show the second arbiter", func() bool { return a.Status().EventStream == addrB })
		time.Sleep(50 * time.Millisecond) // any duplicate would arrive now
		stop()
		mu.Lock()
		if len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 4 {
			t.Errorf("replay %v: events applied %v, want [1 2 3 4] once each", replay, got)
		}
		mu.Unlock()
	}
}

// Both arbiters of a pair refusing: the agent backs off as with one
// arbiter (one quick move to the other, then the delay grows), rather
// than bouncing between them.
func TestEventStreamBacksOffWhenBothArbitersFail(t *testing.T) {
	fa, fb := &fakeArbiter{refuse: true}, &fakeArbiter{refuse: true}
	a, _, _, _, _ := pairAgent(t, fa, fb)
	a.MinBackoff, a.MaxBackoff = 10*time.Millisecond, 400*time.Millisecond
	stop := run(a)
	time.Sleep(1500 * time.Millisecond) // the span under test
	stop()
	_, na := fa.lastAsked()
	_, nb := fb.lastAsked()
	// 10, 20, 40, ... 400 ms: about 9 attempts in 1.5 s (a few more with
	// one quick move per 400 ms); without backoff, hundreds.
	if na == 0 || nb == 0 || na+nb > 20 {
		t.Fatalf("streams asked: %d of the first arbiter, %d of the second; want both tried, at most 20 in all", na, nb)
	}
	t.Logf("%d attempts at the first arbiter, %d at the second in 1.5 s", na, nb)
}
