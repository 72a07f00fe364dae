package federation

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
)

// Offer is a sell order as its exchange publishes it to peers.
type Offer struct {
	// ID is the sell order's id at its exchange.
	ID          int64
	SellerASN   uint32
	Prefixes    []netip.Prefix
	CapacityBps int64 // what is left to sell
	MinBlockBps int64
	PriceMicros int64
	Start, End  time.Time
	TrafficType book.TrafficType
	// Measured is the exchange's pooled measurement of the path through
	// the seller toward Prefixes; nil when nothing fresh.
	Measured *book.Measured
	// Revision is the publisher's sequence of the change that last set
	// the offer: a reservation names it, so a stale view is told apart.
	Revision int64
}

// Protocol is the offer's family (its prefixes all have the first's).
func (o Offer) Protocol() book.Protocol {
	if len(o.Prefixes) > 0 && o.Prefixes[0].Addr().Is6() {
		return book.IPv6
	}
	return book.IPv4
}

// same reports whether a and b publish the same terms (Revision aside).
func same(a, b Offer) bool {
	if a.ID != b.ID || a.SellerASN != b.SellerASN || a.CapacityBps != b.CapacityBps || a.MinBlockBps != b.MinBlockBps ||
		a.PriceMicros != b.PriceMicros || !a.Start.Equal(b.Start) || !a.End.Equal(b.End) || a.TrafficType != b.TrafficType ||
		!slices.Equal(a.Prefixes, b.Prefixes) {
		return false
	}
	if (a.Measured == nil) != (b.Measured == nil) {
		return false
	}
	return a.Measured == nil || *a.Measured == *b.Measured
}

// Validate checks an offer a peer sent, as of now: a reason naming the
// field, or nil.
func (o Offer) Validate(now time.Time) error {
	switch {
	case o.ID <= 0:
		return fmt.Errorf("order_id: must be positive, got %d", o.ID)
	case o.SellerASN == 0 || o.SellerASN == 23456 || o.SellerASN == 4294967295:
		return fmt.Errorf("seller_asn: AS%d is reserved", o.SellerASN)
	case len(o.Prefixes) == 0:
		return fmt.Errorf("prefixes: none")
	case len(o.Prefixes) > MaxPrefixesPerOffer:
		return fmt.Errorf("prefixes: %d, more than %d", len(o.Prefixes), MaxPrefixesPerOffer)
	}
	v6 := o.Prefixes[0].Addr().Is6()
	seen := make(map[netip.Prefix]bool, len(o.Prefixes))
	for i, p := range o.Prefixes {
		switch {
		case !p.IsValid():
			return fmt.Errorf("prefixes[%d]: not a prefix", i)
		case p != p.Masked():
			return fmt.Errorf("prefixes[%d]: %v has host bits set", i, p)
		case p.Addr().Is4In6() || p.Addr().Zone() != "":
			return fmt.Errorf("prefixes[%d]: %v is not a plain IPv4 or IPv6 prefix", i, p)
		case p.Bits() == 0:
			return fmt.Errorf("prefixes[%d]: %v: a default route is never traded", i, p)
		case p.Addr().Is6() != v6:
			return fmt.Errorf("prefixes[%d]: %v is not of the offer's family (%v)", i, p, o.Prefixes[0])
		case seen[p]:
			return fmt.Errorf("prefixes[%d]: %v listed twice", i, p)
		}
		seen[p] = true
	}
	switch {
	case o.CapacityBps <= 0:
		return fmt.Errorf("capacity_bps: must be positive, got %d", o.CapacityBps)
	case o.MinBlockBps <= 0 || o.MinBlockBps > o.CapacityBps:
		return fmt.Errorf("min_block_bps: want 1 to capacity_bps (%d), got %d", o.CapacityBps, o.MinBlockBps)
	case o.PriceMicros < 0:
		return fmt.Errorf("price_micros: must not be negative, got %d", o.PriceMicros)
	case o.Start.IsZero() || o.End.IsZero():
		return fmt.Errorf("delivery: start and end are required")
	case !o.End.After(o.Start):
		return fmt.Errorf("delivery_end: %s is not after delivery_start %s", o.End.UTC().Format(time.RFC3339), o.Start.UTC().Format(time.RFC3339))
	case !o.End.After(now):
		return fmt.Errorf("delivery_end: %s is in the past", o.End.UTC().Format(time.RFC3339))
	case o.End.Sub(o.Start) > book.MaxPeriod:
		return fmt.Errorf("delivery_end: delivery period longer than 10 years")
	case o.TrafficType < book.AnyTraffic || o.TrafficType > book.Realtime:
		return fmt.Errorf("traffic_type: %d is not any, bulk, interactive or realtime", o.TrafficType)
	case o.Revision < 0:
		return fmt.Errorf("revision: must not be negative, got %d", o.Revision)
	}
	if m := o.Measured; m != nil {
		switch {
		case m.LatencyUs < 0 || m.JitterUs < 0 || m.LatencyErrUs < 0 || m.JitterErrUs < 0:
			return fmt.Errorf("measured: negative latency or jitter")
		case m.LossPPM < 0 || m.LossPPM > 1_000_000:
			return fmt.Errorf("measured.loss_ppm: want 0 to 1000000, got %d", m.LossPPM)
		case m.ASHops < 0 || m.Samples < 0 || m.Probes < 0 || m.Vantages < 0:
			return fmt.Errorf("measured: negative count")
		case m.LossDispersion < 0 || m.LossDispersion != m.LossDispersion:
			return fmt.Errorf("measured.loss_dispersion: not a number at least 0")
		}
	}
	return nil
}

// FromBook is how a local open sell is published.
func FromBook(s book.OpenSell) Offer {
	o := s.Order
	return Offer{ID: o.ID, SellerASN: o.MemberASN, Prefixes: s.Prefixes, CapacityBps: o.Remaining(), MinBlockBps: o.Spec.MinBlockBps,
		PriceMicros: o.Spec.PriceMicros, Start: o.Spec.Start.UTC(), End: o.Spec.End.UTC(), TrafficType: o.Spec.TrafficType, Measured: s.Measured}
}
