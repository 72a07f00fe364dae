package book

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// A commit writes a batch of changes with a few multi-row statements:
// per-statement cost, not per-row, dominates sqlite writes, and each
// random page a batch touches is one more WAL frame to write and fsync.
// Each table's statements are in its own file (orders_sql.go,
// trades_sql.go, events_sql.go); this is what they share, with the row
// readers collect, perMember and eachBuy.

// rowKind is one of the multi-row statements: its row width and the most
// rows one statement carries (well under sqlite's 32766 variables).
type rowKind struct {
	width, max int
	sql        func(n int) string
}

type stmtKey struct {
	kind *rowKind
	n    int
}

// committer writes batches of changes. It keeps its statements prepared
// across transactions; statements come in power-of-two row counts so a
// batch of any size needs a handful of shapes.
type committer struct {
	db    *store.DB
	conn  *sql.Conn // the connection commits run on, nil until the first
	stmts map[stmtKey]*sql.Stmt
	args  []any
	ids   *registry.IDs // rows carry member ids, not ASNs
}

func newCommitter(db *store.DB) *committer {
	return &committer{db: db, stmts: map[stmtKey]*sql.Stmt{}, ids: registry.NewIDs(db)}
}

func (c *committer) close() {
	for _, st := range c.stmts {
		st.Close()
	}
	clear(c.stmts)
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// tx runs fn in a transaction on the committer's own connection, whose
// statement journals stay in memory: a multi-row statement journals every
// page it touches (to undo itself on a constraint error), and past 64 KiB
// sqlite spills that journal to a temporary file, one write per page. It
// is not the durable record: the WAL is, and it is fsynced at commit as
// before.
func (c *committer) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if c.conn == nil {
		conn, err := c.db.Conn(ctx)
		if err != nil {
			return err
		}
		// The pages a commit touches are spread over the indexes; 64 MiB
		// of cache keeps them from being read back from the file. The
		// store's background checkpointer copies the WAL into the file;
		// this connection checkpoints itself (inside a commit that callers
		// wait for) only if the WAL outgrows 4000 frames (16 MiB).
		if c.db.Dialect() == store.SQLite {
			if _, err := conn.ExecContext(ctx, "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 4000"); err != nil {
				conn.Close()
				return err
			}
		}
		c.conn = conn
	}
	tx, err := c.conn.BeginTx(ctx, nil)
	if err != nil {
		// A broken connection is replaced at the next commit.
		c.conn.Close()
		c.conn = nil
		return err
	}
	return c.db.Finish(tx, fn)
}

// memberID is asn's member id; an ASN that is not a member is an error.
func (c *committer) memberID(ctx context.Context, asn uint32) (int64, error) {
	id, err := c.ids.ID(ctx, asn)
	if err == nil && id == 0 {
		err = fmt.Errorf("AS%d is not a member", asn)
	}
	return id, err
}

// exec writes args (whole rows of k) with as few statements as it can.
func (c *committer) exec(ctx context.Context, tx *sql.Tx, k *rowKind, args []any) error {
	for rows := len(args) / k.width; rows > 0; {
		n := 1
		for n*2 <= min(rows, k.max) {
			n *= 2
		}
		key := stmtKey{k, n}
		st := c.stmts[key]
		if st == nil {
			var err error
			if st, err = c.db.PrepareContext(ctx, k.sql(n)); err != nil {
				return err
			}
			c.stmts[key] = st
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args[:n*k.width]...); err != nil {
			return err
		}
		args, rows = args[n*k.width:], rows-n
	}
	return nil
}

// orderWrite is an order's last state in a batch; fill says every change
// to it in the batch was a fill that left it open.
type orderWrite struct {
	o    Order
	fill bool
}

// collapse keeps only the last state of each order the batch touches: the
// transaction is atomic, so the states in between are never visible.
func collapse(chs []*Change) []orderWrite {
	idx := map[int64]int{}
	var ws []orderWrite
	for _, ch := range chs {
		for _, o := range ch.New {
			idx[o.ID] = len(ws)
			ws = append(ws, orderWrite{o: o})
		}
		for _, o := range ch.Orders {
			fill := slices.Contains(ch.fills, o.ID)
			if i, ok := idx[o.ID]; ok {
				ws[i].o, ws[i].fill = o, ws[i].fill && fill
				continue
			}
			idx[o.ID] = len(ws)
			ws = append(ws, orderWrite{o: o, fill: fill})
		}
	}
	return ws
}

// commit writes a batch of changes in one transaction: orders first, as
// trades and events refer to them, then trades, then events.
func (c *committer) commit(ctx context.Context, chs []*Change) error {
	ws := collapse(chs)
	return c.tx(ctx, func(tx *sql.Tx) error {
		a := c.args[:0]
		defer func() { c.args = a[:0] }()
		var err error
		if a, err = c.writeOrders(ctx, tx, ws, a); err != nil {
			return err
		}
		if a, err = c.writeTrades(ctx, tx, chs, a[:0]); err != nil {
			return err
		}
		a, err = c.writeEvents(ctx, tx, chs, a[:0])
		return err
	})
}

// commitChanges writes one batch with statements of its own (loading and
// tests; the Book keeps a committer).
func commitChanges(ctx context.Context, db *store.DB, chs []*Change) error {
	c := newCommitter(db)
	defer c.close()
	return c.commit(ctx, chs)
}

// lastIDs reads the highest ids (and order priority) committed, which the
// engine's counters continue from (LoadSnapshot): one statement over the
// book's three tables.
func lastIDs(ctx context.Context, q registry.Querier, s *Snapshot) error {
	return q.QueryRowContext(ctx, `SELECT (SELECT coalesce(max(id), 0) FROM orders), (SELECT coalesce(max(id), 0) FROM trades),
			(SELECT coalesce(max(seq), 0) FROM events), (SELECT coalesce(max(priority), 0) FROM orders)`).
		Scan(&s.LastOrder, &s.LastTrade, &s.LastSeq, &s.LastPriority)
}

// collect runs query on q and returns its rows as scan reads each into a
// new T.
func collect[T any](ctx context.Context, q registry.Querier, scan func(*sql.Rows, *T) error, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var t T
		if err := scan(rows, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// perMember runs query on q, whose rows are (member ASN, count).
func perMember(ctx context.Context, q registry.Querier, query string, args ...any) (map[uint32]int, error) {
	counts := map[uint32]int{}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var asn uint32
		var n int
		if err := rows.Scan(&asn, &n); err != nil {
			return nil, err
		}
		counts[asn] = n
	}
	return counts, rows.Err()
}

// eachBuy runs query on q, whose rows are a buy's capacity, price, start
// and end (EachOpenBuy, EachBuyTrade), and calls fn with each.
func eachBuy(ctx context.Context, q registry.Querier, fn func(BuyRow), query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r BuyRow
		if err := rows.Scan(&r.CapacityBps, &r.PriceMicros, &r.StartUs, &r.EndUs); err != nil {
			return err
		}
		fn(r)
	}
	return rows.Err()
}
