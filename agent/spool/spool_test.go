package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

func open(t *testing.T, path string, opts Options) *Spool {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func keys(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

func TestPutSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{})
	for i := range 5 {
		if err := s.Put(ctx, "usage", fmt.Sprint("k", i), []byte(fmt.Sprint("payload", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(ctx, "usage", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{})
	if n := s.Len("usage"); n != 4 {
		t.Fatalf("Len after reopen = %d, want 4", n)
	}
	items, err := s.Batch(ctx, "usage", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(keys(items), ","), "k0,k2,k3,k4"; got != want {
		t.Fatalf("keys after reopen = %s, want %s (oldest first)", got, want)
	}
	if string(items[2].Payload) != "payload3" || items[2].Added.IsZero() || items[2].Added.Location() != time.UTC {
		t.Fatalf("item = %+v", items[2])
	}
}

func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	open(t, path, Options{})
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want in-use error", err)
	}
}

func TestDuplicatePutIsOneItem(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	for range 3 {
		if err := s.Put(ctx, "usage", "same", []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	// The same key under another kind is another report.
	if err := s.Put(ctx, "measurement", "same", []byte("q")); err != nil {
		t.Fatal(err)
	}
	if n := s.Len("usage"); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
	items, _ := s.Batch(ctx, "usage", 10)
	if len(items) != 1 {
		t.Fatalf("Batch = %d items, want 1", len(items))
	}
	err := s.Put(ctx, "usage", "same", []byte("different"))
	if !errors.Is(err, ErrKeyConflict) || !strings.Contains(err.Error(), `"same"`) {
		t.Fatalf("Put with a different payload = %v, want ErrKeyConflict naming the key", err)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{MaxPayload: 4})
	for _, tc := range []struct {
		kind, key, payload, want string
	}{
		{"", "k", "p", "invalid kind"},
		{"usage", "", "p", "empty idempotency key"},
		{"usage", "k", "12345", "exceeds the limit of 4"},
	} {
		err := s.Put(ctx, tc.kind, tc.key, []byte(tc.payload))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Put(%q, %q, %q) = %v, want %q", tc.kind, tc.key, tc.payload, err, tc.want)
		}
	}
	if _, err := s.Batch(ctx, "usage", 0); err == nil {
		t.Error("Batch with max 0 succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "spool.db"), Options{}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestFullRefusesAndKeepsAccepted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spool.db")
	s := open(t, path, Options{MaxItems: 3})
	for i := range 3 {
		if err := s.Put(ctx, "usage", fmt.Sprint("k", i), []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Put(ctx, "usage", "k3", []byte("p"))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Put into a full spool = %v, want ErrFull", err)
	}
	// A duplicate of a stored report is still fine, and other kinds have
	// their own limit.
	if err := s.Put(ctx, "usage", "k0", []byte("p")); err != nil {
		t.Fatalf("duplicate Put into a full spool: %v", err)
	}
	if err := s.Put(ctx, "measurement", "m0", []byte("p")); err != nil {
		t.Fatal(err)
	}
	// All or nothing: a batch that does not fit stores nothing.
	if err := s.Ack(ctx, "usage", "k0"); err != nil {
		t.Fatal(err)
	}
	err = s.PutAll(ctx, "usage", []Record{{"a", []byte("p")}, {"b", []byte("p")}})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("PutAll past the limit = %v, want ErrFull", err)
	}
	items, _ := s.Batch(ctx, "usage", 10)
	if got := strings.Join(keys(items), ","); got != "k1,k2" {
		t.Fatalf("after refused PutAll: %s, want k1,k2", got)
	}
	if err := s.Put(ctx, "usage", "a", []byte("p")); err != nil {
		t.Fatalf("Put after Ack made room: %v", err)
	}
	// The limit holds across a reopen too.
	s.Close()
	s = open(t, path, Options{MaxItems: 3})
	if err := s.Put(ctx, "usage", "z", []byte("p")); !errors.Is(err, ErrFull) {
		t.Fatalf("Put after reopen of a full spool = %v, want ErrFull", err)
	}
}

func TestParkAndRequeue(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Put(ctx, "usage", k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Park(ctx, "usage", "bad interval", "b"); err != nil {
		t.Fatal(err)
	}
	items, _ := s.Batch(ctx, "usage", 10)
	if got := strings.Join(keys(items), ","); got != "a,c" || s.Len("usage") != 2 || s.ParkedLen("usage") != 1 {
		t.Fatalf("pending %s (Len %d, parked %d), want a,c and 1 parked", got, s.Len("usage"), s.ParkedLen("usage"))
	}
	p, _ := s.Parked(ctx, "usage", 10)
	if len(p) != 1 || p[0].Key != "b" || p[0].Parked != "bad interval" {
		t.Fatalf("Parked = %+v", p)
	}
	if err := s.Requeue(ctx, "usage", "b"); err != nil {
		t.Fatal(err)
	}
	if s.Len("usage") != 3 || s.ParkedLen("usage") != 0 {
		t.Fatalf("after Requeue: Len %d parked %d", s.Len("usage"), s.ParkedLen("usage"))
	}
	if err := s.Park(ctx, "usage", "x", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "usage", "c"); err != nil {
		t.Fatal(err)
	}
	if s.Len("usage") != 2 || s.ParkedLen("usage") != 0 {
		t.Fatalf("after Ack of a parked item: Len %d parked %d", s.Len("usage"), s.ParkedLen("usage"))
	}
}

// The helper process: Put reports one by one, print each key once Put has
// returned, and SIGKILL itself after a number of them, with more Puts in
// flight.
const killEnv = "BWX_SPOOL_KILL_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(killEnv); path != "" {
		killHelper(path)
		return
	}
	os.Exit(m.Run())
}

func killHelper(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var acked atomic.Int64
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Put(ctx, "usage", k, []byte("payload "+k)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				// One write(2) per line: the parent sees whole lines of
				// acknowledged keys only.
				os.Stdout.WriteString(k + "\n")
				acked.Add(1)
			}
		}()
	}
	for acked.Load() < 150 {
		time.Sleep(time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestPutSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
	cmd.Env = append(os.Environ(), killEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		acked = append(acked, sc.Text())
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want SIGKILL; stderr: %s", err, stderr.String())
	}
	if len(acked) < 150 {
		t.Fatalf("helper acknowledged only %d reports", len(acked))
	}
	s := open(t, path, Options{})
	items, err := s.Batch(context.Background(), "usage", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, it := range items {
		have[it.Key] = string(it.Payload)
	}
	for _, k := range acked {
		if have[k] != "payload "+k {
			t.Errorf("acknowledged report %s lost after SIGKILL (stored: %q)", k, have[k])
		}
	}
	t.Logf("%d acknowledged, %d stored after SIGKILL", len(acked), len(items))
}

// receiver dedups by key, as the arbiter does.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	got       map[string]int
	reject    map[string]bool
}

func (r *receiver) send(_ context.Context, items []Item) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFirst {
		return errors.New("arbiter unreachable")
	}
	for _, it := range items {
		if r.reject[it.Key] {
			return Reject(fmt.Errorf("report %s: interval_end before interval_start", it.Key))
		}
	}
	for _, it := range items {
		r.got[it.Key]++
	}
	return nil
}

func (r *receiver) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := clock.Now().Add(10 * time.Second)
	for !cond() {
		if clock.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDrainRetriesThenDeliversAll(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	const n = 120
	for i := range n {
		if err := s.Put(ctx, "usage", fmt.Sprint("k", i), []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	r := &receiver{failFirst: 3, got: map[string]int{}}
	var errs, sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- Drain(ctx, s, "usage", r.send, DrainOptions{
			BatchSize:  50,
			MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			OnError: func(error, time.Duration) { errs.Add(1) },
			OnSent:  func(n int) { sent.Add(int64(n)) },
		})
	}()
	waitFor(t, "all reports acknowledged", func() bool { return s.Len("usage") == 0 && sent.Load() == n })
	if got := r.unique(); got != n {
		t.Fatalf("receiver has %d unique keys, want %d", got, n)
	}
	if errs.Load() != 3 || sent.Load() != n {
		t.Fatalf("OnError called %d times (want 3), OnSent total %d (want %d)", errs.Load(), sent.Load(), n)
	}
	// Promptly wakes on a new Put.
	if err := s.Put(ctx, "usage", "late", []byte("p")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late report", func() bool { return r.unique() == n+1 && s.Len("usage") == 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain returned %v, want context.Canceled", err)
	}
}

func TestDrainParksRejected(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	for i := range 20 {
		if err := s.Put(ctx, "usage", fmt.Sprint("k", i), []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	r := &receiver{got: map[string]int{}, reject: map[string]bool{"k7": true, "k13": true}}
	var parked sync.Map
	go Drain(ctx, s, "usage", r.send, DrainOptions{BatchSize: 8,
		OnParked: func(it Item, err error) { parked.Store(it.Key, err) }})
	waitFor(t, "drain", func() bool { return s.Len("usage") == 0 })
	if r.unique() != 18 || s.ParkedLen("usage") != 2 {
		t.Fatalf("delivered %d, parked %d; want 18 and 2", r.unique(), s.ParkedLen("usage"))
	}
	p, _ := s.Parked(ctx, "usage", 10)
	if len(p) != 2 || p[0].Key != "k7" || !strings.Contains(p[0].Parked, "interval_end") {
		t.Fatalf("parked = %+v", p)
	}
	if _, ok := parked.Load("k13"); !ok {
		t.Fatal("OnParked not called for k13")
	}
}

func TestWakeCutsBackoffShort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	if err := s.Put(ctx, "usage", "k", []byte("p")); err != nil {
		t.Fatal(err)
	}
	r := &receiver{failFirst: 1, got: map[string]int{}}
	wake := make(chan struct{})
	failed := make(chan struct{}, 1)
	go Drain(ctx, s, "usage", r.send, DrainOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour, Wake: wake,
		OnError: func(error, time.Duration) { failed <- struct{}{} }})
	<-failed
	wake <- struct{}{}
	waitFor(t, "delivery after wake", func() bool { return r.unique() == 1 })
}

func TestConcurrentPutAndDrain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	r := &receiver{failFirst: 2, got: map[string]int{}}
	var flaky atomic.Int64
	send := func(ctx context.Context, items []Item) error {
		// Every fifth call the reply is "lost" after the receiver took
		// the batch: Drain must resend and the receiver dedups.
		if err := r.send(ctx, items); err != nil {
			return err
		}
		if flaky.Add(1)%5 == 0 {
			return errors.New("reply lost")
		}
		return nil
	}
	done := make(chan error, 2)
	for _, kind := range []string{"usage", "measurement"} {
		go func() {
			done <- Drain(ctx, s, kind, send, DrainOptions{BatchSize: 7, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
		}()
	}
	const writers, each = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				kind := "usage"
				if i%2 == 1 {
					kind = "measurement"
				}
				if err := s.Put(ctx, kind, fmt.Sprintf("%s-%d-%d", kind, w, i), []byte("p")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "all delivered", func() bool {
		return s.Len("usage") == 0 && s.Len("measurement") == 0 && r.unique() == writers*each
	})
	cancel()
	for range 2 {
		<-done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dups := 0
	for _, c := range r.got {
		dups += c - 1
	}
	t.Logf("%d unique reports delivered, %d resent after a lost reply", len(r.got), dups)
}

func TestBackoffBounds(t *testing.T) {
	for n := range 12 {
		for range 50 {
			d := backoff(time.Second, 30*time.Second, n)
			want := time.Second << n
			if want > 30*time.Second {
				want = 30 * time.Second
			}
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// Drain has no polling timer: an idle Drain delivers a new report only
// because Put wakes it.
func TestDrainWakesOnPut(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	r := &receiver{got: map[string]int{}}
	done := make(chan error, 1)
	go func() {
		done <- Drain(ctx, s, "usage", r.send, DrainOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour})
	}()
	for i := range 3 {
		if err := s.Put(ctx, "usage", fmt.Sprint("k", i), []byte("p")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delivery of a new report", func() bool { return r.unique() == i+1 })
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Drain returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after cancel")
	}
}

// A receiver that pushes back (busy: try again in 80 ms) four times, then
// takes everything: Drain waits at least the hint each time, not its own
// backoff (an hour here), keeps every report meanwhile, and delivers each
// once.
func TestDrainHonoursPushBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	const n, refusals, hint = 30, 4, 80 * time.Millisecond
	for i := range n {
		if err := s.Put(ctx, "usage", fmt.Sprint("k", i), []byte("p")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var tries []time.Time
	got := map[string]int{}
	send := func(_ context.Context, items []Item) error {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, clock.Now())
		if len(tries) <= refusals {
			if l := s.Len("usage"); l != n {
				t.Errorf("refusal %d: %d reports in the spool, want all %d", len(tries), l, n)
			}
			return RetryAfter(errors.New("resource exhausted"), hint)
		}
		for _, it := range items {
			got[it.Key]++
		}
		return nil
	}
	var waits []time.Duration
	go Drain(ctx, s, "usage", send, DrainOptions{MinBackoff: time.Hour, MaxBackoff: time.Hour,
		OnError: func(_ error, wait time.Duration) { mu.Lock(); waits = append(waits, wait); mu.Unlock() }})
	waitFor(t, "every report delivered after the push-back", func() bool { return s.Len("usage") == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d reports delivered, want %d", len(got), n)
	}
	for k, c := range got {
		if c != 1 {
			t.Errorf("%s delivered %d times", k, c)
		}
	}
	if len(waits) != refusals {
		t.Fatalf("%d waits, want %d", len(waits), refusals)
	}
	for i, w := range waits {
		if w < hint || w > hint+hint/4 {
			t.Errorf("wait %d is %s, want the hint %s plus at most a quarter", i, w, hint)
		}
		if gap := tries[i+1].Sub(tries[i]); gap < hint {
			t.Errorf("try %d came %s after the refusal, before the hint %s", i+2, gap, hint)
		}
	}
}
