package book

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
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
	(SELECT group_concat(address, ',') FROM routers WHERE member_id = t.seller_id)
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
		var hops sql.NullString
		if err := rows.Scan(&t.ID, &t.BuyOrderID, &t.SellOrderID, &t.BuyerASN, &t.SellerASN, &t.Protocol, &t.CapacityBps,
			&t.PriceMicros, &start, &end, &t.Cancelled, &created, &prefixes, &hops); err != nil {
			return nil, err
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
	rows, err := q.QueryContext(ctx, `SELECT m.id, m.asn, p.id, p.capacity_bps FROM members m JOIN ports p ON p.member_id = m.id`)
	if err != nil {
		return nil, err
	}
	out := map[uint32]*MemberInfo{}
	byID := map[int64]*MemberInfo{}
	for rows.Next() {
		m := &MemberInfo{}
		if err := rows.Scan(&m.ID, &m.ASN, &m.PortID, &m.Capacity); err != nil {
			rows.Close()
			return nil, err
		}
		out[m.ASN], byID[m.ID] = m, m
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, "SELECT member_id, address FROM routers ORDER BY id")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id int64
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			rows.Close()
			return nil, err
		}
		if a, err := netip.ParseAddr(s); err == nil && byID[id] != nil {
			byID[id].Routers = append(byID[id].Routers, a)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
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
		if s.Open, err = queryOrders(ctx, tx, selectOrder+" WHERE o.status = ?", Open); err != nil {
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

// The statements a commit runs, prepared once per transaction.
const (
	sqlUpsertOrder = `INSERT INTO orders (id, member_id, client_order_id, side, dest_prefix, dest_origin_asn,
		dest_route_type, protocol, capacity_bps, min_block_bps, price_micros, max_latency_us, max_jitter_us, max_loss_ppm,
		max_as_hops, allow_unverified, traffic_type, start_us, end_us, order_type, ranking, price_weight, single_seller,
		priority, status, filled_bps, created_us, updated_us)
		VALUES (?,(SELECT id FROM members WHERE asn = ?),?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET capacity_bps = excluded.capacity_bps, price_micros = excluded.price_micros,
		priority = excluded.priority, status = excluded.status, filled_bps = excluded.filled_bps, updated_us = excluded.updated_us`
	sqlInsertTrade = `INSERT INTO trades (id, buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol,
		capacity_bps, price_micros, start_us, end_us, created_us)
		VALUES (?,?,?,(SELECT id FROM members WHERE asn = ?),(SELECT id FROM members WHERE asn = ?),?,?,?,?,?,?,?)`
	sqlUpdateOrder = `UPDATE orders SET capacity_bps = ?, price_micros = ?, priority = ?, status = ?, filled_bps = ?,
		updated_us = ? WHERE id = ?`
	sqlEventRow   = "(?, (SELECT id FROM members WHERE asn = ?), ?, ?, ?, ?)"
	eventsPerStmt = 64
)

// sqlInsertEvents inserts n events in one statement: per-statement cost,
// not per-row, dominates a commit.
func sqlInsertEvents(n int) string {
	return store.InsertRows("events", "seq, member_id, type, trade_id, order_id, created_us", sqlEventRow, n)
}

type commitStmts struct {
	order, update, trade, events *sql.Stmt
}

func prepareCommit(ctx context.Context, tx *sql.Tx) (*commitStmts, error) {
	var s commitStmts
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{{&s.order, sqlUpsertOrder}, {&s.update, sqlUpdateOrder}, {&s.trade, sqlInsertTrade},
		{&s.events, sqlInsertEvents(eventsPerStmt)}} {
		st, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			return nil, err
		}
		*p.dst = st
	}
	return &s, nil
}

// commitChanges writes a batch of changes in one transaction, in order.
func commitChanges(ctx context.Context, db *store.DB, chs []*Change) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		st, err := prepareCommit(ctx, tx)
		if err != nil {
			return err
		}
		var events []any
		flush := func(full bool) error {
			for len(events) >= 6*eventsPerStmt || (!full && len(events) > 0) {
				n := min(len(events)/6, eventsPerStmt)
				st := st.events
				if n < eventsPerStmt {
					var err error
					if st, err = tx.PrepareContext(ctx, sqlInsertEvents(n)); err != nil {
						return err
					}
				}
				if _, err := st.ExecContext(ctx, events[:6*n]...); err != nil {
					return fmt.Errorf("events: %w", err)
				}
				events = events[6*n:]
			}
			return nil
		}
		for _, ch := range chs {
			for _, o := range ch.New {
				if err := upsertOrder(ctx, st.order, o); err != nil {
					return fmt.Errorf("order %d: %w", o.ID, err)
				}
			}
			for _, o := range ch.Orders {
				if _, err := st.update.ExecContext(ctx, o.Spec.CapacityBps, o.Spec.PriceMicros, o.Priority, o.Status, o.FilledBps,
					store.Micros(o.Updated), o.ID); err != nil {
					return fmt.Errorf("order %d: %w", o.ID, err)
				}
			}
			for _, t := range ch.Trades {
				if err := insertTrade(ctx, st, t); err != nil {
					return fmt.Errorf("trade %d: %w", t.ID, err)
				}
			}
			for _, e := range ch.Events {
				var trade, order any
				if e.Trade != nil {
					trade = e.Trade.ID
				}
				if e.Order != nil {
					order = e.Order.ID
				}
				events = append(events, e.Seq, e.MemberASN, e.Type, trade, order, store.Micros(e.Time))
			}
			// Events refer to this change's orders and trades, which are
			// written by now; later changes may update those rows, never
			// remove them.
			if err := flush(true); err != nil {
				return err
			}
		}
		return flush(false)
	})
}

func upsertOrder(ctx context.Context, st *sql.Stmt, o Order) error {
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
	_, err := st.ExecContext(ctx, o.ID, o.MemberASN, client, s.Side, prefix, origin, rtype, s.Protocol, s.CapacityBps, s.MinBlockBps, s.PriceMicros,
		nullable(s.Quality.MaxLatencyUs), nullable(s.Quality.MaxJitterUs), nullable(s.Quality.MaxLossPPM),
		nullable(s.Quality.MaxASHops), s.Quality.AllowUnverified, s.TrafficType, store.Micros(s.Start), store.Micros(s.End),
		s.Type, s.Ranking, s.PriceWeight, s.SingleSeller, o.Priority, o.Status, o.FilledBps, store.Micros(o.Created), store.Micros(o.Updated))
	return err
}

func insertTrade(ctx context.Context, st *commitStmts, t Trade) error {
	ps := make([]string, len(t.Prefixes))
	for i, p := range t.Prefixes {
		ps[i] = p.String()
	}
	_, err := st.trade.ExecContext(ctx, t.ID, t.BuyOrderID, t.SellOrderID, t.BuyerASN, t.SellerASN, strings.Join(ps, ","),
		t.Protocol, t.CapacityBps, t.PriceMicros, store.Micros(t.Start), store.Micros(t.End), store.Micros(t.Created))
	return err
}
