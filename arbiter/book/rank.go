package book

import (
	"cmp"
	"slices"

	"github.com/bwxchange/bwx/shared/pathscore"
)

// rank orders candidates best first. A buy ranks sellers by its ranking:
// price; performance (the path score of shared/pathscore: loss, then
// latency, then jitter, each only on a significant difference; unmeasured
// last), then price; or a weighted mix of price and the same score. A
// sell meets the best bids first. Time priority breaks every tie.
func rank(o *Order, cs []candidate) {
	byPriority := func(a, b candidate) int { return cmp.Compare(a.order.Priority, b.order.Priority) }
	byPrice := func(a, b candidate) int { return cmp.Compare(a.order.Spec.PriceMicros, b.order.Spec.PriceMicros) }
	if o.Spec.Side == Sell {
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(b.order.Spec.PriceMicros, a.order.Spec.PriceMicros), byPriority(a, b))
		})
		return
	}
	switch o.Spec.Ranking {
	case ByPerformance:
		score := make(map[int64]pathscore.Score, len(cs))
		for i, sc := range scores(cs) {
			score[cs[i].order.ID] = sc
		}
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(score[a.order.ID].Compare(score[b.order.ID]), byPrice(a, b), byPriority(a, b))
		})
	case Weighted:
		score := weightedScores(o, cs)
		slices.SortFunc(cs, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(score[a.order.ID], score[b.order.ID]), byPrice(a, b), byPriority(a, b))
		})
	default:
		slices.SortFunc(cs, func(a, b candidate) int { return cmp.Or(byPrice(a, b), byPriority(a, b)) })
	}
}

// Figures is m as the path score reads it (nil: unmeasured).
func (m *Measured) Figures() *pathscore.Figures {
	if m == nil || m.Samples == 0 {
		return nil
	}
	return &pathscore.Figures{LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPPM: m.LossPPM, Probes: m.Probes,
		LatencyErrUs: m.LatencyErrUs, JitterErrUs: m.JitterErrUs, LossDispersion: m.LossDispersion}
}

// scores is each candidate's path score among the candidates, in the
// order of cs.
func scores(cs []candidate) []pathscore.Score {
	fs := make([]*pathscore.Figures, len(cs))
	for i, c := range cs {
		fs[i] = c.measured.Figures()
	}
	return pathscore.Rank(fs)
}

// weightedScores mixes price and performance as the buyer weighs them
// (price_weight_percent: 100 is price only, 0 performance only). Each part
// is scaled to [0, 1] over the candidates: price by the buyer's limit,
// performance by the path score's level among the candidates' distinct
// scores (pathscore.Levels: 0 the best, 1 the worst; an unmeasured path is
// the worst). Lower is better. (A score, not money: floats are fine.)
func weightedScores(o *Order, cs []candidate) map[int64]float64 {
	w := float64(o.Spec.PriceWeight) / 100
	levels := pathscore.Levels(scores(cs))
	out := make(map[int64]float64, len(cs))
	for i, c := range cs {
		price := 0.0
		if o.Spec.PriceMicros > 0 {
			price = float64(c.order.Spec.PriceMicros) / float64(o.Spec.PriceMicros)
		}
		out[c.order.ID] = w*price + (1-w)*levels[i]
	}
	return out
}
