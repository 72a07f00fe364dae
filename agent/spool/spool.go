// Package spool is the agent's durable local queue of reports (usage
// samples, quality measurements) for the arbiter. A report is on disk
// (sqlite, WAL, synchronous=FULL) before Put returns, stays there until the
// arbiter has taken it (Ack), and survives restarts, crashes and power loss.
// Every report carries an idempotency key: the spool stores a key once, and
// the arbiter ignores a key it has seen, so resending after a lost reply is
// harmless.
//
// The spool is bounded: a kind holds at most Options.MaxItems reports.
// When it is full, Put refuses with ErrFull (the caller logs and counts it);
// the spool never drops a report it has accepted.
package spool

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
	"golang.org/x/sys/unix"

	"github.com/bwxchange/bwx/shared/clock"
)

// Defaults for Options.
const (
	DefaultMaxItems   = 1_000_000
	DefaultMaxPayload = 1 << 20
)

// ErrFull is returned (wrapped) by Put when a kind holds Options.MaxItems
// reports. Nothing of the refused call is stored.
var ErrFull = errors.New("spool: full")

// ErrKeyConflict is returned (wrapped) by Put when a key is already stored
// with a different payload: the caller's keys are not unique, and keeping
// either one silently would lose a report.
var ErrKeyConflict = errors.New("spool: key already stored with a different payload")

// Options bound the spool. The zero value means the defaults.
type Options struct {
	// MaxItems is the most reports one kind may hold, parked ones included
	// (DefaultMaxItems if zero). At 5-minute intervals that is about a
	// month of figures for 100 trades.
	MaxItems int
	// MaxPayload is the largest payload Put accepts, in bytes
	// (DefaultMaxPayload if zero).
	MaxPayload int
}

// Item is one stored report.
type Item struct {
	Kind    string
	Key     string
	Payload []byte
	// Added is when Put stored it (UTC).
	Added time.Time
	// Parked is why the receiver refused it for good ("" if it did not).
	Parked string
}

// Record is a report to store: its idempotency key and its payload.
type Record struct {
	Key     string
	Payload []byte
}

// Spool is an open spool file. Its methods are safe for concurrent use.
// One process at a time may have a spool file open.
type Spool struct {
	db   *sql.DB
	path string
	lock *os.File
	opts Options

	mu      sync.Mutex // serialises writes and guards below
	count   map[string]*counts
	changed map[string]chan struct{}
	closed  bool
}

type counts struct{ all, parked int }

func (s *Spool) counts(kind string) *counts {
	c, ok := s.count[kind]
	if !ok {
		c = &counts{}
		s.count[kind] = c
	}
	return c
}

const schema = `
CREATE TABLE IF NOT EXISTS items (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	kind     TEXT    NOT NULL,
	key      TEXT    NOT NULL,
	payload  BLOB    NOT NULL,
	added_ns INTEGER NOT NULL,
	parked   TEXT,
	UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS items_pending ON items (kind, parked, seq);
`

// Open opens the spool file at path, creating it if needed (its directory
// must exist). It fails if another process has it open.
func Open(path string, opts Options) (*Spool, error) {
	if path == "" {
		return nil, errors.New("spool: empty path")
	}
	if opts.MaxItems < 0 || opts.MaxPayload < 0 {
		return nil, fmt.Errorf("spool: %s: negative limit (max items %d, max payload %d)", path, opts.MaxItems, opts.MaxPayload)
	}
	opts.MaxItems = cmp.Or(opts.MaxItems, DefaultMaxItems)
	opts.MaxPayload = cmp.Or(opts.MaxPayload, DefaultMaxPayload)
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("spool: directory of %s: %w", path, err)
	}
	// Two agents draining one file would send everything twice and keep
	// wrong counts: allow one process. flock is released when the process
	// dies, however it dies.
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", lock.Name(), err)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	// FULL: a report Put has returned for survives a power loss too.
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	// One connection: writes are serialised anyway, and it rules out
	// SQLITE_BUSY between our own connections.
	db.SetMaxOpenConns(1)
	s := &Spool{db: db, path: path, lock: lock, opts: opts, count: map[string]*counts{}, changed: map[string]chan struct{}{}}
	if err := s.init(); err != nil {
		db.Close()
		lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *Spool) init() error {
	ctx := context.Background()
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("spool: %s: %w", s.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("spool: %s: journal mode is %q, want wal", s.path, mode)
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("spool: %s: create schema: %w", s.path, err)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT kind, COUNT(*), COUNT(parked) FROM items GROUP BY kind")
	if err != nil {
		return fmt.Errorf("spool: %s: %w", s.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var c counts
		if err := rows.Scan(&k, &c.all, &c.parked); err != nil {
			return fmt.Errorf("spool: %s: %w", s.path, err)
		}
		s.count[k] = &c
	}
	return rows.Err()
}

// Path is the spool file.
func (s *Spool) Path() string { return s.path }

// Close closes the file. Reports not yet acknowledged stay in it.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, ch := range s.changed {
		close(ch)
	}
	s.changed = map[string]chan struct{}{}
	s.mu.Unlock()
	err := s.db.Close()
	s.lock.Close()
	return err
}

