package api

import (
	"sync"

	"github.com/bwxchange/bwx/arbiter/book"
)

// Broker fans committed book events out to the open streams of the members
// they concern. It only wakes streams: the event log in the store is the
// source of truth, so a slow or missed wake-up loses nothing.
type Broker struct {
	mu   sync.Mutex
	subs map[uint32]map[chan struct{}]struct{}
}

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[uint32]map[chan struct{}]struct{}{}} }

// Subscribe returns a channel that receives a wake-up whenever asn has new
// events, and a function to unsubscribe.
func (b *Broker) Subscribe(asn uint32) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs[asn] == nil {
		b.subs[asn] = map[chan struct{}]struct{}{}
	}
	b.subs[asn][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs[asn], ch)
		if len(b.subs[asn]) == 0 {
			delete(b.subs, asn)
		}
		b.mu.Unlock()
	}
}

// Publish wakes the streams of every member named in evs; it never blocks.
func (b *Broker) Publish(evs []book.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range evs {
		for ch := range b.subs[e.MemberASN] {
			select {
			case ch <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
	}
}
