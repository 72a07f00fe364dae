package clock

import (
	"testing"
	"time"
)

func TestShift(t *testing.T) {
	real := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if d := shift("", true, real); d != 0 {
		t.Errorf("unset: shift %v", d)
	}
	if d := shift("2031-02-28T00:00:00Z", false, real); d != 0 {
		t.Errorf("outside a test binary: shift %v, want none", d)
	}
	if d := shift("2031-02-28T00:00:00Z", true, real); real.Add(d) != time.Date(2031, 2, 28, 0, 0, 0, 0, time.UTC) {
		t.Errorf("shift %v lands on %v", d, real.Add(d))
	}
	defer func() {
		if recover() == nil {
			t.Error("a malformed BWX_TEST_NOW was taken")
		}
	}()
	shift("2031-02-28", true, real)
}

// Now keeps the monotonic reading, so durations between readings hold.
func TestNowRunsAtTheRealRate(t *testing.T) {
	a := Now()
	time.Sleep(10 * time.Millisecond)
	if d := Since(a); d < 10*time.Millisecond || d > 5*time.Second {
		t.Errorf("Since after 10ms sleep: %v", d)
	}
	if Until(a) > 0 {
		t.Errorf("Until a past reading: %v", Until(a))
	}
}
