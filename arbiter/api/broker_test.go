package api

import (
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
)

// pending reports whether ch holds a wake-up, taking it. Publish hands
// wake-ups over before it returns, so no waiting is involved.
func pending(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// publish runs b.Publish and fails the test if it does not return: Publish
// must never block, whatever the subscribers do.
func publish(t *testing.T, b *Broker, asns ...uint32) {
	t.Helper()
	evs := make([]book.Event, len(asns))
	for i, a := range asns {
		evs[i] = book.Event{MemberASN: a}
	}
	done := make(chan struct{})
	go func() { b.Publish(evs); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked")
	}
}

func TestBrokerWakesOnlyNamedMember(t *testing.T) {
	b := NewBroker()
	a1, unsubA1 := b.Subscribe(64501)
	a2, unsubA2 := b.Subscribe(64501)
	other, unsubOther := b.Subscribe(64502)
	defer unsubOther()

	publish(t, b, 64501)
	if !pending(a1) || !pending(a2) {
		t.Fatal("a subscriber of AS64501 was not woken")
	}
	if pending(other) {
		t.Fatal("AS64502 was woken by AS64501's event")
	}
	if pending(a1) || pending(a2) {
		t.Fatal("one event gave more than one wake-up")
	}

	// Nobody listens for AS64599: publishing for it is harmless.
	publish(t, b, 64599)
	if pending(a1) || pending(other) {
		t.Fatal("an event for an unsubscribed member woke someone")
	}

	// One publish naming both members wakes both.
	publish(t, b, 64502, 64501)
	if !pending(a1) || !pending(a2) || !pending(other) {
		t.Fatal("a publish naming both members did not wake all three streams")
	}

	// Unsubscribing stops wake-ups for that channel only.
	unsubA1()
	publish(t, b, 64501)
	if pending(a1) {
		t.Fatal("an unsubscribed channel was woken")
	}
	if !pending(a2) {
		t.Fatal("the remaining subscriber was not woken")
	}
	unsubA2()
	b.mu.Lock()
	_, left := b.subs[64501]
	n := len(b.subs)
	b.mu.Unlock()
	if left || n != 1 {
		t.Fatalf("after both unsubscribed: AS64501 still listed %v, %d members listed; want only AS64502", left, n)
	}
	// Unsubscribing twice is harmless and does not drop other subscribers.
	unsubA2()
	publish(t, b, 64502)
	if !pending(other) {
		t.Fatal("AS64502 lost its subscription")
	}
}

func TestBrokerPublishNeverBlocks(t *testing.T) {
	b := NewBroker()
	ch, unsub := b.Subscribe(64501)
	defer unsub()
	// Nobody reads: the first publish fills the buffer, the rest must not block.
	for range 100 {
		publish(t, b, 64501, 64501)
	}
	if !pending(ch) {
		t.Fatal("no wake-up pending after publishes")
	}
	if pending(ch) {
		t.Fatal("more than one wake-up pending: wake-ups should coalesce")
	}
}
