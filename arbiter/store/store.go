// Package store is the arbiter's database: one sqlite file in WAL mode with
// foreign keys on, versioned migrations that run at open, and the transaction
// helper the domain packages write their SQL against.
//
// Where SQL lives: each table has one owning domain package, and all SQL
// that reads or writes that table as its subject (the table after FROM,
// INTO or UPDATE; joins that only look up a key do not count) is in that
// package, in one file named for the table (book/trades_sql.go). Every other
// package calls the owner's functions. The owners:
//
//	registry       members, certificates, ports, routers, prefixes,
//	               announced_routes
//	registry/importlog  registry_imports (below irr and rpki, which write it)
//	registry/irr   irr_routes          registry/rpki  rpki_roas
//	book           orders, trades, events
//	delivery       deliveries
//	quality        measurements
//	settle         usage_samples, ledger, invoices, settlement_runs,
//	               settlement_disputes, credit_limits
//
// This package holds what every owner shares (the schema, transactions,
// the Querier the owners' functions take, time columns, multi-row and
// idempotent batch inserts) and no table's queries.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one numbered schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the embedded migrations in order.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		panic(err) // embedded: cannot fail at run time
	}
	var ms []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic("store: migration file name must be NNNN_name.sql: " + e.Name())
		}
		b, _ := migrationFS.ReadFile("migrations/" + e.Name())
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			panic(fmt.Sprintf("store: migrations must be numbered 1..n without gaps, found %d at position %d", m.Version, i+1))
		}
	}
	return ms
}

// Latest is the schema version this build migrates to.
func Latest() int { return len(Migrations()) }

// DB is the open database.
type DB struct {
	*sql.DB
	path string

	wrote     chan struct{} // a transaction committed: checkpoint soon
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// idleConns is how many connections the pool keeps open between uses.
const idleConns = 64

// checkpointEvery spaces the background checkpoints under a steady stream
// of commits.
const checkpointEvery = 10 * time.Millisecond

// Open opens (creating if needed) the database at path and migrates it to
// the latest version.
func Open(path string) (*DB, error) { return OpenVersion(path, Latest()) }

// OpenVersion migrates only up to version; tests use it to build old databases.
func OpenVersion(path string, version int) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "10000")
	// FULL: a committed trade or usage sample survives a power loss too,
	// not only a crash of the process (NORMAL would risk the last commits).
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate") // writers take the lock up front instead of failing on upgrade
	// Each connection keeps its statements prepared: most queries are the
	// same few dozen, and preparing is much of a small query's cost.
	q.Set("_stmt_cache_size", "64")
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Connections are kept rather than closed after each burst of
	// concurrent reads (database/sql keeps 2 by default): opening one runs
	// its pragmas and drops its page and statement caches.
	db.SetMaxIdleConns(idleConns)
	d := &DB{DB: db, path: path, wrote: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := d.migrate(context.Background(), version); err != nil {
		db.Close()
		return nil, err
	}
	go d.checkpointLoop()
	return d, nil
}

// Close stops the background checkpointer and closes the database.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		if d.stop != nil { // nil: not made by Open
			close(d.stop)
			<-d.stopped
		}
	})
	return d.DB.Close()
}

// Wrote tells the background checkpointer that a transaction committed.
// Tx calls it; writers that commit on their own connection call it too.
func (d *DB) Wrote() {
	select {
	case d.wrote <- struct{}{}:
	default:
	}
}

// checkpointLoop copies committed WAL frames into the database file in the
// background, so that the writer's own automatic checkpoint (every 1000
// frames, inside some caller's commit) finds little left to copy. A
// PASSIVE checkpoint blocks neither readers nor the writer. Durability
// does not depend on it: every commit is in the fsynced WAL already.
func (d *DB) checkpointLoop() {
	defer close(d.stopped)
	for {
		select {
		case <-d.stop:
			return
		case <-d.wrote:
		}
		d.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)") // best effort: the writer checkpoints too
		t := time.NewTimer(checkpointEvery)
		select {
		case <-d.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Version reads the schema version (PRAGMA user_version).
func (d *DB) Version(ctx context.Context) (int, error) {
	var v int
	err := d.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

func (d *DB) migrate(ctx context.Context, target int) error {
	ms := Migrations()
	if target < 0 || target > len(ms) {
		return fmt.Errorf("store: no migration %d (latest is %d)", target, len(ms))
	}
	var mode string
	if err := d.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("store: %s: %w", d.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("store: %s: journal mode is %q, want wal", d.path, mode)
	}
	cur, err := d.Version(ctx)
	if err != nil {
		return fmt.Errorf("store: %s: read schema version: %w", d.path, err)
	}
	if cur > len(ms) {
		return fmt.Errorf("store: %s has schema version %d, newer than this build's %d: refusing to run an older bwx-arbiter on it", d.path, cur, len(ms))
	}
	for _, m := range ms[cur:target] {
		// Each step and its version bump commit together, so a crash leaves
		// the database at a whole version.
		err := d.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.Version))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: %s: migration %d (%s): %w", d.path, m.Version, m.Name, err)
		}
	}
	return nil
}

// Tx runs fn in one transaction: committed if fn returns nil, rolled back
// otherwise (and on panic).
func (d *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return d.Finish(tx, fn)
}

// Finish runs fn in tx, begun on any of d's connections: it commits if fn
// returns nil (and tells the checkpointer), and rolls back otherwise and on
// panic.
func (d *DB) Finish(tx *sql.Tx, fn func(*sql.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
		if err != nil {
			tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err == nil {
		d.Wrote()
	}
	return err
}

// Plan is sqlite's plan for query with args, one line per step
// (EXPLAIN QUERY PLAN): tests check with it that a query seeks its index.
func (d *DB) Plan(query string, args ...any) (string, error) {
	rows, err := d.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		steps = append(steps, detail)
	}
	return strings.Join(steps, "\n"), rows.Err()
}

// Micros converts a time to the stored form: unix microseconds, UTC.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// Time converts a stored value back.
func Time(us int64) time.Time { return time.UnixMicro(us).UTC() }

// InsertRows builds "INSERT INTO <table> (<cols>) VALUES row,row,..." with n
// copies of row, a parenthesized placeholder list. Bulk writers use it:
// per-statement cost, not per-row, dominates sqlite inserts.
func InsertRows(table, cols, row string, n int) string {
	return "INSERT INTO " + table + " (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}
