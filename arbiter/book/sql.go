package book

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// The book's durable side: what the engine loads at start, how its
// changes are committed, and the reads of committed state for the API.

const selectOrder = `SELECT o.id, m.asn, o.client_order_id, o.side, o.dest_prefix, o.dest_origin_asn, o.dest_route_type,
	o.protocol, o.capacity_bps, o.min_block_bps, o.price_micros, o.max_latency_us, o.max_jitter_us, o.max_loss_ppm,
	o.max_as_hops, o.allow_unverified, o.traffic_type, o.start_us, o.end_us, o.order_type, o.ranking, o.price_weight,
	o.single_seller, o.status, o.filled_bps, o.created_us, o.updated_us, o.priority
	FROM orders o JOIN members m ON m.id = o.member_id`

// OpenOrders is the SQL condition on the orders table for open orders.
// The status is a literal, not a parameter, so that sqlite can use the
// partial index of open orders (migration 0009).
var OpenOrders = fmt.Sprintf("status = %d", Open)

type scanner interface{ Scan(dest ...any) error }

func scanOrder(r scanner) (Order, error) {
	var (
		o                            Order
		client, prefix               sql.NullString
		origin, rtype                sql.NullInt64
		lat, jit, loss, hops         sql.NullInt64
		start, end, created, updated int64
	)
	s := &o.Spec
	err := r.Scan(&o.ID, &o.MemberASN, &client, &s.Side, &prefix, &origin, &rtype, &s.Protocol, &s.CapacityBps,
		&s.MinBlockBps, &s.PriceMicros, &lat, &jit, &loss, &hops, &s.Quality.AllowUnverified, &s.TrafficType,
		&start, &end, &s.Type, &s.Ranking, &s.PriceWeight, &s.SingleSeller, &o.Status, &o.FilledBps, &created, &updated, &o.Priority)
	if err != nil {
		return Order{}, err
	}
	o.ClientOrderID = client.String
	if prefix.Valid {
		if s.Destination.Prefix, err = netip.ParsePrefix(prefix.String); err != nil {
			return Order{}, fmt.Errorf("order %d: stored prefix %q: %w", o.ID, prefix.String, err)
		}
	}
	s.Destination.OriginASN = uint32(origin.Int64)
	s.Destination.RouteType = registry.RouteType(rtype.Int64)
	if lat.Valid {
		s.Quality.MaxLatencyUs = &lat.Int64
	}
	if jit.Valid {
		s.Quality.MaxJitterUs = &jit.Int64
	}
	if loss.Valid {
		v := int32(loss.Int64)
		s.Quality.MaxLossPPM = &v
	}
	if hops.Valid {
		v := int32(hops.Int64)
		s.Quality.MaxASHops = &v
	}
	s.Start, s.End, o.Created, o.Updated = store.Time(start), store.Time(end), store.Time(created), store.Time(updated)
	return o, nil
}

func nullable[T int64 | int32](p *T) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func queryOrders(ctx context.Context, q registry.Querier, query string, args ...any) ([]Order, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func getOrder(ctx context.Context, q registry.Querier, asn uint32, id int64) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, selectOrder+" WHERE o.id = ? AND (? = 0 OR m.asn = ?)", id, asn, asn))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, fmt.Errorf("order %d: %w", id, ErrNotFound)
	}
	return o, err
}

// selectTrade reads trades with the parties' ASNs, the traded prefixes and
// the seller's router addresses (joined as comma lists).
const selectTrade = `SELECT t.id, t.buy_order_id, t.sell_order_id, bm.asn, sm.asn, t.protocol, t.capacity_bps,
	t.price_micros, t.start_us, t.end_us, t.cancelled, t.created_us, t.prefixes,
	(SELECT group_concat(address, ',') FROM routers WHERE member_id = t.seller_id),
	(SELECT group_concat(address, ',') FROM routers WHERE member_id = t.buyer_id),
	t.latency_us, t.jitter_us, t.loss_ppm, t.as_hops, t.quality_samples, t.quality_probes, t.latency_err_us, t.jitter_err_us,
	t.contract_end_us, t.end_reason
	FROM trades t JOIN members bm ON bm.id = t.buyer_id JOIN members sm ON sm.id = t.seller_id`

