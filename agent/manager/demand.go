package manager

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/netx"
)

// Destination is one destination prefix as the demand model sees it.
type Destination struct {
	Prefix netip.Prefix `json:"prefix"`
	// P95Bps is the 95th percentile (nearest rank) of the per-interval
	// rates over the window, all paths together.
	P95Bps int64 `json:"p95_bps"`
	// MeanBps is the mean of the same rates.
	MeanBps int64 `json:"mean_bps"`
	// TrendBpsPerHour is the least-squares slope of the rates.
	TrendBpsPerHour int64 `json:"trend_bps_per_hour"`
	// Intervals and Samples say how much the figures rest on.
	Intervals int   `json:"intervals"`
	Samples   int64 `json:"samples"`
	// BySeller is the mean rate through each path (DefaultPath for the
	// member's own).
	BySeller map[uint32]int64 `json:"by_seller,omitempty"`
}

type interval struct {
	start, end time.Time
	bps        int64
	samples    int64
	bySeller   map[uint32]int64
}

// Demand keeps the per-interval traffic of each destination prefix over a
// window.
type Demand struct {
	window time.Duration
	series map[netip.Prefix][]*interval // sorted by start
}

// NewDemand returns an empty model over window.
func NewDemand(window time.Duration) *Demand {
	return &Demand{window: window, series: map[netip.Prefix][]*interval{}}
}

// Add folds in capture samples. Samples of one (prefix, interval) through
// several paths add up; a sample repeated for the same (prefix, path,
// interval) replaces the earlier one. The zero prefix (unmatched traffic)
// is ignored.
func (d *Demand) Add(samples ...DemandSample) {
	for _, s := range samples {
		if !s.Prefix.IsValid() || s.BitsPerSecond < 0 || !s.End.After(s.Start) {
			continue
		}
		p := s.Prefix.Masked()
		ivs := d.series[p]
		i, found := slices.BinarySearchFunc(ivs, s.Start, func(iv *interval, t time.Time) int { return iv.start.Compare(t) })
		if !found {
			ivs = slices.Insert(ivs, i, &interval{start: s.Start.UTC(), end: s.End.UTC(), bySeller: map[uint32]int64{}})
			d.series[p] = ivs
		}
		iv := ivs[i]
		if old, ok := iv.bySeller[s.Seller]; ok {
			iv.bps -= old
		}
		iv.bySeller[s.Seller] = s.BitsPerSecond
		iv.bps += s.BitsPerSecond
		iv.samples += s.Samples
	}
}

// prune drops intervals that ended before now-window.
func (d *Demand) prune(now time.Time) {
	from := now.Add(-d.window)
	for p, ivs := range d.series {
		i := 0
		for i < len(ivs) && !ivs[i].end.After(from) {
			i++
		}
		if i == len(ivs) {
			delete(d.series, p)
		} else if i > 0 {
			d.series[p] = slices.Delete(ivs, 0, i)
		}
	}
}

// Top returns the n destinations with the highest 95th percentile over the
// window ending at now, highest first (ties by prefix).
func (d *Demand) Top(now time.Time, n int) []Destination {
	d.prune(now)
	out := make([]Destination, 0, len(d.series))
	for p, ivs := range d.series {
		out = append(out, summarize(p, ivs))
	}
	slices.SortFunc(out, func(a, b Destination) int {
		return cmp.Or(cmp.Compare(b.P95Bps, a.P95Bps), netx.ComparePrefix(a.Prefix, b.Prefix))
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Get returns the figures of one prefix (ok false without data).
func (d *Demand) Get(now time.Time, p netip.Prefix) (Destination, bool) {
	d.prune(now)
	ivs := d.series[p.Masked()]
	if len(ivs) == 0 {
		return Destination{}, false
	}
	return summarize(p.Masked(), ivs), true
}

func summarize(p netip.Prefix, ivs []*interval) Destination {
	dst := Destination{Prefix: p, Intervals: len(ivs), BySeller: map[uint32]int64{}}
	rates := make([]int64, len(ivs))
	var sum float64
	for i, iv := range ivs {
		rates[i] = iv.bps
		sum += float64(iv.bps)
		dst.Samples += iv.samples
		for s, b := range iv.bySeller {
			dst.BySeller[s] += b
		}
	}
	for s := range dst.BySeller {
		dst.BySeller[s] /= int64(len(ivs))
	}
	dst.MeanBps = int64(sum / float64(len(ivs)))
	dst.P95Bps = Percentile95(rates)
	dst.TrendBpsPerHour = trend(ivs)
	return dst
}

// Percentile95 is the nearest-rank 95th percentile of rates (the billing
// convention: the top 5 % of intervals are ignored); 0 for none. rates is
// sorted in place.
func Percentile95(rates []int64) int64 {
	if len(rates) == 0 {
		return 0
	}
	slices.Sort(rates)
	// rank = ceil(0.95 n), 1-based.
	rank := (95*len(rates) + 99) / 100
	return rates[rank-1]
}

// trend is the least-squares slope of rate over time, in bits/s per hour.
func trend(ivs []*interval) int64 {
	if len(ivs) < 2 {
		return 0
	}
	t0 := ivs[0].start
	var sx, sy, sxx, sxy float64
	n := float64(len(ivs))
	for _, iv := range ivs {
		x := iv.start.Sub(t0).Hours()
		y := float64(iv.bps)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return int64((n*sxy - sx*sy) / den)
}
