package dashboard

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
)

// DepthRow is the book at one destination and protocol: the open orders on
// each side, their remaining capacity and the best price. It names no
// member: it is the anonymous market view.
type DepthRow struct {
	Destination string
	Protocol    string
	BuyOrders   int
	BuyBps      int64
	BestBid     int64 // highest buy price, micro-units per Mbps per month; valid if BuyOrders > 0
	SellOrders  int
	SellBps     int64
	BestAsk     int64 // lowest sell price; valid if SellOrders > 0
}

// bookView is one aggregation of the open book: the depth, and the open
// orders per member for the members page.
type bookView struct {
	rows []DepthRow
	open map[uint32]int
	at   time.Time
}

// Depth is the book's depth per destination, largest total capacity first.
// The caller must not modify the rows.
func (s *Server) Depth(ctx context.Context) ([]DepthRow, error) {
	v, err := s.book(ctx)
	if err != nil {
		return nil, err
	}
	return v.rows, nil
}

// book aggregates the open book: with Options.Book from the matching
// engine's memory, else from the store. A result is reused for
// Options.DepthMaxAge, so a busy dashboard costs the book one aggregation
// per interval.
func (s *Server) book(ctx context.Context) (*bookView, error) {
	s.depthMu.Lock()
	defer s.depthMu.Unlock()
	now := clock.Now()
	if s.depth != nil && now.Sub(s.depth.at) < s.o.DepthMaxAge {
		return s.depth, nil
	}
	v := &bookView{at: now}
	var err error
	if s.o.Book != nil {
		v.rows, v.open, err = depthEngine(ctx, s.o.DB, s.o.Book, s.o.Now())
	} else {
		v.rows, v.open, err = depthSQL(ctx, s.o.DB, s.o.Now())
	}
	if err != nil {
		return nil, err
	}
	sortDepth(v.rows)
	s.depth = v
	return v, nil
}

func sortDepth(rows []DepthRow) {
	slices.SortFunc(rows, func(a, b DepthRow) int {
		if c := cmp.Compare(b.BuyBps+b.SellBps, a.BuyBps+a.SellBps); c != 0 {
			return c
		}
		if c := strings.Compare(a.Destination, b.Destination); c != 0 {
			return c
		}
		return strings.Compare(a.Protocol, b.Protocol)
	})
}

// depthSQL aggregates the open orders in the store. An order past its end
// that the book has not yet expired is left out, as matching leaves it out.
func depthSQL(ctx context.Context, db *store.DB, now time.Time) ([]DepthRow, map[uint32]int, error) {
	rows, err := depthRowsSQL(ctx, db, now)
	if err != nil {
		return nil, nil, err
	}
	open, err := book.OpenOrdersPerMember(ctx, db, now)
	if err != nil {
		return nil, nil, err
	}
	return rows, open, nil
}

func depthRowsSQL(ctx context.Context, db *store.DB, now time.Time) ([]DepthRow, error) {
	ls, err := book.Depth(ctx, db, now)
	if err != nil {
		return nil, err
	}
	var out []DepthRow
	for _, l := range ls {
		out = append(out, DepthRow{Destination: l.Destination, Protocol: l.Protocol.String(), BuyOrders: l.BuyOrders, BuyBps: l.BuyBps,
			BestBid: l.BestBid, SellOrders: l.SellOrders, SellBps: l.SellBps, BestAsk: l.BestAsk})
	}
	return out, nil
}

// depthEngine aggregates the engine's resting orders. The ids come from
// the store (the index on status), so under the book's lock there are only
// map lookups and sums, no copy or sort of the whole book, a chunk at a
// time. Like every read of the book, it shows what has been committed.
func depthEngine(ctx context.Context, db *store.DB, b *book.Book, now time.Time) ([]DepthRow, map[uint32]int, error) {
	ids, err := openIDs(ctx, db, now)
	if err != nil {
		return nil, nil, err
	}
	rows, open := aggregateEngine(b, ids, now)
	return rows, open, nil
}

func openIDs(ctx context.Context, db *store.DB, now time.Time) ([]int64, error) {
	return book.OpenOrderIDs(ctx, db, now)
}

// inspectChunk is how many orders one hold of the book's lock looks at:
// matching waits for a chunk (about a millisecond), never for the whole
// book. Orders may change between chunks; each is counted as it was when
// its chunk was read.
const inspectChunk = 4096

// aggregateEngine sums the open orders ids names, under the book's lock a
// chunk at a time.
func aggregateEngine(b *book.Book, ids []int64, now time.Time) ([]DepthRow, map[uint32]int) {
	type key struct {
		dest  book.Destination
		proto book.Protocol
	}
	idx := map[key]int{}
	var out []DepthRow
	open := map[uint32]int{}
	add := func(o *book.Order) {
		open[o.MemberASN]++
		k := key{o.Spec.Destination, o.Spec.Protocol}
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, DepthRow{})
		}
		r := &out[j]
		rem, price := o.Remaining(), o.Spec.PriceMicros
		if o.Spec.Side == book.Buy {
			if r.BuyOrders == 0 || price > r.BestBid {
				r.BestBid = price
			}
			r.BuyOrders++
			r.BuyBps += rem
		} else {
			if r.SellOrders == 0 || price < r.BestAsk {
				r.BestAsk = price
			}
			r.SellOrders++
			r.SellBps += rem
		}
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), inspectChunk)]
		ids = ids[len(chunk):]
		b.Inspect(func(e *book.Engine) {
			if e == nil {
				return
			}
			for _, id := range chunk {
				if o, ok := e.Open(id); ok && o.Spec.End.After(now) {
					add(&o)
				}
			}
		})
	}
	// Names are formatted after the lock is released.
	for k, j := range idx {
		out[j].Destination, out[j].Protocol = k.dest.String(), k.proto.String()
	}
	return out, open
}
