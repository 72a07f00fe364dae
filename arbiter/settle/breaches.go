package settle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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

// QualityBreaches is the BreachSource over the quality matrix: a trade
// breaches while the buyer's own measurements of the path (via the seller,
// toward the trade's prefixes) exceed the quality limits of its buy order
// (claims 6, 18); loss only when significantly so. Each breaching measurement counts from its time until the
// path's next measurement, at most Gap; the intervals of all the trade's
// prefixes are merged, so a breach toward any of them is the trade's.
// Other members' and third-party measurements do not count: the credit is
// for the buyer's traffic. A buy without limits never breaches.
type QualityBreaches struct {
	db *store.DB
	// Gap bounds how long one measurement stands for (DefaultMeasurementGap).
	Gap time.Duration
}

// NewQualityBreaches reads breaches from db's measurements.
func NewQualityBreaches(db *store.DB) *QualityBreaches {
	return &QualityBreaches{db: db, Gap: DefaultMeasurementGap}
}

// Breaches implements BreachSource.
func (q *QualityBreaches) Breaches(ctx context.Context, tradeID int64, from, to time.Time) ([]Interval, error) {
	var buyer, seller int64
	var prefixes string
	var lat, jit, loss, hops sql.NullInt64
	err := q.db.QueryRowContext(ctx, `SELECT t.buyer_id, t.seller_id, t.prefixes, o.max_latency_us, o.max_jitter_us, o.max_loss_ppm, o.max_as_hops
		FROM trades t JOIN orders o ON o.id = t.buy_order_id WHERE t.id = ?`, tradeID).Scan(&buyer, &seller, &prefixes, &lat, &jit, &loss, &hops)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("trade %d: no such trade", tradeID)
	}
	if err != nil {
		return nil, err
	}
	if !lat.Valid && !jit.Valid && !loss.Valid && !hops.Valid {
		return nil, nil
	}
	pointBad := func(l, j, h int64) bool {
		return (lat.Valid && l > lat.Int64) || (jit.Valid && j > jit.Int64) || (hops.Valid && h > hops.Int64)
	}
	ps := strings.Split(prefixes, ",")
	args := []any{buyer, seller, store.Micros(from.Add(-q.gap() - BreachPoolWindow)), store.Micros(to)}
	for _, p := range ps {
		args = append(args, strings.TrimSpace(p))
	}
	rows, err := q.db.QueryContext(ctx, `SELECT prefix, measured_us, latency_us, jitter_us, loss_ppm, as_hops, probes_sent FROM measurements
		WHERE reporter_id = ? AND via_id = ? AND measured_us >= ? AND measured_us < ?
		AND prefix IN (`+strings.TrimSuffix(strings.Repeat("?,", len(ps)), ",")+`) ORDER BY prefix, measured_us, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type m struct {
		prefix       string
		at           int64
		bad          bool
		lost, probes int64
	}
	var ms []m
	for rows.Next() {
		var x m
		var l, j, p, h int64
		if err := rows.Scan(&x.prefix, &x.at, &l, &j, &p, &h, &x.probes); err != nil {
			return nil, err
		}
		x.bad = pointBad(l, j, h)
		x.lost = pathscore.Figures{LossPPM: int32(p), Probes: x.probes}.Lost()
		ms = append(ms, x)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Loss breaches only when significantly above the limit: the lower end
	// of its 95 % interval (shared/pathscore) over at least MinBreachProbes
	// probes is above it. A measurement with fewer pools the path's
	// earlier ones, back to BreachPoolWindow, as the access manager pools
	// its rounds; one lost probe of six proves nothing, nor does a loss
	// without a probe count.
	if loss.Valid {
		window := BreachPoolWindow.Microseconds()
		for i := range ms {
			var lost, probes int64
			for k := i; k >= 0 && ms[k].prefix == ms[i].prefix && ms[i].at-ms[k].at <= window && probes < MinBreachProbes; k-- {
				lost, probes = lost+ms[k].lost, probes+ms[k].probes
			}
			pooled := pathscore.Figures{LossPPM: int32(lost * 1_000_000 / max(probes, 1)), Probes: probes}
			if probes >= MinBreachProbes && pooled.Loss().Lo*1e6 > float64(loss.Int64) {
				ms[i].bad = true
			}
		}
	}
	lo, hi, gap := store.Micros(from), store.Micros(to), q.gap().Microseconds()
	var out []Interval
	for i, x := range ms {
		if !x.bad {
			continue
		}
		end := x.at + gap
		if i+1 < len(ms) && ms[i+1].prefix == x.prefix {
			end = min(end, ms[i+1].at)
		}
		s, e := max(x.at, lo), min(end, hi)
		if e > s {
			out = append(out, Interval{Start: store.Time(s), End: store.Time(e)})
		}
	}
	return mergeIntervals(out), nil
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
