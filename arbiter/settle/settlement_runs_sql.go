package settle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The settlement_runs table's SQL: one row per run of a period, with the
// exchange's statement.

// insertRun records run seq of p and returns its id.
func insertRun(ctx context.Context, tx *sql.Tx, p Period, seq int, policy Policy, exchange string, now int64) (int64, error) {
	var runID int64
	err := tx.QueryRowContext(ctx, `INSERT INTO settlement_runs (period_start_us, period_end_us, seq, policy, exchange, created_us)
			VALUES (?,?,?,?,?,?) RETURNING id`, store.Micros(p.Start), store.Micros(p.End), seq, policy.String(), exchange, now).Scan(&runID)
	return runID, err
}

// checkRuns returns the seq the next run of p takes, refusing a first run
// of a settled period, a correction of an unsettled one and any period that
// overlaps a settled one without being it.
func (s *Settlement) checkRuns(ctx context.Context, q store.Querier, p Period, correct bool) (int, error) {
	var n, other int
	var last sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT count(*), max(seq),
		(SELECT count(*) FROM settlement_runs WHERE period_start_us < ? AND period_end_us > ? AND NOT (period_start_us = ? AND period_end_us = ?))
		FROM settlement_runs WHERE period_start_us = ? AND period_end_us = ?`,
		store.Micros(p.End), store.Micros(p.Start), store.Micros(p.Start), store.Micros(p.End), store.Micros(p.Start), store.Micros(p.End)).Scan(&n, &last, &other)
	switch {
	case err != nil:
		return 0, err
	case other > 0:
		return 0, fmt.Errorf("period %s overlaps a settled period of other bounds", p)
	case n > 0 && !correct:
		return 0, fmt.Errorf("%w: %s (run a correction to change it)", ErrSettled, p)
	case n == 0 && correct:
		return 0, fmt.Errorf("%w: %s (run it before correcting it)", ErrNotSettled, p)
	case n == 0:
		return 0, nil
	}
	return int(last.Int64) + 1, nil
}

// ExchangeStatement is the exchange's statement for p as last settled.
func (s *Settlement) ExchangeStatement(ctx context.Context, p Period) (Exchange, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT exchange FROM settlement_runs WHERE period_start_us = ? AND period_end_us = ?
		ORDER BY seq DESC LIMIT 1`, store.Micros(p.Start), store.Micros(p.End)).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return Exchange{}, fmt.Errorf("%w: %s", ErrNotSettled, p)
	}
	if err != nil {
		return Exchange{}, err
	}
	var ex Exchange
	return ex, json.Unmarshal([]byte(doc), &ex)
}

// SettledPeriods lists the settled periods, newest first.
func (s *Settlement) SettledPeriods(ctx context.Context) ([]Period, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT DISTINCT period_start_us, period_end_us FROM settlement_runs ORDER BY period_start_us DESC`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var ps []Period
	for rs.Next() {
		var a, b int64
		if err := rs.Scan(&a, &b); err != nil {
			return nil, err
		}
		ps = append(ps, Period{Start: store.Time(a), End: store.Time(b)})
	}
	return ps, rs.Err()
}
