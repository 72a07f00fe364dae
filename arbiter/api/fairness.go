package api

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bwxchange/bwx/shared/clock"
)

// Defaults for Fairness. A member's agent has a few calls in flight (its
// reports, its probe tasks, an order) and two or three streams; a CLI
// fetches pages one after another.
const (
	DefaultMaxInFlight = 8
	DefaultMaxStreams  = 16
	DefaultCallRate    = 500 // calls a second, per caller
	DefaultCallBurst   = 1000
	// DefaultRetryAfter is the hint to a caller refused for having too
	// many calls in flight: about as long as a page takes.
	DefaultRetryAfter = 200 * time.Millisecond
)

// Fairness keeps one caller from starving the others: per caller (a
// member, or the operator), at most MaxInFlight unary calls at once, at
// most MaxStreams open streams, and calls at Rate a second (Burst at
// once). It is enforced before the call does any work, the database
// lookups of authentication included. A call past a bound is refused with
// ResourceExhausted carrying an errdetails.RetryInfo: when to try again.
// Callers are bounded by the membership, and so is its state.
type Fairness struct {
	MaxInFlight int
	MaxStreams  int
	Rate        float64
	Burst       int
	RetryAfter  time.Duration

	mu      sync.Mutex
	callers map[string]*callerLoad

	pushback *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
}

type callerLoad struct {
	calls, streams int
	limit          *rate.Limiter
}

// NewFairness makes a Fairness with the bounds given (0: the default) and
// registers its metrics with reg (nil: none).
func NewFairness(maxInFlight, maxStreams int, callRate float64, burst int, reg prometheus.Registerer) *Fairness {
	f := &Fairness{MaxInFlight: maxInFlight, MaxStreams: maxStreams, Rate: callRate, Burst: burst, RetryAfter: DefaultRetryAfter,
		pushback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bwx_arbiter_grpc_pushback_total",
			Help: "gRPC calls refused with ResourceExhausted before any work, by caller and bound (in_flight, streams, rate).",
		}, []string{"caller", "bound"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bwx_arbiter_grpc_in_flight", Help: "Unary gRPC calls in flight, by caller.",
		}, []string{"caller"}),
	}
	if f.MaxInFlight <= 0 {
		f.MaxInFlight = DefaultMaxInFlight
	}
	if f.MaxStreams <= 0 {
		f.MaxStreams = DefaultMaxStreams
	}
	if f.Rate <= 0 {
		f.Rate = DefaultCallRate
	}
	if f.Burst <= 0 {
		f.Burst = DefaultCallBurst
	}
	if reg != nil {
		reg.MustRegister(f.pushback, f.inFlight)
	}
	return f
}

// admit takes a slot for caller's call (a stream when stream is set), or
// refuses it. The returned release gives the slot back.
func (f *Fairness) admit(caller string, stream bool) (release func(), err error) {
	now := clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.callers == nil {
		f.callers = map[string]*callerLoad{}
	}
	l := f.callers[caller]
	if l == nil {
		l = &callerLoad{limit: rate.NewLimiter(rate.Limit(f.Rate), f.Burst)}
		f.callers[caller] = l
	}
	switch {
	case stream && l.streams >= f.MaxStreams:
		return nil, f.refuse(caller, "streams", f.RetryAfter*5, "%s has %d streams open, the most this arbiter keeps for one caller", caller, l.streams)
	case !stream && l.calls >= f.MaxInFlight:
		return nil, f.refuse(caller, "in_flight", f.RetryAfter, "%s has %d calls in flight, the most this arbiter serves for one caller at once", caller, l.calls)
	}
	if r := l.limit.ReserveN(now, 1); r.DelayFrom(now) > 0 {
		wait := r.DelayFrom(now)
		r.CancelAt(now)
		return nil, f.refuse(caller, "rate", wait, "%s calls faster than %.0f a second", caller, f.Rate)
	}
	if stream {
		l.streams++
	} else {
		l.calls++
		if f.inFlight != nil {
			f.inFlight.WithLabelValues(caller).Inc()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if stream {
				l.streams--
			} else {
				l.calls--
				if f.inFlight != nil {
					f.inFlight.WithLabelValues(caller).Dec()
				}
			}
		})
	}, nil
}

// refuse is ResourceExhausted with a RetryInfo of after (at least a
// millisecond), counted per caller and bound.
func (f *Fairness) refuse(caller, bound string, after time.Duration, format string, args ...any) error {
	if f.pushback != nil {
		f.pushback.WithLabelValues(caller, bound).Inc()
	}
	after = max(after.Round(time.Millisecond), time.Millisecond)
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(format, args...)+fmt.Sprintf(": retry in %s", after))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		st = d
	}
	return st.Err()
}
