package book

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// OpenSell is an open sell order as the exchange shows it to its peer
// exchanges (arbiter/federation).
type OpenSell struct {
	Order    Order
	Prefixes []netip.Prefix
	// Measured is the exchange's pooled view of the path through the
	// seller toward Prefixes (no buyer's own): nil when nothing fresh.
	Measured *Measured
}

// sellChunk bounds the orders read in one hold of the book's lock, so that
// reading a large book for the peers never stalls matching for long.
const sellChunk = 100

// OpenSells lists the open sell orders a buyer at another exchange could
// take, by id: each with the prefixes it sells (its seller's registered
// routes inside its destination, less the routes whose policy lists the
// buyers allowed, since no buyer elsewhere is on such a list) and the
// pooled measurement of its path. Orders of members who may not trade
// now, and orders with no route left, are not listed. ids, if not nil,
// are the only orders asked about (the ones a change touched); the
// others of them are not open sells any more. The book's lock is held for
// at most sellChunk orders at a time; the quality is looked up outside it,
// as a trade's is.
func (b *Book) OpenSells(ctx context.Context, ids []int64) ([]OpenSell, error) {
	b.refreshQuality(ctx)
	var (
		out []OpenSell
		q   QualitySource
		err error
	)
	locked := func(f func(e *Engine)) {
		b.Inspect(func(e *Engine) {
			if b.err != nil || e == nil {
				err = fmt.Errorf("order book unavailable: %v", b.err)
				return
			}
			q = e.Quality
			f(e)
		})
	}
	if ids == nil {
		locked(func(e *Engine) {
			ids = make([]int64, 0, len(e.open))
			for id, o := range e.open {
				if o.Spec.Side == Sell {
					ids = append(ids, id)
				}
			}
		})
	}
	for i := 0; i < len(ids) && err == nil; i += sellChunk {
		var chunk []OpenSell
		locked(func(e *Engine) { chunk = e.openSells(ids[i:min(i+sellChunk, len(ids))]) })
		out = append(out, chunk...) // outside the lock: the whole list grows here
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b OpenSell) int { return cmp.Compare(a.Order.ID, b.Order.ID) })
	now := b.opt.Now()
	for i := range out {
		out[i].Measured = q.Measured(0, out[i].Order.MemberASN, out[i].Prefixes, now)
	}
	return out, nil
}

// openSells returns those of ids that are open sells, with their routes:
// OpenSells' part under the book's lock.
func (e *Engine) openSells(ids []int64) []OpenSell {
	out := make([]OpenSell, 0, len(ids))
	standing := map[uint32]error{}
	for _, id := range ids {
		op := e.open[id]
		if op == nil || op.Spec.Side != Sell {
			continue
		}
		st, ok := standing[op.MemberASN]
		if !ok {
			st = e.active(op.MemberASN)
			standing[op.MemberASN] = st
		}
		if st != nil {
			continue
		}
		var ps []netip.Prefix
		for _, r := range e.routesOf(op) {
			if len(r.AllowedBuyers) == 0 {
				ps = append(ps, r.Prefix)
			}
		}
		if len(ps) > 0 {
			out = append(out, OpenSell{Order: *op, Prefixes: ps})
		}
	}
	return out
}
