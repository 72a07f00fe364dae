package settle

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// Policy says whose figure a disputed interval is billed at.
type Policy int

const (
	// BuyerFigure is the default: the buyer's sampling determines usage (claim 7).
	BuyerFigure Policy = iota
	SellerFigure
	MinFigure
	MaxFigure
)

var policyNames = []string{"buyer", "seller", "min", "max"}

func (p Policy) String() string {
	if p < 0 || int(p) >= len(policyNames) {
		return fmt.Sprintf("policy(%d)", int(p))
	}
	return policyNames[p]
}

// ParsePolicy parses buyer, seller, min or max.
func ParsePolicy(s string) (Policy, error) {
	if i := slices.Index(policyNames, s); i >= 0 {
		return Policy(i), nil
	}
	return 0, invalid.New("policy", "%q: want buyer, seller, min or max", s)
}

// Figure is one party's bits/s for a slot, the packet samples it says are
// behind it, and how long its samples cover.
type Figure struct {
	Bps     int64
	Samples int64 // as reported: shown in disputes, never trusted
	Micros  int64 // the samples' total length
	OK      bool  // reported at all
}

// Slot is one slot (settle.slot, 5 minutes by default) of a trade with
// both parties' figures.
type Slot struct {
	Start         time.Time
	Buyer, Seller Figure
}

// Slots groups samples into slots of the given length (aligned to the Unix epoch,
// by each sample's start) that lie in [from, to), sorted by time. A sample
// repeated for the same role and interval counts once, so replaying usage
// changes nothing; different samples in one slot merge into their
// time-weighted mean with their sample counts added.
func Slots(samples []Sample, slot time.Duration, from, to time.Time) []Slot {
	out, _ := slotsInto(nil, nil, samples, slot, from, to)
	return out
}

type slotSample struct {
	slot, start, end int64
	i                int // index in samples; no pointer, so no GC work
	role             Role
}

// slotsInto is Slots reusing out and scratch, for settling many trades.
func slotsInto(out []Slot, scratch []slotSample, samples []Sample, slot time.Duration, from, to time.Time) ([]Slot, []slotSample) {
	slotUs := int64(slot / time.Microsecond)
	f, t := from.UnixMicro(), to.UnixMicro()
	xs := scratch[:0]
	for i := range samples {
		s := &samples[i]
		st, en := s.Start.UnixMicro(), s.End.UnixMicro()
		if st < f || st >= t || en <= st || (s.Role != BuyerRole && s.Role != SellerRole) {
			continue
		}
		xs = append(xs, slotSample{slot: st - ((st%slotUs)+slotUs)%slotUs, start: st, end: en, i: i, role: s.Role})
	}
	order := func(a, b slotSample) int {
		if c := cmp.Compare(a.slot, b.slot); c != 0 {
			return c
		}
		if c := cmp.Compare(a.role, b.role); c != 0 {
			return c
		}
		if c := cmp.Compare(a.start, b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.end, b.end)
	}
	// The store returns samples in time order; sorting is for the rest.
	if !slices.IsSortedFunc(xs, order) {
		slices.SortStableFunc(xs, order)
	}
	out = out[:0]
	var parts []Sample
	for i := 0; i < len(xs); {
		j := i
		parts = parts[:0]
		for ; j < len(xs) && xs[j].slot == xs[i].slot && xs[j].role == xs[i].role; j++ {
			if j > i && xs[j].start == xs[j-1].start && xs[j].end == xs[j-1].end {
				continue // the same interval reported again: the first counts
			}
			parts = append(parts, samples[xs[j].i])
		}
		if len(out) == 0 || out[len(out)-1].Start.UnixMicro() != xs[i].slot {
			out = append(out, Slot{Start: time.UnixMicro(xs[i].slot).UTC()})
		}
		if xs[i].role == BuyerRole {
			out[len(out)-1].Buyer = merge(parts)
		} else {
			out[len(out)-1].Seller = merge(parts)
		}
		i = j
	}
	return out, xs
}

// merge is the time-weighted mean of parts; exact (big) because bits/s
// times microseconds overflows int64.
func merge(parts []Sample) Figure {
	if len(parts) == 1 {
		return Figure{Bps: parts[0].Bps, Samples: parts[0].SampleCount, Micros: parts[0].End.UnixMicro() - parts[0].Start.UnixMicro(), OK: true}
	}
	var num, den, x big.Int
	var n int64
	for _, p := range parts {
		d := p.End.UnixMicro() - p.Start.UnixMicro()
		x.SetInt64(p.Bps)
		x.Mul(&x, big.NewInt(d))
		num.Add(&num, &x)
		den.Add(&den, big.NewInt(d))
		n += p.SampleCount
	}
	return Figure{Bps: divRound(&num, &den), Samples: n, Micros: den.Int64(), OK: true}
}

