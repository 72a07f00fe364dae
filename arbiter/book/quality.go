package book

import (
	"context"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// QualitySource answers a path's measured quality: through seller toward
// prefixes, as of now. nil means no fresh measurement.
type QualitySource interface {
	Measured(buyer, seller uint32, prefixes []netip.Prefix, now time.Time) *Measured
}

// NoQuality knows no measurements.
type NoQuality struct{}

// Measured implements QualitySource.
func (NoQuality) Measured(uint32, uint32, []netip.Prefix, time.Time) *Measured { return nil }

// Measured is the quality the matrix holds for a path (seller, destination).
type Measured struct {
	LatencyUs int64
	JitterUs  int64
	LossPPM   int32
	ASHops    int32
	// Samples is how many measurements the figures average; Probes how
	// many echo requests they sent (the loss's sample size; 0: unknown).
	Samples int
	Probes  int64
	// LatencyErrUs and JitterErrUs are the standard errors of the means
	// (0: unknown, taken as exact).
	LatencyErrUs int64
	JitterErrUs  int64
	// LossDispersion is how much burstier than independent probes the
	// loss was between measurements (pathscore.Figures.LossDispersion).
	LossDispersion float64
	// Vantages is how many independent vantages the figures rest on (1:
	// the buyer's own; 0: unknown, as for a trade's recorded quality).
	Vantages int
}

// Recorded is the part of m a trade records (and the store keeps): the
// figures with the sample behind them (the probes the loss counts, the
// means' standard errors), without the dispersion only ranking needs.
func (m *Measured) Recorded() *Measured {
	if m == nil {
		return nil
	}
	return &Measured{LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPPM: m.LossPPM, ASHops: m.ASHops, Samples: m.Samples,
		Probes: m.Probes, LatencyErrUs: m.LatencyErrUs, JitterErrUs: m.JitterErrUs}
}

// Meets reports whether measured quality m (nil: none fresh) satisfies the
// limits q, by the bar an SLA breach is judged by (shared/pathscore): a
// limit fails only when the figure is significantly beyond it, over at
// least pathscore.MinProbes probes. Fewer probes, or none fresh, verify
// nothing either way: such a path meets the limits only when the buyer
// allows unverified paths. So one bad early round cannot hide a seller
// from a buyer, who would then never probe it again.
func (q Quality) Meets(m *Measured) bool {
	if !q.Limited() {
		return true
	}
	if m == nil || m.Samples == 0 || m.Probes < pathscore.MinProbes {
		return q.AllowUnverified
	}
	return !m.Figures().Beyond(deref(q.MaxLatencyUs), deref(q.MaxJitterUs), deref(q.MaxLossPPM)) &&
		// A path through a seller is at least one AS long: 0 means the
		// distance was not measured, which meets no limit on it.
		(q.MaxASHops == nil || (m.ASHops > 0 && m.ASHops <= *q.MaxASHops) || (m.ASHops == 0 && q.AllowUnverified))
}

func deref[T int32 | int64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

// matrixQuality asks the quality matrix, which prefers the buyer's own
// measurements of the path and falls back to the exchange's pooled view.
type matrixQuality struct {
	m     *quality.Paths
	fresh time.Duration
}

// refreshQuality makes the measurements stored so far count in the
// matching that follows; it reads the store outside the book's lock.
func (b *Book) refreshQuality(ctx context.Context) {
	if b.paths != nil {
		b.paths.Refresh(ctx) // on failure, answers come from the store, uncached
	}
}

func (q matrixQuality) Measured(buyer, seller uint32, prefixes []netip.Prefix, now time.Time) *Measured {
	c, err := q.m.PathQuality(context.Background(), buyer, seller, prefixes, now.Add(-q.fresh))
	if err != nil || c == nil {
		return nil // unmeasured: fails any quality limit, which is the safe side
	}
	return &Measured{LatencyUs: c.LatencyUs, JitterUs: c.JitterUs, LossPPM: c.LossPPM, ASHops: c.ASHops, Samples: c.Samples,
		Probes: c.Probes, LatencyErrUs: c.LatencyErrUs, JitterErrUs: c.JitterErrUs, LossDispersion: c.LossDispersion, Vantages: c.Vantages}
}

// lookup fills in the quality of ch's trades listed in ch.lookups, in the
// trades and in the events that carry them.
func lookup(q QualitySource, ch *Change) {
	for _, i := range ch.lookups {
		t := &ch.Trades[i]
		m := q.Measured(t.BuyerASN, t.SellerASN, t.Prefixes, t.Created)
		if m == nil || m.Samples == 0 {
			continue
		}
		m = m.Recorded()
		t.Quality = m
		for j := range ch.Events {
			if e := ch.Events[j].Trade; e != nil && e.ID == t.ID {
				e.Quality = m
			}
		}
	}
}
