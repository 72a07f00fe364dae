package registry

import (
	"context"
	"database/sql"
)

// The ports table's SQL: a member's port on the trading switch. It is read
// with the member (members_sql.go).

func insertPort(ctx context.Context, tx *sql.Tx, memberID int64, p Port) (int64, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO ports (member_id, name, capacity_bps) VALUES (?, ?, ?)", memberID, p.Name, p.CapacityBps)
	if err != nil {
		return 0, err
	}
	id, _ := res.LastInsertId()
	return id, nil
}
