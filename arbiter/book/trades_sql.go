package book

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

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

// Trades lists the trades asn is a party to (all for the operator).
func (b *Book) Trades(ctx context.Context, asn uint32, activeOnly bool) ([]Trade, error) {
	q := selectTrade + " WHERE (? = 0 OR bm.asn = ? OR sm.asn = ?)"
	args := []any{asn, asn, asn}
	if activeOnly {
		now := store.Micros(b.opt.Now())
		q += " AND t.cancelled = 0 AND t.start_us <= ? AND t.end_us > ?"
		args = append(args, now, now)
	}
	return queryTrades(ctx, b.db, q+" ORDER BY t.id", args...)
}

// Trade returns trade id if asn is a party to it (the operator, 0: any);
// ErrNotFound otherwise, the same for "no such trade" and "not yours".
func (b *Book) Trade(ctx context.Context, asn uint32, id int64) (Trade, error) {
	ts, err := queryTrades(ctx, b.db, selectTrade+" WHERE t.id = ? AND (? = 0 OR bm.asn = ? OR sm.asn = ?)", id, asn, asn, asn)
	if err != nil {
		return Trade{}, err
	}
	if len(ts) == 0 {
		return Trade{}, ErrNotFound
	}
	return ts[0], nil
}

// Unended returns every trade not cancelled whose delivery ends after now:
// the running and the scheduled ones (what the route server must know of),
// without reading the whole trade history.
func (b *Book) Unended(ctx context.Context, now time.Time) ([]Trade, error) {
	return queryTrades(ctx, b.db, selectTrade+" WHERE t.cancelled = 0 AND t.end_us > ? ORDER BY t.id", store.Micros(now))
}

// orderTrades reads the trades order id made.
func orderTrades(ctx context.Context, q registry.Querier, id int64) ([]Trade, error) {
	return queryTrades(ctx, q, selectTrade+" WHERE t.buy_order_id = ? OR t.sell_order_id = ? ORDER BY t.id", id, id)
}

// unendedTradesOf reads member asn's trades not cancelled that end after
// now and were not ended early.
func unendedTradesOf(ctx context.Context, q registry.Querier, asn uint32, now time.Time) ([]Trade, error) {
	return queryTrades(ctx, q, selectTrade+` WHERE (bm.asn = ? OR sm.asn = ?) AND t.cancelled = 0 AND t.end_us > ?
		AND t.contract_end_us IS NULL ORDER BY t.id`, asn, asn, store.Micros(now))
}

// tradeByID reads trade id, if it exists, whoever's it is.
func tradeByID(ctx context.Context, q registry.Querier, id int64) ([]Trade, error) {
	return queryTrades(ctx, q, selectTrade+" WHERE t.id = ?", id)
}

// isParty reports whether member asn bought or sold trade id.
func isParty(ctx context.Context, q registry.Querier, id int64, asn uint32) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM trades t JOIN members bm ON bm.id = t.buyer_id
				JOIN members sm ON sm.id = t.seller_id WHERE t.id = ? AND ? IN (bm.asn, sm.asn)`, id, asn).Scan(&n)
	return n > 0, err
}

// reservations reads the capacity each live trade holds on the buyer's
// and the seller's port (LoadSnapshot).
func reservations(ctx context.Context, q registry.Querier, now time.Time) ([]PortReservation, error) {
	rows, err := q.QueryContext(ctx, `SELECT p.id, t.capacity_bps, t.start_us, t.end_us FROM trades t
			JOIN ports p ON p.member_id IN (t.buyer_id, t.seller_id) WHERE t.end_us > ? AND t.cancelled = 0`, store.Micros(now))
	if err != nil {
		return nil, err
	}
	var out []PortReservation
	for rows.Next() {
		var r PortReservation
		var a, b int64
		if err := rows.Scan(&r.PortID, &r.CapacityBps, &a, &b); err != nil {
			rows.Close()
			return nil, err
		}
		r.Start, r.End = store.Time(a), store.Time(b)
		out = append(out, r)
	}
	rows.Close()
	return out, nil
}

// A commit's trade writes (committer.commit).
const (
	tradeCols = `id, buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
		start_us, end_us, created_us, latency_us, jitter_us, loss_ppm, as_hops, quality_samples,
		quality_probes, latency_err_us, jitter_err_us`
	tradeRow = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

var kindTrade = &rowKind{20, 64, func(n int) string { return store.InsertRows("trades", tradeCols, tradeRow, n) }}

// endTrade records a trade ended early; its agreed end is kept once.
const endTrade = `UPDATE trades SET end_us = ?, cancelled = ?, contract_end_us = ?, end_reason = ?
					WHERE id = ? AND contract_end_us IS NULL`

// writeTrades writes a batch's new trades and the ones it ended, with a
// as the buffer of statement arguments, which it returns.
func (c *committer) writeTrades(ctx context.Context, tx *sql.Tx, chs []*Change, a []any) ([]any, error) {
	for _, ch := range chs {
		for _, t := range ch.Trades {
			buyer, err := c.memberID(ctx, t.BuyerASN)
			if err != nil {
				return a, fmt.Errorf("trade %d: buyer: %w", t.ID, err)
			}
			seller, err := c.memberID(ctx, t.SellerASN)
			if err != nil {
				return a, fmt.Errorf("trade %d: seller: %w", t.ID, err)
			}
			a = appendTrade(a, buyer, seller, t)
		}
	}
	if err := c.exec(ctx, tx, kindTrade, a); err != nil {
		return a, fmt.Errorf("trades: %w", err)
	}
	// Trades ended early are rare (a member removed): one statement each.
	for _, ch := range chs {
		for _, t := range ch.Ended {
			if _, err := tx.ExecContext(ctx, endTrade, store.Micros(t.End), t.Cancelled, store.Micros(t.ContractEnd), t.EndReason, t.ID); err != nil {
				return a, fmt.Errorf("trade %d ended: %w", t.ID, err)
			}
		}
	}
	return a, nil
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
