package settle

import (
	"context"
	"database/sql"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The ledger table's SQL: a settlement run's entries, payments, and the
// credit check's reads of a member's balance.

// runEntry is one ledger entry a run writes: the change v of key k.
type runEntry struct {
	k entryKey
	v int64
}

// insertRunEntries writes a run's entries in multi-row inserts.
func insertRunEntries(ctx context.Context, tx *sql.Tx, runID int64, p Period, correct bool, now int64, diffs []runEntry) error {
	const cols, row, batch = "run_id, member_id, period_start_us, trade_id, kind, amount_micros, correction, created_us", "(?,?,?,?,?,?,?,?)", 100
	corr := 0
	if correct {
		corr = 1
	}
	for i := 0; i < len(diffs); i += batch {
		chunk := diffs[i:min(i+batch, len(diffs))]
		args := make([]any, 0, len(chunk)*8)
		for _, e := range chunk {
			var member any
			if e.k.member != 0 {
				member = e.k.member
			}
			args = append(args, runID, member, store.Micros(p.Start), e.k.trade, e.k.kind, e.v, corr, now)
		}
		if _, err := tx.ExecContext(ctx, store.InsertRows("ledger", cols, row, len(chunk)), args...); err != nil {
			return err
		}
	}
	return nil
}

func periodEntries(ctx context.Context, tx *sql.Tx, p Period) (map[entryKey]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT coalesce(member_id, 0), trade_id, kind, sum(amount_micros) FROM ledger
		WHERE period_start_us = ? AND run_id IS NOT NULL GROUP BY 1, 2, 3`, store.Micros(p.Start))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[entryKey]int64{}
	for rows.Next() {
		var k entryKey
		var v int64
		if err := rows.Scan(&k.member, &k.trade, &k.kind, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

func insertPayment(ctx context.Context, tx *sql.Tx, memberID, amountMicros int64, memo string, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO ledger (member_id, kind, amount_micros, memo, created_us) VALUES (?,?,?,?,?)`,
		memberID, EntryPayment, amountMicros, memo, now)
	return err
}

// creditLedgerSQL is the credit cache's read of the settled end and the
// ledger delta in one snapshot; ?1 member id, ?2 last ledger id seen.
const creditLedgerSQL = `SELECT (SELECT coalesce(max(period_end_us), 0) FROM settlement_runs),
		(SELECT coalesce(sum(amount_micros), 0) FROM ledger WHERE member_id = ?1 AND id > ?2),
		(SELECT coalesce(max(id), ?2) FROM ledger WHERE member_id = ?1 AND id > ?2),
		(SELECT count(*) FROM ledger WHERE member_id = ?1 AND id > ?2)`
