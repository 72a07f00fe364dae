package manager

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// Mode says whether the manager trades.
type Mode string

const (
	// ModeOff: no decisions.
	ModeOff Mode = "off"
	// ModeShadow: decisions are made and journaled, marked shadow, and nothing
	// is traded.
	ModeShadow Mode = "shadow"
	// ModeTrade: decisions carry intents the daemon carries out.
	ModeTrade Mode = "trade"
)

// Ranking is how offers are compared (claims 24-25).
type Ranking string

const (
	ByPrice       Ranking = "price"
	ByPerformance Ranking = "performance"
	Weighted      Ranking = "weighted"
)

// Policy is the manager's configuration (the `manager:` section of the
// agent's YAML). Zero limits mean "no limit" where noted.
type Policy struct {
	Mode      Mode            `yaml:"mode"`
	Demand    DemandPolicy    `yaml:"demand"`
	Quality   QualityPolicy   `yaml:"quality"`
	Buy       BuyPolicy       `yaml:"buy"`
	Stability StabilityPolicy `yaml:"stability"`
	Failover  FailoverPolicy  `yaml:"failover"`
	Sell      SellPolicy      `yaml:"sell"`
}

// DemandPolicy picks the destinations that matter.
type DemandPolicy struct {
	// Window is how far back the 95th percentile and trend look.
	Window time.Duration `yaml:"window"`
	// Top is how many destinations (by 95th percentile) are considered.
	Top int `yaml:"top"`
	// MinRate is the smallest 95th percentile worth buying for.
	MinRate Bandwidth `yaml:"min_rate"`
	// MinSamples is the fewest sampled frames in the window for a figure to
	// be trusted.
	MinSamples int64 `yaml:"min_samples"`
	// MinIntervals is the fewest capture intervals in the window.
	MinIntervals int `yaml:"min_intervals"`
}

// QualityPolicy smooths probe rounds.
type QualityPolicy struct {
	// Rounds is how many recent probe rounds a path's quality is the median
	// (latency, jitter) and pooled loss of.
	Rounds int `yaml:"rounds"`
	// MaxAge is how old a path's newest round may be for it to count as
	// measured.
	MaxAge time.Duration `yaml:"max_age"`
	// MinProbes is the fewest echo requests a path's figures must count
	// to justify a buy, a switch, a renewal or a breach; older rounds
	// (within MaxAge) are pooled in to reach it, else the manager probes
	// more before it decides.
	MinProbes int64 `yaml:"min_probes"`
}

// DefaultMaxLoss is the loss floor of the paths the manager buys when
// buy.quality_floor.max_loss is not set: 2 %, where TCP throughput has
// already fallen to a fraction of a clean path's.
const DefaultMaxLoss Percent = 20_000

// FloorLimits is the quality floor candidates must meet and what failover
// holds the manager's trades to: the policy's, with DefaultMaxLoss when it
// sets no loss limit.
func (b *BuyPolicy) FloorLimits() Limits {
	l := b.Floor.Limits()
	if l.MaxLossPPM == 0 {
		l.MaxLossPPM = int32(DefaultMaxLoss)
	}
	return l
}

// QualityFloor is the worst quality a bought path may have.
type QualityFloor struct {
	MaxLatency time.Duration `yaml:"max_latency"`
	MaxJitter  time.Duration `yaml:"max_jitter"`
	MaxLoss    Percent       `yaml:"max_loss"`
}

// Limits converts the floor to Limits.
func (f QualityFloor) Limits() Limits {
	return Limits{MaxLatencyUs: f.MaxLatency.Microseconds(), MaxJitterUs: f.MaxJitter.Microseconds(), MaxLossPPM: int32(f.MaxLoss)}
}

// Improvement is the least gain worth paying for: a path qualifies when it
// gains at least one of the thresholds that are set.
type Improvement struct {
	Latency time.Duration `yaml:"latency"`
	Loss    Percent       `yaml:"loss"`
	// Savings is money saved per month against the default path (see
	// BuyPolicy.DefaultPathPrice).
	Savings Money `yaml:"savings"`
}

func (i Improvement) set() bool { return i.Latency > 0 || i.Loss > 0 || i.Savings > 0 }

