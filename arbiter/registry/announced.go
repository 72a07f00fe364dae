package registry

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// AnnouncedRoute is a route a member router announces to the route server
// now, with the route server's verdict (claim 22).
type AnnouncedRoute struct {
	MemberASN uint32
	Neighbor  netip.Addr // the member router (session) it came from
	Prefix    netip.Prefix
	NextHop   netip.Addr
	ASPath    []uint32
	OriginASN uint32
	Accepted  bool
	Reason    string // why not accepted (or the checker's note)
	Since     time.Time
}

// AnnouncedKey names one announced route: a prefix on one session.
type AnnouncedKey struct {
	Neighbor netip.Addr
	Prefix   netip.Prefix
}

// Key returns the route's key.
func (a *AnnouncedRoute) Key() AnnouncedKey { return AnnouncedKey{a.Neighbor, a.Prefix} }

func sortAnnounced(rs []AnnouncedRoute) {
	cmpPrefix := func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	}
	slices.SortFunc(rs, func(a, b AnnouncedRoute) int {
		switch {
		case a.MemberASN < b.MemberASN:
			return -1
		case a.MemberASN > b.MemberASN:
			return 1
		}
		if c := cmpPrefix(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return a.Neighbor.Compare(b.Neighbor)
	})
}

// AnnouncedSync keeps the announced routes table in step with a stream of
// changes without making the caller wait for the database: Put and Delete
// only record the change in memory (later changes of one route replace
// earlier ones), and a goroutine writes them in batches.
type AnnouncedSync struct {
	reg   *Registry
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	pending map[AnnouncedKey]*AnnouncedRoute // nil: delete
	queued  uint64                           // changes recorded
	written uint64                           // of those, written
	wake    chan struct{}
	flushed chan struct{} // closed and replaced after each write
	stop    chan struct{}
	done    chan struct{}
}

// NewAnnouncedSync starts the writer; it writes at most every interval
// (0: 200 ms). Close flushes what is pending and stops it.
func NewAnnouncedSync(reg *Registry, log *slog.Logger, every time.Duration) *AnnouncedSync {
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &AnnouncedSync{reg: reg, log: log, every: every, pending: map[AnnouncedKey]*AnnouncedRoute{},
		wake: make(chan struct{}, 1), flushed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// Put records that the route is announced now (new or changed verdict).
func (s *AnnouncedSync) Put(a AnnouncedRoute) {
	s.mu.Lock()
	s.pending[a.Key()] = &a
	s.queued++
	s.mu.Unlock()
	s.poke()
}

// Delete records that the route is gone.
func (s *AnnouncedSync) Delete(k AnnouncedKey) {
	s.mu.Lock()
	s.pending[k] = nil
	s.queued++
	s.mu.Unlock()
	s.poke()
}

func (s *AnnouncedSync) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Flush waits until everything recorded before the call is written (or
// ctx ends).
func (s *AnnouncedSync) Flush(ctx context.Context) error {
	s.mu.Lock()
	want := s.queued
	s.mu.Unlock()
	for {
		s.mu.Lock()
		ok, ch := s.written >= want, s.flushed
		s.mu.Unlock()
		if ok {
			return nil
		}
		s.poke()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close writes what is pending and stops the writer.
func (s *AnnouncedSync) Close() {
	close(s.stop)
	<-s.done
}

func (s *AnnouncedSync) run() {
	defer close(s.done)
	for {
		select {
		case <-s.wake:
		case <-s.stop:
			s.write()
			return
		}
		s.write()
		// Let changes gather: one transaction per interval, not per route.
		select {
		case <-time.After(s.every):
		case <-s.stop:
			s.write()
			return
		}
	}
}

func (s *AnnouncedSync) write() {
	s.mu.Lock()
	batch := s.pending
	upTo := s.queued
	s.pending = map[AnnouncedKey]*AnnouncedRoute{}
	s.mu.Unlock()
	var up []AnnouncedRoute
	var del []AnnouncedKey
	for k, a := range batch {
		if a == nil {
			del = append(del, k)
		} else {
			up = append(up, *a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := s.reg.UpdateAnnounced(ctx, up, del)
	cancel()
	s.mu.Lock()
	if err != nil {
		s.log.Error("record announced routes", "routes", len(up), "removed", len(del), "error", err)
		// Keep them for the next round unless newer changes replaced them.
		for k, a := range batch {
			if _, newer := s.pending[k]; !newer {
				s.pending[k] = a
			}
		}
	} else {
		s.written = upTo
	}
	close(s.flushed)
	s.flushed = make(chan struct{})
	s.mu.Unlock()
	if err != nil {
		s.poke() // retried after the interval
	}
}
