package spool

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

func TestStatsBacklogAndOldest(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "spool.db"), Options{})
	if st, err := s.Stats(ctx, "usage"); err != nil || st != (Stats{}) {
		t.Fatalf("empty spool: %+v, %v", st, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Put(ctx, "usage", k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Batch(ctx, "usage", 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("batch %d, %v", len(items), err)
	}
	st, err := s.Stats(ctx, "usage")
	if err != nil || st.Pending != 3 || st.Parked != 0 || !st.Oldest.Equal(items[0].Added) {
		t.Fatalf("stats %+v, %v; want 3 pending, oldest %v", st, err, items[0].Added)
	}
	// Parking the oldest moves the age to the next one.
	if err := s.Park(ctx, "usage", "refused", "a"); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(ctx, "usage")
	if err != nil || st.Pending != 2 || st.Parked != 1 || !st.Oldest.Equal(items[1].Added) {
		t.Fatalf("after park: %+v, %v; want 2 pending, 1 parked, oldest %v", st, err, items[1].Added)
	}
	if err := s.Ack(ctx, "usage", "b", "c"); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(ctx, "usage")
	if err != nil || st.Pending != 0 || st.Parked != 1 || !st.Oldest.IsZero() {
		t.Fatalf("after ack: %+v, %v; want nothing pending, 1 parked", st, err)
	}
	if st, err := s.Stats(ctx, "measurement"); err != nil || st != (Stats{}) {
		t.Fatalf("other kind: %+v, %v", st, err)
	}
	if _, err := s.Stats(ctx, " usage"); err == nil {
		t.Fatal("a bad kind was accepted")
	}
	s.Close()
	if _, err := s.Stats(ctx, "usage"); err == nil {
		t.Fatal("Stats on a closed spool returned no error")
	}
}

// BenchmarkStats is a scrape's cost for a full backlog (100,000 reports
// pending, the oldest parked); BenchmarkStatsBaselineLen is the in-memory
// count it adds an indexed lookup to. Run them together:
//
//	go test -run '^$' -bench 'Stats' ./agent/spool
func BenchmarkStats(b *testing.B) {
	s := backlog(b)
	ctx := context.Background()
	for b.Loop() {
		if st, err := s.Stats(ctx, "usage"); err != nil || st.Oldest.IsZero() {
			b.Fatal(st, err)
		}
	}
}

func BenchmarkStatsBaselineLen(b *testing.B) {
	s := backlog(b)
	for b.Loop() {
		if s.Len("usage") == 0 {
			b.Fatal("empty")
		}
	}
}

func backlog(b *testing.B) *Spool {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "spool.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	recs := make([]Record, 0, 1000)
	for i := range 100_000 {
		recs = append(recs, Record{Key: fmt.Sprint("k", i), Payload: []byte("usage sample payload")})
		if len(recs) == cap(recs) {
			if err := s.PutAll(ctx, "usage", recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := s.Park(ctx, "usage", "refused", "k0"); err != nil {
		b.Fatal(err)
	}
	return s
}