// BuyPolicy says what the manager may buy.
type BuyPolicy struct {
	// Budget is the most the member pays per month for all its bought
	// capacity at any instant (trades and open buy orders).
	Budget Money `yaml:"budget"`
	// MaxPrice is the most per Mbps per month.
	MaxPrice Money   `yaml:"max_price"`
	Ranking  Ranking `yaml:"ranking"`
	// PriceWeight weighs price against performance with ranking weighted:
	// 100 is price only, 0 performance only (as the exchange's).
	PriceWeight int `yaml:"price_weight_percent"`
	// Floor is the quality a bought path must have; it becomes the buy's
	// quality limits, and breaking it is a breach.
	Floor QualityFloor `yaml:"quality_floor"`
	// MinImprovement is the least gain over the current path worth paying for.
	MinImprovement Improvement `yaml:"min_improvement"`
	// Headroom is added to the measured 95th percentile, in percent.
	Headroom int `yaml:"headroom_percent"`
	// DefaultPathPrice is what the default path (transit) costs per Mbps
	// per month, for savings; 0 if unknown.
	DefaultPathPrice Money `yaml:"default_path_price"`
	// MaxOpenOrders caps buy orders in the book (with buys in flight);
	// MaxTrades caps buy trades delivering at any one instant.
	MaxOpenOrders int `yaml:"max_open_orders"`
	MaxTrades     int `yaml:"max_trades"`
	// Sellers (ASNs) and Destinations (prefixes; a demand prefix must be
	// inside one) the manager may buy from and for; empty allows all.
	Sellers      []uint32 `yaml:"sellers"`
	Destinations []string `yaml:"destinations"`
	// Term is the delivery period of a buy.
	Term time.Duration `yaml:"term"`
	// RenewBefore is how long before a trade ends it is renewed, if it
	// still pays off.
	RenewBefore time.Duration `yaml:"renew_before"`

	dests []netip.Prefix
}

// StabilityPolicy keeps noise from turning into trades.
type StabilityPolicy struct {
	// Hysteresis widens the improvement thresholds, in percent: a switch
	// between sellers needs threshold*(1+h), keeping (renewing) a trade
	// only threshold*(1-h).
	Hysteresis int `yaml:"hysteresis_percent"`
	// RebuyHoldDown: no buy for a destination this long after one of its
	// orders was cancelled or its trade lapsed or failed.
	RebuyHoldDown time.Duration `yaml:"rebuy_hold_down"`
	// SwitchHoldDown: no switch to another seller this long after a buy.
	SwitchHoldDown time.Duration `yaml:"switch_hold_down"`
	// MaxChangesPerHour caps buys, switches, cancels and sell-order changes
	// in any hour (failover and breach reports are not capped).
	MaxChangesPerHour int `yaml:"max_changes_per_hour"`
}

// FailoverPolicy is when a traded path counts as broken.
type FailoverPolicy struct {
	// Rounds is how many consecutive probe rounds beyond the trade's limits
	// make a breach.
	Rounds int `yaml:"rounds"`
}

// SellPolicy offers spare port capacity.
type SellPolicy struct {
	Enabled bool `yaml:"enabled"`
	// Destinations offered: prefixes (CIDR) or route types (customer,
	// peer, transit).
	Destinations []string `yaml:"destinations"`
	// Price per Mbps per month.
	Price    Money     `yaml:"price"`
	MinBlock Bandwidth `yaml:"min_block"`
	// SafetyMargin is port capacity never offered.
	SafetyMargin Bandwidth `yaml:"safety_margin"`
	// Quality is the stated quality of the offers.
	Quality QualityFloor `yaml:"quality"`
	// Term is the delivery period of an offer; it is placed again when
	// less than RenewBefore is left.
	Term        time.Duration `yaml:"term"`
	RenewBefore time.Duration `yaml:"renew_before"`
	// Adjust is how far (percent of the offered capacity) the spare
	// capacity must move before the offer is changed.
	Adjust int `yaml:"adjust_percent"`
}

// DefaultPolicy is what an empty section means: shadow mode, nothing to
// buy until a budget and max price are set.
func DefaultPolicy() Policy {
	return Policy{
		Mode:    ModeShadow,
		Demand:  DemandPolicy{Window: 24 * time.Hour, Top: 20, MinSamples: 100, MinIntervals: 3},
		Quality: QualityPolicy{Rounds: 5, MaxAge: 15 * time.Minute, MinProbes: pathscore.MinProbes},
		Buy: BuyPolicy{
			Ranking:        ByPrice,
			PriceWeight:    50,
			MinImprovement: Improvement{Latency: 5 * time.Millisecond},
			Headroom:       25,
			MaxOpenOrders:  4,
			MaxTrades:      16,
			Term:           30 * 24 * time.Hour,
			RenewBefore:    72 * time.Hour,
		},
		Stability: StabilityPolicy{Hysteresis: 25, RebuyHoldDown: 6 * time.Hour, SwitchHoldDown: 24 * time.Hour, MaxChangesPerHour: 4},
		Failover:  FailoverPolicy{Rounds: 3},
		Sell:      SellPolicy{Term: 30 * 24 * time.Hour, RenewBefore: 72 * time.Hour, Adjust: 10},
	}
}

