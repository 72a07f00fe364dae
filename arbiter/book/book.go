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

// ErrNotFound is an unknown order, or one that belongs to another member:
// the two look the same so that nobody learns about other members' orders.
var ErrNotFound = errors.New("not found")

// ErrNotOpen is an order that can no longer change.
var ErrNotOpen = errors.New("order is not open")

// Operator is the caller ASN that stands for the exchange operator, who may
// see and cancel every member's orders.
const Operator uint32 = 0

// EventType follows the gRPC contract's numbers.
type EventType int

const (
	TradeCreated        EventType = 1
	TradeStarted        EventType = 2
	TradeEnded          EventType = 3
	TradeCancelledEvent EventType = 4
)

// Event is one entry of a member's event log.
type Event struct {
	Seq       int64
	MemberASN uint32
	Type      EventType
	Time      time.Time
	Trade     Trade
}

// Offer is a sell order a buy could take now (claim 24).
type Offer struct {
	Order        Order
	Prefixes     []netip.Prefix
	AvailableBps int64
	Measured     *Measured
}

// Book is the order database and the matching engine over the store.
type Book struct {
	db *store.DB
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Notify receives the events of each committed change, after commit.
	Notify func([]Event)
	// Freshness is how old a measurement may be and still count.
	Freshness time.Duration
}

// New returns a book over db.
func New(db *store.DB) *Book {
	return &Book{db: db, Now: time.Now, Notify: func([]Event) {}, Freshness: time.Hour}
}

// Place validates spec, stores the order for member asn and matches it, all
// in one transaction. The same non-empty clientID returns the first order.
func (b *Book) Place(ctx context.Context, asn uint32, spec Spec, clientID string) (Order, []Trade, error) {
	return b.place(ctx, asn, spec, clientID, 0)
}

// Take buys from one sell order only, all or nothing (RFQ).
func (b *Book) Take(ctx context.Context, asn uint32, sellID int64, spec Spec, clientID string) (Order, []Trade, error) {
	if spec.Side != Buy {
		return Order{}, nil, invalid("spec.side", "taking an offer is a buy")
	}
	spec.Type = FOK
	if sellID <= 0 {
		return Order{}, nil, invalid("offer_order_id", "is required")
	}
	return b.place(ctx, asn, spec, clientID, sellID)
}

func (b *Book) place(ctx context.Context, asn uint32, spec Spec, clientID string, only int64) (Order, []Trade, error) {
	now := b.Now().UTC()
	if err := spec.Validate(now); err != nil {
		return Order{}, nil, err
	}
	if len(clientID) > 128 {
		return Order{}, nil, invalid("client_order_id", "longer than 128 characters")
	}
	var (
		o      Order
		trades []Trade
		events []Event
	)
	err := b.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		if err := expire(ctx, tx, now); err != nil {
			return err
		}
		if clientID != "" {
			prev, err := scanOrder(tx.QueryRowContext(ctx, selectOrder+" WHERE o.member_id = ? AND o.client_order_id = ?", m.ID, clientID))
			if err == nil {
				o = prev
				trades, err = tradesOfOrder(ctx, tx, prev.ID)
				return err
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if spec.Side == Sell {
			if err := checkSellerOwns(ctx, tx, asn, spec); err != nil {
				return err
			}
		}
		o = Order{MemberASN: asn, Spec: spec, Status: Open, ClientOrderID: clientID, Created: now, Updated: now}
		if o.ID, err = insertOrder(ctx, tx, m.ID, o); err != nil {
			return err
		}
		trades, events, err = b.match(ctx, tx, &o, only, now)
		return err
	})
	if err != nil {
		return Order{}, nil, err
	}
	b.Notify(events)
	return o, trades, nil
}

