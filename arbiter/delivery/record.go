package delivery

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
)

// Who a gap in delivery falls on.
const (
	CauseBuyer  = "buyer"  // its own session was down: still charged
	CauseSeller = "seller" // the seller's session, route or path: not charged
)

// Change is a change of a trade's delivery on one of the buyer's sessions
// at At: its new state, or Ended when the trade (or the session) left the
// route server.
type Change struct {
	TradeID   int64
	Session   netip.Addr
	At        time.Time
	Delivered bool
	Reason    string
	Cause     string
	Ended     bool
}

// Interval is one state of a trade's delivery on a session, from From to
// To (zero: still so).
type Interval struct {
	TradeID   int64
	Session   netip.Addr
	From, To  time.Time
	Delivered bool
	Reason    string
	Cause     string
}

// Record keeps the delivery record: what the route server really
// delivered, per trade and buyer session, as intervals.
type Record struct{ db *store.DB }

// NewRecord is the record in db.
func NewRecord(db *store.DB) *Record { return &Record{db: db} }

// Apply records changes, in order, in one transaction: each closes the
// session's open interval at its time and, unless Ended, opens the next.
// A change that repeats the open state changes nothing (a restarted
// arbiter reports every state afresh); a state that lasted no time leaves
// no interval.
func (r *Record) Apply(ctx context.Context, cs []Change) error {
	for _, c := range cs {
		if c.TradeID <= 0 || !c.Session.IsValid() || c.At.IsZero() {
			return fmt.Errorf("delivery record: change %+v: needs a trade, a session and a time", c)
		}
		if !c.Ended && !c.Delivered && c.Cause != CauseBuyer && c.Cause != CauseSeller {
			return fmt.Errorf("delivery record: trade %d on %v: cause %q is neither %q nor %q", c.TradeID, c.Session, c.Cause, CauseBuyer, CauseSeller)
		}
	}
	return r.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, c := range cs {
			if err := apply(ctx, tx, c); err != nil {
				return fmt.Errorf("delivery record: trade %d on %v: %w", c.TradeID, c.Session, err)
			}
		}
		return nil
	})
}

// Intervals returns the trade's record, by session and time.
func (r *Record) Intervals(ctx context.Context, tradeID int64) ([]Interval, error) {
	m, err := r.read(ctx, []int64{tradeID}, false)
	return m[tradeID], err
}

// Of returns the records of the trades, by trade, each by session and
// time: one read for a list of trades.
func (r *Record) Of(ctx context.Context, tradeIDs []int64) (map[int64][]Interval, error) {
	return r.read(ctx, tradeIDs, false)
}

// Now returns the open interval of each session of the trades: what is
// delivered now, by trade.
func (r *Record) Now(ctx context.Context, tradeIDs []int64) (map[int64][]Interval, error) {
	return r.read(ctx, tradeIDs, true)
}

// read reads the trades' intervals (only the open ones with open), each
// trade's by session and time.
func (r *Record) read(ctx context.Context, tradeIDs []int64, open bool) (map[int64][]Interval, error) {
	out := map[int64][]Interval{}
	// In chunks, well under sqlite's limit on a statement's variables.
	for ids := range slices.Chunk(tradeIDs, 500) {
		if err := r.readInto(ctx, out, ids, open); err != nil {
			return nil, err
		}
	}
	for _, ivs := range out {
		slices.SortStableFunc(ivs, func(a, b Interval) int { return a.Session.Compare(b.Session) })
	}
	return out, nil
}

// SellerGaps returns the parts of [from, to) in which the trade was not
// delivered through no fault of the buyer, from its record (an open
// interval lasting to to): the times when, for one of the families
// (IPv4, IPv6) the trade has sessions of, no session of that family
// delivered it and at least one did not because of the seller. A buyer
// whose own session was down is charged for that time; time with no
// record (before the route server first judged the trade, or with BGP
// off) is taken as delivered.
func (r *Record) SellerGaps(ctx context.Context, tradeID int64, from, to time.Time) ([]Span, error) {
	ivs, err := r.Intervals(ctx, tradeID)
	if err != nil {
		return nil, err
	}
	return SellerGaps(ivs, from, to), nil
}

// Span is a stretch of time [Start, End).
type Span struct{ Start, End time.Time }

// SellerGaps is Record.SellerGaps over a trade's intervals.
func SellerGaps(ivs []Interval, from, to time.Time) []Span {
	// The elementary stretches between every boundary inside [from, to).
	cuts := []time.Time{from, to}
	for _, iv := range ivs {
		for _, t := range []time.Time{iv.From, iv.To} {
			if t.After(from) && t.Before(to) {
				cuts = append(cuts, t)
			}
		}
	}
	slices.SortFunc(cuts, time.Time.Compare)
	cuts = slices.Compact(cuts)
	var out []Span
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		type fam struct{ delivered, seller bool }
		var v4, v6 fam
		for _, iv := range ivs {
			end := iv.To
			if end.IsZero() {
				end = to
			}
			if iv.From.After(a) || !end.After(a) {
				continue // not in [a, b): boundaries are cuts
			}
			f := &v6
			if iv.Session.Is4() {
				f = &v4
			}
			f.delivered = f.delivered || iv.Delivered
			f.seller = f.seller || (!iv.Delivered && iv.Cause == CauseSeller)
		}
		if (v4.seller && !v4.delivered) || (v6.seller && !v6.delivered) {
			if n := len(out); n > 0 && out[n-1].End.Equal(a) {
				out[n-1].End = b
			} else {
				out = append(out, Span{a, b})
			}
		}
	}
	return out
}
