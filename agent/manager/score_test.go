package manager

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/shared/pathscore"
)

// probeN feeds one round of sent echo requests, lost of them lost, toward
// p through seller at latency ms.
func probeN(m *Manager, seller uint32, p netip.Prefix, at time.Time, ms int64, sent, lost int32) {
	loss := int32(0)
	if sent > 0 {
		loss = lost * 1_000_000 / sent
	}
	m.AddQuality(PathSample{Seller: seller, Prefix: p, At: at, Sent: sent, Received: sent - lost, LatencyUs: ms * 1000, JitterUs: 100, LossPPM: loss})
}

// lab is the managerlab's setup: offers from A (2/Mbps) and B (3/Mbps),
// buying by performance with a 45 ms floor, a 5 ms or 1 % threshold, and
// the given probe rounds pooled.
func lab(t *testing.T, rounds int) (*Manager, *market) {
	p := testPolicy()
	p.Buy.Ranking = ByPerformance
	p.Buy.Floor = QualityFloor{MaxLatency: 45 * time.Millisecond}
	p.Buy.MinImprovement = Improvement{Latency: 5 * time.Millisecond, Loss: 10_000}
	p.Quality.Rounds = rounds
	m := newManager(t, p)
	demand(m, pfx4, 40*mbps, 12, t0)
	return m, newMarket(offer(1, asA, pfx4, 2*unit, 1000*mbps), offer(2, asB, pfx4, 3*unit, 1000*mbps))
}

// The rules of the path score as the manager applies them when it buys.
func TestBuyByPathScore(t *testing.T) {
	type path struct {
		ms         int64
		sent, lost int32 // per round, over 10 rounds
	}
	tests := []struct {
		name     string
		def      path
		a, b     path
		seller   uint32 // 0: no buy
		compared string // part of the comparison journaled (or of the hold)
		maxLoss  Percent
	}{
		{name: "a lower-latency path with significantly more loss is never chosen",
			def: path{61, 20, 0}, a: path{50, 20, 1}, b: path{2, 20, 1}, seller: 0, compared: "1 with significantly more loss", maxLoss: 1_000_000},
		{name: "nor one significantly beyond the default loss floor",
			def: path{61, 20, 0}, a: path{50, 20, 1}, b: path{2, 20, 1}, seller: 0, compared: "2 below quality floor"},
		{name: "5% against 0% over 200 probes is worse: the next best, clean, path",
			def: path{61, 20, 0}, a: path{20, 20, 0}, b: path{2, 20, 1}, seller: asA, compared: "loss not significantly different"},
		{name: "1 lost probe is noise: latency decides",
			def: path{61, 3, 0}, a: path{20, 3, 0}, b: path{2, 3, 0}, seller: asB, compared: "latency 2.0"},
		{name: "lower loss decides before latency",
			def: path{30, 20, 4}, a: path{40, 20, 0}, b: path{10, 20, 3}, seller: asA, compared: "loss 0.00% (0/200 probes) vs 20.00% (40/200 probes): significantly lower"},
		{name: "a latency gain within the spread is no gain",
			def: path{30, 20, 0}, a: path{30, 20, 0}, b: path{30, 20, 0}, seller: 0, compared: "no offer improves enough"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, k := lab(t, 10)
			if tc.maxLoss != 0 {
				m.pol.Buy.Floor.MaxLoss = tc.maxLoss
			}
			for i := range 10 {
				at := t0.Add(-time.Duration(i) * time.Second)
				probeN(m, DefaultPath, pfx4, at, tc.def.ms, tc.def.sent, tc.def.lost)
				probeN(m, asA, pfx4, at, tc.a.ms, tc.a.sent, tc.a.lost)
				probeN(m, asB, pfx4, at, tc.b.ms, tc.b.sent, tc.b.lost)
			}
			if tc.name == "1 lost probe is noise: latency decides" {
				// One of B's 30 probes lost (3.3 %, anywhere from 0.6 % to 17 %).
				probeN(m, asB, pfx4, t0.Add(-9*time.Second), tc.b.ms, 3, 1)
			}
			ds := m.Step(k.inputs(t0))
			buy := find(ds, KindBuy)
			if tc.seller == 0 {
				h := find(ds, KindHold)
				if buy != nil || h == nil || !strings.Contains(h.Reason, tc.compared) {
					t.Fatalf("want a hold saying %q, got %v", tc.compared, ds)
				}
				return
			}
			if buy == nil || buy.Seller != tc.seller {
				t.Fatalf("want a buy from AS%d, got %v", tc.seller, ds)
			}
			if !strings.Contains(buy.Compared, tc.compared) || buy.Current == nil || buy.Chosen == nil || buy.Current.Probes == 0 || buy.Chosen.Probes == 0 {
				t.Fatalf("journal lacks the comparison %q or the samples: %+v", tc.compared, *buy)
			}
			t.Log(buy.String())
		})
	}
}