// checkSellerOwns refuses a sell whose destination is not among the
// seller's registered routes.
func checkSellerOwns(ctx context.Context, tx *sql.Tx, asn uint32, spec Spec) error {
	routes, err := registry.MemberPrefixes(ctx, tx, asn)
	if err != nil {
		return err
	}
	d := spec.Destination
	for _, r := range routes {
		if !spec.Protocol.Fits(r.Prefix.Addr()) {
			continue
		}
		if d.Prefix.IsValid() {
			if r.Prefix.Bits() <= d.Prefix.Bits() && r.Prefix.Contains(d.Prefix.Addr()) {
				return nil
			}
		} else if d.Includes(r) {
			return nil
		}
	}
	return invalid("spec.destination", "AS%d has no registered %v route for %v", asn, spec.Protocol, d)
}

// match fills o against the resting orders of the other side and writes the
// trades, their port reservations and events. o is updated in place.
func (b *Book) match(ctx context.Context, tx *sql.Tx, o *Order, only int64, now time.Time) ([]Trade, []Event, error) {
	cands, err := b.candidates(ctx, tx, o, only, now)
	if err != nil {
		return nil, nil, err
	}
	ports := map[int64][]Reservation{}
	portOf := map[uint32]registry.Member{}
	member := func(asn uint32) (registry.Member, error) {
		if m, ok := portOf[asn]; ok {
			return m, nil
		}
		m, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return m, err
		}
		portOf[asn] = m
		if _, ok := ports[m.Port.ID]; !ok {
			if ports[m.Port.ID], err = portReservations(ctx, tx, m.Port.ID, now); err != nil {
				return m, err
			}
		}
		return m, nil
	}
	type fill struct {
		rest     Order
		prefixes []netip.Prefix
		hops     []netip.Addr
		bps      int64
	}
	var fills []fill
	remaining := o.Remaining()
	for _, c := range cands {
		if remaining <= 0 {
			break
		}
		buy, sell := o, &c.order
		if o.Spec.Side == Sell {
			buy, sell = &c.order, o
		}
		bm, err := member(buy.MemberASN)
		if err != nil {
			return nil, nil, err
		}
		sm, err := member(sell.MemberASN)
		if err != nil {
			return nil, nil, err
		}
		var hops []netip.Addr
		for _, a := range sm.Routers {
			if sell.Spec.Protocol.Fits(a) {
				hops = append(hops, a)
			}
		}
		if len(hops) == 0 {
			continue // the seller has no router of this family to be a next hop
		}
		start, end := buy.Spec.Start, buy.Spec.End
		free := func(m registry.Member) int64 {
			return m.Port.CapacityBps - PeakLoad(ports[m.Port.ID], start, end)
		}
		avail := min(c.order.Remaining(), free(bm), free(sm))
		bps := FillSize(remaining, avail, buy.Spec.MinBlockBps, sell.Spec.MinBlockBps)
		if buy.Spec.SingleSeller && bps != buy.Remaining() {
			continue
		}
		if bps == 0 {
			continue
		}
		for _, m := range []registry.Member{bm, sm} {
			ports[m.Port.ID] = append(ports[m.Port.ID], Reservation{CapacityBps: bps, Start: start, End: end})
		}
		fills = append(fills, fill{rest: c.order, prefixes: c.prefixes, hops: hops, bps: bps})
		remaining -= bps
	}
	if o.Spec.Type == FOK && remaining > 0 {
		fills = nil // fill or kill: nothing trades
	}
	var trades []Trade
	var events []Event
	for _, f := range fills {
		buy, sell := *o, f.rest
		if o.Spec.Side == Sell {
			buy, sell = f.rest, *o
		}
		t := Trade{
			BuyOrderID: buy.ID, SellOrderID: sell.ID, BuyerASN: buy.MemberASN, SellerASN: sell.MemberASN,
			Prefixes: f.prefixes, Protocol: buy.Spec.Protocol, CapacityBps: f.bps,
			PriceMicros: f.rest.Spec.PriceMicros, // the resting order's price
			Start:       buy.Spec.Start, End: buy.Spec.End, SellerNextHops: f.hops, Created: now,
		}
		if err := insertTrade(ctx, tx, &t, portOf[t.BuyerASN], portOf[t.SellerASN]); err != nil {
			return nil, nil, err
		}
		if err := addFill(ctx, tx, f.rest.ID, f.bps, now); err != nil {
			return nil, nil, err
		}
		o.FilledBps += f.bps
		trades = append(trades, t)
		for _, m := range []registry.Member{portOf[t.BuyerASN], portOf[t.SellerASN]} {
			ev, err := insertEvent(ctx, tx, m, TradeCreated, t, now)
			if err != nil {
				return nil, nil, err
			}
			events = append(events, ev)
		}
	}
	switch {
	case o.Remaining() == 0:
		o.Status = Filled
	case o.Spec.Type != Limit:
		o.Status = Cancelled // IOC and FOK never rest
	}
	o.Updated = now
	_, err = tx.ExecContext(ctx, "UPDATE orders SET filled_bps = ?, status = ?, updated_us = ? WHERE id = ?",
		o.FilledBps, o.Status, store.Micros(now), o.ID)
	return trades, events, err
}

