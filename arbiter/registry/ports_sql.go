package registry

import (
	"context"
	"database/sql"
)

// The ports table's SQL: a member's port on the trading switch. It is read
// with the member (members_sql.go).

func insertPort(ctx context.Context, tx *sql.Tx, memberID int64, p Port) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, "INSERT INTO ports (member_id, name, capacity_bps) VALUES (?, ?, ?) RETURNING id", memberID, p.Name, p.CapacityBps).Scan(&id)
	return id, err
}
