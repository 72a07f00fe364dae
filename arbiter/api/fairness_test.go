package api

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func wantPushBack(t *testing.T, what string, err error, atLeast time.Duration) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("%s: %v, want ResourceExhausted", what, err)
	}
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() >= atLeast {
			return
		}
	}
	t.Fatalf("%s: %v carries no RetryInfo of at least %s", what, err, atLeast)
}

// One caller's bound is its own: at its limit of calls in flight it is
// refused with a retry hint, another caller is not, and a finished call
// frees its slot.
func TestFairnessBoundsEachCaller(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := NewFairness(2, 1, 1000, 1000, reg)
	r1, err1 := f.admit("member AS1", false)
	_, err2 := f.admit("member AS1", false)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	_, err := f.admit("member AS1", false)
	wantPushBack(t, "a third call in flight", err, time.Millisecond)
	if _, err := f.admit("member AS2", false); err != nil {
		t.Fatalf("another member is refused for AS1's calls: %v", err)
	}
	r1()
	r1() // twice is once
	if _, err := f.admit("member AS1", false); err != nil {
		t.Fatalf("after a call ended: %v", err)
	}
	_, err = f.admit("member AS1", false)
	wantPushBack(t, "again at the bound", err, time.Millisecond)

	// Streams are counted apart from calls.
	if _, err := f.admit("member AS1", true); err != nil {
		t.Fatal(err)
	}
	_, err = f.admit("member AS1", true)
	wantPushBack(t, "a second stream", err, time.Millisecond)

	if got := testutil.ToFloat64(f.pushback.WithLabelValues("member AS1", "in_flight")); got != 2 {
		t.Errorf("in_flight pushbacks %v, want 2", got)
	}
	if got := testutil.ToFloat64(f.pushback.WithLabelValues("member AS1", "streams")); got != 1 {
		t.Errorf("stream pushbacks %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.inFlight.WithLabelValues("member AS1")); got != 2 {
		t.Errorf("in flight %v, want 2", got)
	}
}

// Past its call rate a caller is told how long until its next token.
func TestFairnessRate(t *testing.T) {
	f := NewFairness(100, 100, 2, 3, nil)
	for i := range 3 {
		release, err := f.admit("member AS1", false)
		if err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
		release()
	}
	_, err := f.admit("member AS1", false)
	wantPushBack(t, "past the burst", err, 100*time.Millisecond)
	if _, err := f.admit("member AS2", false); err != nil {
		t.Fatalf("another member: %v", err)
	}
}