type candidate struct {
	order    Order
	prefixes []netip.Prefix
}

// candidates lists the resting orders o could trade with, best first: by
// price, then time. (Ranking by performance or a weighted mix belongs to
// the full matching engine.)
func (b *Book) candidates(ctx context.Context, tx *sql.Tx, o *Order, only int64, now time.Time) ([]candidate, error) {
	q := selectOrder + ` WHERE o.status = ? AND o.side = ? AND o.protocol = ? AND o.end_us > ? AND m.asn <> ?`
	args := []any{Open, otherSide(o.Spec.Side), o.Spec.Protocol, store.Micros(now), o.MemberASN}
	if only != 0 {
		q += " AND o.id = ?"
		args = append(args, only)
	}
	if o.Spec.Side == Buy {
		q += " AND o.price_micros <= ? ORDER BY o.price_micros ASC, o.id ASC"
	} else {
		q += " AND o.price_micros >= ? ORDER BY o.price_micros DESC, o.id ASC"
	}
	args = append(args, o.Spec.PriceMicros)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var resting []Order
	for rows.Next() {
		r, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		resting = append(resting, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []candidate
	for _, r := range resting {
		buy, sell := o, &r
		if o.Spec.Side == Sell {
			buy, sell = &r, o
		}
		if !Compatible(buy.Spec, sell.Spec) {
			continue
		}
		routes, err := registry.MemberPrefixes(ctx, tx, sell.MemberASN)
		if err != nil {
			return nil, err
		}
		prefixes := TradedPrefixes(buy.Spec, sell.Spec, routes)
		if len(prefixes) == 0 {
			continue
		}
		if buy.Spec.Quality.Limited() {
			m, err := measured(ctx, tx, sell.MemberASN, prefixes, now.Add(-b.Freshness))
			if err != nil {
				return nil, err
			}
			if !buy.Spec.Quality.Meets(m) {
				continue
			}
		}
		out = append(out, candidate{order: r, prefixes: prefixes})
	}
	return out, nil
}

// measured averages the fresh measurements through seller toward prefixes.
func measured(ctx context.Context, q registry.Querier, seller uint32, prefixes []netip.Prefix, since time.Time) (*Measured, error) {
	ps := make([]any, 0, len(prefixes)+2)
	ps = append(ps, seller, store.Micros(since))
	for _, p := range prefixes {
		ps = append(ps, p.String())
	}
	var m Measured
	var lat, jit, loss, hops sql.NullFloat64
	err := q.QueryRowContext(ctx, `SELECT count(*), avg(latency_us), avg(jitter_us), avg(loss_ppm), max(as_hops)
		FROM measurements WHERE via_id = (SELECT id FROM members WHERE asn = ?) AND measured_us >= ?
		AND prefix IN (`+strings.TrimSuffix(strings.Repeat("?,", len(prefixes)), ",")+`)`, ps...).
		Scan(&m.Samples, &lat, &jit, &loss, &hops)
	if err != nil || m.Samples == 0 {
		return nil, err
	}
	m.LatencyUs, m.JitterUs, m.LossPPM, m.ASHops = int64(lat.Float64), int64(jit.Float64), int32(loss.Float64), int32(hops.Float64)
	return &m, nil
}

// expire marks open orders whose delivery period is over; they can no
// longer trade, and nobody should see them as open.
func expire(ctx context.Context, x interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, now time.Time) error {
	_, err := x.ExecContext(ctx, "UPDATE orders SET status = ?, updated_us = ? WHERE status = ? AND end_us <= ?",
		Expired, store.Micros(now), Open, store.Micros(now))
	return err
}

func otherSide(s Side) Side {
	if s == Buy {
		return Sell
	}
	return Buy
}

// Offers lists the sell orders a buy spec would match now, best first, with
// the capacity still available to the caller (claim 24).
func (b *Book) Offers(ctx context.Context, asn uint32, spec Spec) ([]Offer, error) {
	spec.Side = Buy
	if spec.Type == 0 {
		spec.Type = Limit
	}
	now := b.Now().UTC()
	if err := spec.Validate(now); err != nil {
		return nil, err
	}
	var out []Offer
	err := b.db.Tx(ctx, func(tx *sql.Tx) error {
		bm, err := registry.GetMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		o := &Order{MemberASN: asn, Spec: spec}
		cands, err := b.candidates(ctx, tx, o, 0, now)
		if err != nil {
			return err
		}
		buyerRes, err := portReservations(ctx, tx, bm.Port.ID, now)
		if err != nil {
			return err
		}
		buyerFree := bm.Port.CapacityBps - PeakLoad(buyerRes, spec.Start, spec.End)
		for _, c := range cands {
			sm, err := registry.GetMember(ctx, tx, c.order.MemberASN)
			if err != nil {
				return err
			}
			res, err := portReservations(ctx, tx, sm.Port.ID, now)
			if err != nil {
				return err
			}
			avail := min(c.order.Remaining(), buyerFree, sm.Port.CapacityBps-PeakLoad(res, spec.Start, spec.End))
			avail = FillSize(avail, avail, c.order.Spec.MinBlockBps, spec.MinBlockBps)
			if avail == 0 {
				continue
			}
			m, err := measured(ctx, tx, sm.ASN, c.prefixes, now.Add(-b.Freshness))
			if err != nil {
				return err
			}
			out = append(out, Offer{Order: c.order, Prefixes: c.prefixes, AvailableBps: avail, Measured: m})
		}
		return nil
	})
	return out, err
}

// Cancel cancels an open order of asn (any order for the operator). Trades
// it already made stand.
func (b *Book) Cancel(ctx context.Context, asn uint32, id int64) (Order, error) {
	var o Order
	now := b.Now().UTC()
	err := b.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := expire(ctx, tx, now); err != nil {
			return err
		}
		var err error
		if o, err = getOrder(ctx, tx, asn, id); err != nil {
			return err
		}
		if o.Status != Open {
			return fmt.Errorf("order %d: %w", id, ErrNotOpen)
		}
		o.Status, o.Updated = Cancelled, now
		_, err = tx.ExecContext(ctx, "UPDATE orders SET status = ?, updated_us = ? WHERE id = ?", o.Status, store.Micros(now), id)
		return err
	})
	return o, err
}

