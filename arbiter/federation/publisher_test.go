package federation

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPublisherSnapshotThenNumberedChanges(t *testing.T) {
	p := NewPublisher("e1", 4)
	if n := p.Update([]Offer{offer(1, "198.51.100.0/24"), offer(2, "2001:db8::/32")}); n != 1 {
		t.Fatalf("first update: %d changes", n)
	}
	s := p.Subscribe()
	defer s.Close()
	if s.Epoch != "e1" || s.Seq != 1 || len(s.Snapshot) != 2 || s.Snapshot[0].Revision != 1 {
		t.Fatalf("snapshot: %+v", s)
	}
	if n := p.Update([]Offer{offer(1, "198.51.100.0/24"), offer(2, "2001:db8::/32")}); n != 0 {
		t.Fatalf("nothing changed, yet %d changes", n)
	}
	o2 := offer(2, "2001:db8::/32")
	o2.CapacityBps = 5_000_000
	p.Update([]Offer{o2, offer(3, "203.0.113.0/24")})
	ch := <-s.Changes
	if ch.Seq != 2 || len(ch.Upserts) != 2 || ch.Upserts[0].ID != 2 || ch.Upserts[0].Revision != 2 || len(ch.Removed) != 1 || ch.Removed[0] != 1 {
		t.Fatalf("change: %+v", ch)
	}
	// The subscriber's view, built from the snapshot and the change, is
	// the publisher's book.
	v := testView(0)
	synced(t, v, "ix-a", s.Epoch, s.Seq, s.Snapshot...)
	if err := v.Apply("ix-a", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: ch.Seq, Offers: ch.Upserts, Removed: ch.Removed}); err != nil {
		t.Fatal(err)
	}
	got, want := v.Offers("ix-a", netip.Prefix{}), p.Offers()
	if len(got) != len(want) {
		t.Fatalf("view %d offers, book %d", len(got), len(want))
	}
	for i := range want {
		if !same(got[i].Offer, want[i]) || got[i].Offer.Revision != want[i].Revision {
			t.Fatalf("view %+v, book %+v", got[i].Offer, want[i])
		}
	}
}

func TestPublisherSplitsLargeChanges(t *testing.T) {
	p := NewPublisher("e1", 16)
	s := p.Subscribe()
	defer s.Close()
	var offers []Offer
	for i := range MaxItemsPerUpdate + 10 {
		offers = append(offers, offer(int64(i+1), fmt.Sprintf("10.%d.%d.0/24", i>>8, i&255)))
	}
	if n := p.Update(offers); n != 2 {
		t.Fatalf("%d offers in %d changes", len(offers), n)
	}
	a, b := <-s.Changes, <-s.Changes
	if a.Seq != 1 || b.Seq != 2 || len(a.Upserts) != MaxItemsPerUpdate || len(b.Upserts) != 10 {
		t.Fatalf("changes %d (%d), %d (%d)", a.Seq, len(a.Upserts), b.Seq, len(b.Upserts))
	}
	if n := p.Update(nil); n != 2 {
		t.Fatalf("removing all: %d changes", n)
	}
}

// A peer that does not read is dropped, not buffered for without limit.
func TestPublisherDropsSlowSubscriber(t *testing.T) {
	p := NewPublisher("e1", 2)
	s := p.Subscribe()
	for i := range 5 {
		p.Update([]Offer{offer(int64(i+1), "198.51.100.0/24")})
	}
	n := 0
	for range s.Changes {
		n++
	}
	if n != 2 || !s.Lagged() {
		t.Fatalf("read %d changes, lagged %v", n, s.Lagged())
	}
	s.Close() // after a drop: no double close
}

// A change publishes what it touched only: Patch upserts the orders that
// are open sells and removes the others it was asked about.
func TestPublisherPatch(t *testing.T) {
	p := NewPublisher("e1", 8)
	p.Update([]Offer{offer(1, "198.51.100.0/24"), offer(2, "203.0.113.0/24")})
	s := p.Subscribe()
	defer s.Close()
	o1 := offer(1, "198.51.100.0/24")
	o1.CapacityBps = 4_000_000
	if n := p.Patch([]int64{1, 2, 3}, []Offer{o1}); n != 1 {
		t.Fatalf("%d changes", n)
	}
	ch := <-s.Changes
	if len(ch.Upserts) != 1 || ch.Upserts[0].CapacityBps != 4_000_000 || len(ch.Removed) != 1 || ch.Removed[0] != 2 {
		t.Fatalf("patch: %+v", ch)
	}
	if n := p.Patch([]int64{1}, []Offer{o1}); n != 0 {
		t.Fatalf("an unchanged order made %d changes", n)
	}
}

// The feed reads the whole book at the start and each interval, and only
// the orders a change touched when woken.
func TestPublisherFeedReadsWhatChanged(t *testing.T) {
	p := NewPublisher("e1", 8)
	d := NewDirty()
	reads := make(chan []int64, 16)
	book := map[int64]Offer{1: offer(1, "198.51.100.0/24"), 2: offer(2, "203.0.113.0/24")}
	var mu sync.Mutex
	read := func(_ context.Context, ids []int64) ([]Offer, error) {
		mu.Lock()
		defer mu.Unlock()
		reads <- ids
		var out []Offer
		for id, o := range book {
			if ids == nil || slices.Contains(ids, id) {
				out = append(out, o)
			}
		}
		return out, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Feed(ctx, read, d, time.Hour, time.Millisecond, func(error) {}); close(done) }()
	if ids := <-reads; ids != nil {
		t.Fatalf("first read asked for %v, want the whole book", ids)
	}
	mu.Lock()
	delete(book, 2)
	mu.Unlock()
	d.Add(2)
	if ids := <-reads; len(ids) != 1 || ids[0] != 2 {
		t.Fatalf("woken read asked for %v", ids)
	}
	cancel()
	<-done
	if got := p.Offers(); len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("published %+v", got)
	}
}
