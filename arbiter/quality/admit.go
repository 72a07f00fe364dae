package quality

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/invalid"
)

// What a member may report (a member may lie about anything it is free to
// name): a row is admitted when
//
//   - its path is one the member is asked to measure: through another
//     member (the seller) with a router of the prefix's family, toward one
//     of the seller's registered prefixes or a prefix inside one (the
//     paths the probe planner hands out, see Seller.Plans), measured no
//     earlier than the task could have been handed out (when the later of
//     the two joined); or
//   - its path is one of the member's own trades: it is the buyer, via is
//     the seller, the prefix is inside one of the trade's prefixes, and it
//     was measured while the trade stood (from its making to its end) and
//     the trade is not cancelled;
//
// and in both cases it was measured within the reporting window: not
// older than Window before now, nor later than MaxSkew after it (Validate).
// Times at the edges get MaxSkew for the reporter's clock.
func (x *Matrix) admit(ctx context.Context, tx *sql.Tx, r registry.Member, ms []Measurement, now time.Time) error {
	oldest := now.Add(-x.window())
	sellers := map[uint32]*sellerPaths{}
	for i, m := range ms {
		f := func(name string) string { return fmt.Sprintf("measurements[%d].%s", i, name) }
		if m.At.Before(oldest) {
			return &invalid.Error{Field: f("measured_at"), Msg: fmt.Sprintf("%s is older than this arbiter takes (%v before now, quality.freshness)",
				m.At.UTC().Format(time.RFC3339), x.window())}
		}
		if m.ViaASN == r.ASN {
			return &invalid.Error{Field: f("via_asn"), Msg: fmt.Sprintf("AS%d is the reporter: a member is not asked to measure through itself", m.ViaASN)}
		}
		s := sellers[m.ViaASN]
		if s == nil {
			var err error
			if s, err = x.loadSellerPaths(ctx, tx, r.ID, m.ViaASN); err != nil {
				if errors.Is(err, registry.ErrNotFound) {
					return &invalid.Error{Field: f("via_asn"), Msg: fmt.Sprintf("AS%d is not a member", m.ViaASN)}
				}
				return err
			}
			sellers[m.ViaASN] = s
		}
		tasked := s.seller.Plans(r.ASN, m.Prefix)
		since := r.Created
		if s.joined.After(since) {
			since = s.joined
		}
		if tasked && !m.At.Before(since.Add(-MaxSkew)) {
			continue
		}
		traded, during := false, false
		for _, t := range s.trades {
			if t.covers(m.Prefix) {
				traded = true
				during = during || !m.At.Before(t.made.Add(-MaxSkew)) && !m.At.After(t.end.Add(MaxSkew))
			}
		}
		switch {
		case during:
			continue
		case tasked || traded:
			return &invalid.Error{Field: f("measured_at"), Msg: fmt.Sprintf("%s is before AS%d was asked to measure %s through AS%d, or outside its trade",
				m.At.UTC().Format(time.RFC3339), r.ASN, m.Prefix, m.ViaASN)}
		}
		return &invalid.Error{Field: f("destination_prefix"), Msg: fmt.Sprintf("AS%d is not asked to measure %s through AS%d (not inside a prefix AS%d registered, with a router of its family) and bought no trade of it",
			r.ASN, m.Prefix, m.ViaASN, m.ViaASN)}
	}
	return nil
}

// sellerPaths is what admit needs of one seller: what the planner would
// ask of it, when it joined and the reporter's trades bought from it.
type sellerPaths struct {
	seller Seller
	joined time.Time
	trades []tradePath
}

type tradePath struct {
	prefixes  []netip.Prefix
	made, end time.Time
}

func (t tradePath) covers(p netip.Prefix) bool {
	for _, q := range t.prefixes {
		if within(p, q) {
			return true
		}
	}
	return false
}

// within reports whether p is q or inside it.
func within(p, q netip.Prefix) bool {
	return q.Bits() <= p.Bits() && q.Addr().BitLen() == p.Addr().BitLen() && q.Contains(p.Addr())
}

func (x *Matrix) loadSellerPaths(ctx context.Context, tx *sql.Tx, buyerID int64, via uint32) (*sellerPaths, error) {
	m, err := registry.GetMember(ctx, tx, via)
	if err != nil {
		return nil, err
	}
	s := &sellerPaths{seller: Seller{ASN: via}, joined: m.Created}
	for _, a := range m.Routers {
		if a.Is4() && !s.seller.NextHop4.IsValid() {
			s.seller.NextHop4 = a
		} else if a.Is6() && !s.seller.NextHop6.IsValid() {
			s.seller.NextHop6 = a
		}
	}
	if s.seller.Prefixes, err = registry.PrefixesOfMember(ctx, tx, m.ID); err != nil {
		return nil, err
	}
	if x.Bought == nil {
		return s, nil
	}
	bought, err := x.Bought(ctx, tx, buyerID, m.ID)
	if err != nil {
		return nil, err
	}
	for _, b := range bought {
		t := tradePath{made: b.Made, end: b.End}
		for _, p := range b.Prefixes {
			t.prefixes = append(t.prefixes, p.Masked())
		}
		s.trades = append(s.trades, t)
	}
	return s, nil
}