// Six probes cannot justify a buy: the manager probes more, and decides
// once the figures count quality.min_probes. One lost probe of six (16.7 %)
// is then not worse than none of six.
func TestTooFewProbesWaitForMore(t *testing.T) {
	m, k := lab(t, 2)
	now := t0
	round := func(lostB int32) {
		probeN(m, DefaultPath, pfx4, now, 61, 3, 0)
		probeN(m, asA, pfx4, now, 20, 3, 0)
		probeN(m, asB, pfx4, now, 2, 3, lostB)
	}
	round(0)
	now = now.Add(2 * time.Second)
	round(1)
	ds := m.Step(k.inputs(now))
	if find(ds, KindBuy) != nil {
		t.Fatalf("bought on 6 probes: %v", ds)
	}
	if h := find(ds, KindHold); h == nil || !strings.Contains(h.Reason, "probing more") {
		t.Fatalf("want a hold that probes more, got %v", ds)
	}
	for range 5 {
		now = now.Add(2 * time.Second)
		round(0)
	}
	ds = m.Step(k.inputs(now))
	buy := find(ds, KindBuy)
	if buy == nil || buy.Seller != asB || buy.Chosen.Probes < 20 || buy.Chosen.LossPPM == 0 {
		t.Fatalf("want a buy from B on at least 20 probes, one lost, got %v", ds)
	}
	if !strings.Contains(buy.Compared, "loss not significantly different") || !strings.Contains(buy.Compared, "latency") {
		t.Fatalf("comparison %q", buy.Compared)
	}
	t.Log(buy.String())
}

// Ties on the path score go to price, then to the exchange's order (time
// priority).
func TestScoreTiesGoToPriceThenTimePriority(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prices [2]int64
		want   uint32
	}{
		{"price", [2]int64{3 * unit, 2 * unit}, asB},
		{"time priority", [2]int64{2 * unit, 2 * unit}, asB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := lab(t, 10)
			// The exchange lists B's offer first: time priority.
			k := newMarket(offer(2, asB, pfx4, tc.prices[1], 1000*mbps), offer(1, asA, pfx4, tc.prices[0], 1000*mbps))
			for i := range 10 {
				at := t0.Add(-time.Duration(i) * time.Second)
				probeN(m, DefaultPath, pfx4, at, 61, 20, 0)
				probeN(m, asA, pfx4, at, 20, 20, 0)
				probeN(m, asB, pfx4, at, 20, 20, int32(i%2)) // 5 of 200 lost: not significantly more
			}
			buy := find(m.Step(k.inputs(t0)), KindBuy)
			if buy == nil || buy.Seller != tc.want {
				t.Fatalf("bought %+v, want from AS%d", buy, tc.want)
			}
		})
	}
}

