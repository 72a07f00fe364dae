package pathscore

import (
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// lossy is a path measured with n probes, k of them lost, at latency ms
// (exact).
func lossy(k, n int64, ms int64) Figures {
	return Figures{LatencyUs: ms * 1000, LossPPM: int32(k * 1_000_000 / n), Probes: n}
}

func TestCompareRules(t *testing.T) {
	tests := []struct {
		name   string
		a, b   Figures
		cmp    int
		figure Figure
	}{
		{"lower latency with significantly more loss is worse", lossy(10, 200, 2), lossy(0, 200, 61), 1, Loss},
		{"1 of 6 lost is not worse than 0 of 6: latency decides", lossy(1, 6, 2), lossy(0, 6, 61), -1, Latency},
		{"5% against 0% over 200 probes is worse", lossy(10, 200, 10), lossy(0, 200, 10), 1, Loss},
		{"1% against 0% over 200 probes is noise", lossy(2, 200, 30), lossy(0, 200, 10), 1, Latency},
		{"unknown probe count: loss never decides", Figures{LatencyUs: 5000, LossPPM: 500_000}, lossy(0, 1000, 50), -1, Latency},
		{"latency within the spread is a tie", Figures{LatencyUs: 20_000, LatencyErrUs: 2000, Probes: 100},
			Figures{LatencyUs: 24_000, LatencyErrUs: 1000, Probes: 100}, 0, ""},
		{"latency beyond the spread decides", Figures{LatencyUs: 20_000, LatencyErrUs: 500, Probes: 100},
			Figures{LatencyUs: 24_000, LatencyErrUs: 500, Probes: 100}, -1, Latency},
		{"jitter last", Figures{LatencyUs: 20_000, JitterUs: 5000, Probes: 100},
			Figures{LatencyUs: 20_000, JitterUs: 100, Probes: 100}, 1, Jitter},
		{"total loss against a clean path", lossy(30, 30, 1), lossy(0, 30, 100), 1, Loss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Compare(tc.a, tc.b)
			if v.Cmp != tc.cmp || v.Figure != tc.figure {
				t.Fatalf("Compare = %+v, want %d by %q: %s", v, tc.cmp, tc.figure, Explain(tc.a, tc.b))
			}
			if r := Compare(tc.b, tc.a); r.Cmp != -tc.cmp || r.Figure != tc.figure {
				t.Fatalf("reversed: %+v", r)
			}
			// Rank agrees with Compare on the pair.
			s := Rank([]*Figures{&tc.a, &tc.b})
			if c := s[0].Compare(s[1]); c != tc.cmp {
				t.Fatalf("Rank %+v disagrees with Compare %d", s, tc.cmp)
			}
			t.Log(Explain(tc.a, tc.b))
		})
	}
}

func TestWilson(t *testing.T) {
	for _, tc := range []struct {
		k, n   int64
		lo, hi float64
	}{
		{0, 6, 0, 0.390},
		{1, 6, 0.030, 0.564},
		{0, 200, 0, 0.0188},
		{10, 200, 0.0274, 0.0897},
	} {
		i := lossy(tc.k, tc.n, 0).Loss()
		if d := i.Lo - tc.lo; d > 0.001 || d < -0.001 {
			t.Errorf("%d/%d: lo %.4f, want %.4f", tc.k, tc.n, i.Lo, tc.lo)
		}
		if d := i.Hi - tc.hi; d > 0.001 || d < -0.001 {
			t.Errorf("%d/%d: hi %.4f, want %.4f", tc.k, tc.n, i.Hi, tc.hi)
		}
	}
}

func TestLevels(t *testing.T) {
	got := Levels([]Score{{Loss: 1}, {}, {Unmeasured: true}, {}})
	if !slices.Equal(got, []float64{0.5, 0, 1, 0}) {
		t.Fatalf("levels %v", got)
	}
	if got := Levels([]Score{{}, {}}); !slices.Equal(got, []float64{0, 0}) {
		t.Fatalf("tied levels %v", got)
	}
}

func TestGainMargin(t *testing.T) {
	g := GainOf(Figures{LatencyUs: 30_000, LatencyErrUs: 300, Probes: 200},
		Figures{LatencyUs: 20_000, LatencyErrUs: 400, Probes: 200, LossPPM: 5000})
	if g.LatencyUs != 10_000 || g.LatencyMarginUs != 980 || g.LossPPM != -5000 || g.LossMarginPPM < 10_000 || g.LossMarginPPM > 30_000 {
		t.Fatalf("gain %+v", g)
	}
}