func queryTrades(ctx context.Context, q registry.Querier, query string, args ...any) ([]Trade, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Trade
	for rows.Next() {
		var t Trade
		var start, end, created int64
		var prefixes string
		var hops, buyerRouters sql.NullString
		var lat, jit, loss, asHops, samples, probes, latErr, jitErr, contractEnd sql.NullInt64
		var endReason sql.NullString
		if err := rows.Scan(&t.ID, &t.BuyOrderID, &t.SellOrderID, &t.BuyerASN, &t.SellerASN, &t.Protocol, &t.CapacityBps,
			&t.PriceMicros, &start, &end, &t.Cancelled, &created, &prefixes, &hops, &buyerRouters, &lat, &jit, &loss, &asHops, &samples,
			&probes, &latErr, &jitErr, &contractEnd, &endReason); err != nil {
			return nil, err
		}
		if contractEnd.Valid {
			t.ContractEnd = store.Time(contractEnd.Int64)
		}
		t.EndReason = endReason.String
		if samples.Valid {
			t.Quality = &Measured{LatencyUs: lat.Int64, JitterUs: jit.Int64, LossPPM: int32(loss.Int64), ASHops: int32(asHops.Int64), Samples: int(samples.Int64),
				Probes: probes.Int64, LatencyErrUs: latErr.Int64, JitterErrUs: jitErr.Int64}
		}
		t.Start, t.End, t.Created = store.Time(start), store.Time(end), store.Time(created)
		for _, s := range splitList(prefixes) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trade %d: stored prefix %q: %w", t.ID, s, err)
			}
			t.Prefixes = append(t.Prefixes, p)
		}
		for _, s := range splitList(hops.String) {
			if a, err := netip.ParseAddr(s); err == nil && t.Protocol.Fits(a) {
				t.SellerNextHops = append(t.SellerNextHops, a)
			}
		}
		for _, s := range splitList(buyerRouters.String) {
			if a, err := netip.ParseAddr(s); err == nil && t.Protocol.Fits(a) {
				t.BuyerRouters = append(t.BuyerRouters, a)
			}
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// LoadMembers reads the registry as matching needs it.
func LoadMembers(ctx context.Context, q registry.Querier) (map[uint32]*MemberInfo, error) {
	ms, err := registry.MemberPorts(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[uint32]*MemberInfo{}
	byID := map[int64]*MemberInfo{}
	for _, p := range ms {
		m := &MemberInfo{ID: p.ID, ASN: p.ASN, PortID: p.PortID, Capacity: p.CapacityBps}
		out[m.ASN], byID[m.ID] = m, m
	}
	routers, err := registry.Routers(ctx, q)
	if err != nil {
		return nil, err
	}
	for id, as := range routers {
		if byID[id] != nil {
			byID[id].Routers = as
		}
	}
	routes, err := registry.MemberPrefixes(ctx, q, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if m := out[r.MemberASN]; m != nil {
			m.Routes = append(m.Routes, r)
		}
	}
	return out, nil
}

// LoadSnapshot reads everything the engine needs to resume.
func LoadSnapshot(ctx context.Context, db *store.DB, now time.Time) (Snapshot, error) {
	var s Snapshot
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if s.Members, err = LoadMembers(ctx, tx); err != nil {
			return err
		}
		if s.Open, err = queryOrders(ctx, tx, selectOrder+" WHERE "+OpenOrders); err != nil {
			return err
		}
		s.Clients = map[uint32]map[string]int64{}
		rows, err := tx.QueryContext(ctx, "SELECT m.asn, o.client_order_id, o.id FROM orders o JOIN members m ON m.id = o.member_id WHERE o.client_order_id IS NOT NULL")
		if err != nil {
			return err
		}
		for rows.Next() {
			var asn uint32
			var cid string
			var id int64
			if err := rows.Scan(&asn, &cid, &id); err != nil {
				rows.Close()
				return err
			}
			if s.Clients[asn] == nil {
				s.Clients[asn] = map[string]int64{}
			}
			s.Clients[asn][cid] = id
		}
		rows.Close()
		// Each live trade holds its capacity on the buyer's and the seller's port.
		rows, err = tx.QueryContext(ctx, `SELECT p.id, t.capacity_bps, t.start_us, t.end_us FROM trades t
			JOIN ports p ON p.member_id IN (t.buyer_id, t.seller_id) WHERE t.end_us > ? AND t.cancelled = 0`, store.Micros(now))
		if err != nil {
			return err
		}
		for rows.Next() {
			var r PortReservation
			var a, b int64
			if err := rows.Scan(&r.PortID, &r.CapacityBps, &a, &b); err != nil {
				rows.Close()
				return err
			}
			r.Start, r.End = store.Time(a), store.Time(b)
			s.Reservations = append(s.Reservations, r)
		}
		rows.Close()
		return tx.QueryRowContext(ctx, `SELECT (SELECT coalesce(max(id), 0) FROM orders), (SELECT coalesce(max(id), 0) FROM trades),
			(SELECT coalesce(max(seq), 0) FROM events), (SELECT coalesce(max(priority), 0) FROM orders)`).
			Scan(&s.LastOrder, &s.LastTrade, &s.LastSeq, &s.LastPriority)
	})
	return s, err
}