// A breach needs quality.min_probes probes beyond the limits, significantly.
func TestBreachNeedsEnoughProbes(t *testing.T) {
	m, k := lab(t, 2)
	for i := range 10 {
		at := t0.Add(-time.Duration(i) * time.Second)
		probeN(m, DefaultPath, pfx4, at, 61, 20, 0)
		probeN(m, asA, pfx4, at, 20, 20, 0)
		probeN(m, asB, pfx4, at, 2, 20, 0)
	}
	ds := m.Step(k.inputs(t0))
	k.apply(ds)
	if b := find(ds, KindBuy); b == nil || b.Seller != asB {
		t.Fatalf("no buy from B: %v", ds)
	}
	// B's path goes beyond the 45 ms floor, three rounds of 3 probes: 9
	// probes, too few to call a breach.
	now := t0
	for range 3 {
		now = now.Add(2 * time.Second)
		probeN(m, DefaultPath, pfx4, now, 61, 3, 0)
		probeN(m, asB, pfx4, now, 150, 3, 0)
		if br := find(m.Step(k.inputs(now)), KindBreach); br != nil {
			t.Fatalf("breach on %d probes: %+v", br.Chosen.Probes, *br)
		}
	}
	for range 4 {
		now = now.Add(2 * time.Second)
		probeN(m, DefaultPath, pfx4, now, 61, 3, 0)
		probeN(m, asB, pfx4, now, 150, 3, 0)
		ds = m.Step(k.inputs(now))
	}
	br := find(ds, KindBreach)
	for br == nil {
		t.Fatalf("no breach after 21 probes at 150 ms: %v", ds)
	}
	if br.Chosen.Probes < 20 || !strings.Contains(br.Reason, "significantly") {
		t.Fatalf("breach %+v", *br)
	}
}

// The manager ranks candidates as the book does: by the path score
// (shared/pathscore), then price, then the exchange's order; and never
// puts first a path worse on every figure than another.
func TestPropertyRankIsThePathScore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := testPolicy()
		p.Buy.Ranking = ByPerformance
		m, err := New(p, 10)
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.IntRange(1, 6).Draw(t, "n")
		cs := make([]candidate, n)
		for i := range cs {
			probes := rapid.SampledFrom([]int64{20, 60, 300}).Draw(t, "probes")
			cs[i] = candidate{pos: i, offer: Offer{OrderID: uint64(i + 1), Seller: uint32(64500 + i), PriceMicros: rapid.Int64Range(1, 3).Draw(t, "price")},
				q: Quality{LatencyUs: rapid.Int64Range(1, 80).Draw(t, "ms") * 1000, LatencyErrUs: rapid.Int64Range(0, 4).Draw(t, "err") * 500,
					JitterUs: rapid.Int64Range(0, 4).Draw(t, "jit") * 1000, Probes: probes,
					LossPPM: int32(rapid.Int64Range(0, probes/4).Draw(t, "lost") * 1_000_000 / probes)}}
		}
		fs := make([]*pathscore.Figures, n)
		for i := range cs {
			f := cs[i].q.figures()
			fs[i] = &f
		}
		ss := pathscore.Rank(fs)
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		slices.SortStableFunc(want, func(a, b int) int {
			return cmp.Or(ss[a].Compare(ss[b]), cmp.Compare(cs[a].offer.PriceMicros, cs[b].offer.PriceMicros))
		})
		s := &step{m: m}
		got := slices.Clone(cs)
		s.rank(got)
		for i := range got {
			if got[i].pos != want[i] {
				t.Fatalf("manager ranked %v, path score %v", positions(got), want)
			}
		}
		first := got[0].q.figures()
		for _, c := range cs {
			f := c.q.figures()
			if pathscore.Worse(pathscore.Loss, first, f) && pathscore.Worse(pathscore.Latency, first, f) && pathscore.Worse(pathscore.Jitter, first, f) {
				t.Fatalf("first is worse on every figure than %+v", c.q)
			}
			if pathscore.Worse(pathscore.Loss, first, f) {
				t.Fatalf("first has significantly more loss than %+v", c.q)
			}
		}
	})
}

func positions(cs []candidate) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.pos
	}
	return out
}
