package settle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// MinBreachProbes is the fewest probes a loss must count to be a breach
// (the access manager's quality.min_probes default); BreachPoolWindow is
// how far back a measurement with fewer pools the path's earlier ones (its
// quality.max_age default).
const (
	MinBreachProbes  = pathscore.MinProbes
	BreachPoolWindow = 15 * time.Minute
)

// DefaultMeasurementGap is how long one breaching measurement counts for
// when no later measurement of the path says otherwise: a few probe rounds.
const DefaultMeasurementGap = 5 * time.Minute

// DefaultCorroboration is how far apart in time another vantage's
// breaching measurement may be from a buyer's breach and still corroborate
// it: the default revalidation interval, so the hourly probe tasks of the
// other members' agents can.
const DefaultCorroboration = time.Hour

// QualityBreaches is the BreachSource over the quality matrix: a trade
// breaches while the buyer's own measurements of the path (via the seller,
// toward the trade's prefixes) exceed the quality limits of its buy order
// (claims 6, 18); loss only when significantly so. Each breaching
// measurement counts from its time until the path's next measurement, at
// most Gap. A buy without limits never breaches.
//
// The buyer's word alone earns no credit: a buyer could report a healthy
// path as bad to cancel its own charges. Each of its breaching
// measurements' time is credited only when corroborated: another vantage
// (the seller's own agent, another member's, or a third-party source such
// as RIPE Atlas) measured the same seller toward the same prefix within
// Corroboration of that time (before its start to after its end) and found
// the trade's limits exceeded by the same test (its own rounds pooled for
// loss, as the buyer's). The rest is disputed: shown on the invoice, not
// credited. The intervals of all the trade's prefixes are merged, so a
// breach toward any of them is the trade's; corroborated time wins over
// disputed.
type QualityBreaches struct {
	db *store.DB
	// Gap bounds how long one measurement stands for (DefaultMeasurementGap).
	Gap time.Duration
	// Corroboration is how far apart a corroborating measurement may be
	// (DefaultCorroboration).
	Corroboration time.Duration
}

// NewQualityBreaches reads breaches from db's measurements.
func NewQualityBreaches(db *store.DB) *QualityBreaches {
	return &QualityBreaches{db: db, Gap: DefaultMeasurementGap, Corroboration: DefaultCorroboration}
}

// vantageKey tells vantages apart: a member's id, or a third-party source.
type vantageKey struct {
	member int64
	source string
}

