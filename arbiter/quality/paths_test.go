package quality

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"pgregory.net/rapid"
)

// Paths gives Matrix.PathQuality's answer, whatever was reported before
// the last Refresh, by any vantage or a third party, toward any mix of
// prefixes, for any window.
func TestPathsAnswerAsTheMatrix(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	prefixes := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	var key int
	rapid.Check(t, func(rt *rapid.T) {
		ps := NewPaths(f.mx, 2*time.Hour) // windows up to 130 minutes: longer ones too
		if err := ps.Refresh(ctx); err != nil {
			rt.Fatal(err)
		}
		for step := 0; step < 30; step++ {
			if rapid.IntRange(0, 9).Draw(rt, "reset") == 0 {
				// As past maxPaths: from then on paths are read when asked.
				ps.mu.Lock()
				ps.reset()
				ps.mu.Unlock()
			}
			if rapid.IntRange(0, 2).Draw(rt, "report") == 0 {
				var ms []Measurement
				for i := rapid.IntRange(1, 3).Draw(rt, "n"); i > 0; i-- {
					key++
					p := prefixes[rapid.IntRange(0, len(prefixes)-1).Draw(rt, "prefix")]
					m := meas(fmt.Sprint("k", key))
					m.ViaASN = []uint32{via, via2}[rapid.IntRange(0, 1).Draw(rt, "via")]
					m.Prefix, m.Target = p, p.Addr().Next()
					m.At = now.Add(-time.Duration(rapid.IntRange(0, 120).Draw(rt, "age")) * time.Minute)
					m.LatencyUs = int64(rapid.IntRange(0, 100_000).Draw(rt, "latency"))
					m.LossPPM = int32(rapid.SampledFrom([]int{0, 1000, 1_000_000}).Draw(rt, "loss"))
					ms = append(ms, m)
				}
				var err error
				if who := rapid.IntRange(0, 2).Draw(rt, "who"); who == 2 {
					_, _, err = f.mx.ReportThirdParty(ctx, "atlas", ms)
				} else {
					if who == 1 {
						for i := range ms {
							ms[i].ViaASN = via // a member does not measure through itself
						}
					}
					_, _, err = f.mx.Report(ctx, []uint32{reporter, via2}[who], ms)
				}
				if err != nil {
					rt.Fatal(err)
				}
				if err := ps.Refresh(ctx); err != nil {
					rt.Fatal(err)
				}
			}
			vantage := rapid.SampledFrom([]uint32{0, reporter, via2}).Draw(rt, "vantage")
			v := rapid.SampledFrom([]uint32{via, via2, 64999}).Draw(rt, "via asked")
			ask := rapid.SliceOfNDistinct(rapid.SampledFrom(prefixes), 1, 3, func(p netip.Prefix) string { return p.String() }).Draw(rt, "prefixes")
			since := now.Add(-time.Duration(rapid.IntRange(0, 130).Draw(rt, "window")) * time.Minute)
			want, err := f.mx.PathQuality(ctx, vantage, v, ask, since)
			if err != nil {
				rt.Fatal(err)
			}
			got, err := ps.PathQuality(ctx, vantage, v, ask, since)
			if err != nil {
				rt.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				rt.Fatalf("vantage %d via %d %v since %v: cached %+v, matrix %+v", vantage, v, ask, since, got, want)
			}
		}
	})
}

// An answer is read from the store once, and again only when a
// measurement of its path arrives or the window passes its oldest one.
func TestPathsReadTheStoreOnlyForWhatChanged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ps := NewPaths(f.mx, 2*time.Hour)
	if err := ps.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p1, p2 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")
	report := func(key string, p netip.Prefix, ago time.Duration) {
		t.Helper()
		m := meas(key)
		m.Prefix, m.Target, m.At = p, p.Addr().Next(), now.Add(-ago)
		if _, _, err := f.mx.Report(ctx, reporter, []Measurement{m}); err != nil {
			t.Fatal(err)
		}
		if err := ps.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(p netip.Prefix, since time.Time) *Cell {
		t.Helper()
		c, err := ps.PathQuality(ctx, reporter, via, []netip.Prefix{p}, since)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	report("a", p1, 30*time.Minute)
	since := now.Add(-time.Hour)
	for _, c := range []struct {
		name    string
		do      func()
		since   time.Time
		samples int
		reads   int
	}{
		{"first ask", func() {}, since, 1, 1},
		{"asked again", func() {}, since, 1, 1},
		{"window moved, oldest still in", func() {}, since.Add(20 * time.Minute), 1, 1},
		{"another path measured", func() { report("b", p2, time.Minute) }, since.Add(20 * time.Minute), 1, 1},
		{"this path measured", func() { report("c", p1, time.Minute) }, since.Add(20 * time.Minute), 2, 2},
		{"asked again", func() {}, since.Add(20 * time.Minute), 2, 2},
		{"window passed the oldest", func() {}, since.Add(40 * time.Minute), 1, 3},
		{"window back (older ones count again)", func() {}, since, 2, 4},
	} {
		c.do()
		got := ask(p1, c.since)
		if got == nil || got.Samples != c.samples || ps.computed != c.reads {
			t.Fatalf("%s: %+v after %d store reads; want %d samples after %d", c.name, got, ps.computed, c.samples, c.reads)
		}
	}
	// A path nobody measured needs no store read at all.
	p3 := netip.MustParsePrefix("2001:db8:1::/48")
	for i := 0; i < 2; i++ {
		if c := ask(p3, since); c != nil || ps.computed != 4 || ps.loads != 0 {
			t.Fatalf("unmeasured path: %+v after %d averages and %d history reads, want nil after 4 and 0", c, ps.computed, ps.loads)
		}
	}
	report("d", p3, time.Minute)
	if c := ask(p3, since); c == nil || c.Samples != 1 || ps.computed != 5 {
		t.Fatalf("newly measured path: %+v after %d averages", c, ps.computed)
	}
	// Vantages without measurements of their own share the pooled average.
	for _, v := range []uint32{via, via2, 0} {
		c, err := ps.PathQuality(ctx, v, via, []netip.Prefix{p1}, since)
		if err != nil || c == nil || c.Vantage != 0 || c.Samples != 2 {
			t.Fatalf("vantage %d: %+v, %v; want the pooled view of 2 samples", v, c, err)
		}
	}
	if ps.computed != 6 {
		t.Fatalf("pooled view computed %d times, want once", ps.computed-5)
	}
	// Past its bound it forgets, and reads each path's history once.
	ps.mu.Lock()
	ps.reset()
	ps.mu.Unlock()
	for i := 0; i < 2; i++ {
		if c := ask(p1, since); c == nil || c.Samples != 2 || ps.loads != 1 {
			t.Fatalf("after a reset: %+v after %d history reads, want 2 samples after 1", c, ps.loads)
		}
	}
}

// The first Refresh reads the recent measurements by time, not the whole
// table.
func TestPathsStartReadsByTime(t *testing.T) {
	f := newFixture(t)
	if f.db.Dialect() != store.SQLite {
		t.Skip("sqlite's query plan (EXPLAIN QUERY PLAN)")
	}
	plan, err := f.db.Plan(`SELECT reporter_id, via_id, prefix, max(measured_us) FROM measurements
		WHERE measured_us >= ? GROUP BY reporter_id, via_id, prefix`, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "USING INDEX measurements_time (measured_us>?)") {
		t.Fatalf("plan %q does not search measurements_time", plan)
	}
}
