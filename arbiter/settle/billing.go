package settle

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// Trade is what billing needs of a trade. PriceMicros is micro-units per
// Mbps per month; End is when delivery really ended.
type Trade struct {
	ID                  int64
	BuyerASN, SellerASN uint32
	CapacityBps         int64
	PriceMicros         int64
	Start, End          time.Time
}

func (t Trade) validate() error {
	switch {
	case t.ID <= 0:
		return invalid.New("trade.id", "must be positive")
	case t.BuyerASN == 0 || t.SellerASN == 0 || t.BuyerASN == t.SellerASN:
		return invalid.New(fmt.Sprintf("trade %d", t.ID), "needs a buyer and a different seller")
	case t.CapacityBps <= 0:
		return invalid.New(fmt.Sprintf("trade %d capacity_bps", t.ID), "must be positive")
	case t.PriceMicros < 0:
		return invalid.New(fmt.Sprintf("trade %d price_micros", t.ID), "must not be negative")
	case !t.End.After(t.Start):
		return invalid.New(fmt.Sprintf("trade %d end", t.ID), "must be after start")
	}
	return nil
}

// TradeBill is one trade's charges for a period. Amounts are micro-units;
// Gross is what the buyer pays the seller before fees.
type TradeBill struct {
	Trade Trade
	// From, To is the part of the period the trade delivered.
	From, To time.Time
	// Slots is how many 5-minute slots have a billed figure; P95Bps is their
	// 95th percentile and OverageBps how far it is above the capacity.
	Slots, DisputedSlots, FallbackSlots int
	P95Bps, OverageBps                  int64
	// UndeliveredMicros is the time the route server did not deliver the
	// trade through no fault of the buyer (the delivery record's seller
	// gaps): not charged. BreachedMicros is the delivered time the trade
	// broke its quality limits, corroborated (credited);
	// DisputedBreachMicros the time only the buyer's word says it did
	// (not credited, see QualityBreaches).
	UndeliveredMicros, BreachedMicros, DisputedBreachMicros int64

	Committed, Overage, Credit, Gross int64
	BuyerFee, SellerFee               int64
	Policy                            Policy
	Disputes                          []Dispute
	// Use is the sustained overuse and underuse in the period (claim 16).
	Use []UseEvent
}

// Biller settles trades one at a time with reused buffers; not safe for
// concurrent use.
type Biller struct {
	cfg     Config
	errors  Errors
	policy  Policy
	period  Period
	slots   []Slot
	scratch []slotSample
	vals    []int64
	points  []Point
}

// NewBiller checks cfg and period.
func NewBiller(cfg Config, p Period, policy Policy) (*Biller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := errors.Join(p.Validate(), p.fits(cfg.Slot), p.inMonth()); err != nil {
		return nil, err
	}
	if policy < BuyerFigure || policy > MaxFigure {
		return nil, invalid.New("policy", "unknown policy %d", int(policy))
	}
	return &Biller{cfg: cfg, errors: cfg.Errors(), policy: policy, period: p}, nil
}

