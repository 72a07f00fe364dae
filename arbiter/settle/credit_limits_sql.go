package settle

import (
	"context"
	"database/sql"
)

// The credit_limits table's SQL: the operator's limit per member, and the
// credit check's reads that start from it. They find the member by ASN
// (a key lookup in members) and read the settlement tables alongside.

func setLimit(ctx context.Context, tx *sql.Tx, memberID, limitMicros, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO credit_limits (member_id, limit_micros, updated_us) VALUES (?,?,?)
			ON CONFLICT (member_id) DO UPDATE SET limit_micros = excluded.limit_micros, updated_us = excluded.updated_us`,
		memberID, limitMicros, now)
	return err
}

// creditSQL reads, for the credit report from scratch, member ?'s id, limit,
// ledger balance and the end of the last settled period, in one snapshot.
const creditSQL = `SELECT m.id, (SELECT limit_micros FROM credit_limits WHERE member_id = m.id),
		(SELECT coalesce(sum(amount_micros), 0) FROM ledger WHERE member_id = m.id),
		(SELECT coalesce(max(period_end_us), 0) FROM settlement_runs) FROM members m WHERE m.asn = ?`

// creditLimitSQL is the credit cache's first read: member ?'s id and limit.
const creditLimitSQL = `SELECT m.id, cl.limit_micros FROM members m LEFT JOIN credit_limits cl ON cl.member_id = m.id WHERE m.asn = ?`
