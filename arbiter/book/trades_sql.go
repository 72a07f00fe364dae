package book

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// selectTrade reads trades with the parties' ASNs, the traded prefixes and
// the seller's router addresses (joined as comma lists).
const selectTrade = `SELECT t.id, t.buy_order_id, t.sell_order_id, bm.asn, sm.asn, t.protocol, t.capacity_bps,
	t.price_micros, t.start_us, t.end_us, t.cancelled, t.created_us, t.prefixes,
	(SELECT string_agg(address, ',') FROM routers WHERE member_id = t.seller_id),
	(SELECT string_agg(address, ',') FROM routers WHERE member_id = t.buyer_id),
	t.latency_us, t.jitter_us, t.loss_ppm, t.as_hops, t.quality_samples, t.quality_probes, t.latency_err_us, t.jitter_err_us,
	t.contract_end_us, t.end_reason
	FROM trades t JOIN members bm ON bm.id = t.buyer_id JOIN members sm ON sm.id = t.seller_id`

func queryTrades(ctx context.Context, q registry.Querier, query string, args ...any) ([]Trade, error) {
	return collect(ctx, q, scanTrade, query, args...)
}

// scanTrade reads one row of selectTrade into t.
func scanTrade(rows *sql.Rows, t *Trade) error {
	var start, end, created int64
	var prefixes string
	var hops, buyerRouters sql.NullString
	var lat, jit, loss, asHops, samples, probes, latErr, jitErr, contractEnd sql.NullInt64
	var endReason sql.NullString
	if err := rows.Scan(&t.ID, &t.BuyOrderID, &t.SellOrderID, &t.BuyerASN, &t.SellerASN, &t.Protocol, &t.CapacityBps,
		&t.PriceMicros, &start, &end, &t.Cancelled, &created, &prefixes, &hops, &buyerRouters, &lat, &jit, &loss, &asHops, &samples,
		&probes, &latErr, &jitErr, &contractEnd, &endReason); err != nil {
		return err
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
			return fmt.Errorf("trade %d: stored prefix %q: %w", t.ID, s, err)
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
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Trades lists all the trades asn is a party to (all for the operator);
// the API reads them a page at a time (TradesPage).
func (b *Book) Trades(ctx context.Context, asn uint32, activeOnly bool) ([]Trade, error) {
	return b.TradesPage(ctx, asn, activeOnly, 0, -1)
}

// TradesPage lists at most limit (-1: every one) of the trades asn is a
// party to with ids above after, by id: a keyset page.
func (b *Book) TradesPage(ctx context.Context, asn uint32, activeOnly bool, after int64, limit int) ([]Trade, error) {
	q := selectTrade + " WHERE (CAST(? AS BIGINT) = 0 OR bm.asn = ? OR sm.asn = ?) AND t.id > ?"
	args := []any{asn, asn, asn, after}
	if activeOnly {
		now := store.Micros(b.opt.Now())
		q += " AND t.cancelled = 0 AND t.start_us <= ? AND t.end_us > ?"
		args = append(args, now, now)
	}
	// No LIMIT for every one: PostgreSQL refuses sqlite's LIMIT -1.
	if limit < 0 {
		return queryTrades(ctx, b.db, q+" ORDER BY t.id", args...)
	}
	return queryTrades(ctx, b.db, q+" ORDER BY t.id LIMIT ?", append(args, limit)...)
}

// Trade returns trade id if asn is a party to it (the operator, 0: any);
// ErrNotFound otherwise, the same for "no such trade" and "not yours".
func (b *Book) Trade(ctx context.Context, asn uint32, id int64) (Trade, error) {
	ts, err := queryTrades(ctx, b.db, selectTrade+" WHERE t.id = ? AND (CAST(? AS BIGINT) = 0 OR bm.asn = ? OR sm.asn = ?)", id, asn, asn, asn)
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

// The reads of trades by the other packages (settle, dashboard, and
// quality through the daemon's wiring). Each is one statement, run on q:
// the caller's transaction when it has one.

// BoughtTrades reads the trades member buyerID bought from member
// sellerID, not cancelled (quality.Matrix.Bought: a measurement of a
// bought path is admitted while the trade stands). A stored prefix that
// does not parse is left out.
func BoughtTrades(ctx context.Context, q registry.Querier, buyerID, sellerID int64) ([]quality.BoughtTrade, error) {
	return collect(ctx, q, func(rows *sql.Rows, t *quality.BoughtTrade) error {
		var ps string
		var made, end int64
		if err := rows.Scan(&ps, &made, &end); err != nil {
			return err
		}
		t.Made, t.End = store.Time(made), store.Time(end)
		for _, p := range strings.Split(ps, ",") {
			if pp, err := netip.ParsePrefix(strings.TrimSpace(p)); err == nil {
				t.Prefixes = append(t.Prefixes, pp)
			}
		}
		return nil
	}, "SELECT prefixes, created_us, end_us FROM trades WHERE buyer_id = ? AND seller_id = ? AND cancelled = 0", buyerID, sellerID)
}

// PartyTrade is a trade with its parties, as settlement reads a period's
// trades.
type PartyTrade struct {
	ID                  int64
	BuyerID, SellerID   int64 // member ids (TradesIn only)
	BuyerASN, SellerASN uint32
	CapacityBps         int64
	PriceMicros         int64 // TradesIn only
	Start, End          time.Time
}

// TradesIn reads every trade not cancelled that delivers in [from, to),
// by id (settlement's billing).
func TradesIn(ctx context.Context, q registry.Querier, from, to time.Time) ([]PartyTrade, error) {
	return collect(ctx, q, func(rows *sql.Rows, t *PartyTrade) error {
		var st, en int64
		err := rows.Scan(&t.ID, &t.BuyerID, &t.BuyerASN, &t.SellerID, &t.SellerASN, &t.CapacityBps, &t.PriceMicros, &st, &en)
		t.Start, t.End = store.Time(st), store.Time(en)
		return err
	}, `SELECT t.id, bm.id, bm.asn, sm.id, sm.asn, t.capacity_bps, t.price_micros, t.start_us, t.end_us
		FROM trades t JOIN members bm ON bm.id = t.buyer_id JOIN members sm ON sm.id = t.seller_id
		WHERE t.start_us < ? AND t.end_us > ? AND t.cancelled = 0 ORDER BY t.id`, store.Micros(to), store.Micros(from))
}

// MemberTradesIn reads the trades not cancelled that deliver in
// [from, to) and that member asn bought or sold (0: every member's), by
// id, without the member ids and the price (settlement's use events).
func MemberTradesIn(ctx context.Context, q registry.Querier, asn uint32, from, to time.Time) ([]PartyTrade, error) {
	return collect(ctx, q, func(rows *sql.Rows, t *PartyTrade) error {
		var st, en int64
		err := rows.Scan(&t.ID, &t.BuyerASN, &t.SellerASN, &t.CapacityBps, &st, &en)
		t.Start, t.End = store.Time(st), store.Time(en)
		return err
	}, `SELECT t.id, bm.asn, sm.asn, t.capacity_bps, t.start_us, t.end_us
		FROM trades t JOIN members bm ON bm.id = t.buyer_id JOIN members sm ON sm.id = t.seller_id
		WHERE t.start_us < ? AND t.end_us > ? AND t.cancelled = 0 AND (CAST(? AS BIGINT) = 0 OR bm.asn = ? OR sm.asn = ?) ORDER BY t.id`,
		store.Micros(to), store.Micros(from), asn, asn, asn)
}

// TradeSpan reads trade id's delivery and whether it was cancelled, if
// member asn bought or sold it (0, the operator: any trade); ErrNotFound
// otherwise, the same for "no such trade" and "not yours".
func TradeSpan(ctx context.Context, q registry.Querier, asn uint32, id int64) (start, end time.Time, cancelled bool, err error) {
	var st, en int64
	err = q.QueryRowContext(ctx, `SELECT t.start_us, t.end_us, t.cancelled
		FROM trades t JOIN members bm ON bm.id = t.buyer_id JOIN members sm ON sm.id = t.seller_id
		WHERE t.id = ? AND (CAST(? AS BIGINT) = 0 OR bm.asn = ? OR sm.asn = ?)`, id, asn, asn, asn).Scan(&st, &en, &cancelled)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, time.Time{}, false, fmt.Errorf("trade %d: %w", id, ErrNotFound)
	}
	return store.Time(st), store.Time(en), cancelled, err
}

// BuyLimits is what judging a trade's quality needs: its parties (member
// ids), its prefixes as stored, and the quality limits of its buy order.
type BuyLimits struct {
	BuyerID, SellerID int64
	Prefixes          []string
	Quality           Quality // the limits only: AllowUnverified is not read
}

// TradeBuyLimits reads trade id's BuyLimits; ErrNotFound if there is no
// such trade.
func TradeBuyLimits(ctx context.Context, q registry.Querier, id int64) (BuyLimits, error) {
	var l BuyLimits
	var prefixes string
	var lat, jit, loss, hops sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT t.buyer_id, t.seller_id, t.prefixes, o.max_latency_us, o.max_jitter_us, o.max_loss_ppm, o.max_as_hops
		FROM trades t JOIN orders o ON o.id = t.buy_order_id WHERE t.id = ?`, id).Scan(&l.BuyerID, &l.SellerID, &prefixes, &lat, &jit, &loss, &hops)
	if errors.Is(err, sql.ErrNoRows) {
		return BuyLimits{}, fmt.Errorf("trade %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return BuyLimits{}, err
	}
	l.Prefixes = strings.Split(prefixes, ",")
	setLimits(&l.Quality, &lat, &jit, &loss, &hops)
	return l, nil
}

// TradePorts is what a usage report of a trade is checked against: its
// parties (member ids), its delivery, and each party's port capacity.
type TradePorts struct {
	BuyerID, SellerID           int64
	Start, End                  time.Time
	BuyerPortBps, SellerPortBps int64
}

// TradePortsOf reads trade id's TradePorts; false if there is no such
// trade.
func TradePortsOf(ctx context.Context, q registry.Querier, id int64) (TradePorts, bool, error) {
	var t TradePorts
	var st, en int64
	err := q.QueryRowContext(ctx, `SELECT t.buyer_id, t.seller_id, t.start_us, t.end_us, bp.capacity_bps, sp.capacity_bps
					FROM trades t JOIN ports bp ON bp.member_id = t.buyer_id JOIN ports sp ON sp.member_id = t.seller_id
					WHERE t.id = ?`, id).Scan(&t.BuyerID, &t.SellerID, &st, &en, &t.BuyerPortBps, &t.SellerPortBps)
	if errors.Is(err, sql.ErrNoRows) {
		return TradePorts{}, false, nil
	}
	if err != nil {
		return TradePorts{}, false, err
	}
	t.Start, t.End = store.Time(st), store.Time(en)
	return t, true, nil
}

// BuyRow is a buy as settlement's credit check counts it: a trade, or an
// open order's remaining capacity, at its price over [StartUs, EndUs) in
// the store's microseconds.
type BuyRow struct {
	ID                       int64 // trades only (BuyTradesAfter)
	CapacityBps, PriceMicros int64
	StartUs, EndUs           int64
	Cancelled                bool // BuyTradesAfter only: the others read none
}

// EachBuyTrade calls fn for each trade member buyerID bought, not
// cancelled, that ends after endAfterUs.
func EachBuyTrade(ctx context.Context, q registry.Querier, buyerID, endAfterUs int64, fn func(BuyRow)) error {
	return eachBuy(ctx, q, fn, `SELECT capacity_bps, price_micros, start_us, end_us FROM trades
		WHERE buyer_id = ? AND cancelled = 0 AND end_us > ?`, buyerID, endAfterUs)
}

// buyTradesAfterSQL reads a buyer's trades after a trade id, cancelled
// ones too (the index trades_buyer: member, then id).
const buyTradesAfterSQL = `SELECT id, capacity_bps, price_micros, start_us, end_us, cancelled FROM trades WHERE buyer_id = ? AND id > ?`

// BuyTradesAfter reads a buyer's trades after a trade id with a statement
// prepared once: settlement's credit cache reads its new rows on every
// buy check. database/sql closes it with the database.
type BuyTradesAfter struct{ st *sql.Stmt }

// PrepareBuyTradesAfter prepares the read on db.
func PrepareBuyTradesAfter(ctx context.Context, db *store.DB) (*BuyTradesAfter, error) {
	st, err := db.PrepareContext(ctx, buyTradesAfterSQL)
	if err != nil {
		return nil, err
	}
	return &BuyTradesAfter{st: st}, nil
}

// Each calls fn for each trade member buyerID bought with an id above
// after, cancelled ones too.
func (r *BuyTradesAfter) Each(ctx context.Context, buyerID, after int64, fn func(BuyRow)) error {
	rows, err := r.st.QueryContext(ctx, buyerID, after)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b BuyRow
		if err := rows.Scan(&b.ID, &b.CapacityBps, &b.PriceMicros, &b.StartUs, &b.EndUs, &b.Cancelled); err != nil {
			return err
		}
		fn(b)
	}
	return rows.Err()
}

// Close closes the prepared statement.
func (r *BuyTradesAfter) Close() error { return r.st.Close() }

// ActiveTradesPerMember counts each member's trades delivering at now,
// bought or sold.
func ActiveTradesPerMember(ctx context.Context, q registry.Querier, now time.Time) (map[uint32]int, error) {
	return perMember(ctx, q, `SELECT m.asn, count(*) FROM (SELECT buyer_id AS id FROM trades WHERE cancelled = 0 AND start_us <= ?1 AND end_us > ?1
			UNION ALL SELECT seller_id FROM trades WHERE cancelled = 0 AND start_us <= ?1 AND end_us > ?1) t JOIN members m ON m.id = t.id GROUP BY m.asn`, store.Micros(now))
}

// TapeTrade is a trade on the anonymous market tape: no parties.
type TapeTrade struct {
	Prefixes    string // as stored: comma-separated
	Protocol    Protocol
	CapacityBps int64
	PriceMicros int64
	Created     time.Time
}

// Tape reads the 50 latest trades, newest first.
func Tape(ctx context.Context, q registry.Querier) ([]TapeTrade, error) {
	return collect(ctx, q, func(rows *sql.Rows, t *TapeTrade) error {
		var created int64
		err := rows.Scan(&t.Prefixes, &t.Protocol, &t.CapacityBps, &t.PriceMicros, &created)
		t.Created = store.Time(created)
		return err
	}, `SELECT prefixes, protocol, capacity_bps, price_micros, created_us FROM trades ORDER BY id DESC LIMIT 50`)
}

// NamedTrade is a trade with its parties' names, as the dashboard lists
// trades.
type NamedTrade struct {
	ID                    int64
	BuyerASN, SellerASN   uint32
	BuyerName, SellerName string
	Prefixes              string // as stored: comma-separated
	Protocol              Protocol
	CapacityBps           int64
	PriceMicros           int64
	Start, End, Created   time.Time
	Cancelled             bool
}

// NamedTrades lists trades newest first, at most limit: member asn's, or
// every member's if all is set; id > 0 picks that one.
func NamedTrades(ctx context.Context, q registry.Querier, asn uint32, all bool, id int64, limit int) ([]NamedTrade, error) {
	return NamedTradesPage(ctx, q, asn, all, id, TradeWindow{}, limit)
}

// TradeWindow is a keyset page of trades newest first: those with ids
// below Before (0: the newest), or, for the page before, the limit
// trades just above After.
type TradeWindow struct{ Before, After int64 }

// NamedTradesPage is NamedTrades within w, still newest first.
func NamedTradesPage(ctx context.Context, q registry.Querier, asn uint32, all bool, id int64, w TradeWindow, limit int) ([]NamedTrade, error) {
	query := `SELECT t.id, b.asn, b.name, s.asn, s.name, t.prefixes, t.protocol, t.capacity_bps, t.price_micros,
		t.start_us, t.end_us, t.cancelled, t.created_us
		FROM trades t JOIN members b ON b.id = t.buyer_id JOIN members s ON s.id = t.seller_id WHERE 1`
	var args []any
	if !all {
		query += ` AND (b.asn = ? OR s.asn = ?)`
		args = append(args, asn, asn)
	}
	if id > 0 {
		query += ` AND t.id = ?`
		args = append(args, id)
	}
	order := "DESC"
	switch {
	case w.After > 0:
		query += ` AND t.id > ?`
		args = append(args, w.After)
		order = "ASC" // the ones just above, turned newest first below
	case w.Before > 0:
		query += ` AND t.id < ?`
		args = append(args, w.Before)
	}
	query += ` ORDER BY t.id ` + order + ` LIMIT ?`
	args = append(args, limit)
	if order == "ASC" {
		ts, err := namedTrades(ctx, q, query, args)
		slices.Reverse(ts)
		return ts, err
	}
	return namedTrades(ctx, q, query, args)
}

func namedTrades(ctx context.Context, q registry.Querier, query string, args []any) ([]NamedTrade, error) {
	return collect(ctx, q, func(rows *sql.Rows, t *NamedTrade) error {
		var start, end, created int64
		err := rows.Scan(&t.ID, &t.BuyerASN, &t.BuyerName, &t.SellerASN, &t.SellerName, &t.Prefixes, &t.Protocol,
			&t.CapacityBps, &t.PriceMicros, &start, &end, &t.Cancelled, &created)
		t.Start, t.End, t.Created = store.Time(start), store.Time(end), store.Time(created)
		return err
	}, query, args...)
}
