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

const selectOrder = `SELECT o.id, m.asn, o.client_order_id, o.side, o.dest_prefix, o.dest_origin_asn, o.dest_route_type,
	o.protocol, o.capacity_bps, o.min_block_bps, o.price_micros, o.max_latency_us, o.max_jitter_us, o.max_loss_ppm,
	o.max_as_hops, o.allow_unverified, o.traffic_type, o.start_us, o.end_us, o.order_type, o.ranking, o.price_weight,
	o.single_seller, o.status, o.filled_bps, o.created_us, o.updated_us, o.priority
	FROM orders o JOIN members m ON m.id = o.member_id`

// openCond is the SQL condition on the orders table for open orders.
// The status is a literal, not a parameter, so that sqlite can use the
// partial index of open orders (migration 0009).
var openCond = fmt.Sprintf("status = %d", Open)

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
	setLimits(&s.Quality, &lat, &jit, &loss, &hops)
	s.Start, s.End, o.Created, o.Updated = store.Time(start), store.Time(end), store.Time(created), store.Time(updated)
	return o, nil
}

// setLimits sets q's limits from their columns as scanned (NULL: no
// limit); the latency and jitter limits point into lat and jit.
func setLimits(q *Quality, lat, jit, loss, hops *sql.NullInt64) {
	if lat.Valid {
		q.MaxLatencyUs = &lat.Int64
	}
	if jit.Valid {
		q.MaxJitterUs = &jit.Int64
	}
	if loss.Valid {
		v := int32(loss.Int64)
		q.MaxLossPPM = &v
	}
	if hops.Valid {
		v := int32(hops.Int64)
		q.MaxASHops = &v
	}
}

func nullable[T int64 | int32](p *T) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func queryOrders(ctx context.Context, q registry.Querier, query string, args ...any) ([]Order, error) {
	return collect(ctx, q, func(r *sql.Rows, o *Order) (err error) {
		*o, err = scanOrder(r)
		return err
	}, query, args...)
}

func getOrder(ctx context.Context, q registry.Querier, asn uint32, id int64) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, selectOrder+" WHERE o.id = ? AND (CAST(? AS BIGINT) = 0 OR m.asn = ?)", id, asn, asn))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, fmt.Errorf("order %d: %w", id, ErrNotFound)
	}
	return o, err
}

// Get returns one order visible to asn.
func (b *Book) Get(ctx context.Context, asn uint32, id int64) (Order, error) {
	return getOrder(ctx, b.db, asn, id)
}

// Orders lists all of asn's orders (every member's for the operator with
// asn 0); the API reads them a page at a time (OrdersPage).
func (b *Book) Orders(ctx context.Context, asn uint32, openOnly bool) ([]Order, error) {
	return b.OrdersPage(ctx, asn, openOnly, 0, -1)
}

// OrdersPage lists at most limit (-1: every one) of asn's orders with ids
// above after, by id: a keyset page, stable under new orders.
func (b *Book) OrdersPage(ctx context.Context, asn uint32, openOnly bool, after int64, limit int) ([]Order, error) {
	q := selectOrder + " WHERE (CAST(? AS BIGINT) = 0 OR m.asn = ?) AND o.id > ?"
	if openOnly {
		q += " AND " + openCond
	}
	// No LIMIT for every one: PostgreSQL refuses sqlite's LIMIT -1.
	if limit < 0 {
		return queryOrders(ctx, b.db, q+" ORDER BY o.id", asn, asn, after)
	}
	return queryOrders(ctx, b.db, q+" ORDER BY o.id LIMIT ?", asn, asn, after, limit)
}

// openOrders reads the open orders (LoadSnapshot).
func openOrders(ctx context.Context, q registry.Querier) ([]Order, error) {
	return queryOrders(ctx, q, selectOrder+" WHERE "+openCond)
}

// clientOrderIDs maps each member's client order ids to its orders
// (LoadSnapshot).
func clientOrderIDs(ctx context.Context, q registry.Querier) (map[uint32]map[string]int64, error) {
	clients := map[uint32]map[string]int64{}
	rows, err := q.QueryContext(ctx, "SELECT m.asn, o.client_order_id, o.id FROM orders o JOIN members m ON m.id = o.member_id WHERE o.client_order_id IS NOT NULL")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var asn uint32
		var cid string
		var id int64
		if err := rows.Scan(&asn, &cid, &id); err != nil {
			rows.Close()
			return nil, err
		}
		if clients[asn] == nil {
			clients[asn] = map[string]int64{}
		}
		clients[asn][cid] = id
	}
	rows.Close()
	return clients, nil
}

// A commit's order writes (committer.commit).
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
	fillRow = "(?,?,?)"
	// The first row's casts type the VALUES columns for PostgreSQL, which
	// would read untyped parameters as text.
	fillRowTyped = "(CAST(? AS BIGINT),CAST(? AS BIGINT),CAST(? AS BIGINT))"
	fillUpdate   = `UPDATE orders SET filled_bps = v.column2, updated_us = v.column3 FROM (VALUES %s) AS v
		WHERE orders.id = v.column1`
)

