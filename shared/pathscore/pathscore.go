// Package pathscore is the one answer to "which path is better" for the
// exchange's performance ranking (arbiter/book) and the access manager
// (agent/manager): what a user feels, in order.
//
//  1. Loss first. TCP throughput falls with the square root of loss, so a
//     user feels a few percent of loss far more than tens of milliseconds.
//  2. Latency second (the mean round-trip time).
//  3. Jitter third.
//
// Each figure is an estimate from a sample, and a difference counts only
// when it is significant: when the two 95 % intervals do not overlap. Loss
// is k lost of n probes, with its Wilson score interval (1 lost of 6 is
// anywhere from 3 % to 56 %, so it is no worse than 0 of 6; 10 of 200
// against 0 of 200 is); loss that varies between probe rounds more than
// independent probes would counts as fewer probes (LossDispersion). Latency and jitter are means with a standard
// error, their interval the mean plus or minus 1.96 standard errors. A
// measurement without a probe count (Probes 0) could have any loss; one
// without a standard error is taken as exact.
//
// Ranking several paths: the paths fall into loss tiers, and within a
// loss tier into latency tiers, then jitter tiers. A tier's pivot is the
// remaining path whose interval ends lowest; the tier is every remaining
// path whose interval starts at or below that end. So no path in a tier is
// significantly worse than another in it, and a path significantly worse
// than another on a figure (with the figures before it tied) is always in
// a later tier. The tiers make a Score; Scores compare as integers, a
// total order; callers break ties (price, then time priority).
package pathscore

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Z is the normal quantile of the two-sided 95 % intervals.
const Z = 1.96

// Figures is a path's measured quality with the size of the sample behind
// each figure.
type Figures struct {
	// LatencyUs and JitterUs are means, in microseconds.
	LatencyUs int64
	JitterUs  int64
	// LossPPM is lost probes per million sent.
	LossPPM int32
	// Probes is how many echo requests the loss counts; 0: unknown (the
	// loss could be anything).
	Probes int64
	// LatencyErrUs and JitterErrUs are the standard errors of the means
	// (the spread of the measurements over the square root of their
	// number); 0 takes the mean as exact.
	LatencyErrUs int64
	JitterErrUs  int64
	// LossDispersion is how much more the loss varied between probe
	// rounds than independent probes would (the quasi-binomial
	// dispersion, at least 1; 0 counts as 1): bursty loss is worth fewer
	// independent probes, Probes/LossDispersion.
	LossDispersion float64
}

// Dispersion is the quasi-binomial dispersion of loss over rounds that
// sent sent[i] probes and lost lost[i]: Pearson's chi-square over its
// degrees of freedom, at least 1 (1 for fewer than two rounds).
func Dispersion(sent, lost []int64) float64 {
	var rounds int64
	var n, k, s float64
	for i := range sent {
		if sent[i] > 0 {
			rounds++
			n += float64(sent[i])
			k += float64(lost[i])
			s += float64(lost[i]) * float64(lost[i]) / float64(sent[i])
		}
	}
	return DispersionOfSums(rounds, n, k, s)
}

// DispersionOfSums is Dispersion from sums over the rounds (what a store
// can aggregate): rounds rounds sent n probes and lost k, and s is the
// sum of each round's lost squared over its sent. Pearson's chi-square is
// (s - pk) / (p(1-p)) with p = k/n; 1 for fewer than two rounds, no loss
// or total loss.
func DispersionOfSums(rounds int64, n, k, s float64) float64 {
	if rounds < 2 || n <= 0 || k <= 0 || k >= n {
		return 1
	}
	p := k / n
	return max(1, (s-p*k)/(p*(1-p))/float64(rounds-1))
}

// Interval is a 95 % confidence interval.
type Interval struct{ Lo, Hi float64 }

// Lost is the number of lost probes the loss stands for.
func (f Figures) Lost() int64 {
	return int64(math.Round(float64(f.LossPPM) * float64(f.Probes) / 1e6))
}

// Loss is the Wilson score interval of the loss, as a fraction.
func (f Figures) Loss() Interval {
	if f.Probes <= 0 {
		return Interval{0, 1}
	}
	p := min(1, max(0, float64(f.Lost())/float64(f.Probes)))
	n := float64(f.Probes) / max(1, f.LossDispersion)
	z2 := Z * Z
	centre := (p + z2/(2*n)) / (1 + z2/n)
	half := Z / (1 + z2/n) * math.Sqrt(p*(1-p)/n+z2/(4*n*n))
	return Interval{max(0, centre-half), min(1, centre+half)}
}