func checkKind(kind string) error {
	if kind == "" || strings.TrimSpace(kind) != kind {
		return fmt.Errorf("spool: invalid kind %q: want a non-empty name without surrounding spaces", kind)
	}
	return nil
}

// Put stores one report under kind (say "usage" or "measurement"). A key
// already stored with the same payload is a no-op. It returns only once
// the report is durable.
func (s *Spool) Put(ctx context.Context, kind, key string, payload []byte) error {
	return s.PutAll(ctx, kind, []Record{{Key: key, Payload: payload}})
}

// PutAll stores several reports in one transaction (one disk sync): all of
// them or, on error, none. Records whose key is already stored with the
// same payload are skipped. If the new ones would take the kind past
// MaxItems, PutAll stores none and returns ErrFull.
func (s *Spool) PutAll(ctx context.Context, kind string, recs []Record) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	for i, r := range recs {
		if r.Key == "" {
			return fmt.Errorf("spool: %s record %d: empty idempotency key", kind, i)
		}
		if len(r.Payload) > s.opts.MaxPayload {
			return fmt.Errorf("spool: %s record %q: payload of %d bytes exceeds the limit of %d", kind, r.Key, len(r.Payload), s.opts.MaxPayload)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool: closed")
	}
	added, err := s.putTx(ctx, kind, recs)
	if err != nil {
		return err
	}
	if added > 0 {
		s.counts(kind).all += added
		if ch, ok := s.changed[kind]; ok {
			close(ch)
			delete(s.changed, kind)
		}
	}
	return nil
}

