package irr

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry/importlog"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
)

// Input is one file to import.
type Input struct {
	Name string // in messages and the import log
	R    io.Reader
}

// ImportOptions tunes Import.
type ImportOptions struct {
	// Source, when set, keeps only the objects of that source (objects
	// without a source attribute are taken as it) and replaces that set.
	// When empty each object goes to the set its source attribute names,
	// and objects without one are malformed.
	Source string
	// AllowShrink replaces a set even when the new one has less than half
	// the objects of the old: by default that is refused as a likely
	// truncated or wrong file, since losing route objects rejects routes.
	AllowShrink bool
	MaxErrors   int              // malformed objects to list (see ParseOptions)
	Now         func() time.Time // for tests
	// Parsed, if set, is called when the files are read, before the write
	// transaction, with the objects to store (for a progress display).
	Parsed func(accepted int)
}

// SetCount is one replaced set.
type SetCount struct {
	Source   string
	Previous int // objects before the import
	Accepted int // objects now
}

// Report is what an import did.
type Report struct {
	Stats                  // summed over the files; Errors lists the first malformed objects of all
	OtherSource int        // objects skipped because they belong to another source than ImportOptions.Source
	Sets        []SetCount // sorted by source
	Started     time.Time
	Finished    time.Time
}

// ErrShrink is returned when an import would more than halve a set.
var ErrShrink = errors.New("the new set has less than half the objects of the old")

const batchRows = 200 // rows per INSERT: 800 parameters, well under sqlite's limit