// Latency is the interval of the mean latency, in microseconds.
func (f Figures) Latency() Interval { return meanInterval(f.LatencyUs, f.LatencyErrUs) }

// Jitter is the interval of the mean jitter, in microseconds.
func (f Figures) Jitter() Interval { return meanInterval(f.JitterUs, f.JitterErrUs) }

func meanInterval(mean, se int64) Interval {
	h := Z * float64(max(se, 0))
	return Interval{float64(mean) - h, float64(mean) + h}
}

// MinProbes is the fewest probes a measurement must count to show a path
// beyond a limit: fewer say almost nothing (1 lost of 6 is anywhere from
// 3 % to 56 %). The exchange's matching, its SLA breaches and the access
// manager's default all hold paths to it.
const MinProbes = 20

// Beyond tells whether f is significantly beyond the limits (0: none): a
// figure's 95 % interval lies wholly above its limit. A figure above its
// limit by less than its uncertainty is not beyond it (no decision on
// noise); nor is a loss whose probe count is unknown.
func (f Figures) Beyond(maxLatencyUs, maxJitterUs int64, maxLossPPM int32) bool {
	return (maxLatencyUs > 0 && f.Latency().Lo > float64(maxLatencyUs)) ||
		(maxJitterUs > 0 && f.Jitter().Lo > float64(maxJitterUs)) ||
		(maxLossPPM > 0 && f.Loss().Lo > float64(maxLossPPM)/1e6)
}

// Figure names one of the compared figures.
type Figure string

const (
	Loss    Figure = "loss"
	Latency Figure = "latency"
	Jitter  Figure = "jitter"
)

// Figures in the order they are compared.
var order = []Figure{Loss, Latency, Jitter}

func (f Figures) interval(fig Figure) Interval {
	switch fig {
	case Loss:
		return f.Loss()
	case Latency:
		return f.Latency()
	}
	return f.Jitter()
}

// Worse tells whether a is significantly worse than b on fig: a's
// interval lies wholly above b's.
func Worse(fig Figure, a, b Figures) bool { return a.interval(fig).Lo > b.interval(fig).Hi }

// Verdict is how two paths compare and which figure decided.
type Verdict struct {
	// Cmp is -1 when a is better, 1 when b is, 0 when no figure differs
	// significantly.
	Cmp int
	// Figure is the figure that decided ("" for a tie).
	Figure Figure
}

// Compare compares a and b as Rank would rank the two: loss, then
// latency, then jitter, each only on a significant difference.
func Compare(a, b Figures) Verdict {
	for _, fig := range order {
		switch {
		case Worse(fig, a, b):
			return Verdict{1, fig}
		case Worse(fig, b, a):
			return Verdict{-1, fig}
		}
	}
	return Verdict{}
}

// Explain says in words how a compares with b, naming the deciding
// figures with their samples, for the decision journal.
func Explain(a, b Figures) string {
	v := Compare(a, b)
	if v.Cmp == 0 {
		return fmt.Sprintf("no significant difference (loss %s vs %s; latency %s vs %s; jitter %s vs %s)",
			a.LossString(), b.LossString(), a.LatencyString(), b.LatencyString(), msPM(a.JitterUs, a.JitterErrUs), msPM(b.JitterUs, b.JitterErrUs))
	}
	word := "lower"
	if v.Cmp > 0 {
		word = "higher"
	}
	var s string
	switch v.Figure {
	case Loss:
		s = fmt.Sprintf("loss %s vs %s", a.LossString(), b.LossString())
	case Latency:
		s = fmt.Sprintf("latency %s vs %s", a.LatencyString(), b.LatencyString())
	default:
		s = fmt.Sprintf("jitter %s vs %s", msPM(a.JitterUs, a.JitterErrUs), msPM(b.JitterUs, b.JitterErrUs))
	}
	if v.Figure != Loss {
		s = fmt.Sprintf("loss not significantly different (%s vs %s); %s", a.LossString(), b.LossString(), s)
	}
	return s + ": significantly " + word
}

// LossString is the loss with its sample: "1.2% (3/250 probes)".
func (f Figures) LossString() string {
	if f.Probes <= 0 {
		return fmt.Sprintf("%s%% (probes unknown)", pct(float64(f.LossPPM)/1e6))
	}
	return fmt.Sprintf("%s%% (%d/%d probes)", pct(float64(f.LossPPM)/1e6), f.Lost(), f.Probes)
}

