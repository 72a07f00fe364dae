// Package importlog is the registry's import log (the registry_imports
// table): one row per IRR or RPKI import attempt, successful or not. It
// sits below registry so that registry/irr and registry/rpki, which
// registry imports, can write it too; all of the table's SQL is in this
// file.
package importlog

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
)

// Entry is one import attempt; Error is empty for one that committed.
type Entry struct {
	Kind, Source                           string // Kind is "irr" or "rpki"
	Files                                  []string
	Started, Finished                      time.Time
	Objects, Malformed, Accepted, Previous int
	Error                                  string
}

// Execer is what both *sql.DB and *sql.Tx offer to write with.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Log records e: in the import's transaction, or on its own for a failure.
func Log(ctx context.Context, db Execer, e Entry) error {
	_, err := db.ExecContext(ctx, `INSERT INTO registry_imports
		(kind, source, files, started_us, finished_us, objects, malformed, accepted, previous, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Kind, e.Source, strings.Join(e.Files, " "), store.Micros(e.Started), store.Micros(e.Finished), e.Objects, e.Malformed, e.Accepted, e.Previous, e.Error)
	return err
}

// LastOK is the id of the latest import that committed (0: none); it
// changes with every one.
func LastOK(ctx context.Context, q store.Querier) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM registry_imports WHERE error = ''`).Scan(&id)
	return id, err
}

// Latest is, per source of kind, the latest import that committed: when it
// finished and the files it read.
type Latest struct {
	Finished time.Time
	Files    string
}

// LatestOK reads the latest committed import of each source of kind.
func LatestOK(ctx context.Context, q store.Querier, kind string) (map[string]Latest, error) {
	rows, err := q.QueryContext(ctx, `SELECT source, finished_us, files FROM registry_imports WHERE kind = ? AND error = '' ORDER BY id`, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Latest{}
	for rows.Next() {
		var src, files string
		var us int64
		if err := rows.Scan(&src, &us, &files); err != nil {
			return nil, err
		}
		out[src] = Latest{Finished: store.Time(us), Files: files}
	}
	return out, rows.Err()
}
