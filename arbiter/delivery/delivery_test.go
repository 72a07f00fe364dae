package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/shared/clock"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func tr(id int64, start, end time.Duration) book.Trade {
	return book.Trade{ID: id, BuyerASN: 64502, SellerASN: 64501, Start: t0.Add(start), End: t0.Add(end)}
}

func ids(ts []book.Trade) []int64 {
	out := []int64{}
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func TestActive(t *testing.T) {
	cancelled := tr(9, -time.Hour, time.Hour)
	cancelled.Cancelled = true
	for _, tc := range []struct {
		name   string
		trades []book.Trade
		now    time.Duration
		active []int64
		next   time.Duration // -1: zero time
	}{
		{"nothing", nil, 0, []int64{}, -1},
		{"before start", []book.Trade{tr(1, time.Minute, time.Hour)}, 0, []int64{}, time.Minute},
		{"at start (inclusive)", []book.Trade{tr(1, 0, time.Hour)}, 0, []int64{1}, time.Hour},
		{"during", []book.Trade{tr(1, -time.Minute, time.Hour)}, 0, []int64{1}, time.Hour},
		{"at end (exclusive)", []book.Trade{tr(1, -time.Hour, 0)}, 0, []int64{}, -1},
		{"after end", []book.Trade{tr(1, -time.Hour, -time.Minute)}, 0, []int64{}, -1},
		{"cancelled", []book.Trade{cancelled}, 0, []int64{}, -1},
		{"empty period", []book.Trade{tr(1, time.Hour, time.Hour)}, 0, []int64{}, -1},
		{"next is the earliest start or end",
			[]book.Trade{tr(3, -time.Hour, 2*time.Hour), tr(1, 30*time.Minute, 3*time.Hour), tr(2, -time.Minute, time.Hour)},
			0, []int64{2, 3}, 30 * time.Minute},
		{"sorted by ID", []book.Trade{tr(5, -1, 1), tr(2, -1, 1), tr(4, -1, 1)}, 0, []int64{2, 4, 5}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			active, next := Active(tc.trades, t0.Add(tc.now))
			if got := ids(active); !slices.Equal(got, tc.active) {
				t.Errorf("active %v, want %v", got, tc.active)
			}
			want := time.Time{}
			if tc.next >= 0 {
				want = t0.Add(tc.next)
			}
			if !next.Equal(want) {
				t.Errorf("next %v, want %v", next, want)
			}
		})
	}
}

// fakeTarget records every SetActive.
type fakeTarget struct {
	mu   sync.Mutex
	sets [][]int64
	fail bool
}

func (f *fakeTarget) SetActive(_ context.Context, ts []book.Trade) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("route server not started")
	}
	f.sets = append(f.sets, ids(ts))
	return nil
}

func (f *fakeTarget) last() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sets) == 0 {
		return nil
	}
	return f.sets[len(f.sets)-1]
}

type fakeSource struct {
	mu     sync.Mutex
	trades []book.Trade
	loads  int
}

func (f *fakeSource) Trades(context.Context, time.Time) ([]book.Trade, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	return slices.Clone(f.trades), nil
}

func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := clock.Now().Add(5 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if clock.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantLast(t *testing.T, dst *fakeTarget, what string, want ...int64) {
	t.Helper()
	if want == nil {
		want = []int64{}
	}
	eventually(t, what, func() string {
		if got := dst.last(); !slices.Equal(got, want) {
			return fmt.Sprintf("target has %v, want %v", got, want)
		}
		return ""
	})
}

func run(t *testing.T, l *Loop) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}