func drawFigures(t *rapid.T, label string) *Figures {
	if rapid.IntRange(0, 9).Draw(t, label+"_nil") == 0 {
		return nil
	}
	n := rapid.SampledFrom([]int64{0, 3, 6, 20, 200, 5000}).Draw(t, label+"_probes")
	f := &Figures{
		LatencyUs:      rapid.Int64Range(0, 200).Draw(t, label+"_lat") * 1000,
		LatencyErrUs:   rapid.Int64Range(0, 20).Draw(t, label+"_late") * 500,
		JitterUs:       rapid.Int64Range(0, 20).Draw(t, label+"_jit") * 1000,
		JitterErrUs:    rapid.Int64Range(0, 4).Draw(t, label+"_jite") * 500,
		Probes:         n,
		LossDispersion: rapid.SampledFrom([]float64{0, 1, 3}).Draw(t, label+"_disp"),
	}
	if n > 0 {
		k := rapid.Int64Range(0, n).Draw(t, label+"_lost")
		if rapid.Bool().Draw(t, label+"_clean") {
			k = 0
		}
		f.LossPPM = int32(k * 1_000_000 / n)
	}
	return f
}

// The score is a total order that does not depend on the order the paths
// come in; a path significantly worse on loss, or on a later figure with
// the earlier ones tied, ranks after; one worse on every figure never
// ranks first; no tier holds two paths of which one is significantly
// worse on its figure.
func TestRankProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 8).Draw(t, "n")
		fs := make([]*Figures, n)
		for i := range fs {
			fs[i] = drawFigures(t, "p")
		}
		s := Rank(fs)
		// Independent of the input order.
		perm := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 2)).Perm(n)
		pf := make([]*Figures, n)
		for i, j := range perm {
			pf[i] = fs[j]
		}
		ps := Rank(pf)
		for i, j := range perm {
			if ps[i] != s[j] {
				t.Fatalf("score of path %d is %+v in one order, %+v in another", j, s[j], ps[i])
			}
		}
		for i := range fs {
			for j := range fs {
				c := s[i].Compare(s[j])
				if c != -s[j].Compare(s[i]) {
					t.Fatalf("not antisymmetric: %+v %+v", s[i], s[j])
				}
				for k := range fs {
					if c <= 0 && s[j].Compare(s[k]) <= 0 && s[i].Compare(s[k]) > 0 {
						t.Fatalf("not transitive: %+v %+v %+v", s[i], s[j], s[k])
					}
				}
				a, b := fs[i], fs[j]
				if a == nil || b == nil {
					if a == nil && b != nil && c <= 0 {
						t.Fatalf("unmeasured path %+v not after measured %+v", s[i], s[j])
					}
					continue
				}
				if Worse(Loss, *a, *b) && c <= 0 {
					t.Fatalf("path %+v (%s) significantly lossier than %+v (%s) but ranked %+v vs %+v", *a, a.LossString(), *b, b.LossString(), s[i], s[j])
				}
				if s[i].Loss == s[j].Loss && Worse(Latency, *a, *b) && c <= 0 {
					t.Fatalf("same loss tier, significantly slower, ranked no later: %+v %+v", s[i], s[j])
				}
				if s[i].Loss == s[j].Loss && s[i].Latency == s[j].Latency && Worse(Jitter, *a, *b) && c <= 0 {
					t.Fatalf("same loss and latency tiers, significantly more jitter, ranked no later")
				}
				if Worse(Loss, *a, *b) && Worse(Latency, *a, *b) && Worse(Jitter, *a, *b) && c <= 0 {
					t.Fatalf("worse on every figure but ranked no later")
				}
			}
		}
	})
}

// Loss that comes in bursts (all in one round of five) is worth fewer
// independent probes than loss spread evenly: its interval is wider.
func TestDispersion(t *testing.T) {
	sent := []int64{100, 100, 100, 100, 100}
	if d := Dispersion(sent, []int64{1, 1, 1, 1, 1}); d != 1 {
		t.Fatalf("even loss: dispersion %v, want 1", d)
	}
	d := Dispersion(sent, []int64{5, 0, 0, 0, 0})
	if d < 3 {
		t.Fatalf("bursty loss: dispersion %v, want well above 1", d)
	}
	even := Figures{LossPPM: 10_000, Probes: 500}
	bursty := even
	bursty.LossDispersion = d
	if e, b := even.Loss(), bursty.Loss(); b.Lo >= e.Lo || b.Hi <= e.Hi {
		t.Fatalf("bursty %+v not wider than even %+v", b, e)
	}
	// 10 of 500 in one burst is no longer significantly worse than 0 of 500.
	clean := Figures{Probes: 500}
	if !Worse(Loss, Figures{LossPPM: 20_000, Probes: 500}, clean) || Worse(Loss, Figures{LossPPM: 20_000, Probes: 500, LossDispersion: Dispersion(sent, []int64{10, 0, 0, 0, 0})}, clean) {
		t.Fatal("dispersion does not decide significance")
	}
	if Dispersion([]int64{100}, []int64{50}) != 1 || Dispersion(sent, []int64{0, 0, 0, 0, 0}) != 1 {
		t.Fatal("one round, or no loss: dispersion 1")
	}
}
