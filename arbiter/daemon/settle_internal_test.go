package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
)

func TestUseWatcherTellsEachEventOnce(t *testing.T) {
	var logs bytes.Buffer
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	start := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	ev := settle.TradeUse{UseEvent: settle.UseEvent{TradeID: 7, Kind: settle.Overuse, Start: start, End: start.Add(time.Hour), CapacityBps: 1e9, PeakBps: 2e9},
		BuyerASN: 64510, SellerASN: 64501}
	var asked [2]time.Time
	var fail error
	w := &useWatcher{log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }, seen: map[useKey]bool{},
		events: func(_ context.Context, from, to time.Time) ([]settle.TradeUse, error) {
			asked = [2]time.Time{from, to}
			return []settle.TradeUse{ev}, fail
		}}
	got, err := w.check(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("first check: %v %v, want the event", got, err)
	}
	if !asked[0].Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !asked[1].Equal(now) {
		t.Errorf("asked for %v, want the month so far", asked)
	}
	if l := logs.String(); strings.Count(l, "trade use outside its capacity") != 2 || !strings.Contains(l, "member=64510") || !strings.Contains(l, "member=64501") {
		t.Errorf("want one line per member:\n%s", l)
	}
	// The same run seen again, longer, is not news.
	ev.End = ev.End.Add(time.Hour)
	if got, _ := w.check(context.Background()); len(got) != 0 {
		t.Errorf("second check repeated %v", got)
	}
	// A new run of the same trade is.
	ev.Start, ev.Kind = ev.Start.Add(5*time.Hour), settle.Underuse
	if got, _ := w.check(context.Background()); len(got) != 1 {
		t.Errorf("new run not told: %v", got)
	}
	fail = errors.New("database is locked")
	if _, err := w.check(context.Background()); err == nil {
		t.Error("an error was swallowed")
	}
}

// A use event whose notification failed is not marked told: the next
// check hands it to notify again.
func TestUseWatcherRetriesFailedNotifications(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ev := settle.TradeUse{UseEvent: settle.UseEvent{TradeID: 7, Kind: settle.Underuse, Start: now.Add(-3 * time.Hour), End: now, CapacityBps: 1e9},
		BuyerASN: 64510, SellerASN: 64501}
	var told []settle.TradeUse
	fail := errors.New("database is locked")
	w := &useWatcher{log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), now: func() time.Time { return now }, seen: map[useKey]bool{},
		events: func(context.Context, time.Time, time.Time) ([]settle.TradeUse, error) {
			return []settle.TradeUse{ev}, nil
		},
		notify: func(_ context.Context, us []settle.TradeUse) error {
			if fail != nil {
				return fail
			}
			told = append(told, us...)
			return nil
		}}
	if _, err := w.check(context.Background()); !errors.Is(err, fail) {
		t.Fatalf("failed notification: %v", err)
	}
	fail = nil
	if got, err := w.check(context.Background()); err != nil || len(got) != 1 || len(told) != 1 || told[0].TradeID != 7 {
		t.Fatalf("retry: %v %v, told %v", got, err, told)
	}
	if got, _ := w.check(context.Background()); len(got) != 0 || len(told) != 1 {
		t.Errorf("told again: %v", told)
	}
}