// Breaches implements BreachSource.
func (q *QualityBreaches) Breaches(ctx context.Context, tradeID int64, from, to time.Time) (BreachTimes, error) {
	t, err := book.TradeBuyLimits(ctx, q.db, tradeID)
	if errors.Is(err, book.ErrNotFound) {
		return BreachTimes{}, fmt.Errorf("trade %d: no such trade", tradeID)
	}
	if err != nil {
		return BreachTimes{}, err
	}
	buyer, seller, lim := t.BuyerID, t.SellerID, t.Quality
	if !lim.Limited() {
		return BreachTimes{}, nil
	}
	pointBad := func(l, j, h int64) bool {
		return (lim.MaxLatencyUs != nil && l > *lim.MaxLatencyUs) || (lim.MaxJitterUs != nil && j > *lim.MaxJitterUs) ||
			(lim.MaxASHops != nil && h > int64(*lim.MaxASHops))
	}
	corr := q.corroboration().Microseconds()
	ps := make([]string, len(t.Prefixes))
	for i, p := range t.Prefixes {
		ps[i] = strings.TrimSpace(p)
	}
	rows, err := quality.MeasurementsVia(ctx, q.db, seller, store.Micros(from.Add(-q.gap()-BreachPoolWindow))-corr, store.Micros(to)+corr, ps)
	if err != nil {
		return BreachTimes{}, err
	}
	type m struct {
		vantage      vantageKey
		prefix       string
		at           int64
		bad          bool
		lost, probes int64
	}
	var ms []m
	for _, r := range rows {
		x := m{vantage: vantageKey{r.ReporterID, r.Source}, prefix: r.Prefix, at: r.At, probes: r.ProbesSent}
		if x.vantage.member != 0 {
			x.vantage.source = "" // a member's agent is one vantage
		}
		x.bad = pointBad(r.LatencyUs, r.JitterUs, r.ASHops)
		x.lost = pathscore.Figures{LossPPM: int32(r.LossPPM), Probes: x.probes}.Lost()
		ms = append(ms, x)
	}
	same := func(a, b m) bool { return a.vantage == b.vantage && a.prefix == b.prefix }
	// Loss breaches only when significantly above the limit: the lower end
	// of its 95 % interval (shared/pathscore) over at least MinBreachProbes
	// probes is above it. A measurement with fewer pools the path's
	// earlier ones from the same vantage, back to BreachPoolWindow, as the
	// access manager pools its rounds; one lost probe of six proves
	// nothing, nor does a loss without a probe count.
	if lim.MaxLossPPM != nil {
		window := BreachPoolWindow.Microseconds()
		for i := range ms {
			var lost, probes int64
			for k := i; k >= 0 && same(ms[k], ms[i]) && ms[i].at-ms[k].at <= window && probes < MinBreachProbes; k-- {
				lost, probes = lost+ms[k].lost, probes+ms[k].probes
			}
			pooled := pathscore.Figures{LossPPM: int32(lost * 1_000_000 / max(probes, 1)), Probes: probes}
			if probes >= MinBreachProbes && pooled.Loss().Lo*1e6 > float64(*lim.MaxLossPPM) {
				ms[i].bad = true
			}
		}
	}
	// Other vantages' breaching measurements, per prefix, by time.
	others := map[string][]int64{}
	for _, x := range ms {
		if x.bad && x.vantage != (vantageKey{member: buyer}) {
			others[x.prefix] = append(others[x.prefix], x.at)
		}
	}
	for _, ats := range others {
		slices.Sort(ats)
	}
	corroborated := func(prefix string, s, e int64) bool {
		ats := others[prefix]
		i, _ := slices.BinarySearch(ats, s-corr)
		return i < len(ats) && ats[i] <= e+corr
	}
	lo, hi, gap := store.Micros(from), store.Micros(to), q.gap().Microseconds()
	var out BreachTimes
	for i, x := range ms {
		if !x.bad || x.vantage != (vantageKey{member: buyer}) {
			continue
		}
		end := x.at + gap
		if i+1 < len(ms) && same(ms[i+1], x) {
			end = min(end, ms[i+1].at)
		}
		s, e := max(x.at, lo), min(end, hi)
		if e <= s {
			continue
		}
		iv := Interval{Start: store.Time(s), End: store.Time(e)}
		if corroborated(x.prefix, x.at, end) {
			out.Credited = append(out.Credited, iv)
		} else {
			out.Disputed = append(out.Disputed, iv)
		}
	}
	out.Credited = mergeIntervals(out.Credited)
	out.Disputed = subtractIntervals(mergeIntervals(out.Disputed), out.Credited)
	return out, nil
}

func (q *QualityBreaches) corroboration() time.Duration {
	if q.Corroboration > 0 {
		return q.Corroboration
	}
	return DefaultCorroboration
}

// subtractIntervals is a less b; both sorted and merged.
func subtractIntervals(a, b []Interval) []Interval {
	var out []Interval
	for _, x := range a {
		for _, y := range b {
			if !y.End.After(x.Start) || !y.Start.Before(x.End) {
				continue
			}
			if y.Start.After(x.Start) {
				out = append(out, Interval{Start: x.Start, End: y.Start})
			}
			x.Start = y.End
			if !x.Start.Before(x.End) {
				break
			}
		}
		if x.Start.Before(x.End) {
			out = append(out, x)
		}
	}
	return out
}

func (q *QualityBreaches) gap() time.Duration {
	if q.Gap > 0 {
		return q.Gap
	}
	return DefaultMeasurementGap
}

// mergeIntervals sorts is and joins the ones that overlap or touch.
func mergeIntervals(is []Interval) []Interval {
	slices.SortFunc(is, func(a, b Interval) int { return a.Start.Compare(b.Start) })
	var out []Interval
	for _, x := range is {
		if n := len(out); n > 0 && !x.Start.After(out[n-1].End) {
			if x.End.After(out[n-1].End) {
				out[n-1].End = x.End
			}
			continue
		}
		out = append(out, x)
	}
	return out
}
