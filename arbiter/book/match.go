package book

import (
	"net/netip"
	"sort"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// Measured is the quality the matrix holds for a path (seller, destination).
type Measured struct {
	LatencyUs int64
	JitterUs  int64
	LossPPM   int32
	ASHops    int32
	// Samples is how many measurements the figures average; Probes how
	// many echo requests they sent (the loss's sample size; 0: unknown).
	Samples int
	Probes  int64
	// LatencyErrUs and JitterErrUs are the standard errors of the means
	// (0: unknown, taken as exact).
	LatencyErrUs int64
	JitterErrUs  int64
	// LossDispersion is how much burstier than independent probes the
	// loss was between measurements (pathscore.Figures.LossDispersion).
	LossDispersion float64
	// Vantages is how many independent vantages the figures rest on (1:
	// the buyer's own; 0: unknown, as for a trade's recorded quality).
	Vantages int
}

// Recorded is the part of m a trade records (and the store keeps): the
// figures with the sample behind them (the probes the loss counts, the
// means' standard errors), without the dispersion only ranking needs.
func (m *Measured) Recorded() *Measured {
	if m == nil {
		return nil
	}
	return &Measured{LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPPM: m.LossPPM, ASHops: m.ASHops, Samples: m.Samples,
		Probes: m.Probes, LatencyErrUs: m.LatencyErrUs, JitterErrUs: m.JitterErrUs}
}

// Meets reports whether measured quality m (nil: none fresh) satisfies the
// limits q, by the bar an SLA breach is judged by (shared/pathscore): a
// limit fails only when the figure is significantly beyond it, over at
// least pathscore.MinProbes probes. Fewer probes, or none fresh, verify
// nothing either way: such a path meets the limits only when the buyer
// allows unverified paths. So one bad early round cannot hide a seller
// from a buyer, who would then never probe it again.
func (q Quality) Meets(m *Measured) bool {
	if !q.Limited() {
		return true
	}
	if m == nil || m.Samples == 0 || m.Probes < pathscore.MinProbes {
		return q.AllowUnverified
	}
	return !m.Figures().Beyond(deref(q.MaxLatencyUs), deref(q.MaxJitterUs), deref(q.MaxLossPPM)) &&
		// A path through a seller is at least one AS long: 0 means the
		// distance was not measured, which meets no limit on it.
		(q.MaxASHops == nil || (m.ASHops > 0 && m.ASHops <= *q.MaxASHops) || (m.ASHops == 0 && q.AllowUnverified))
}

func deref[T int32 | int64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

// Compatible reports whether a sell can serve a buy on the order terms alone:
// protocol, traffic type, delivery period and price, as seen at now (each
// period taken from its effective start: a start that has passed is now).
func Compatible(buy, sell Spec, now time.Time) bool { return mismatch(buy, sell, now) == "" }

// mismatch names the first order term on which a sell cannot serve a buy at
// now.
func mismatch(buy, sell Spec, now time.Time) string {
	switch {
	case buy.Protocol != sell.Protocol:
		return "protocol differs"
	case !(buy.TrafficType == AnyTraffic || sell.TrafficType == AnyTraffic || buy.TrafficType == sell.TrafficType):
		return "traffic type differs"
	case sell.EffectiveStart(now).After(buy.EffectiveStart(now)) || sell.End.Before(buy.End):
		return "its delivery period does not cover yours"
	case sell.PriceMicros > buy.PriceMicros:
		return "its price is above your limit"
	}
	return ""
}

// TradedPrefixes resolves what a buy would get from a sell: the seller's
// registered routes inside the sell's destination, of the protocol, that the
// buy's destination asks for. A buy for one prefix is served by a covering
// route and trades exactly that prefix.
func TradedPrefixes(buy, sell Spec, sellerRoutes []registry.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range sellerRoutes {
		if !sell.Destination.Includes(r) || !sell.Protocol.Fits(r.Prefix.Addr()) {
			continue
		}
		if p := buy.Destination.Prefix; p.IsValid() {
			if r.Prefix.Bits() <= p.Bits() && r.Prefix.Contains(p.Addr()) {
				return []netip.Prefix{p}
			}
			continue
		}
		if buy.Destination.Includes(r) {
			out = append(out, r.Prefix)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// FillSize is the largest whole number of blocks (the larger of the two
// minimum blocks) within want and available.
func FillSize(want, available, blockA, blockB int64) int64 {
	b := max(blockA, blockB)
	n := min(want, available)
	if b <= 0 || n < b {
		return 0
	}
	return n / b * b
}
