package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TableCopy is one table copied to PostgreSQL: its rows and the checksum
// both databases gave for them (sha256 of every row in key order).
type TableCopy struct {
	Table    string
	Rows     int64
	Checksum string
}

// CopyToPostgres copies the sqlite database at path, as of one read
// snapshot (the exchange may go on writing it), into the PostgreSQL
// database dsn names, which must be empty: its schema is created at this
// build's version, every table is copied in one PostgreSQL transaction,
// the identity sequences continue after the copied ids, and each table is
// read back from both in key order and compared (row count and checksum)
// before the transaction commits. Nothing is written if anything differs.
func CopyToPostgres(ctx context.Context, path, dsn string, progress func(TableCopy)) ([]TableCopy, error) {
	// A read-only connection whose BEGIN takes no lock: the running
	// exchange keeps writing while the copy reads its snapshot.
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_txlock", "deferred")
	q.Set("_busy_timeout", "10000")
	src, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	defer src.Close()
	stx, err := src.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer stx.Rollback()
	var v int
	if err := stx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if v != Latest() {
		return nil, fmt.Errorf("%s has schema version %d, this build's is %d: run this bwx-arbiter on it once (it migrates at start), then copy", path, v, Latest())
	}
	// The snapshot starts with the first read; it holds for the whole copy.
	tables, err := sqliteTables(ctx, stx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}

	dst, err := OpenConfig(Config{Driver: Postgres, DSN: dsn})
	if err != nil {
		return nil, err
	}
	dst.Close()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	ptx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer ptx.Rollback(ctx)
	// Writers on the target (an arbiter started too early) wait.
	if _, err := ptx.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", writerLock)); err != nil {
		return nil, err
	}
	for _, t := range tables {
		var n int64
		if err := ptx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t.name}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("target table %s: %w", t.name, err)
		}
		if n != 0 {
			return nil, fmt.Errorf("target table %s already has %d rows: refusing to copy into a database in use (give an empty database)", t.name, n)
		}
	}
	var out []TableCopy
	for _, t := range tables {
		if err := t.pgTypes(ctx, ptx); err != nil {
			return nil, err
		}
		n, err := copyTable(ctx, stx, ptx, t)
		if err != nil {
			return nil, fmt.Errorf("copying %s: %w", t.name, err)
		}
		if err := resetIdentity(ctx, ptx, t.name); err != nil {
			return nil, fmt.Errorf("%s: identity sequence: %w", t.name, err)
		}
		// Row for row: both sides read in key order and hashed.
		srows, err := stx.QueryContext(ctx, checksumQuery(t, false))
		if err != nil {
			return nil, fmt.Errorf("reading back %s from sqlite: %w", t.name, err)
		}
		srcSum, srcN, err := checksum(srows, t)
		if err != nil {
			return nil, fmt.Errorf("reading back %s from sqlite: %w", t.name, err)
		}
		prows, err := ptx.Query(ctx, checksumQuery(t, true))
		if err != nil {
			return nil, fmt.Errorf("reading back %s from postgres: %w", t.name, err)
		}
		dstSum, dstN, err := checksum(pgRows{prows}, t)
		if err != nil {
			return nil, fmt.Errorf("reading back %s from postgres: %w", t.name, err)
		}
		if srcN != n || dstN != n || srcSum != dstSum {
			return nil, fmt.Errorf("table %s differs after the copy: sqlite %d rows (sha256 %s), postgres %d rows (sha256 %s): nothing committed", t.name, srcN, srcSum, dstN, dstSum)
		}
		c := TableCopy{Table: t.name, Rows: n, Checksum: srcSum}
		out = append(out, c)
		if progress != nil {
			progress(c)
		}
	}
	if err := ptx.Commit(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

type copyTableInfo struct {
	name   string
	cols   []string
	keys   []string        // primary key columns in order, else every column
	isText map[string]bool // PostgreSQL's type of each column is text
}

// sqliteTables lists the tables (schema_version's own bookkeeping aside)
// in an order where each comes after those it refers to.
func sqliteTables(ctx context.Context, tx *sql.Tx) ([]*copyTableInfo, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	byName := map[string]*copyTableInfo{}
	deps := map[string][]string{}
	for _, n := range names {
		t := &copyTableInfo{name: n}
		byName[n] = t
		type col struct {
			name string
			pk   int
		}
		var cols []col
		r, err := tx.QueryContext(ctx, "SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", n)
		if err != nil {
			return nil, err
		}
		for r.Next() {
			var c col
			if err := r.Scan(&c.name, &c.pk); err != nil {
				r.Close()
				return nil, err
			}
			cols = append(cols, c)
			t.cols = append(t.cols, c.name)
		}
		r.Close()
		sort.SliceStable(cols, func(i, j int) bool { return cols[i].pk < cols[j].pk })
		for _, c := range cols {
			if c.pk > 0 {
				t.keys = append(t.keys, c.name)
			}
		}
		if len(t.keys) == 0 {
			t.keys = t.cols
		}
		r, err = tx.QueryContext(ctx, "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?)", n)
		if err != nil {
			return nil, err
		}
		for r.Next() {
			var d string
			if err := r.Scan(&d); err != nil {
				r.Close()
				return nil, err
			}
			if d != n {
				deps[n] = append(deps[n], d)
			}
		}
		r.Close()
	}
	var order []*copyTableInfo
	done := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		switch done[n] {
		case 1:
			return fmt.Errorf("foreign keys form a cycle through %s", n)
		case 2:
			return nil
		}
		done[n] = 1
		for _, d := range deps[n] {
			if byName[d] == nil {
				return fmt.Errorf("table %s refers to %s, which does not exist", n, d)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		done[n] = 2
		order = append(order, byName[n])
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// pgTypes reads which of t's columns are text on PostgreSQL, and checks
// the target has every column sqlite has.
func (t *copyTableInfo) pgTypes(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1", t.name)
	if err != nil {
		return err
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var c, ty string
		if err := rows.Scan(&c, &ty); err != nil {
			return err
		}
		types[c] = ty
	}
	if err := rows.Err(); err != nil {
		return err
	}
	t.isText = map[string]bool{}
	for _, c := range t.cols {
		ty, ok := types[c]
		switch {
		case !ok:
			return fmt.Errorf("target table %s has no column %s", t.name, c)
		case ty == "text":
			t.isText[c] = true
		case ty != "bigint":
			return fmt.Errorf("target column %s.%s is %s: the copy knows bigint and text", t.name, c, ty)
		}
	}
	return nil
}

// scanTargets are fresh holders for one row of t, typed by the target's
// columns: sqlite may hold any value in any column, PostgreSQL may not.
func (t *copyTableInfo) scanTargets() []any {
	out := make([]any, len(t.cols))
	for i, c := range t.cols {
		if t.isText[c] {
			out[i] = new(sql.NullString)
		} else {
			out[i] = new(sql.NullInt64)
		}
	}
	return out
}

func values(holders []any) []any {
	out := make([]any, len(holders))
	for i, h := range holders {
		switch h := h.(type) {
		case *sql.NullString:
			if h.Valid {
				out[i] = h.String
			}
		case *sql.NullInt64:
			if h.Valid {
				out[i] = h.Int64
			}
		}
	}
	return out
}

func quoted(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, t *copyTableInfo) (int64, error) {
	rows, err := src.QueryContext(ctx, "SELECT "+quoted(t.cols)+" FROM "+pgx.Identifier{t.name}.Sanitize())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n, err := dst.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, &sqliteRows{rows: rows, t: t})
	if err != nil {
		return 0, err
	}
	return n, rows.Err()
}

// sqliteRows feeds pgx's COPY from sqlite rows.
type sqliteRows struct {
	rows *sql.Rows
	t    *copyTableInfo
	vals []any
	err  error
}

func (r *sqliteRows) Next() bool {
	if !r.rows.Next() {
		return false
	}
	h := r.t.scanTargets()
	if r.err = r.rows.Scan(h...); r.err != nil {
		return false
	}
	r.vals = values(h)
	return true
}

func (r *sqliteRows) Values() ([]any, error) { return r.vals, r.err }
func (r *sqliteRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

// resetIdentity makes table's identity column (if any) continue after the
// highest id copied.
func resetIdentity(ctx context.Context, tx pgx.Tx, table string) error {
	rows, err := tx.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'`, table)
	if err != nil {
		return err
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, c)
	}
	rows.Close()
	for _, c := range cols {
		id := pgx.Identifier{c}.Sanitize()
		_, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(`+id+`) FROM `+pgx.Identifier{table}.Sanitize()+`), 0) + 1, false)`, table, c)
		if err != nil {
			return err
		}
	}
	return nil
}

type rowsIter interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Close() error { r.Rows.Close(); return nil }

// checksumQuery reads t's rows in key order (text keys in byte order on
// both engines).
func checksumQuery(t *copyTableInfo, pg bool) string {
	order := make([]string, len(t.keys))
	for i, k := range t.keys {
		order[i] = pgx.Identifier{k}.Sanitize()
		if pg && t.isText[k] {
			order[i] += ` COLLATE "C"`
		}
	}
	return "SELECT " + quoted(t.cols) + " FROM " + pgx.Identifier{t.name}.Sanitize() + " ORDER BY " + strings.Join(order, ", ")
}

// checksum hashes the rows with each value's kind, so NULL, 0 and ”
// differ.
func checksum(rows rowsIter, t *copyTableInfo) (string, int64, error) {
	defer rows.Close()
	h := sha256.New()
	var n int64
	for rows.Next() {
		holders := t.scanTargets()
		if err := rows.Scan(holders...); err != nil {
			return "", 0, err
		}
		for _, v := range values(holders) {
			hashValue(h, v)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func hashValue(h hash.Hash, v any) {
	var b [9]byte
	switch v := v.(type) {
	case nil:
		h.Write([]byte{0})
	case int64:
		b[0] = 1
		binary.BigEndian.PutUint64(b[1:], uint64(v))
		h.Write(b[:])
	case string:
		b[0] = 2
		binary.BigEndian.PutUint64(b[1:], uint64(len(v)))
		h.Write(b[:])
		h.Write([]byte(v))
	default:
		panic(errors.New("store: checksum of an unexpected value"))
	}
}
