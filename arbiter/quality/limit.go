package quality

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// Reports are limited per member by a token bucket of measurement rows:
// it holds at most Burst rows and refills at Rate rows a second; a report
// takes as many tokens as it has rows, or is refused whole. The defaults
// take an agent's steady load (its probe tasks and its access manager's
// rounds: a few rows a second) and the backlog it spooled through an
// arbiter outage, not a member filling the store.
const (
	DefaultReportRate  = 20     // rows per second, per member
	DefaultReportBurst = 20_000 // rows
)

// RateLimitedError refuses a report past the member's allowance.
type RateLimitedError struct {
	ASN        uint32
	Rows       int
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("AS%d reports measurements faster than this arbiter takes them (%d rows now; quality.report_rate): retry in %s",
		e.ASN, e.Rows, e.RetryAfter)
}

// Limit sets how many rows a member may report: rate a second, at most
// burst at once. It applies to the reports that follow.
func (x *Matrix) Limit(rate float64, burst int) {
	x.limits.mu.Lock()
	defer x.limits.mu.Unlock()
	x.limits.rate, x.limits.burst = rate, burst
}

type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   int
	buckets map[uint32]*bucket // one per member that reported: bounded by the membership
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take spends n tokens of asn's bucket at now, or says how long until it
// holds them.
func (l *limiter) take(asn uint32, n int, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > l.burst {
		return &invalid.Error{Field: "measurements", Msg: fmt.Sprintf("%d rows: at most %d per report at this arbiter (quality.report_burst)", n, l.burst)}
	}
	if l.buckets == nil {
		l.buckets = map[uint32]*bucket{}
	}
	b := l.buckets[asn]
	if b == nil {
		b = &bucket{tokens: float64(l.burst), at: now}
		l.buckets[asn] = b
	}
	l.fill(b, now)
	if b.tokens < float64(n) {
		wait := time.Duration(math.Ceil((float64(n) - b.tokens) / l.rate * float64(time.Second)))
		return &RateLimitedError{ASN: asn, Rows: n, RetryAfter: wait.Round(time.Millisecond)}
	}
	b.tokens -= float64(n)
	return nil
}

// give returns n tokens taken for a report that stored nothing.
func (l *limiter) give(asn uint32, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[asn]; b != nil {
		b.tokens = min(float64(l.burst), b.tokens+float64(n))
	}
}

func (l *limiter) fill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.burst), b.tokens+d.Seconds()*l.rate)
		b.at = now
	}
}
