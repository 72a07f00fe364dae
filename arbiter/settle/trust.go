package settle

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"time"
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
	return 0, invalid("policy", "%q: want buyer, seller, min or max", s)
}

// Figure is one party's bits/s for a slot and the packet samples behind it.
type Figure struct {
	Bps     int64
	Samples int64
	OK      bool // reported at all
}

// Slot is one 5-minute interval of a trade with both parties' figures.
type Slot struct {
	Start         time.Time
	Buyer, Seller Figure
}

// Slots groups samples into the 5-minute slots (aligned to the Unix epoch,
// by each sample's start) that lie in [from, to), sorted by time. A sample
// repeated for the same role and interval counts once, so replaying usage
// changes nothing; different samples in one slot merge into their
// time-weighted mean with their sample counts added.
func Slots(samples []Sample, from, to time.Time) []Slot {
	out, _ := slotsInto(nil, nil, samples, from, to)
	return out
}

type slotSample struct {
	slot, start, end int64
	i                int // index in samples; no pointer, so no GC work
	role             Role
}

// slotsInto is Slots reusing out and scratch, for settling many trades.
func slotsInto(out []Slot, scratch []slotSample, samples []Sample, from, to time.Time) ([]Slot, []slotSample) {
	slotUs := int64(SlotLength / time.Microsecond)
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
		return Figure{Bps: parts[0].Bps, Samples: parts[0].SampleCount, OK: true}
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
	return Figure{Bps: divRound(&num, &den), Samples: n, OK: true}
}

// Disputed reports whether a and b differ by more than k combined sampling
// errors. For 1-in-N packet sampling the relative standard error of a
// figure built from n samples is about 1/sqrt(n), so its absolute error is
// bps/sqrt(n); the two errors combine as the root of their squares. Both
// errors are taken at the larger of the two sample counts, not each
// reporter's own: a party that claims fewer samples than it had cannot
// widen its own error bar until any figure agrees, and no party can claim
// more than its port carries packets (Usage.Report bounds the count). A
// figure from zero samples on both sides carries no error. Floats are fine
// here: this is a statistical test, not money.
func Disputed(a, b Figure, k float64) bool {
	if !a.OK || !b.OK {
		return false
	}
	n := max(a.Samples, b.Samples)
	va, vb := variance(a.Bps, n), variance(b.Bps, n)
	d := float64(a.Bps) - float64(b.Bps)
	return d*d > k*k*(va+vb)
}

func variance(bps, n int64) float64 {
	if n <= 0 {
		return 0
	}
	b := float64(bps)
	return b * b / float64(n)
}

// Choice is the figure billed for a slot and why.
type Choice struct {
	Bps      int64
	Disputed bool
	Fallback bool // the preferred figure was missing; the other party's was used
}

// Choose picks the billed figure of a slot: the buyer's when the figures
// agree within their error (claim 7), policy's when they are disputed, and
// the only one there is when one party did not report.
func Choose(s Slot, policy Policy, k float64) (Choice, bool) {
	switch {
	case !s.Buyer.OK && !s.Seller.OK:
		return Choice{}, false
	case !s.Buyer.OK:
		return Choice{Bps: s.Seller.Bps, Fallback: true}, true
	case !s.Seller.OK:
		return Choice{Bps: s.Buyer.Bps, Fallback: policy == SellerFigure}, true
	}
	if !Disputed(s.Buyer, s.Seller, k) {
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
