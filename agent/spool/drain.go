package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults for DrainOptions.
const (
	DefaultBatchSize  = 500
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 2 * time.Minute
)

// SendFunc delivers a batch to the receiver (the arbiter). It returns nil
// only when the receiver has every item of the batch (taken, or ignored as
// a duplicate key); Drain then acknowledges them. Any other error means
// "try again later", except a Reject error.
type SendFunc func(ctx context.Context, items []Item) error

// rejected marks an error as the receiver's final word on a batch.
type rejected struct{ err error }

func (r rejected) Error() string { return "rejected: " + r.err.Error() }
func (r rejected) Unwrap() error { return r.err }

// Reject wraps err to say that the receiver refused the batch for good (a
// gRPC InvalidArgument, say): sending it again cannot succeed. Drain then
// splits the batch to find the refused items and parks them (see
// Spool.Park) so that the rest still flows.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return rejected{err}
}

// IsRejected tells whether err was made by Reject.
func IsRejected(err error) bool {
	var r rejected
	return errors.As(err, &r)
}

// pushedBack marks an error as the receiver asking to be tried again no
// sooner than after.
type pushedBack struct {
	err   error
	after time.Duration
}

func (p pushedBack) Error() string { return p.err.Error() }
func (p pushedBack) Unwrap() error { return p.err }

// RetryAfter wraps err to say that the receiver took nothing and asked
// for the batch again after d (a gRPC ResourceExhausted with a RetryInfo,
// say): Drain keeps the batch and waits at least d, plus jitter so that
// agents pushed back together do not come back together.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return pushedBack{err, d}
}

// retryHint is the wait err asks for, if it does.
func retryHint(err error) (time.Duration, bool) {
	var p pushedBack
	if errors.As(err, &p) {
		return p.after, true
	}
	return 0, false
}

// DrainOptions tune Drain. The zero value means the defaults.
type DrainOptions struct {
	// BatchSize is the most items per send (DefaultBatchSize).
	BatchSize int
	// MinBackoff and MaxBackoff bound the wait after a failure; it doubles
	// per consecutive failure, with jitter (DefaultMinBackoff,
	// DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// Wake, if not nil, cuts a backoff short when it receives (say, when
	// the connection to the arbiter is back).
	Wake <-chan struct{}
	// OnSent, if not nil, is called after a batch was delivered and acknowledged.
	OnSent func(n int)
	// OnError, if not nil, is called on every failed send or spool error,
	// with the wait before the next try.
	OnError func(err error, wait time.Duration)
	// OnParked, if not nil, is called for each item parked because the
	// receiver rejected it.
	OnParked func(it Item, err error)
}

func (o *DrainOptions) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
}

// Drain sends the pending reports of kind with send, oldest first, in
// batches, and acknowledges each delivered batch. When the spool is empty
// it sleeps until the next Put. After a failure it waits with jittered
// exponential backoff (new Puts do not cut that wait short: the receiver is
// away; Wake does). It runs until ctx is done and returns ctx.Err().
//
// Delivery is at least once: a batch the receiver took whose reply was lost
// is sent again, and the receiver drops it by its idempotency keys.
func Drain(ctx context.Context, s *Spool, kind string, send SendFunc, opts DrainOptions) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if send == nil {
		return errors.New("spool: drain: nil send function")
	}
	opts.defaults()
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		changed := s.changedCh(kind) // before Batch, so no Put is missed
		items, err := s.Batch(ctx, kind, opts.BatchSize)
		if err == nil && len(items) == 0 {
			failures = 0
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			}
			continue
		}
		if err == nil {
			err = deliver(ctx, s, kind, items, send, opts)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := backoff(opts.MinBackoff, opts.MaxBackoff, failures)
		failures++
		if hint, ok := retryHint(err); ok {
			// The receiver is there and said when: its hint with up to
			// a quarter more, not the backoff for an absent receiver.
			wait = hint + rand.N(hint/4+1)
		}
		if opts.OnError != nil {
			opts.OnError(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case <-opts.Wake:
			t.Stop()
		}
	}
}

// deliver sends items and acknowledges them. On a rejection it bisects the
// batch until it has single refused items, which it parks.
func deliver(ctx context.Context, s *Spool, kind string, items []Item, send SendFunc, opts DrainOptions) error {
	err := send(ctx, items)
	if err == nil {
		keys := make([]string, len(items))
		for i, it := range items {
			keys[i] = it.Key
		}
		if err := s.Ack(ctx, kind, keys...); err != nil {
			return fmt.Errorf("acknowledge %d delivered %s reports: %w", len(items), kind, err)
		}
		if opts.OnSent != nil {
			opts.OnSent(len(items))
		}
		return nil
	}
	if !IsRejected(err) {
		return fmt.Errorf("send %d %s reports: %w", len(items), kind, err)
	}
	if len(items) == 1 {
		if perr := s.Park(ctx, kind, err.Error(), items[0].Key); perr != nil {
			return fmt.Errorf("park %s report %q: %w", kind, items[0].Key, perr)
		}
		if opts.OnParked != nil {
			opts.OnParked(items[0], err)
		}
		return nil
	}
	half := len(items) / 2
	if err := deliver(ctx, s, kind, items[:half], send, opts); err != nil {
		return err
	}
	return deliver(ctx, s, kind, items[half:], send, opts)
}

// backoff is the wait after n consecutive failures: min*2^n capped at max,
// then a random point in its upper half, so that many agents cut off by
// one arbiter restart do not come back in step.
func backoff(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
