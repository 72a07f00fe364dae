package federation

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Change is one numbered change of a published book: offers new or
// changed, and ids removed.
type Change struct {
	Seq     int64
	Upserts []Offer
	Removed []int64
}

// Publisher holds this exchange's published book and hands it to peers as
// a snapshot followed by numbered changes. A subscriber that falls behind
// by more than its buffer is dropped (it subscribes again, with a fresh
// snapshot), so a slow peer costs a bounded amount of memory.
type Publisher struct {
	epoch string
	buf   int

	mu   sync.Mutex
	seq  int64
	cur  map[int64]Offer
	subs map[*Subscription]struct{}
}

// Subscription is one peer's feed: the snapshot it started from, then
// Changes. Changes is closed when the publisher dropped the subscriber
// (Lagged) or Close was called.
type Subscription struct {
	Epoch    string
	Seq      int64 // the snapshot is as of this change
	Snapshot []Offer
	Changes  <-chan Change

	ch     chan Change
	p      *Publisher
	lagged bool
}

// NewPublisher returns an empty published book. epoch names this
// generation: subscribers take a snapshot again when it changes (a
// restart numbers changes from zero). buffer bounds the changes queued
// per subscriber.
func NewPublisher(epoch string, buffer int) *Publisher {
	if buffer <= 0 {
		buffer = 256
	}
	return &Publisher{epoch: epoch, buf: buffer, cur: map[int64]Offer{}, subs: map[*Subscription]struct{}{}}
}

// Epoch is this publisher's generation.
func (p *Publisher) Epoch() string { return p.epoch }

// Subscribe starts a feed at the current state.
func (p *Publisher) Subscribe() *Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &Subscription{Epoch: p.epoch, Seq: p.seq, Snapshot: p.sortedLocked(), ch: make(chan Change, p.buf), p: p}
	s.Changes = s.ch
	p.subs[s] = struct{}{}
	return s
}

// Lagged reports whether the publisher dropped s for falling behind
// (valid once Changes is closed).
func (s *Subscription) Lagged() bool {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.lagged
}

// Close ends the feed.
func (s *Subscription) Close() {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if _, ok := s.p.subs[s]; ok {
		delete(s.p.subs, s)
		close(s.ch)
	}
}

// Seq is the number of the last change.
func (p *Publisher) Seq() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// Len is how many offers are published.
func (p *Publisher) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cur)
}

// Offers returns the published book, by id.
func (p *Publisher) Offers() []Offer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sortedLocked()
}

func (p *Publisher) sortedLocked() []Offer {
	out := make([]Offer, 0, len(p.cur))
	for _, o := range p.cur {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Offer) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Update replaces the published book with offers (ids unique) and sends
// what differs to the subscribers, as changes of at most
// MaxItemsPerUpdate items each. It returns how many changes it made.
func (p *Publisher) Update(offers []Offer) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ups []Offer
	var gone []int64
	next := make(map[int64]Offer, len(offers))
	for _, o := range offers {
		next[o.ID] = o
		if old, ok := p.cur[o.ID]; !ok || !same(old, o) {
			ups = append(ups, o)
		}
	}
	for id := range p.cur {
		if _, ok := next[id]; !ok {
			gone = append(gone, id)
		}
	}
	slices.SortFunc(ups, func(a, b Offer) int { return cmp.Compare(a.ID, b.ID) })
	slices.Sort(gone)
	n := 0
	for len(ups)+len(gone) > 0 {
		p.seq++
		ch := Change{Seq: p.seq}
		k := min(len(ups), MaxItemsPerUpdate)
		for _, o := range ups[:k] {
			o.Revision = p.seq
			p.cur[o.ID] = o
			ch.Upserts = append(ch.Upserts, o)
		}
		ups = ups[k:]
		r := min(len(gone), MaxItemsPerUpdate-k)
		for _, id := range gone[:r] {
			delete(p.cur, id)
		}
		ch.Removed, gone = gone[:r:r], gone[r:]
		p.sendLocked(ch)
		n++
	}
	return n
}

func (p *Publisher) sendLocked(ch Change) {
	for s := range p.subs {
		select {
		case s.ch <- ch:
		default:
			s.lagged = true
			delete(p.subs, s)
			close(s.ch)
		}
	}
}

// Feed keeps the publisher up to date: it reads the book (read) when
// woken (debounced to minGap) and every interval, until ctx ends. A read
// that fails leaves the published book as it was.
func (p *Publisher) Feed(ctx context.Context, read func(context.Context) ([]Offer, error), wake <-chan struct{},
	interval, minGap time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if offers, err := read(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			onErr(err)
		} else {
			p.Update(offers)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
			// Changes come in bursts (a sweep of fills): one read for each.
			select {
			case <-ctx.Done():
				return
			case <-time.After(minGap):
			}
		}
	}
}