// Bill computes a trade's charges for the period. Let P be the calendar
// month the period lies in (the period itself, for a month's run) and D
// the delivered time (the trade's part of the period less the undelivered
// gaps, time the route server did not deliver it through no fault of the
// buyer), both in microseconds (the store's resolution, so a
// trade's own boundaries are never rounded; pro rata by days would bill a
// trade that starts at noon for the whole day), C the capacity in bits/s and
// R the price per Mbps per month. Each amount is one exact fraction rounded
// once, half away from zero:
//
//	committed = C * R * D / (1e6 * P)
//	overage   = (p95 - C) * R * multiplier * D / (1e6 * P * 10000), p95 > C
//	credit    = C * R * B * factor / (1e6 * P * 10000), B = breached time
//	            outside the gaps, at most committed + overage
//	gross     = committed + overage - credit
//	fee       = gross * fee_bp / 10000, charged to the buyer and to the seller
//
// Samples outside the delivered time are not billed. Slots with no figure
// from either party are left out of the percentile.
func (b *Biller) Bill(t Trade, samples []Sample, breaches, gaps []Interval) (TradeBill, error) {
	if err := t.validate(); err != nil {
		return TradeBill{}, err
	}
	bill := TradeBill{Trade: t, Policy: b.policy}
	from, to, ok := clip(t.Start.UnixMicro(), t.End.UnixMicro(), b.period.Start.UnixMicro(), b.period.End.UnixMicro())
	if !ok {
		return bill, nil
	}
	bill.From, bill.To = time.UnixMicro(from).UTC(), time.UnixMicro(to).UTC()
	bill.UndeliveredMicros = breached(gaps, from, to)
	// Prices are per month: P is the calendar month the period lies in,
	// which for a month's run is the period itself.
	d, p := to-from-bill.UndeliveredMicros, MonthOf(b.period.Start).Micros()
	const mbps = 1_000_000

	b.slots, b.scratch = slotsInto(b.slots, b.scratch, samples, b.cfg.Slot, bill.From, bill.To)
	b.vals, b.points = b.vals[:0], b.points[:0]
	for _, s := range b.slots {
		c, ok := Choose(s, b.policy, b.errors)
		if !ok {
			continue
		}
		b.vals = append(b.vals, c.Bps)
		b.points = append(b.points, Point{Start: s.Start, End: s.Start.Add(b.cfg.Slot), Bps: c.Bps, Disputed: c.Disputed})
		if c.Fallback {
			bill.FallbackSlots++
		}
		if c.Disputed {
			bill.DisputedSlots++
			bill.Disputes = append(bill.Disputes, Dispute{TradeID: t.ID, Start: s.Start, BuyerBps: s.Buyer.Bps, BuyerSamples: s.Buyer.Samples,
				SellerBps: s.Seller.Bps, SellerSamples: s.Seller.Samples, UsedBps: c.Bps, Policy: b.policy.String()})
		}
	}
	bill.Slots = len(b.vals)
	bill.Use = b.cfg.Use.Events(t.ID, t.CapacityBps, b.points)
	bill.P95Bps = P95(b.vals)
	bill.OverageBps = max(0, bill.P95Bps-t.CapacityBps)
	// |breaches \ gaps| = |breaches ∪ gaps| - |gaps|: a gap is already
	// not charged, and earns no credit on top.
	bill.BreachedMicros = breached(append(slices.Clip(breaches), gaps...), from, to) - bill.UndeliveredMicros

	overflow := false
	frac := func(nums, dens []int64) int64 {
		v, ok := fractionOK(nums, dens)
		overflow = overflow || !ok
		return v
	}
	bill.Committed = frac([]int64{t.CapacityBps, t.PriceMicros, d}, []int64{mbps, p})
	bill.Overage = frac([]int64{bill.OverageBps, t.PriceMicros, b.cfg.OverageMultiplierBP, d}, []int64{mbps, p, BasisPoints})
	bill.Credit = min(frac([]int64{t.CapacityBps, t.PriceMicros, bill.BreachedMicros, b.cfg.SLACreditFactorBP}, []int64{mbps, p, BasisPoints}),
		bill.Committed+bill.Overage)
	bill.Gross = bill.Committed + bill.Overage - bill.Credit
	bill.BuyerFee = frac([]int64{bill.Gross, b.cfg.FeeBP}, []int64{BasisPoints})
	// 2^63 micro-units is 9.2e12 currency units: only absurd input gets here.
	if overflow || bill.Committed > math.MaxInt64/4 || bill.Overage > math.MaxInt64/4 {
		return TradeBill{}, invalid.New(fmt.Sprintf("trade %d", t.ID), "charges overflow int64 micro-units (capacity %d bps at %d per Mbps)", t.CapacityBps, t.PriceMicros)
	}
	bill.SellerFee = bill.BuyerFee
	return bill, nil
}

// noteDisputed records the disputed breaches' delivered time: like
// BreachedMicros, outside the gaps.
func (b *TradeBill) noteDisputed(disputed, gaps []Interval) {
	if b.From.IsZero() || len(disputed) == 0 {
		return
	}
	from, to := b.From.UnixMicro(), b.To.UnixMicro()
	b.DisputedBreachMicros = breached(append(slices.Clip(disputed), gaps...), from, to) - b.UndeliveredMicros
}

// breached is the length of the union of intervals inside [from, to).
func breached(iv []Interval, from, to int64) int64 {
	type span struct{ a, b int64 }
	var ss []span
	for _, i := range iv {
		if a, b, ok := clip(i.Start.UnixMicro(), i.End.UnixMicro(), from, to); ok {
			ss = append(ss, span{a, b})
		}
	}
	slices.SortFunc(ss, func(x, y span) int { return int(min(max(x.a-y.a, -1), 1)) })
	var total, end int64 = 0, from
	for _, s := range ss {
		if s.a < end {
			s.a = end
		}
		if s.b > s.a {
			total += s.b - s.a
			end = s.b
		}
	}
	return total
}
