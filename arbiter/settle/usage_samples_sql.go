package settle

import (
	"context"
	"database/sql"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The usage_samples table's SQL: the agents' reports and the reads of a
// trade's samples for billing, the usage views and the dashboard's chart.

// insertSample stores a reported sample; a key the reporter sent before is
// skipped.
const insertSample = `INSERT INTO usage_samples (reporter_id, idempotency_key, trade_id, role, start_us, end_us,
				bps, sample_count) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (reporter_id, idempotency_key) DO NOTHING`

// samplesOfTrade reads a trade's samples that start in [from, to), for
// readSamples; every reader of usage groups the same rows.
const samplesOfTrade = `SELECT role, start_us, end_us, bps, sample_count FROM usage_samples
	WHERE trade_id = ? AND start_us >= ? AND start_us < ? ORDER BY start_us, id`

func readSamples(ctx context.Context, stmt *sql.Stmt, trade, from, to int64, out []Sample) ([]Sample, error) {
	rows, err := stmt.QueryContext(ctx, trade, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		s := Sample{TradeID: trade}
		var st, en int64
		if err := rows.Scan(&s.Role, &st, &en, &s.Bps, &s.SampleCount); err != nil {
			return nil, err
		}
		s.Start, s.End = store.Time(st), store.Time(en)
		out = append(out, s)
	}
	return out, rows.Err()
}

// ChartSamples reads trades' samples for a usage chart, one trade at a time
// over one prepared statement; Close it when done.
type ChartSamples struct{ stmt *sql.Stmt }

// ChartSamples prepares the chart's read.
func (s *Settlement) ChartSamples(ctx context.Context) (*ChartSamples, error) {
	stmt, err := s.db.PrepareContext(ctx, `SELECT role, start_us, end_us, bps FROM usage_samples
		WHERE trade_id = ? AND end_us > ? AND start_us < ? ORDER BY start_us, role`)
	if err != nil {
		return nil, err
	}
	return &ChartSamples{stmt}, nil
}

// Close releases the prepared statement.
func (c *ChartSamples) Close() error { return c.stmt.Close() }

// Of returns trade's samples that overlap [from, to), by start and role,
// without their SampleCount.
func (c *ChartSamples) Of(ctx context.Context, trade int64, from, to time.Time) ([]Sample, error) {
	rs, err := c.stmt.QueryContext(ctx, trade, store.Micros(from), store.Micros(to))
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []Sample
	for rs.Next() {
		s := Sample{TradeID: trade}
		var st, en int64
		if err := rs.Scan(&s.Role, &st, &en, &s.Bps); err != nil {
			return nil, err
		}
		s.Start, s.End = store.Time(st), store.Time(en)
		out = append(out, s)
	}
	return out, rs.Err()
}
