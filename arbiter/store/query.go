package store

import (
	"context"
	"database/sql"
)

// Querier is what *sql.DB, *sql.Tx and *DB all offer: the owners' query
// functions take it, so a caller passes its transaction (and reads its own
// writes) or the database.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