// Modify changes an open order's capacity and/or price, then matches it
// again (a better price may now cross).
func (b *Book) Modify(ctx context.Context, asn uint32, id int64, capacity, price *int64) (Order, []Trade, error) {
	if capacity == nil && price == nil {
		return Order{}, nil, invalid("capacity_bps", "give capacity_bps and/or price_micros to change")
	}
	now := b.Now().UTC()
	var (
		o      Order
		trades []Trade
		events []Event
	)
	err := b.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := expire(ctx, tx, now); err != nil {
			return err
		}
		var err error
		if o, err = getOrder(ctx, tx, asn, id); err != nil {
			return err
		}
		if o.Status != Open {
			return fmt.Errorf("order %d: %w", id, ErrNotOpen)
		}
		if capacity != nil {
			if *capacity < o.FilledBps || *capacity <= 0 {
				return invalid("capacity_bps", "%d is below the %d bit/s already traded", *capacity, o.FilledBps)
			}
			if *capacity < o.Spec.MinBlockBps {
				return invalid("capacity_bps", "%d is below min_block_bps %d", *capacity, o.Spec.MinBlockBps)
			}
			o.Spec.CapacityBps = *capacity
		}
		if price != nil {
			if *price < 0 {
				return invalid("price_micros", "must not be negative")
			}
			o.Spec.PriceMicros = *price
		}
		if _, err := tx.ExecContext(ctx, "UPDATE orders SET capacity_bps = ?, price_micros = ? WHERE id = ?",
			o.Spec.CapacityBps, o.Spec.PriceMicros, id); err != nil {
			return err
		}
		trades, events, err = b.match(ctx, tx, &o, 0, now)
		return err
	})
	if err != nil {
		return Order{}, nil, err
	}
	b.Notify(events)
	return o, trades, nil
}