// Errors is the sampling error model disputes are judged by. It rests on
// what the exchange knows, never on a reporter's word: the sampling rate
// its members' agents are configured to (1 in SamplingRate packets at most)
// and the largest frame its switch carries. A figure of r bits/s over t
// seconds is at least r*t/MaxFrameBits packets, so at least
// r*t/(MaxFrameBits*SamplingRate) samples; for 1-in-N sampling the relative
// standard error of a figure from n samples is about 1/sqrt(n). Taking the
// fewest samples a figure can rest on gives the widest error bar the facts
// allow: more honest traffic is never called disputed, and a reporter that
// claims fewer samples than it had cannot widen its bar until any figure
// agrees (claim 7's "agreement within sampling error").
type Errors struct {
	K            float64 // how many combined standard errors apart is a dispute
	SamplingRate int64
	MaxFrameBits int64
}

// samples is the fewest packet samples f can rest on.
func (e Errors) samples(f Figure) float64 {
	return float64(f.Bps) * float64(f.Micros) / 1e6 / float64(e.MaxFrameBits) / float64(e.SamplingRate)
}

// Disputed reports whether a and b differ by more than K combined sampling
// errors. Both errors are taken at the larger of the two figures' sample
// counts: a party reporting a low figure does not widen the bar of the
// comparison. The two errors combine as the root of their squares. Two
// figures of no traffic carry no error. Floats are fine here: this is a
// statistical test, not money.
func (e Errors) Disputed(a, b Figure) bool {
	if !a.OK || !b.OK {
		return false
	}
	n := max(e.samples(a), e.samples(b))
	d := float64(a.Bps) - float64(b.Bps)
	if n <= 0 {
		return d != 0
	}
	va, vb := variance(a.Bps, n), variance(b.Bps, n)
	return d*d > e.K*e.K*(va+vb)
}

func variance(bps int64, n float64) float64 {
	b := float64(bps)
	return b * b / n
}

// Upper is the highest figure that would agree with f over the same time:
// what the other party could have reported without a dispute.
func (e Errors) Upper(f Figure) int64 {
	lo, hi := f.Bps, int64(math.MaxInt64)
	for lo < hi { // the largest b with !Disputed(b, f); disputes grow with b above f
		mid := lo + (hi-lo)/2 + 1
		if e.Disputed(Figure{Bps: mid, Micros: f.Micros, OK: true}, f) {
			hi = mid - 1
		} else {
			lo = mid
		}
	}
	return lo
}

// Choice is the figure billed for a slot and why.
type Choice struct {
	Bps      int64
	Disputed bool
	Fallback bool // only one party reported
}

// Choose picks the billed figure of a slot:
//   - both reported and agree within sampling error: the buyer's (claim 7);
//   - both reported and disputed: the policy's;
//   - only the buyer reported: the buyer's, which is what agreement bills,
//     so a seller gains nothing by going silent;
//   - only the seller reported: the highest figure that would have agreed
//     with the seller's (Errors.Upper), so a buyer never pays less by going
//     silent than by reporting a figure that agrees; the seller's word
//     alone is all there is, and the slot is flagged.
func Choose(s Slot, policy Policy, e Errors) (Choice, bool) {
	switch {
	case !s.Buyer.OK && !s.Seller.OK:
		return Choice{}, false
	case !s.Buyer.OK:
		return Choice{Bps: e.Upper(s.Seller), Fallback: true}, true
	case !s.Seller.OK:
		return Choice{Bps: s.Buyer.Bps, Fallback: true}, true
	}
	if !e.Disputed(s.Buyer, s.Seller) {
		return Choice{Bps: s.Buyer.Bps}, true
	}
	c := Choice{Disputed: true}
	switch policy {
	case SellerFigure:
		c.Bps = s.Seller.Bps
	case MinFigure:
		c.Bps = min(s.Buyer.Bps, s.Seller.Bps)
	case MaxFigure:
		c.Bps = max(s.Buyer.Bps, s.Seller.Bps)
	default:
		c.Bps = s.Buyer.Bps
	}
	return c, true
}

// Dispute is a slot whose figures differ by more than sampling allows.
type Dispute struct {
	TradeID       int64     `json:"trade_id"`
	Start         time.Time `json:"start"`
	BuyerBps      int64     `json:"buyer_bps"`
	BuyerSamples  int64     `json:"buyer_samples"`
	SellerBps     int64     `json:"seller_bps"`
	SellerSamples int64     `json:"seller_samples"`
	UsedBps       int64     `json:"used_bps"`
	Policy        string    `json:"policy"`
}