func (s *Spool) putTx(ctx context.Context, kind string, recs []Record) (added int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("spool: %s: %w", s.path, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	now := clock.Now().UnixNano()
	ins, err := tx.PrepareContext(ctx, "INSERT INTO items (kind, key, payload, added_ns) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO NOTHING")
	if err != nil {
		return 0, fmt.Errorf("spool: %s: %w", s.path, err)
	}
	defer ins.Close()
	for _, r := range recs {
		p := r.Payload
		if p == nil {
			p = []byte{} // NOT NULL
		}
		res, err := ins.ExecContext(ctx, kind, r.Key, p, now)
		if err != nil {
			return 0, fmt.Errorf("spool: %s: store %s %q: %w", s.path, kind, r.Key, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("spool: %s: %w", s.path, err)
		}
		if n == 1 {
			added++
			continue
		}
		var old []byte
		if err := tx.QueryRowContext(ctx, "SELECT payload FROM items WHERE kind = ? AND key = ?", kind, r.Key).Scan(&old); err != nil {
			return 0, fmt.Errorf("spool: %s: read %s %q: %w", s.path, kind, r.Key, err)
		}
		if string(old) != string(p) {
			return 0, fmt.Errorf("%w: %s %q", ErrKeyConflict, kind, r.Key)
		}
	}
	if have := s.counts(kind).all; have+added > s.opts.MaxItems {
		return 0, fmt.Errorf("%w: %s holds %d reports and the limit is %d; refusing %d more (is the arbiter reachable?)",
			ErrFull, kind, have, s.opts.MaxItems, added)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("spool: %s: commit: %w", s.path, err)
	}
	return added, nil
}

// Batch returns up to max pending (not parked) reports of kind, oldest
// first. They stay stored until acknowledged.
func (s *Spool) Batch(ctx context.Context, kind string, max int) ([]Item, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, fmt.Errorf("spool: batch size must be positive, got %d", max)
	}
	return s.query(ctx, "SELECT kind, key, payload, added_ns, '' FROM items WHERE kind = ? AND parked IS NULL ORDER BY seq LIMIT ?", kind, max)
}

// Parked returns up to max reports of kind that the receiver refused for
// good (see Reject), oldest first.
func (s *Spool) Parked(ctx context.Context, kind string, max int) ([]Item, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if max <= 0 {
		return nil, fmt.Errorf("spool: batch size must be positive, got %d", max)
	}
	return s.query(ctx, "SELECT kind, key, payload, added_ns, parked FROM items WHERE kind = ? AND parked IS NOT NULL ORDER BY seq LIMIT ?", kind, max)
}

func (s *Spool) query(ctx context.Context, q string, args ...any) ([]Item, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("spool: %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var it Item
		var ns int64
		if err := rows.Scan(&it.Kind, &it.Key, &it.Payload, &ns, &it.Parked); err != nil {
			return nil, fmt.Errorf("spool: %s: %w", s.path, err)
		}
		it.Added = time.Unix(0, ns).UTC()
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("spool: %s: %w", s.path, err)
	}
	return out, nil
}

// Ack removes the reports of kind with these keys: the receiver has them.
// Unknown keys are ignored.
func (s *Spool) Ack(ctx context.Context, kind string, keys ...string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// RETURNING tells whether a deleted report was parked.
	var parked int
	n, err := s.eachKey(ctx, "DELETE FROM items WHERE kind = ? AND key = ? RETURNING parked IS NOT NULL", kind, keys, &parked)
	c := s.counts(kind)
	c.all -= n
	c.parked -= parked
	return err
}

// Park marks reports of kind as refused for good by the receiver, with the
// reason: Batch skips them, and they stay stored (counted against
// MaxItems) until Requeue or Ack.
func (s *Spool) Park(ctx context.Context, kind, reason string, keys ...string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if reason == "" {
		reason = "refused"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.eachKey(ctx, "UPDATE items SET parked = ? WHERE kind = ? AND key = ? AND parked IS NULL RETURNING 0", kind, keys, nil, reason)
	s.counts(kind).parked += n
	return err
}

// Requeue makes parked reports pending again (after the cause was fixed).
func (s *Spool) Requeue(ctx context.Context, kind string, keys ...string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.eachKey(ctx, "UPDATE items SET parked = NULL WHERE kind = ? AND key = ? AND parked IS NOT NULL RETURNING 0", kind, keys, nil)
	s.counts(kind).parked -= n
	if n > 0 {
		if ch, ok := s.changed[kind]; ok {
			close(ch)
			delete(s.changed, kind)
		}
	}
	return err
}

// eachKey runs q, whose last two parameters are kind and key (after pre)
// and which returns one integer per changed row, for every key in one
// transaction. It returns how many rows changed and, in *sum if not nil,
// the sum of the returned integers.
func (s *Spool) eachKey(ctx context.Context, q, kind string, keys []string, sum *int, pre ...any) (int, error) {
	if s.closed {
		return 0, errors.New("spool: closed")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("spool: %s: %w", s.path, err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("spool: %s: %w", s.path, err)
	}
	defer st.Close()
	total, add := 0, 0
	for _, k := range keys {
		var v int
		err := st.QueryRowContext(ctx, append(pre, kind, k)...).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("spool: %s: %s %q: %w", s.path, kind, k, err)
		}
		total++
		add += v
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("spool: %s: commit: %w", s.path, err)
	}
	if sum != nil {
		*sum = add
	}
	return total, nil
}

// Len is the number of pending (not parked) reports of kind: the backlog.
func (s *Spool) Len(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts(kind)
	return c.all - c.parked
}

// ParkedLen is the number of parked reports of kind.
func (s *Spool) ParkedLen(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts(kind).parked
}

// Stats is one kind's backlog.
type Stats struct {
	// Pending reports wait to be sent; Parked were refused for good.
	Pending, Parked int
	// Oldest is when the oldest pending report was stored (UTC); zero when
	// nothing is pending. Its age says how long the arbiter has been
	// unreachable or refusing.
	Oldest time.Time
}

// Stats returns kind's backlog (metrics). The counts come from memory; the
// oldest report costs one indexed lookup.
func (s *Spool) Stats(ctx context.Context, kind string) (Stats, error) {
	if err := checkKind(kind); err != nil {
		return Stats{}, err
	}
	s.mu.Lock()
	c, closed := *s.counts(kind), s.closed
	s.mu.Unlock()
	st := Stats{Pending: c.all - c.parked, Parked: c.parked}
	if closed {
		return st, fmt.Errorf("spool: %s is closed", s.path)
	}
	if st.Pending == 0 {
		return st, nil
	}
	var ns int64
	err := s.db.QueryRowContext(ctx, "SELECT added_ns FROM items WHERE kind = ? AND parked IS NULL ORDER BY seq LIMIT 1", kind).Scan(&ns)
	switch {
	case errors.Is(err, sql.ErrNoRows): // acknowledged meanwhile
	case err != nil:
		return st, fmt.Errorf("spool: %s: %w", s.path, err)
	default:
		st.Oldest = time.Unix(0, ns).UTC()
	}
	return st, nil
}

// changedCh returns a channel that is closed at the next Put that adds a
// report of kind (or Requeue, or Close).
func (s *Spool) changedCh(kind string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	ch, ok := s.changed[kind]
	if !ok {
		ch = make(chan struct{})
		s.changed[kind] = ch
	}
	return ch
}
