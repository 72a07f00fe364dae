package rpki

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
)

// SetName is the import log's source for ROA imports: one relying party's
// output is the whole validated set, so an import replaces every ROA.
const SetName = "roas"

// ImportOptions tunes Import.
type ImportOptions struct {
	// AllowShrink replaces the ROAs even when the new set has less than
	// half as many: by default that is refused, since a relying party that
	// failed to fetch a trust anchor exports a short set, and routes it
	// would have found Invalid would pass as NotFound.
	AllowShrink bool
	MaxErrors   int
	Now         func() time.Time
	// Parsed, if set, is called when the file is read, before the write
	// transaction, with the ROAs to store (for a progress display).
	Parsed func(accepted int)
}

// Report is what an import did.
type Report struct {
	Stats
	Previous int // ROAs before
	Started  time.Time
	Finished time.Time
}

// ErrShrink is returned when an import would more than halve the ROAs.
var ErrShrink = errors.New("the new set has less than half the ROAs of the old")

const batchRows = 200

// Import parses one JSON export and replaces the stored ROAs with it in one
// transaction. A parse or database error, an export without any valid ROA,
// or one that would shrink the set (see AllowShrink) commits nothing; the
// attempt is logged with its error.
func Import(ctx context.Context, db *store.DB, name string, r io.Reader, opt ImportOptions) (Report, error) {
	now := opt.Now
	if now == nil {
		now = clock.Now
	}
	rep := Report{Started: now().UTC()}
	// Parse first, write after: the write transaction holds the database's
	// write lock, and the daemon must not wait for a slow pipe or disk.
	var roas []ROA
	st, err := ParseJSON(r, ParseOptions{File: name, MaxErrors: opt.MaxErrors}, func(roa ROA) error {
		roas = append(roas, roa)
		return ctx.Err()
	})
	rep.Stats = st
	if err == nil && st.Accepted == 0 {
		err = fmt.Errorf("%s: no valid ROA (%d malformed); nothing replaced", name, st.Malformed)
	}
	if err == nil {
		if opt.Parsed != nil {
			opt.Parsed(st.Accepted)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM rpki_roas").Scan(&rep.Previous); err != nil {
				return err
			}
			if !opt.AllowShrink && st.Accepted*2 < rep.Previous {
				return fmt.Errorf("%s: %d ROAs, had %d: %w; check the relying party's output, or allow it with --allow-shrink", name, st.Accepted, rep.Previous, ErrShrink)
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM rpki_roas"); err != nil {
				return err
			}
			if err := insert(ctx, tx, roas); err != nil {
				return err
			}
			rep.Finished = now().UTC()
			return logImport(ctx, tx, name, rep.Started, rep.Finished, st.ROAs, st.Malformed, st.Accepted, rep.Previous, "")
		})
	}
	if err != nil {
		rep.Finished = now().UTC()
		// Best effort: the failure is what the caller must see either way.
		_ = logImport(context.Background(), db, name, rep.Started, rep.Finished, rep.ROAs, rep.Malformed, 0, 0, err.Error())
		return rep, err
	}
	return rep, nil
}

// insert writes the ROAs in multi-row INSERTs: one cgo call per 200 rows.
func insert(ctx context.Context, tx *sql.Tx, roas []ROA) error {
	full, err := tx.PrepareContext(ctx, insertSQL(batchRows))
	if err != nil {
		return err
	}
	defer full.Close()
	args := make([]any, 0, 4*batchRows)
	for len(roas) > 0 {
		n := min(len(roas), batchRows)
		for _, roa := range roas[:n] {
			args = append(args, roa.Prefix.String(), roa.MaxLength, int64(roa.ASN), roa.TA)
		}
		if n == batchRows {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(n), args...)
		}
		if err != nil {
			return err
		}
		args = args[:0]
		roas = roas[n:]
	}
	return nil
}

func insertSQL(rows int) string {
	return store.InsertRows("rpki_roas", "prefix, max_length, asn, ta", "(?,?,?,?)", rows)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func logImport(ctx context.Context, db execer, file string, started, finished time.Time, objects, malformed, accepted, previous int, errText string) error {
	_, err := db.ExecContext(ctx, `INSERT INTO registry_imports
		(kind, source, files, started_us, finished_us, objects, malformed, accepted, previous, error)
		VALUES ('rpki', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		SetName, file, store.Micros(started), store.Micros(finished), objects, malformed, accepted, previous, errText)
	return err
}

// Querier is what both *sql.DB and *sql.Tx offer.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// LoadIndex reads every stored ROA into a new index.
func LoadIndex(ctx context.Context, q Querier) (*Index, error) {
	rows, err := q.QueryContext(ctx, "SELECT prefix, max_length, asn FROM rpki_roas")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ix := &Index{}
	var pfx string
	var ml int
	var asn int64
	for rows.Next() {
		if err := rows.Scan(&pfx, &ml, &asn); err != nil {
			return nil, err
		}
		p, err := netip.ParsePrefix(pfx)
		if err != nil {
			return nil, fmt.Errorf("stored ROA %q: %w", pfx, err)
		}
		if err := ix.Add(ROA{Prefix: p, MaxLength: ml, ASN: uint32(asn)}); err != nil {
			return nil, fmt.Errorf("stored %w", err)
		}
	}
	return ix, rows.Err()
}