// Import parses the files and replaces, in one transaction, every source
// set they bring. Malformed objects are counted, not fatal; a read error,
// a database error, an import that brings no route object, or one that
// would shrink a set (see AllowShrink) commits nothing and leaves the old
// sets, and the attempt is logged with its error.
func Import(ctx context.Context, db *store.DB, in []Input, opt ImportOptions) (Report, error) {
	now := opt.Now
	if now == nil {
		now = clock.Now
	}
	want := strings.ToUpper(strings.TrimSpace(opt.Source))
	if opt.Source != "" && (want == "" || strings.ContainsAny(want, " \t,")) {
		return Report{}, fmt.Errorf("--source %q: want one IRR source name like RIPE or RADB", opt.Source)
	}
	rep := Report{Started: now().UTC()}
	var names []string
	for _, f := range in {
		names = append(names, f.Name)
	}

	// Parse everything first and write after: the write transaction holds
	// the database's write lock, and the daemon must not wait for a slow
	// disk or a download piped into the command. About 80 bytes a route.
	var batches [][]Route
	err := rep.parse(ctx, in, want, opt.MaxErrors, func(b []Route) error {
		batches = append(batches, b)
		return ctx.Err()
	})
	counts := map[string]int{}
	for _, b := range batches {
		for _, r := range b {
			counts[r.Source]++
		}
	}
	var sources []string
	for s := range counts {
		sources = append(sources, s)
	}
	sort.Strings(sources)
	if err == nil && len(sources) == 0 {
		if want != "" {
			err = fmt.Errorf("no well-formed route objects of source %s in %s; nothing replaced", want, strings.Join(names, ", "))
		} else {
			err = fmt.Errorf("no well-formed route objects in %s; nothing replaced", strings.Join(names, ", "))
		}
	}
	if err == nil {
		if opt.Parsed != nil {
			opt.Parsed(rep.Accepted)
		}
		err = db.Tx(ctx, func(tx *sql.Tx) error {
			rep.Sets = rep.Sets[:0]
			for _, src := range sources {
				sc := SetCount{Source: src, Accepted: counts[src]}
				var err error
				if sc.Previous, err = countSource(ctx, tx, src); err != nil {
					return err
				}
				rep.Sets = append(rep.Sets, sc)
				if !opt.AllowShrink && sc.Accepted*2 < sc.Previous {
					return fmt.Errorf("source %s: %d objects, had %d: %w; check the file, or allow it with --allow-shrink", src, sc.Accepted, sc.Previous, ErrShrink)
				}
			}
			for _, src := range sources {
				if err := deleteSource(ctx, tx, src); err != nil {
					return err
				}
			}
			ins := newInserter(tx)
			defer ins.close()
			for _, b := range batches {
				for _, r := range b {
					if err := ins.add(ctx, r); err != nil {
						return err
					}
				}
			}
			if err := ins.flush(ctx); err != nil {
				return err
			}
			rep.Finished = now().UTC()
			for _, s := range rep.Sets {
				if err := logImport(ctx, tx, "irr", s.Source, names, rep.Started, rep.Finished, rep.Objects, rep.Malformed, s.Accepted, s.Previous, ""); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		src := want
		if src == "" {
			src = strings.Join(sources, ",") // as far as the import got
		}
		rep.Finished = now().UTC()
		// Best effort: the failure is what the caller must see either way.
		_ = logImport(context.Background(), db, "irr", src, names, rep.Started, rep.Finished, rep.Objects, rep.Malformed, 0, 0, err.Error())
		return rep, err
	}
	return rep, nil
}

// parse reads every file and hands the routes to keep to out in batches.
func (rep *Report) parse(ctx context.Context, in []Input, want string, maxErrors int, out func([]Route) error) error {
	if maxErrors == 0 {
		maxErrors = DefaultMaxErrors
	}
	batch := make([]Route, 0, 1024)
	send := func() error {
		err := out(batch)
		batch = make([]Route, 0, 1024)
		return err
	}
	for _, f := range in {
		before := len(rep.Errors)
		left := maxErrors - len(rep.Errors)
		if maxErrors < 0 || left <= 0 {
			left = -1
		}
		st, err := Parse(f.R, ParseOptions{File: f.Name, MaxErrors: left}, func(r Route) error {
			switch {
			case r.Source == "" && want == "":
				rep.Accepted--
				rep.Malformed++
				if maxErrors > 0 && len(rep.Errors) < maxErrors {
					rep.Errors = append(rep.Errors, ObjectError{File: f.Name, Line: r.Line,
						Msg: fmt.Sprintf("%s: no source attribute (name the set with --source)", r.Prefix)})
				}
				return nil
			case r.Source == "":
				r.Source = want
			case want != "" && r.Source != want:
				rep.Accepted--
				rep.OtherSource++
				return nil
			}
			batch = append(batch, r)
			if len(batch) == cap(batch) {
				return send()
			}
			return nil
		})
		rep.Lines += st.Lines
		rep.Objects += st.Objects
		rep.Accepted += st.Accepted
		rep.Malformed += st.Malformed
		rep.Skipped += st.Skipped
		rep.Errors = append(rep.Errors, st.Errors...)
		mine := rep.Errors[before:]
		sort.SliceStable(mine, func(i, j int) bool { return mine[i].Line < mine[j].Line })
		if maxErrors > 0 && len(rep.Errors) > maxErrors {
			rep.Errors = rep.Errors[:maxErrors]
		}
		if err != nil {
			return err
		}
	}
	if len(batch) > 0 {
		return send()
	}
	return nil
}

// inserter writes rows in multi-row INSERTs: one cgo call per 200 rows
// instead of per row.
type inserter struct {
	tx   *sql.Tx
	full *sql.Stmt
	args []any
}

func newInserter(tx *sql.Tx) *inserter {
	return &inserter{tx: tx, args: make([]any, 0, 4*batchRows)}
}

func (ins *inserter) add(ctx context.Context, r Route) error {
	ins.args = append(ins.args, r.Source, r.Prefix.String(), int64(r.Origin), r.MntBy)
	if len(ins.args) < 4*batchRows {
		return nil
	}
	if ins.full == nil {
		st, err := ins.tx.PrepareContext(ctx, insertSQL(batchRows))
		if err != nil {
			return err
		}
		ins.full = st
	}
	_, err := ins.full.ExecContext(ctx, ins.args...)
	ins.args = ins.args[:0]
	return err
}

func (ins *inserter) flush(ctx context.Context) error {
	if len(ins.args) == 0 {
		return nil
	}
	_, err := ins.tx.ExecContext(ctx, insertSQL(len(ins.args)/4), ins.args...)
	ins.args = ins.args[:0]
	return err
}

func (ins *inserter) close() {
	if ins.full != nil {
		ins.full.Close()
	}
}

func logImport(ctx context.Context, db importlog.Execer, kind, source string, files []string, started, finished time.Time, objects, malformed, accepted, previous int, errText string) error {
	return importlog.Log(ctx, db, importlog.Entry{Kind: kind, Source: source, Files: files, Started: started, Finished: finished,
		Objects: objects, Malformed: malformed, Accepted: accepted, Previous: previous, Error: errText})
}

// SetInfo describes a stored source set and its last successful import.
type SetInfo struct {
	Source   string
	Objects  int
	Imported time.Time // zero if the import log has no row for it
	Files    string
}