// Get returns one order visible to asn.
func (b *Book) Get(ctx context.Context, asn uint32, id int64) (Order, error) {
	if err := expire(ctx, b.db, b.Now().UTC()); err != nil {
		return Order{}, err
	}
	return getOrder(ctx, b.db, asn, id)
}

// Orders lists asn's orders (every member's for the operator with asn 0).
func (b *Book) Orders(ctx context.Context, asn uint32, openOnly bool) ([]Order, error) {
	if err := expire(ctx, b.db, b.Now().UTC()); err != nil {
		return nil, err
	}
	q := selectOrder + " WHERE (? = 0 OR m.asn = ?)"
	if openOnly {
		q += fmt.Sprintf(" AND o.status = %d", Open)
	}
	rows, err := b.db.QueryContext(ctx, q+" ORDER BY o.id", asn, asn)
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

// Trades lists the trades asn is a party to (all for the operator).
func (b *Book) Trades(ctx context.Context, asn uint32, activeOnly bool) ([]Trade, error) {
	q := selectTrade + " WHERE (? = 0 OR bm.asn = ? OR sm.asn = ?)"
	args := []any{asn, asn, asn}
	if activeOnly {
		now := store.Micros(b.Now())
		q += " AND t.cancelled = 0 AND t.start_us <= ? AND t.end_us > ?"
		args = append(args, now, now)
	}
	return queryTrades(ctx, b.db, q+" ORDER BY t.id", args...)
}

// Events returns asn's events after seq, oldest first, at most limit.
func (b *Book) Events(ctx context.Context, asn uint32, after int64, limit int) ([]Event, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT e.seq, e.type, e.created_us, e.trade_id FROM events e
		JOIN members m ON m.id = e.member_id WHERE m.asn = ? AND e.seq > ? ORDER BY e.seq LIMIT ?`, asn, after, limit)
	if err != nil {
		return nil, err
	}
	type row struct {
		ev      Event
		tradeID int64
	}
	var rs []row
	for rows.Next() {
		var r row
		var us int64
		if err := rows.Scan(&r.ev.Seq, &r.ev.Type, &us, &r.tradeID); err != nil {
			rows.Close()
			return nil, err
		}
		r.ev.MemberASN, r.ev.Time = asn, store.Time(us)
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(rs))
	for _, r := range rs {
		ts, err := queryTrades(ctx, b.db, selectTrade+" WHERE t.id = ?", r.tradeID)
		if err != nil || len(ts) != 1 {
			return nil, fmt.Errorf("event %d: trade %d: %v", r.ev.Seq, r.tradeID, err)
		}
		r.ev.Trade = ts[0]
		out = append(out, r.ev)
	}
	return out, nil
}
