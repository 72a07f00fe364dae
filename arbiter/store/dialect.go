package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"
)

// Dialect is the database engine behind a DB. The domain packages write one
// SQL text for both: "?" placeholders, ON CONFLICT for upserts and ignores,
// RETURNING for generated ids, integers for times (Micros) and booleans.
// What differs is handled here once: PostgreSQL's placeholders are
// rewritten to $n by the driver the store registers, and the migrations
// have per-dialect files where the DDL differs (Migrations).
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ParseDialect reads a configured driver name.
func ParseDialect(s string) (Dialect, error) {
	switch Dialect(s) {
	case SQLite, Postgres:
		return Dialect(s), nil
	}
	return "", fmt.Errorf("unknown store driver %q (want sqlite or postgres)", s)
}

// writerLock is the PostgreSQL advisory lock every read-write transaction
// takes when it begins: writers run one at a time, as they do on sqlite
// (BEGIN IMMEDIATE), which the domain packages' read-then-write
// transactions were written for. Readers outside a transaction never wait.
const writerLock = 0x62777801 // "bwx" 1

// pgConnector opens pgx connections whose queries are rebound from "?" to
// $n, so *sql.DB, *sql.Tx, *sql.Stmt and *sql.Conn work unchanged.
type pgConnector struct{ inner driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{Conn: conn.(*stdlib.Conn)}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn is pgx's database/sql connection with the queries rebound; every
// other method (CheckNamedValue, ResetSession, Ping, ...) is pgx's own.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(rebind(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil || opts.ReadOnly {
		return tx, err
	}
	if _, err := c.Conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+strconv.Itoa(writerLock)+")", nil); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// CheckNamedValue passes arguments through to pgx, as pgx's own does,
// except booleans: the schema stores them as integers 0 and 1 (sqlite has
// no boolean type), and sqlite's driver converts them so.
func (c *pgConn) CheckNamedValue(v *driver.NamedValue) error {
	if b, ok := v.Value.(bool); ok {
		v.Value = int64(0)
		if b {
			v.Value = int64(1)
		}
	}
	return nil
}

// rebound caches rewritten queries: most are the same few hundred texts.
var rebound sync.Map

// reboundMax bounds the cache; queries built with a varying number of
// placeholders beyond it are rewritten each time.
const reboundMax = 4096

var reboundN int64
var reboundMu sync.Mutex

// rebind rewrites "?" placeholders to $1, $2, ... (and "?N" to $N) outside string literals,
// quoted identifiers and comments.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	if r, ok := rebound.Load(q); ok {
		return r.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		ch := q[i]
		switch {
		case ch == '\'' || ch == '"':
			j := strings.IndexByte(q[i+1:], ch)
			if j < 0 {
				b.WriteString(q[i:])
				i = len(q)
				continue
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case ch == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j - 1
		case ch == '?':
			// ?NNN is sqlite's numbered parameter: $NNN.
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
				i = j - 1
				continue
			}
			n++
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(ch)
		}
	}
	r := b.String()
	reboundMu.Lock()
	if reboundN < reboundMax {
		reboundN++
		rebound.Store(q, r)
	}
	reboundMu.Unlock()
	return r
}

// openPostgres opens a pool on dsn, a libpq connection string or URL; a
// list of hosts with target_session_attrs=read-write finds the primary.
func openPostgres(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres dsn: %w", err)
	}
	return sql.OpenDB(pgConnector{inner: stdlib.GetConnector(*cfg)}), nil
}

// CheckDSN says whether dsn is a PostgreSQL connection string pgx reads,
// without connecting; the error never repeats a password.
func CheckDSN(dsn string) error {
	if _, err := pgx.ParseConfig(dsn); err != nil {
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			return errors.New("not a PostgreSQL connection string or URL: " + pe.Unwrap().Error())
		}
		return errors.New("not a PostgreSQL connection string or URL (key=value pairs or postgres://...)")
	}
	return nil
}

// IsUnique says err is a unique constraint's refusal, on either engine.
func IsUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// IsForeignKey says err is a foreign key's refusal, on either engine.
func IsForeignKey(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintForeignKey
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}
