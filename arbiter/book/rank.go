package book

import (
	"cmp"
	"slices"
)

// rank orders candidates best first. A buy ranks sellers by its ranking:
// price; performance (latency, then loss, then jitter; unmeasured last);
// or a weighted mix. A sell meets the best bids first. Time priority
// breaks every tie.
func rank(o *Order, cs []candidate) {
	byPriority := func(a, b candidate) int { return cmp.Compare(a.order.Priority, b.order.Priority) }
	if o.Spec.Side == Sell {
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(b.order.Spec.PriceMicros, a.order.Spec.PriceMicros), byPriority(a, b))
		})
		return
	}
	switch o.Spec.Ranking {
	case ByPerformance:
		slices.SortFunc(cs, func(a, b candidate) int { return cmp.Or(comparePerf(a.measured, b.measured), byPriority(a, b)) })
	case Weighted:
		score := weightedScores(o, cs)
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(score[a.order.ID], score[b.order.ID]), byPriority(a, b))
		})
	default:
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(a.order.Spec.PriceMicros, b.order.Spec.PriceMicros), byPriority(a, b))
		})
	}
}

// comparePerf orders measured paths by latency, loss, jitter; a path with
// no measurement comes after every measured one.
func comparePerf(a, b *Measured) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return cmp.Or(cmp.Compare(a.LatencyUs, b.LatencyUs), cmp.Compare(a.LossPPM, b.LossPPM), cmp.Compare(a.JitterUs, b.JitterUs))
}

// weightedScores mixes price and performance as the buyer weighs them
// (price_weight_percent: 100 is price only, 0 performance only). Each part
// is scaled to [0, 1] over the candidates: price by the buyer's limit,
// latency by the slowest measured candidate; an unmeasured path scores the
// worst performance. Lower is better. (A score, not money: floats are fine.)
func weightedScores(o *Order, cs []candidate) map[int64]float64 {
	w := float64(o.Spec.PriceWeight) / 100
	var slowest int64
	for _, c := range cs {
		if c.measured != nil {
			slowest = max(slowest, c.measured.LatencyUs)
		}
	}
	out := make(map[int64]float64, len(cs))
	for _, c := range cs {
		price := 0.0
		if o.Spec.PriceMicros > 0 {
			price = float64(c.order.Spec.PriceMicros) / float64(o.Spec.PriceMicros)
		}
		perf := 1.0
		if c.measured != nil && slowest > 0 {
			perf = float64(c.measured.LatencyUs) / float64(slowest)
		} else if c.measured != nil {
			perf = 0
		}
		out[c.order.ID] = w*price + (1-w)*perf
	}
	return out
}