// Real clock: trades start and end a few hundred milliseconds from now,
// and the test polls the target.
func TestLoopFollowsTheClockAndTheBook(t *testing.T) {
	now := clock.Now().UTC()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	src := &fakeSource{trades: []book.Trade{
		{ID: 1, Start: at(-time.Hour), End: at(time.Hour)},             // active now
		{ID: 2, Start: at(300 * time.Millisecond), End: at(time.Hour)}, // starts soon
		{ID: 3, Start: at(-time.Hour), End: at(600 * time.Millisecond)},
		{ID: 4, Start: at(-time.Hour), End: at(-time.Minute)}, // over
	}}
	dst := &fakeTarget{}
	l := New(src, dst, Options{})
	run(t, l)
	wantLast(t, dst, "start: the complete active set", 1, 3)
	wantLast(t, dst, "trade 2 starts by the clock", 1, 2, 3)
	wantLast(t, dst, "trade 3 ends by the clock", 1, 2)

	// A new trade from the book's events, active at once.
	l.Notify([]book.Event{{Type: book.TradeCreated, Trade: &book.Trade{ID: 5, Start: at(-time.Second), End: at(time.Hour), Created: clock.Now()}}})
	wantLast(t, dst, "trade 5 from Notify", 1, 2, 5)

	// A cancellation: the loop reads the Source again.
	src.mu.Lock()
	src.trades[0].Cancelled = true
	src.trades = append(src.trades, book.Trade{ID: 5, Start: at(-time.Second), End: at(time.Hour)})
	src.mu.Unlock()
	l.Notify([]book.Event{{Type: book.OrderCancelled}})
	wantLast(t, dst, "trade 1 cancelled", 2, 5)

	// Events that end nothing cause no push.
	dst.mu.Lock()
	n := len(dst.sets)
	dst.mu.Unlock()
	l.Notify([]book.Event{{Type: book.OrderAccepted}, {Type: book.TradeCreated, Trade: &book.Trade{ID: 2}}})
	l.Resync() // ...but Resync always pushes
	eventually(t, "Resync pushes", func() string {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		if len(dst.sets) != n+1 || !slices.Equal(dst.sets[n], []int64{2, 5}) {
			return fmt.Sprintf("sets %v after %d", dst.sets, n)
		}
		return ""
	})
}

func TestLoopRetriesAFailedPush(t *testing.T) {
	src := &fakeSource{trades: []book.Trade{{ID: 1, Start: clock.Now().Add(-time.Hour), End: clock.Now().Add(time.Hour)}}}
	dst := &fakeTarget{fail: true}
	l := New(src, dst, Options{RetryEvery: 20 * time.Millisecond})
	run(t, l)
	eventually(t, "a few tries", func() string {
		src.mu.Lock()
		defer src.mu.Unlock()
		if src.loads < 1 {
			return "not loaded"
		}
		return ""
	})
	dst.mu.Lock()
	dst.fail = false
	dst.mu.Unlock()
	wantLast(t, dst, "pushed after the target recovers", 1)
	if l.Pushes() != 1 {
		t.Errorf("pushes %d, want 1", l.Pushes())
	}
}

// A trade ended early (its seller removed from the exchange) is withdrawn
// at once, even one made a moment ago, whose copy from Notify a reload of
// the Source would otherwise keep.
func TestLoopWithdrawsATradeEndedEarly(t *testing.T) {
	now := clock.Now().UTC()
	src := &fakeSource{}
	dst := &fakeTarget{}
	l := New(src, dst, Options{})
	run(t, l)
	wantLast(t, dst, "start: nothing active")
	made := book.Trade{ID: 7, BuyerASN: 64510, SellerASN: 64501, Start: now.Add(-time.Second), End: now.Add(time.Hour), Created: now}
	l.Notify([]book.Event{{Type: book.TradeCreated, Trade: &made}})
	wantLast(t, dst, "trade 7 from Notify", 7)

	// The store now says it ended: the Source no longer lists it.
	ended := made
	ended.ContractEnd, ended.End, ended.EndReason = made.End, clock.Now().UTC(), "member AS64501 removed"
	l.Notify([]book.Event{{Type: book.TradeEnded, MemberASN: 64510, Trade: &ended}, {Type: book.TradeEnded, MemberASN: 64501, Trade: &ended}})
	wantLast(t, dst, "trade 7 withdrawn when it ends early")
}