// Validate checks the policy; errors name the key (under "manager" when
// the daemon prefixes them with config.Prefix).
func (p *Policy) Validate() error {
	var errs []error
	bad := func(key, f string, a ...any) { errs = append(errs, config.Errorf(key, f, a...)) }
	switch p.Mode {
	case ModeOff, ModeShadow, ModeTrade:
	default:
		bad("mode", "want off, shadow or trade, got %q", p.Mode)
	}
	d := &p.Demand
	if d.Window < time.Minute || d.Window > 31*24*time.Hour {
		bad("demand.window", "want 1m to 744h, got %v", d.Window)
	}
	if d.Top < 1 || d.Top > 100000 {
		bad("demand.top", "want 1 to 100000, got %d", d.Top)
	}
	if d.MinRate < 0 {
		bad("demand.min_rate", "must not be negative")
	}
	if d.MinSamples < 0 {
		bad("demand.min_samples", "must not be negative, got %d", d.MinSamples)
	}
	if d.MinIntervals < 1 {
		bad("demand.min_intervals", "want at least 1, got %d", d.MinIntervals)
	}
	if p.Quality.Rounds < 1 || p.Quality.Rounds > 1000 {
		bad("quality.rounds", "want 1 to 1000, got %d", p.Quality.Rounds)
	}
	if p.Quality.MinProbes < 1 || p.Quality.MinProbes > 1_000_000 {
		bad("quality.min_probes", "want 1 to 1000000, got %d", p.Quality.MinProbes)
	}
	if p.Quality.MaxAge <= 0 {
		bad("quality.max_age", "must be positive, got %v", p.Quality.MaxAge)
	}
	b := &p.Buy
	if b.Budget < 0 {
		bad("buy.budget", "must not be negative, got %v", b.Budget)
	}
	if b.MaxPrice < 0 {
		bad("buy.max_price", "must not be negative, got %v", b.MaxPrice)
	}
	if p.Mode != ModeOff && (b.Budget > 0) != (b.MaxPrice > 0) {
		bad("buy.max_price", "set both buy.budget and buy.max_price to buy, or neither")
	}
	switch b.Ranking {
	case ByPrice, ByPerformance, Weighted:
	default:
		bad("buy.ranking", "want price, performance or weighted, got %q", b.Ranking)
	}
	if b.PriceWeight < 0 || b.PriceWeight > 100 {
		bad("buy.price_weight_percent", "want 0 to 100, got %d", b.PriceWeight)
	}
	errs = append(errs, config.Prefix("buy.quality_floor", b.Floor.validate()))
	if !b.MinImprovement.set() {
		bad("buy.min_improvement", "set at least one of latency, loss or savings")
	}
	if b.MinImprovement.Latency < 0 {
		bad("buy.min_improvement.latency", "must not be negative, got %v", b.MinImprovement.Latency)
	}
	if b.MinImprovement.Savings < 0 {
		bad("buy.min_improvement.savings", "must not be negative, got %v", b.MinImprovement.Savings)
	}
	if b.MinImprovement.Savings > 0 && b.DefaultPathPrice <= 0 {
		bad("buy.default_path_price", "required with buy.min_improvement.savings: savings are against the default path's price")
	}
	if b.DefaultPathPrice < 0 {
		bad("buy.default_path_price", "must not be negative, got %v", b.DefaultPathPrice)
	}
	if b.Headroom < 0 || b.Headroom > 1000 {
		bad("buy.headroom_percent", "want 0 to 1000, got %d", b.Headroom)
	}
	if b.MaxOpenOrders < 1 {
		bad("buy.max_open_orders", "want at least 1, got %d", b.MaxOpenOrders)
	}
	if b.MaxTrades < 1 {
		bad("buy.max_trades", "want at least 1, got %d", b.MaxTrades)
	}
	seen := map[uint32]bool{}
	for i, s := range b.Sellers {
		if s == 0 || s == 23456 {
			bad(fmt.Sprintf("buy.sellers[%d]", i), "want a seller's AS number, got %d", s)
		} else if seen[s] {
			bad(fmt.Sprintf("buy.sellers[%d]", i), "AS%d listed twice", s)
		}
		seen[s] = true
	}
	b.dests = b.dests[:0]
	for i, s := range b.Destinations {
		pf, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			bad(fmt.Sprintf("buy.destinations[%d]", i), "not a prefix (CIDR): %q", s)
		case pf != pf.Masked():
			bad(fmt.Sprintf("buy.destinations[%d]", i), "%s has host bits set; did you mean %s?", s, pf.Masked())
		default:
			b.dests = append(b.dests, pf)
		}
	}
	if b.Term < time.Hour {
		bad("buy.term", "want at least 1h, got %v", b.Term)
	}
	if b.RenewBefore <= 0 || b.RenewBefore >= b.Term {
		bad("buy.renew_before", "want more than 0 and less than buy.term (%v), got %v", b.Term, b.RenewBefore)
	}
	s := &p.Stability
	if s.Hysteresis < 0 || s.Hysteresis > 100 {
		bad("stability.hysteresis_percent", "want 0 to 100, got %d", s.Hysteresis)
	}
	if s.RebuyHoldDown < 0 {
		bad("stability.rebuy_hold_down", "must not be negative, got %v", s.RebuyHoldDown)
	}
	if s.SwitchHoldDown < 0 {
		bad("stability.switch_hold_down", "must not be negative, got %v", s.SwitchHoldDown)
	}
	if s.MaxChangesPerHour < 1 {
		bad("stability.max_changes_per_hour", "want at least 1, got %d", s.MaxChangesPerHour)
	}
	if p.Failover.Rounds < 1 || p.Failover.Rounds > 100 {
		bad("failover.rounds", "want 1 to 100, got %d", p.Failover.Rounds)
	}
	errs = append(errs, config.Prefix("sell", p.Sell.validate()))
	return errors.Join(errs...)
}

