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
	o.single_seller, o.status, o.filled_bps, o.created_us, o.updated_us
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
		&start, &end, &s.Type, &s.Ranking, &s.PriceWeight, &s.SingleSeller, &o.Status, &o.FilledBps, &created, &updated)
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

func insertOrder(ctx context.Context, tx *sql.Tx, memberID int64, o Order) (int64, error) {
	s := o.Spec
	var prefix, origin, rtype any
	switch d := s.Destination; {
	case d.Prefix.IsValid():
		prefix = d.Prefix.String()
	case d.OriginASN != 0:
		origin = d.OriginASN
	default:
		rtype = int(d.RouteType)
	}
	var client any
	if o.ClientOrderID != "" {
		client = o.ClientOrderID
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO orders (member_id, client_order_id, side, dest_prefix, dest_origin_asn,
		dest_route_type, protocol, capacity_bps, min_block_bps, price_micros, max_latency_us, max_jitter_us, max_loss_ppm,
		max_as_hops, allow_unverified, traffic_type, start_us, end_us, order_type, ranking, price_weight, single_seller,
		status, filled_bps, created_us, updated_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		memberID, client, s.Side, prefix, origin, rtype, s.Protocol, s.CapacityBps, s.MinBlockBps, s.PriceMicros,
		nullable(s.Quality.MaxLatencyUs), nullable(s.Quality.MaxJitterUs), nullable(s.Quality.MaxLossPPM),
		nullable(s.Quality.MaxASHops), s.Quality.AllowUnverified, s.TrafficType, store.Micros(s.Start), store.Micros(s.End),
		s.Type, s.Ranking, s.PriceWeight, s.SingleSeller, o.Status, o.FilledBps, store.Micros(o.Created), store.Micros(o.Updated))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

func getOrder(ctx context.Context, q registry.Querier, asn uint32, id int64) (Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, selectOrder+" WHERE o.id = ? AND (? = 0 OR m.asn = ?)", id, asn, asn))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, fmt.Errorf("order %d: %w", id, ErrNotFound)
	}
	return o, err
}

func addFill(ctx context.Context, tx *sql.Tx, id, bps int64, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE orders SET filled_bps = filled_bps + ?,
		status = CASE WHEN filled_bps + ? = capacity_bps THEN ? ELSE status END, updated_us = ? WHERE id = ?`,
		bps, bps, Filled, store.Micros(now), id)
	return err
}

func portReservations(ctx context.Context, tx *sql.Tx, portID int64, now time.Time) ([]Reservation, error) {
	rows, err := tx.QueryContext(ctx, `SELECT r.capacity_bps, r.start_us, r.end_us FROM reservations r
		JOIN trades t ON t.id = r.trade_id WHERE r.port_id = ? AND r.end_us > ? AND t.cancelled = 0`, portID, store.Micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Reservation
	for rows.Next() {
		var r Reservation
		var s, e int64
		if err := rows.Scan(&r.CapacityBps, &s, &e); err != nil {
			return nil, err
		}
		r.Start, r.End = store.Time(s), store.Time(e)
		out = append(out, r)
	}
	return out, rows.Err()
}

func insertTrade(ctx context.Context, tx *sql.Tx, t *Trade, buyer, seller registry.Member) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO trades (buy_order_id, sell_order_id, buyer_id, seller_id, protocol,
		capacity_bps, price_micros, start_us, end_us, created_us) VALUES (?,?,?,?,?,?,?,?,?,?)`,
		t.BuyOrderID, t.SellOrderID, buyer.ID, seller.ID, t.Protocol, t.CapacityBps, t.PriceMicros,
		store.Micros(t.Start), store.Micros(t.End), store.Micros(t.Created))
	if err != nil {
		return err
	}
	if t.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	for _, p := range t.Prefixes {
		if _, err := tx.ExecContext(ctx, "INSERT INTO trade_prefixes (trade_id, prefix) VALUES (?, ?)", t.ID, p.String()); err != nil {
			return err
		}
	}
	for _, m := range []registry.Member{buyer, seller} {
		if _, err := tx.ExecContext(ctx, "INSERT INTO reservations (port_id, trade_id, capacity_bps, start_us, end_us) VALUES (?,?,?,?,?)",
			m.Port.ID, t.ID, t.CapacityBps, store.Micros(t.Start), store.Micros(t.End)); err != nil {
			return err
		}
	}
	return nil
}

func insertEvent(ctx context.Context, tx *sql.Tx, m registry.Member, typ EventType, t Trade, now time.Time) (Event, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO events (member_id, type, trade_id, created_us) VALUES (?,?,?,?)", m.ID, typ, t.ID, store.Micros(now))
	if err != nil {
		return Event{}, err
	}
	seq, err := res.LastInsertId()
	return Event{Seq: seq, MemberASN: m.ASN, Type: typ, Time: now, Trade: t}, err
}

// selectTrade reads trades with the parties' ASNs, the traded prefixes and
// the seller's router addresses (joined as comma lists).
const selectTrade = `SELECT t.id, t.buy_order_id, t.sell_order_id, bm.asn, sm.asn, t.protocol, t.capacity_bps,
	t.price_micros, t.start_us, t.end_us, t.cancelled, t.created_us,
	(SELECT group_concat(prefix, ',') FROM trade_prefixes WHERE trade_id = t.id),
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
		var prefixes, hops sql.NullString
		if err := rows.Scan(&t.ID, &t.BuyOrderID, &t.SellOrderID, &t.BuyerASN, &t.SellerASN, &t.Protocol, &t.CapacityBps,
			&t.PriceMicros, &start, &end, &t.Cancelled, &created, &prefixes, &hops); err != nil {
			return nil, err
		}
		t.Start, t.End, t.Created = store.Time(start), store.Time(end), store.Time(created)
		for _, s := range splitList(prefixes.String) {
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

func tradesOfOrder(ctx context.Context, q registry.Querier, orderID int64) ([]Trade, error) {
	return queryTrades(ctx, q, selectTrade+" WHERE t.buy_order_id = ? OR t.sell_order_id = ? ORDER BY t.id", orderID, orderID)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