// LatencyString is the mean latency with its 95 % margin: "20.1±0.4 ms".
func (f Figures) LatencyString() string { return msPM(f.LatencyUs, f.LatencyErrUs) }

func msPM(us, se int64) string {
	return fmt.Sprintf("%.1f±%.1f ms", float64(us)/1000, Z*float64(max(se, 0))/1000)
}

func pct(x float64) string { return fmt.Sprintf("%.2f", 100*x) }

// Score is a path's place among the paths it was ranked with: its tier on
// each figure, 0 best. Unmeasured paths come after every measured one.
type Score struct {
	Unmeasured            bool
	Loss, Latency, Jitter int
}

// Compare orders scores, better first (negative: s is better).
func (s Score) Compare(t Score) int {
	b := func(x bool) int {
		if x {
			return 1
		}
		return 0
	}
	return cmp.Or(cmp.Compare(b(s.Unmeasured), b(t.Unmeasured)), cmp.Compare(s.Loss, t.Loss),
		cmp.Compare(s.Latency, t.Latency), cmp.Compare(s.Jitter, t.Jitter))
}

// Rank scores each path against the others (nil: unmeasured). The scores
// do not depend on the order of fs.
func Rank(fs []*Figures) []Score {
	out := make([]Score, len(fs))
	var measured []int
	for i, f := range fs {
		if f == nil {
			out[i].Unmeasured = true
		} else {
			measured = append(measured, i)
		}
	}
	iv := func(fig Figure) func(int) Interval { return func(i int) Interval { return fs[i].interval(fig) } }
	for li, group := range tiers(measured, iv(Loss)) {
		for ti, sub := range tiers(group, iv(Latency)) {
			for ji, leaf := range tiers(sub, iv(Jitter)) {
				for _, i := range leaf {
					out[i] = Score{Loss: li, Latency: ti, Jitter: ji}
				}
			}
		}
	}
	return out
}

// tiers splits idx into tiers, best first: each tier's pivot is the
// remaining path whose interval ends lowest, and the tier every remaining
// path whose interval starts at or below that end.
func tiers(idx []int, iv func(int) Interval) [][]int {
	rest := slices.Clone(idx)
	var out [][]int
	for len(rest) > 0 {
		hi := math.Inf(1)
		for _, i := range rest {
			hi = min(hi, iv(i).Hi)
		}
		var tier, next []int
		for _, i := range rest {
			if iv(i).Lo <= hi {
				tier = append(tier, i)
			} else {
				next = append(next, i)
			}
		}
		out = append(out, tier)
		rest = next
	}
	return out
}

// Levels is each score's level among the distinct scores of ss, scaled to
// [0, 1] (0 the best, 1 the worst; 0 for all when they tie): the
// performance part of a weighted price/performance ranking.
func Levels(ss []Score) []float64 {
	distinct := slices.Clone(ss)
	slices.SortFunc(distinct, Score.Compare)
	distinct = slices.CompactFunc(distinct, func(a, b Score) bool { return a.Compare(b) == 0 })
	out := make([]float64, len(ss))
	if len(distinct) < 2 {
		return out
	}
	for i, s := range ss {
		j, _ := slices.BinarySearchFunc(distinct, s, Score.Compare)
		out[i] = float64(j) / float64(len(distinct)-1)
	}
	return out
}

// Gain is what going from cur to next gains (positive: next is better),
// with the 95 % margin of each difference.
type Gain struct {
	LatencyUs, LatencyMarginUs int64
	LossPPM, LossMarginPPM     int32
}

// GainOf is next's gain over cur. The loss margin uses each side's normal
// approximation (Wilson's centre and half-width); unknown probe counts
// make it 100 %.
func GainOf(cur, next Figures) Gain {
	g := Gain{LatencyUs: cur.LatencyUs - next.LatencyUs, LossPPM: cur.LossPPM - next.LossPPM}
	ec, en := Z*float64(max(cur.LatencyErrUs, 0)), Z*float64(max(next.LatencyErrUs, 0))
	g.LatencyMarginUs = int64(math.Round(math.Hypot(ec, en)))
	half := func(i Interval) float64 { return (i.Hi - i.Lo) / 2 }
	g.LossMarginPPM = int32(math.Round(min(1, math.Hypot(half(cur.Loss()), half(next.Loss()))) * 1e6))
	return g
}
