package quality

import (
	"context"
	"sync"
	"time"
)

// Scheduler keeps one Planner per vantage and feeds it the sellers and the
// matrix's latest measurement times; the arbiter's probe task streams ask
// it for their member's due tasks. Wake tells the streams to ask now (a
// member joined or registered a prefix: route analysis at once, claim 5).
type Scheduler struct {
	// Revalidate, Retry, MaxPerRound: see Planner.
	Revalidate, Retry time.Duration
	MaxPerRound       int
	// Sellers lists the members that can be measured through.
	Sellers func(ctx context.Context) ([]Seller, error)
	// Latest is Matrix.Latest.
	Latest func(ctx context.Context, since time.Time) (map[Path]time.Time, error)

	mu       sync.Mutex
	planners map[uint32]*Planner
	wake     chan struct{}
}

// Due returns vantage's due tasks now (see Planner.Due).
func (s *Scheduler) Due(ctx context.Context, vantage uint32, now time.Time) ([]Task, error) {
	sellers, err := s.Sellers(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := s.Latest(ctx, now.Add(-s.Revalidate))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.planners == nil {
		s.planners = map[uint32]*Planner{}
	}
	p := s.planners[vantage]
	if p == nil {
		p = &Planner{Revalidate: s.Revalidate, Retry: s.Retry, MaxPerRound: s.MaxPerRound}
		s.planners[vantage] = p
	}
	return p.Due(vantage, sellers, func(x Path) time.Time { return latest[x] }, now), nil
}

// Woken returns a channel closed at the next Wake.
func (s *Scheduler) Woken() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

// Wake makes every waiting stream ask for its due tasks now.
func (s *Scheduler) Wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}