// A commit writes a batch of changes with a few multi-row statements:
// per-statement cost, not per-row, dominates sqlite writes, and each
// random page a batch touches is one more WAL frame to write and fsync.
const (
	orderCols = `id, member_id, client_order_id, side, dest_prefix, dest_origin_asn, dest_route_type, protocol,
		capacity_bps, min_block_bps, price_micros, max_latency_us, max_jitter_us, max_loss_ppm, max_as_hops,
		allow_unverified, traffic_type, start_us, end_us, order_type, ranking, price_weight, single_seller,
		priority, status, filled_bps, created_us, updated_us`
	orderRow = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	// A new order, or an existing one in its new state: only the columns
	// an order can change are updated.
	orderUpsert = ` ON CONFLICT (id) DO UPDATE SET capacity_bps = excluded.capacity_bps,
		price_micros = excluded.price_micros, priority = excluded.priority, status = excluded.status,
		filled_bps = excluded.filled_bps, updated_us = excluded.updated_us`
	// A fill that left the order open: status is not in the SET list, so
	// sqlite leaves the status index alone.
	fillRow    = "(?,?,?)"
	fillUpdate = `UPDATE orders SET filled_bps = v.column2, updated_us = v.column3 FROM (VALUES %s) AS v
		WHERE orders.id = v.column1`
	tradeCols = `id, buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
		start_us, end_us, created_us, latency_us, jitter_us, loss_ppm, as_hops, quality_samples,
		quality_probes, latency_err_us, jitter_err_us`
	tradeRow  = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	eventCols = "seq, member_id, type, trade_id, order_id, created_us, detail, dedup"
	eventRow  = "(?,?,?,?,?,?,?,?)"
	// A notification sent again (same member and dedup key) is dropped.
	eventConflict = " ON CONFLICT DO NOTHING"
)

// rowKind is one of the multi-row statements: its row width and the most
// rows one statement carries (well under sqlite's 32766 variables).
type rowKind struct {
	width, max int
	sql        func(n int) string
}

var (
	kindOrder = &rowKind{28, 32, func(n int) string { return store.InsertRows("orders", orderCols, orderRow, n) + orderUpsert }}
	kindFill  = &rowKind{3, 128, func(n int) string {
		return fmt.Sprintf(fillUpdate, strings.TrimSuffix(strings.Repeat(fillRow+",", n), ","))
	}}
	kindTrade = &rowKind{20, 64, func(n int) string { return store.InsertRows("trades", tradeCols, tradeRow, n) }}
	kindEvent = &rowKind{8, 128, func(n int) string { return store.InsertRows("events", eventCols, eventRow, n) + eventConflict }}
)

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
		if _, err := conn.ExecContext(ctx, "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 4000"); err != nil {
			conn.Close()
			return err
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
		for _, w := range ws {
			if !w.fill {
				id, err := c.memberID(ctx, w.o.MemberASN)
				if err != nil {
					return fmt.Errorf("order %d: %w", w.o.ID, err)
				}
				a = appendOrder(a, id, w.o)
			}
		}
		if err := c.exec(ctx, tx, kindOrder, a); err != nil {
			return fmt.Errorf("orders: %w", err)
		}
		a = a[:0]
		for _, w := range ws {
			if w.fill {
				a = append(a, w.o.ID, w.o.FilledBps, store.Micros(w.o.Updated))
			}
		}
		if err := c.exec(ctx, tx, kindFill, a); err != nil {
			return fmt.Errorf("order fills: %w", err)
		}
		a = a[:0]
		for _, ch := range chs {
			for _, t := range ch.Trades {
				buyer, err := c.memberID(ctx, t.BuyerASN)
				if err != nil {
					return fmt.Errorf("trade %d: buyer: %w", t.ID, err)
				}
				seller, err := c.memberID(ctx, t.SellerASN)
				if err != nil {
					return fmt.Errorf("trade %d: seller: %w", t.ID, err)
				}
				a = appendTrade(a, buyer, seller, t)
			}
		}
		if err := c.exec(ctx, tx, kindTrade, a); err != nil {
			return fmt.Errorf("trades: %w", err)
		}
		// Trades ended early are rare (a member removed): one statement each.
		for _, ch := range chs {
			for _, t := range ch.Ended {
				if _, err := tx.ExecContext(ctx, `UPDATE trades SET end_us = ?, cancelled = ?, contract_end_us = ?, end_reason = ?
					WHERE id = ? AND contract_end_us IS NULL`, store.Micros(t.End), t.Cancelled, store.Micros(t.ContractEnd), t.EndReason, t.ID); err != nil {
					return fmt.Errorf("trade %d ended: %w", t.ID, err)
				}
			}
		}
		a = a[:0]
		for _, ch := range chs {
			for _, e := range ch.Events {
				var trade, order, detail, dedup any
				if e.Trade != nil {
					trade = e.Trade.ID
				}
				if e.Order != nil {
					order = e.Order.ID
				}
				if d, err := eventDetail(e); err != nil {
					return fmt.Errorf("event %d: %w", e.Seq, err)
				} else if d != "" {
					detail = d
				}
				if k := dedupKey(e); k != "" {
					dedup = k
				}
				member, err := c.memberID(ctx, e.MemberASN)
				if err != nil {
					return fmt.Errorf("event %d: %w", e.Seq, err)
				}
				a = append(a, e.Seq, member, e.Type, trade, order, store.Micros(e.Time), detail, dedup)
			}
		}
		if err := c.exec(ctx, tx, kindEvent, a); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		return nil
	})
}

