package manager

import (
	"net/netip"
	"testing"
	"time"
)

func TestPercentile95(t *testing.T) {
	rates := make([]int64, 100)
	for i := range rates {
		rates[i] = int64(100 - i) // 1..100, shuffled order
	}
	if got := Percentile95(rates); got != 95 {
		t.Fatalf("p95 of 1..100 = %d, want 95", got)
	}
	if got := Percentile95([]int64{7}); got != 7 {
		t.Fatalf("p95 of one = %d", got)
	}
	// 20 intervals: the top one (5 %) is ignored.
	r := make([]int64, 20)
	r[3] = 1000
	r[7] = 500
	if got := Percentile95(r); got != 500 {
		t.Fatalf("p95 = %d, want 500", got)
	}
	if Percentile95(nil) != 0 {
		t.Fatal("p95 of none")
	}
}

func TestDemandTopTrendWindow(t *testing.T) {
	d := NewDemand(time.Hour)
	small := netip.MustParsePrefix("192.0.2.0/24")
	// pfx4 grows 1 Mbps per 5 minutes (12 Mbps/h) through two paths;
	// pfx6 flat at 30; small flat at 1.
	for i := range 24 { // 2 hours
		s := t0.Add(time.Duration(i) * 5 * time.Minute)
		e := s.Add(5 * time.Minute)
		d.Add(DemandSample{Prefix: pfx4, Seller: DefaultPath, Start: s, End: e, BitsPerSecond: int64(i) * mbps / 2, Samples: 10},
			DemandSample{Prefix: pfx4, Seller: asA, Start: s, End: e, BitsPerSecond: int64(i) * mbps / 2, Samples: 10},
			DemandSample{Prefix: pfx6, Start: s, End: e, BitsPerSecond: 30 * mbps, Samples: 10},
			DemandSample{Prefix: small, Start: s, End: e, BitsPerSecond: mbps, Samples: 10},
			DemandSample{Start: s, End: e, BitsPerSecond: 1000 * mbps}) // unmatched: ignored
	}
	now := t0.Add(2 * time.Hour)
	top := d.Top(now, 2)
	if len(top) != 2 || top[0].Prefix != pfx6 || top[1].Prefix != pfx4 {
		t.Fatalf("top %+v", top)
	}
	g := top[1]
	// Window: the last hour, intervals 12..23 (12..23 Mbps): nearest rank 95 % of 12 is the 12th.
	if g.Intervals != 12 || g.P95Bps != 23*mbps || g.TrendBpsPerHour != 12*mbps || g.Samples != 240 {
		t.Fatalf("pfx4 %+v", g)
	}
	if g.BySeller[asA] != g.BySeller[DefaultPath] || g.BySeller[asA] != (12+23)*mbps/4 {
		t.Fatalf("by seller %+v", g.BySeller)
	}
	// A repeated figure replaces the first.
	last := t0.Add(23 * 5 * time.Minute)
	d.Add(DemandSample{Prefix: pfx6, Start: last, End: last.Add(5 * time.Minute), BitsPerSecond: 90 * mbps, Samples: 10})
	if g, _ := d.Get(now, pfx6); g.P95Bps != 90*mbps || g.MeanBps != (11*30+90)*mbps/12 {
		t.Fatalf("pfx6 after replacement %+v", g)
	}
	// Everything ages out.
	if top := d.Top(now.Add(2*time.Hour), 10); len(top) != 0 {
		t.Fatalf("old figures kept: %+v", top)
	}
}

func TestWantedThresholds(t *testing.T) {
	p := testPolicy()
	p.Demand.MinRate = 20 * mbps
	m := newManager(t, p)
	demand(m, pfx4, 40*mbps, 12, t0)
	demand(m, pfx6, 10*mbps, 12, t0)                                   // below min_rate
	demand(m, netip.MustParsePrefix("203.0.113.0/24"), 50*mbps, 2, t0) // too few intervals
	w := m.Wanted(t0)
	if len(w) != 1 || w[0].Prefix != pfx4 {
		t.Fatalf("wanted %+v", w)
	}
	// Top 1 among the allowed: the busier IPv6 destination is not allowed.
	p.Demand.Top = 1
	p.Buy.Destinations = []string{"198.51.100.0/24"}
	m = newManager(t, p)
	demand(m, pfx4, 40*mbps, 12, t0)
	demand(m, pfx6, 90*mbps, 12, t0)
	if w := m.Wanted(t0); len(w) != 1 || w[0].Prefix != pfx4 {
		t.Fatalf("wanted %+v", w)
	}
}
