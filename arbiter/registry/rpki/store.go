package rpki

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry/importlog"
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
			var err error
			if rep.Previous, err = countROAs(ctx, tx); err != nil {
				return err
			}
			if !opt.AllowShrink && st.Accepted*2 < rep.Previous {
				return fmt.Errorf("%s: %d ROAs, had %d: %w; check the relying party's output, or allow it with --allow-shrink", name, st.Accepted, rep.Previous, ErrShrink)
			}
			if err := deleteROAs(ctx, tx); err != nil {
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

func logImport(ctx context.Context, db importlog.Execer, file string, started, finished time.Time, objects, malformed, accepted, previous int, errText string) error {
	return importlog.Log(ctx, db, importlog.Entry{Kind: "rpki", Source: SetName, Files: []string{file}, Started: started, Finished: finished,
		Objects: objects, Malformed: malformed, Accepted: accepted, Previous: previous, Error: errText})
}
