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

// OpenSells lists the open sell orders a buyer at another exchange could
// take, by id: each with the prefixes it sells (its seller's registered
// routes inside its destination, less the routes whose policy lists the
// buyers allowed, since no buyer elsewhere is on such a list) and the
// pooled measurement of its path. Orders of members who may not trade
// now, and orders with no route left, are not listed. The quality is
// looked up outside the book's lock, as a trade's is.
func (b *Book) OpenSells(ctx context.Context) ([]OpenSell, error) {
	b.refreshQuality(ctx)
	var (
		out []OpenSell
		q   QualitySource
		err error
	)
	b.Inspect(func(e *Engine) {
		if b.err != nil || e == nil {
			err = fmt.Errorf("order book unavailable: %v", b.err)
			return
		}
		q = e.Quality
		standing := map[uint32]error{}
		// Only the sells are copied: this runs under the book's lock.
		for _, op := range e.open {
			if op.Spec.Side != Sell {
				continue
			}
			o := *op
			st, ok := standing[o.MemberASN]
			if !ok {
				st = e.active(o.MemberASN)
				standing[o.MemberASN] = st
			}
			if st != nil {
				continue
			}
			var ps []netip.Prefix
			for _, r := range e.routesOf(&o) {
				if len(r.AllowedBuyers) == 0 {
					ps = append(ps, r.Prefix)
				}
			}
			if len(ps) > 0 {
				out = append(out, OpenSell{Order: o, Prefixes: ps})
			}
		}
	})
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