var (
	kindOrder = &rowKind{28, 32, func(n int) string { return store.InsertRows("orders", orderCols, orderRow, n) + orderUpsert }}
	kindFill  = &rowKind{3, 128, func(n int) string {
		return fmt.Sprintf(fillUpdate, fillRowTyped+strings.Repeat(","+fillRow, n-1))
	}}
)

// writeOrders writes the last state of each order a batch touched (ws),
// with a as the buffer of statement arguments, which it returns.
func (c *committer) writeOrders(ctx context.Context, tx *sql.Tx, ws []orderWrite, a []any) ([]any, error) {
	for _, w := range ws {
		if !w.fill {
			id, err := c.memberID(ctx, w.o.MemberASN)
			if err != nil {
				return a, fmt.Errorf("order %d: %w", w.o.ID, err)
			}
			a = appendOrder(a, id, w.o)
		}
	}
	if err := c.exec(ctx, tx, kindOrder, a); err != nil {
		return a, fmt.Errorf("orders: %w", err)
	}
	a = a[:0]
	for _, w := range ws {
		if w.fill {
			a = append(a, w.o.ID, w.o.FilledBps, store.Micros(w.o.Updated))
		}
	}
	if err := c.exec(ctx, tx, kindFill, a); err != nil {
		return a, fmt.Errorf("order fills: %w", err)
	}
	return a, nil
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

// The reads of orders by the other packages (settle, dashboard). Each is
// one statement, run on q: the caller's transaction when it has one.

// openBuysSQL reads a member's open buy orders through its orders (the
// index of its client order ids): the index of open orders holds every
// member's, sells too, which the report of each member would read in
// full. "+status" keeps the planner off that one.
const openBuysSQL = `SELECT capacity_bps - filled_bps, price_micros, start_us, end_us FROM orders
	WHERE member_id = ? AND +status = 1 AND side = 1`

// EachOpenBuy calls fn for each open buy order of member memberID, with
// its remaining capacity (settlement's credit report).
func EachOpenBuy(ctx context.Context, q registry.Querier, memberID int64, fn func(BuyRow)) error {
	return eachBuy(ctx, q, fn, openBuysSQL, memberID)
}

// OpenOrdersPerMember counts each member's open orders that end after
// now.
func OpenOrdersPerMember(ctx context.Context, q registry.Querier, now time.Time) (map[uint32]int, error) {
	return perMember(ctx, q, `SELECT m.asn, c.n FROM (SELECT member_id, count(*) AS n FROM orders WHERE `+openCond+` AND end_us > ? GROUP BY member_id) c
		JOIN members m ON m.id = c.member_id`, store.Micros(now))
}

// DepthLevel is the open orders at one destination and protocol: on each
// side their count, their remaining capacity and the best price (valid
// when the count is not 0).
type DepthLevel struct {
	Destination string // as Destination.String names it
	Protocol    Protocol
	BuyOrders   int
	BuyBps      int64
	BestBid     int64
	SellOrders  int
	SellBps     int64
	BestAsk     int64
}

// Depth aggregates the open orders that end after now by destination and
// protocol, in no particular order.
func Depth(ctx context.Context, q registry.Querier, now time.Time) ([]DepthLevel, error) {
	return collect(ctx, q, func(rows *sql.Rows, l *DepthLevel) error {
		var p sql.NullString
		var o, t sql.NullInt64
		err := rows.Scan(&p, &o, &t, &l.Protocol, &l.BuyOrders, &l.BuyBps, &l.BestBid, &l.SellOrders, &l.SellBps, &l.BestAsk)
		l.Destination = destName(p, o, t)
		return err
	}, `SELECT dest_prefix, dest_origin_asn, dest_route_type, protocol,
		count(CASE WHEN side = 1 THEN 1 END), coalesce(sum(CASE WHEN side = 1 THEN capacity_bps - filled_bps END), 0), coalesce(max(CASE WHEN side = 1 THEN price_micros END), 0),
		count(CASE WHEN side = 2 THEN 1 END), coalesce(sum(CASE WHEN side = 2 THEN capacity_bps - filled_bps END), 0), coalesce(min(CASE WHEN side = 2 THEN price_micros END), 0)
		FROM orders WHERE `+openCond+` AND end_us > ?
		GROUP BY dest_prefix, dest_origin_asn, dest_route_type, protocol`, store.Micros(now))
}

// destName names a destination from its stored columns, as
// Destination.String does, without parsing the prefix.
func destName(prefix sql.NullString, origin, routeType sql.NullInt64) string {
	switch {
	case prefix.Valid:
		return prefix.String
	case origin.Valid:
		return fmt.Sprintf("origin AS%d", origin.Int64)
	default:
		return registry.RouteType(routeType.Int64).String() + " routes"
	}
}

// OpenOrderIDs reads the ids of the open orders that end after now (by
// the index of open orders).
func OpenOrderIDs(ctx context.Context, q registry.Querier, now time.Time) ([]int64, error) {
	rs, err := q.QueryContext(ctx, `SELECT id FROM orders WHERE `+openCond+` AND end_us > ?`, store.Micros(now))
	if err != nil {
		return nil, err
	}
	var ids []int64
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			rs.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rs.Close()
	return ids, rs.Err()
}