// commitChanges writes one batch with statements of its own (loading and
// tests; the Book keeps a committer).
func commitChanges(ctx context.Context, db *store.DB, chs []*Change) error {
	c := newCommitter(db)
	defer c.close()
	return c.commit(ctx, chs)
}

func appendOrder(a []any, member int64, o Order) []any {
	s := o.Spec
	var prefix, origin, rtype, client any
	switch d := s.Destination; {
	case d.Prefix.IsValid():
		prefix = d.Prefix.String()
	case d.OriginASN != 0:
		origin = d.OriginASN
	default:
		rtype = int(d.RouteType)
	}
	if o.ClientOrderID != "" {
		client = o.ClientOrderID
	}
	return append(a, o.ID, member, client, s.Side, prefix, origin, rtype, s.Protocol, s.CapacityBps, s.MinBlockBps, s.PriceMicros,
		nullable(s.Quality.MaxLatencyUs), nullable(s.Quality.MaxJitterUs), nullable(s.Quality.MaxLossPPM),
		nullable(s.Quality.MaxASHops), s.Quality.AllowUnverified, s.TrafficType, store.Micros(s.Start), store.Micros(s.End),
		s.Type, s.Ranking, s.PriceWeight, s.SingleSeller, o.Priority, o.Status, o.FilledBps, store.Micros(o.Created), store.Micros(o.Updated))
}

func appendTrade(a []any, buyer, seller int64, t Trade) []any {
	ps := make([]string, len(t.Prefixes))
	for i, p := range t.Prefixes {
		ps[i] = p.String()
	}
	a = append(a, t.ID, t.BuyOrderID, t.SellOrderID, buyer, seller, strings.Join(ps, ","),
		t.Protocol, t.CapacityBps, t.PriceMicros, store.Micros(t.Start), store.Micros(t.End), store.Micros(t.Created))
	if m := t.Quality; m != nil {
		return append(a, m.LatencyUs, m.JitterUs, m.LossPPM, m.ASHops, m.Samples, m.Probes, m.LatencyErrUs, m.JitterErrUs)
	}
	return append(a, nil, nil, nil, nil, nil, nil, nil, nil)
}

// eventDetail is what an event carries beyond its trade or order, as the
// events table's detail JSON ("" for none).
func eventDetail(e Event) (string, error) {
	var v any
	switch {
	case e.Use != nil:
		v = e.Use
	case e.Credit != nil:
		v = e.Credit
	default:
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// dedupKey names a notification so that sending it again changes nothing:
// a use event by (trade, kind, start). Other events are never repeated.
func dedupKey(e Event) string {
	if (e.Type == UseOver || e.Type == UseUnder) && e.Trade != nil && e.Use != nil {
		return fmt.Sprintf("use:%d:%d:%d", e.Trade.ID, e.Type, store.Micros(e.Use.Start))
	}
	return ""
}
