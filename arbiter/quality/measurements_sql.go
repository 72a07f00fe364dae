package quality

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/invalid"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// The measurements table's SQL: the matrix's writes and reads, the path
// freshness reads (Paths) and the breach reads of settlement.

// insertMeasurement stores a member's measurement; insertThirdParty a
// third-party source's (no reporting member). A key sent before is skipped.
const (
	insertMeasurement = `INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target,
		measured_us, latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (reporter_id, idempotency_key) DO NOTHING`
	insertThirdParty = `INSERT INTO measurements (source, reporter_id, idempotency_key, via_id, prefix, target,
		measured_us, latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent) VALUES (?,NULL,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (source, idempotency_key) WHERE reporter_id IS NULL DO NOTHING`
)

// store validates a batch and inserts it in one transaction, all or
// nothing. insert takes the owner (from owner: the reporting member's id, or
// a third-party source) and then the measurement's columns; a row its
// conflict clause skips is a duplicate.
func (x *Matrix) store(ctx context.Context, ms []Measurement, insert string, owner func(*sql.Tx, time.Time) (any, error)) (accepted, duplicates int, err error) {
	if len(ms) > MaxBatch {
		return 0, 0, &invalid.Error{Field: "measurements", Msg: fmt.Sprintf("at most %d per report", MaxBatch)}
	}
	now := x.now()
	for i, m := range ms {
		if err := m.Validate(i, now); err != nil {
			return 0, 0, err
		}
	}
	err = x.db.Tx(ctx, func(tx *sql.Tx) error {
		accepted, duplicates = 0, 0
		who, err := owner(tx, now)
		if err != nil {
			return err
		}
		accepted, duplicates, err = store.InsertIdempotent(ctx, tx, insert, len(ms), func(i int) ([]any, error) {
			m := ms[i]
			via, err := registry.GetMember(ctx, tx, m.ViaASN)
			if err != nil {
				return nil, &invalid.Error{Field: fmt.Sprintf("measurements[%d].via_asn", i), Msg: fmt.Sprintf("AS%d is not a member", m.ViaASN)}
			}
			return []any{who, m.IdempotencyKey, via.ID, m.Prefix.Masked().String(), m.Target.String(),
				store.Micros(m.At), m.LatencyUs, m.JitterUs, m.LossPPM, m.ASHops, m.IPHops, m.ProbesSent}, nil
		})
		return err
	})
	if err != nil {
		return 0, 0, err // nothing of the batch was stored
	}
	return accepted, duplicates, nil
}

