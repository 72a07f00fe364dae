package book

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/invalid"
)

// The enums use the numbers of the gRPC contract so conversion is a cast.

type Side int

const (
	Buy  Side = 1
	Sell Side = 2
)

func (s Side) String() string {
	switch s {
	case Buy:
		return "buy"
	case Sell:
		return "sell"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

type Protocol int

const (
	IPv4 Protocol = 1
	IPv6 Protocol = 2
)

func (p Protocol) String() string {
	switch p {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Fits reports whether an address belongs to this protocol.
func (p Protocol) Fits(a netip.Addr) bool { return (p == IPv4) == a.Is4() }

type OrderType int

const (
	Limit OrderType = 1
	IOC   OrderType = 2
	FOK   OrderType = 3
)

type Ranking int

const (
	ByPrice       Ranking = 1
	ByPerformance Ranking = 2
	Weighted      Ranking = 3
)

type TrafficType int

const (
	AnyTraffic  TrafficType = 1
	Bulk        TrafficType = 2
	Interactive TrafficType = 3
	Realtime    TrafficType = 4
)

type Status int

const (
	Open      Status = 1
	Filled    Status = 2
	Cancelled Status = 3
	Expired   Status = 4
)

// Destination is exactly one of a prefix, an origin AS, or a route type.
type Destination struct {
	Prefix    netip.Prefix
	OriginASN uint32
	RouteType registry.RouteType
}

func (d Destination) String() string {
	switch {
	case d.Prefix.IsValid():
		return d.Prefix.String()
	case d.OriginASN != 0:
		return fmt.Sprintf("origin AS%d", d.OriginASN)
	default:
		return d.RouteType.String() + " routes"
	}
}

// Includes reports whether a registered route is part of this destination.
func (d Destination) Includes(p registry.Prefix) bool {
	switch {
	case d.Prefix.IsValid():
		return d.Prefix.Bits() <= p.Prefix.Bits() && d.Prefix.Contains(p.Prefix.Addr())
	case d.OriginASN != 0:
		return p.OriginASN == d.OriginASN
	default:
		return p.Type == d.RouteType
	}
}

// Quality holds limits (buy) or stated quality (sell); nil means no limit.
type Quality struct {
	MaxLatencyUs    *int64
	MaxJitterUs     *int64
	MaxLossPPM      *int32
	MaxASHops       *int32
	AllowUnverified bool
}

// Limited reports whether any limit is set.
func (q Quality) Limited() bool {
	return q.MaxLatencyUs != nil || q.MaxJitterUs != nil || q.MaxLossPPM != nil || q.MaxASHops != nil
}

// Spec is every order parameter of claim 11 that the member chooses.
type Spec struct {
	Side         Side
	Destination  Destination
	Protocol     Protocol
	CapacityBps  int64
	MinBlockBps  int64
	PriceMicros  int64
	Quality      Quality
	TrafficType  TrafficType
	Start, End   time.Time
	Type         OrderType
	Ranking      Ranking
	PriceWeight  uint32
	SingleSeller bool
}

// Order is a spec in the book.
type Order struct {
	ID            int64
	MemberASN     uint32
	Spec          Spec
	Status        Status
	FilledBps     int64
	ClientOrderID string
	Created       time.Time
	Updated       time.Time
	// Priority orders equal-ranked orders: lower was first. Placing sets
	// it; a modify that raises capacity or changes price sets it anew.
	Priority int64
}

// Remaining is the capacity still to trade.
func (o Order) Remaining() int64 { return o.Spec.CapacityBps - o.FilledBps }

// Commitment is what a buy can cost its member: capacity at a price per
// Mbps per month over [Start, End). The credit check counts a member's
// trades and open buys by it.
type Commitment struct {
	CapacityBps, PriceMicros int64
	Start, End               time.Time
}

// Commitment is a buy order's worst case as of now: its remaining
// capacity at its limit price from its effective start to its end (every
// trade it can make lies within that, at that price or below).
func (o Order) Commitment(now time.Time) Commitment {
	return Commitment{CapacityBps: o.Remaining(), PriceMicros: o.Spec.PriceMicros, Start: o.Spec.EffectiveStart(now), End: o.Spec.End}
}

// Trade is a matched buy and sell.
type Trade struct {
	ID             int64
	BuyOrderID     int64
	SellOrderID    int64
	BuyerASN       uint32
	SellerASN      uint32
	Prefixes       []netip.Prefix
	Protocol       Protocol
	CapacityBps    int64
	PriceMicros    int64
	Start, End     time.Time
	Cancelled      bool
	SellerNextHops []netip.Addr
	// BuyerRouters are the buyer's routers on the LAN of the trade's
	// family: where the seller sees the traffic come from (claim 7).
	BuyerRouters []netip.Addr
	Created      time.Time
	// Quality is the path's measured quality when the trade was made (the
	// buyer's view through the seller toward Prefixes, claim 18); nil:
	// nothing fresh was measured then.
	Quality *Measured
	// ContractEnd is the agreed end of a trade ended early (a party was
	// removed), EndReason why; End is then when delivery really ended (or
	// the trade is Cancelled if it had not started). Zero for a trade that
	// runs its term.
	ContractEnd time.Time
	EndReason   string
}

// Commitment is what the trade costs its buyer.
func (t Trade) Commitment() Commitment {
	return Commitment{CapacityBps: t.CapacityBps, PriceMicros: t.PriceMicros, Start: t.Start, End: t.End}
}

// TradeStatus is derived from the delivery period and cancellation.
type TradeStatus int

const (
	Scheduled      TradeStatus = 1
	Active         TradeStatus = 2
	Ended          TradeStatus = 3
	TradeCancelled TradeStatus = 4
)

// StatusAt says where the trade stands at time now.
func (t Trade) StatusAt(now time.Time) TradeStatus {
	switch {
	case t.Cancelled:
		return TradeCancelled
	case now.Before(t.Start):
		return Scheduled
	case now.Before(t.End):
		return Active
	}
	return Ended
}

// MaxPeriod bounds a delivery period; longer contracts are a typo.
const MaxPeriod = 10 * 366 * 24 * time.Hour

// StartSkew is how far in the past a delivery start may be and still be
// accepted, for clocks of members and exchange that differ a little (the
// allowance Kerberos uses): such a start is taken as the moment the order
// is placed. An earlier start is refused.
const StartSkew = 5 * time.Minute

// EffectiveStart is when the spec's delivery can begin as seen at now: the
// later of its start and now. Matching compares periods from here, and a
// trade starts here (never before it was made).
func (s Spec) EffectiveStart(now time.Time) time.Time {
	if s.Start.Before(now) {
		return now
	}
	return s.Start
}

// Validate checks a spec on its own (the registry checks come later).
func (s Spec) Validate(now time.Time) error {
	if s.Side != Buy && s.Side != Sell {
		return invalid.New("spec.side", "must be buy or sell")
	}
	d := s.Destination
	n := 0
	if d.Prefix.IsValid() {
		n++
		if d.Prefix != d.Prefix.Masked() {
			return invalid.New("spec.destination.prefix", "%v has host bits set; did you mean %v?", d.Prefix, d.Prefix.Masked())
		}
	}
	if d.OriginASN != 0 {
		n++
	}
	if d.RouteType != 0 {
		n++
		if !d.RouteType.Valid() {
			return invalid.New("spec.destination.route_type", "must be customer, peer, transit or specific")
		}
	}
	if n != 1 {
		return invalid.New("spec.destination", "give exactly one of prefix, origin_asn or route_type")
	}
	if s.Protocol != IPv4 && s.Protocol != IPv6 {
		return invalid.New("spec.protocol", "must be ipv4 or ipv6")
	}
	if d.Prefix.IsValid() && !s.Protocol.Fits(d.Prefix.Addr()) {
		return invalid.New("spec.protocol", "%v is not an %v prefix", d.Prefix, s.Protocol)
	}
	if s.CapacityBps <= 0 {
		return invalid.New("spec.capacity_bps", "must be positive, got %d", s.CapacityBps)
	}
	if s.MinBlockBps <= 0 {
		return invalid.New("spec.min_block_bps", "must be positive, got %d", s.MinBlockBps)
	}
	if s.MinBlockBps > s.CapacityBps {
		return invalid.New("spec.min_block_bps", "%d is larger than capacity_bps %d", s.MinBlockBps, s.CapacityBps)
	}
	if s.PriceMicros < 0 {
		return invalid.New("spec.price_micros", "must not be negative, got %d", s.PriceMicros)
	}
	q := s.Quality
	if q.MaxLatencyUs != nil && *q.MaxLatencyUs < 0 {
		return invalid.New("spec.quality.max_latency_us", "must not be negative")
	}
	if q.MaxJitterUs != nil && *q.MaxJitterUs < 0 {
		return invalid.New("spec.quality.max_jitter_us", "must not be negative")
	}
	if q.MaxLossPPM != nil && (*q.MaxLossPPM < 0 || *q.MaxLossPPM > 1_000_000) {
		return invalid.New("spec.quality.max_loss_ppm", "must be between 0 and 1000000 (parts per million)")
	}
	if q.MaxASHops != nil && *q.MaxASHops < 0 {
		return invalid.New("spec.quality.max_as_hops", "must not be negative")
	}
	if s.TrafficType < AnyTraffic || s.TrafficType > Realtime {
		return invalid.New("spec.traffic_type", "must be any, bulk, interactive or realtime")
	}
	if s.Start.IsZero() {
		return invalid.New("spec.delivery_start", "is required")
	}
	if s.End.IsZero() {
		return invalid.New("spec.delivery_end", "is required")
	}
	if !s.End.After(s.Start) {
		return invalid.New("spec.delivery_end", "%s is not after delivery_start %s", s.End.UTC().Format(time.RFC3339), s.Start.UTC().Format(time.RFC3339))
	}
	if !s.End.After(now) {
		return invalid.New("spec.delivery_end", "%s is in the past", s.End.UTC().Format(time.RFC3339))
	}
	if s.Start.Before(now.Add(-StartSkew)) {
		return invalid.New("spec.delivery_start", "%s is in the past (now is %s); give a start from now on (up to %v earlier is taken as now)",
			s.Start.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), StartSkew)
	}
	if s.End.Sub(s.Start) > MaxPeriod {
		return invalid.New("spec.delivery_end", "delivery period longer than 10 years")
	}
	if s.Type < Limit || s.Type > FOK {
		return invalid.New("spec.order_type", "must be limit, ioc or fok")
	}
	if s.Side == Sell {
		if s.Ranking != 0 {
			return invalid.New("spec.ranking", "only a buy order has a ranking")
		}
		if s.SingleSeller {
			return invalid.New("spec.single_seller", "only a buy order can forbid splitting")
		}
		if s.PriceWeight != 0 {
			return invalid.New("spec.price_weight_percent", "only a buy order has a ranking weight")
		}
		return nil
	}
	if s.Ranking < 0 || s.Ranking > Weighted {
		return invalid.New("spec.ranking", "must be price, performance or weighted")
	}
	if s.PriceWeight > 100 {
		return invalid.New("spec.price_weight_percent", "must be 0..100, got %d", s.PriceWeight)
	}
	if s.PriceWeight != 0 && s.Ranking != Weighted {
		return invalid.New("spec.price_weight_percent", "only applies with ranking weighted")
	}
	return nil
}