func (f QualityFloor) validate() error {
	var errs []error
	if f.MaxLatency < 0 {
		errs = append(errs, config.Errorf("max_latency", "must not be negative, got %v", f.MaxLatency))
	}
	if f.MaxJitter < 0 {
		errs = append(errs, config.Errorf("max_jitter", "must not be negative, got %v", f.MaxJitter))
	}
	return errors.Join(errs...)
}

// RouteTypes are the destinations a sell may name besides prefixes.
var RouteTypes = []string{"customer", "peer", "transit"}

func (s *SellPolicy) validate() error {
	if !s.Enabled {
		return nil
	}
	var errs []error
	bad := func(key, f string, a ...any) { errs = append(errs, config.Errorf(key, f, a...)) }
	if len(s.Destinations) == 0 {
		errs = append(errs, config.Required("destinations"))
	}
	seen := map[string]bool{}
	for i, d := range s.Destinations {
		k := fmt.Sprintf("destinations[%d]", i)
		if pf, err := netip.ParsePrefix(d); err == nil {
			if pf != pf.Masked() {
				bad(k, "%s has host bits set; did you mean %s?", d, pf.Masked())
			}
		} else if !isRouteType(d) {
			bad(k, "want a prefix (CIDR) or customer, peer or transit, got %q", d)
		}
		if seen[d] {
			bad(k, "%q listed twice", d)
		}
		seen[d] = true
	}
	if s.Price <= 0 {
		bad("price", "must be positive, got %v", s.Price)
	}
	if s.MinBlock <= 0 {
		bad("min_block", "must be positive, got %v", s.MinBlock)
	}
	if s.SafetyMargin < 0 {
		bad("safety_margin", "must not be negative, got %v", s.SafetyMargin)
	}
	errs = append(errs, config.Prefix("quality", s.Quality.validate()))
	if s.Term < time.Hour {
		bad("term", "want at least 1h, got %v", s.Term)
	}
	if s.RenewBefore <= 0 || s.RenewBefore >= s.Term {
		bad("renew_before", "want more than 0 and less than sell.term (%v), got %v", s.Term, s.RenewBefore)
	}
	if s.Adjust < 0 || s.Adjust > 100 {
		bad("adjust_percent", "want 0 to 100, got %d", s.Adjust)
	}
	return errors.Join(errs...)
}

func isRouteType(s string) bool {
	for _, t := range RouteTypes {
		if s == t {
			return true
		}
	}
	return false
}

func (b *BuyPolicy) sellerAllowed(asn uint32) bool {
	if len(b.Sellers) == 0 {
		return true
	}
	for _, s := range b.Sellers {
		if s == asn {
			return true
		}
	}
	return false
}

// destAllowed tells whether p is inside an allowed destination. Validate
// must have run.
func (b *BuyPolicy) destAllowed(p netip.Prefix) bool {
	if len(b.Destinations) == 0 {
		return true
	}
	for _, d := range b.dests {
		if d.Bits() <= p.Bits() && d.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