// Query returns the matrix cells newer than maxAge; via 0 and an invalid
// prefix match any. Each cell is the pooled view of its path, each
// vantage weighted once (see cell): the median of the vantages' averages.
func (x *Matrix) Query(ctx context.Context, via uint32, prefix netip.Prefix, maxAge time.Duration) ([]Entry, error) {
	q := `SELECT v.asn, m.prefix, coalesce(avg(CASE WHEN m.loss_ppm < 1000000 THEN m.latency_us END), 0),
		coalesce(avg(CASE WHEN m.loss_ppm < 1000000 THEN m.jitter_us END), 0), avg(m.loss_ppm), max(m.as_hops), count(*), max(m.measured_us),
		count(CASE WHEN m.loss_ppm < 1000000 THEN 1 END)
		FROM measurements m JOIN members v ON v.id = m.via_id WHERE m.measured_us >= ?`
	args := []any{store.Micros(x.now().Add(-maxAge))}
	if via != 0 {
		q += " AND v.asn = ?"
		args = append(args, via)
	}
	if prefix.IsValid() {
		q += " AND m.prefix = ?"
		args = append(args, prefix.Masked().String())
	}
	rows, err := x.db.QueryContext(ctx, q+" GROUP BY v.asn, m.prefix, m.reporter_id, m.source ORDER BY v.asn, m.prefix", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Entry
	var cs []vantageCell
	var cur Entry
	flush := func() {
		if len(cs) == 0 {
			return
		}
		c := pool(cs)
		cur.LatencyUs, cur.JitterUs, cur.LossPPM, cur.ASHops, cur.Samples, cur.Vantages = c.LatencyUs, c.JitterUs, c.LossPPM, c.ASHops, c.Samples, c.Vantages
		out = append(out, cur)
		cs = cs[:0]
	}
	for rows.Next() {
		var e Entry
		var v vantageCell
		var lat, jit, loss float64
		var last int64
		if err := rows.Scan(&e.ViaASN, &e.Prefix, &lat, &jit, &loss, &v.ASHops, &v.Samples, &last, &v.answered); err != nil {
			return nil, err
		}
		v.LatencyUs, v.JitterUs, v.LossPPM = int64(lat), int64(jit), int32(loss)
		e.Prefix = strings.TrimSpace(e.Prefix)
		if e.ViaASN != cur.ViaASN || e.Prefix != cur.Prefix {
			flush()
			cur = Entry{ViaASN: e.ViaASN, Prefix: e.Prefix}
		}
		if t := store.Time(last); t.After(cur.Last) {
			cur.Last = t
		}
		cs = append(cs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

// cell is the quality of the path through via toward prefixes since
// since: vantage's own measurements, or for vantage 0 the pooled view.
//
// The pooled view weighs each vantage once, however much it reported: each
// vantage (a member's agent, or a third-party source such as RIPE Atlas)
// is reduced to its own averages, and each figure is the median of theirs
// (latency and jitter over the vantages with an answered round); the error
// bars, probe count and loss dispersion are a typical vantage's (their
// medians), so a loud vantage neither moves the figures past the others'
// nor makes them look more certain. Samples counts every measurement;
// Vantages how many vantages there were.
func (x *Matrix) cell(ctx context.Context, vantage, via uint32, prefixes []netip.Prefix, since int64) (*Cell, int64, error) {
	if len(prefixes) == 0 {
		return nil, 0, nil
	}
	args := []any{via, since}
	for _, p := range prefixes {
		args = append(args, p.Masked().String())
	}
	q := `SELECT count(*), avg(CASE WHEN loss_ppm < 1000000 THEN latency_us END),
		avg(CASE WHEN loss_ppm < 1000000 THEN jitter_us END), avg(loss_ppm), max(as_hops), min(measured_us),
		sum(probes_sent), min(probes_sent), count(CASE WHEN loss_ppm < 1000000 THEN 1 END),
		avg(CASE WHEN loss_ppm < 1000000 THEN latency_us * latency_us END),
		avg(CASE WHEN loss_ppm < 1000000 THEN jitter_us * jitter_us END),
		sum(loss_ppm * probes_sent), sum(loss_ppm * loss_ppm * probes_sent) FROM measurements
		WHERE via_id = (SELECT id FROM members WHERE asn = ?) AND measured_us >= ?
		AND prefix IN (` + strings.TrimSuffix(strings.Repeat("?,", len(prefixes)), ",") + `)`
	if vantage != 0 {
		q += ` AND reporter_id = (SELECT id FROM members WHERE asn = ?)`
		args = append(args, vantage)
	}
	rows, err := x.db.QueryContext(ctx, q+` GROUP BY reporter_id, source`, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var cs []vantageCell
	oldest := int64(0)
	for rows.Next() {
		var c vantageCell
		var lat, jit, loss, hops sql.NullFloat64
		var old, probes, minProbes sql.NullInt64
		var lat2, jit2, lostPPM, lost2PPM sql.NullFloat64
		if err := rows.Scan(&c.Samples, &lat, &jit, &loss, &hops, &old,
			&probes, &minProbes, &c.answered, &lat2, &jit2, &lostPPM, &lost2PPM); err != nil {
			return nil, 0, err
		}
		if c.Samples == 0 {
			continue
		}
		c.LatencyUs, c.JitterUs, c.LossPPM, c.ASHops = int64(lat.Float64), int64(jit.Float64), int32(loss.Float64), int32(hops.Float64)
		if minProbes.Int64 > 0 {
			c.Probes = probes.Int64
			c.LossDispersion = pathscore.DispersionOfSums(int64(c.Samples), float64(c.Probes), lostPPM.Float64/1e6, lost2PPM.Float64/1e12)
		}
		c.LatencyErrUs, c.JitterErrUs = stdErr(c.answered, lat.Float64, lat2.Float64), stdErr(c.answered, jit.Float64, jit2.Float64)
		if c.answered == 1 {
			// One measurement: its jitter is the spread of its probes.
			c.LatencyErrUs = int64(jit.Float64 / math.Sqrt(float64(max(probes.Int64, 1))))
			c.JitterErrUs = int64(jit.Float64)
		}
		if oldest == 0 || old.Int64 < oldest {
			oldest = old.Int64
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil || len(cs) == 0 {
		return nil, 0, err
	}
	c := pool(cs)
	c.Vantage = vantage
	return c, oldest, nil
}

// Latest returns, per path measured since since, its latest measurement
// time: what the planner needs to tell due paths from fresh ones.
func (x *Matrix) Latest(ctx context.Context, since time.Time) (map[Path]time.Time, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT r.asn, v.asn, m.prefix, max(m.measured_us) FROM measurements m
		JOIN members r ON r.id = m.reporter_id JOIN members v ON v.id = m.via_id
		WHERE m.measured_us >= ? GROUP BY m.reporter_id, m.via_id, m.prefix, r.asn, v.asn`, store.Micros(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[Path]time.Time{}
	for rows.Next() {
		var p Path
		var prefix string
		var at int64
		if err := rows.Scan(&p.Vantage, &p.Via, &prefix, &at); err != nil {
			return nil, err
		}
		if p.Prefix, err = netip.ParsePrefix(prefix); err != nil {
			return nil, fmt.Errorf("measurements: stored prefix %q: %w", prefix, err)
		}
		out[p] = store.Time(at)
	}
	return out, rows.Err()
}

// Counts returns how many stored measurements each source has (agent,
// atlas): for the import's summary and tests.
func (x *Matrix) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT source, count(*) FROM measurements GROUP BY source`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// pathMeasurement is a measurement as Paths notes it: of path, by reporter
// (NULL: a third party), taken at (µs); id is its row id where read.
type pathMeasurement struct {
	id, at   int64
	reporter sql.NullInt64
	path     pathKey
}

// measurementsAfter reads the measurements stored after id seen, in id order.
func measurementsAfter(ctx context.Context, q store.Querier, seen int64) ([]pathMeasurement, error) {
	rows, err := q.QueryContext(ctx, "SELECT id, reporter_id, via_id, prefix, measured_us FROM measurements WHERE id > ? ORDER BY id", seen)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []pathMeasurement
	for rows.Next() {
		var r pathMeasurement
		if err := rows.Scan(&r.id, &r.reporter, &r.path.via, &r.path.prefix, &r.at); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// lastMeasurementID is the highest measurement id (0: none).
func lastMeasurementID(ctx context.Context, q store.Querier) (int64, error) {
	var last int64
	err := q.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM measurements").Scan(&last)
	return last, err
}

// latestOfPaths reads each reporter's latest measurement of each path
// since bound, stopping after more than limit.
func latestOfPaths(ctx context.Context, q store.Querier, bound int64, limit int) ([]pathMeasurement, error) {
	rows, err := q.QueryContext(ctx, `SELECT reporter_id, via_id, prefix, max(measured_us) FROM measurements
		WHERE measured_us >= ? GROUP BY reporter_id, via_id, prefix`, bound)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ss []pathMeasurement
	for rows.Next() && len(ss) <= limit {
		var s pathMeasurement
		if err := rows.Scan(&s.reporter, &s.path.via, &s.path.prefix, &s.at); err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, rows.Err()
}

// latestOfPath reads each reporter's latest measurement of path k since
// bound.
func latestOfPath(ctx context.Context, q store.Querier, k pathKey, bound int64) ([]pathMeasurement, error) {
	rows, err := q.QueryContext(ctx, `SELECT reporter_id, max(measured_us) FROM measurements
			WHERE via_id = ? AND prefix = ? AND measured_us >= ? GROUP BY reporter_id`, k.via, k.prefix, bound)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ss []pathMeasurement
	for rows.Next() {
		s := pathMeasurement{path: k}
		if err := rows.Scan(&s.reporter, &s.at); err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	return ss, rows.Err()
}

// ViaMeasurement is one measurement through a seller, as settlement's
// breach check reads it: ReporterID 0 is a third-party Source's.
type ViaMeasurement struct {
	ReporterID int64
	Source     string
	Prefix     string
	At         int64 // µs
	LatencyUs  int64
	JitterUs   int64
	LossPPM    int64
	ASHops     int64
	ProbesSent int64
}

// MeasurementsVia reads the measurements through member viaID toward
// prefixes taken in [from, to) (µs), by vantage, prefix and time.
func MeasurementsVia(ctx context.Context, q store.Querier, viaID, from, to int64, prefixes []string) ([]ViaMeasurement, error) {
	args := []any{viaID, from, to}
	for _, p := range prefixes {
		args = append(args, p)
	}
	rows, err := q.QueryContext(ctx, `SELECT coalesce(reporter_id, 0), source, prefix, measured_us, latency_us, jitter_us, loss_ppm, as_hops, probes_sent
		FROM measurements WHERE via_id = ? AND measured_us >= ? AND measured_us < ?
		AND prefix IN (`+strings.TrimSuffix(strings.Repeat("?,", len(prefixes)), ",")+`) ORDER BY reporter_id, source, prefix, measured_us, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ViaMeasurement
	for rows.Next() {
		var m ViaMeasurement
		if err := rows.Scan(&m.ReporterID, &m.Source, &m.Prefix, &m.At, &m.LatencyUs, &m.JitterUs, &m.LossPPM, &m.ASHops, &m.ProbesSent); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
