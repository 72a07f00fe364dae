package book_test

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// measured is a path of latency ms (exact) where lost of probes were lost.
func measured(ms int64, lost, probes int64) *book.Measured {
	return &book.Measured{LatencyUs: ms * 1000, LossPPM: int32(lost * 1_000_000 / probes), Probes: probes, Samples: 10}
}

// offersRanked lists the sellers of the offers a performance- (or
// weight-) ranked buy sees, best first. Sellers sell at prices[i]
// (64501..64503), placed in that order (time priority).
func offersRanked(t *testing.T, q quality, prices [3]int64, r book.Ranking, weight uint32) []uint32 {
	t.Helper()
	e := engine(t)
	e.Quality = q
	for i, asn := range []uint32{64501, 64502, 64503} {
		place(t, e, asn, spec(book.Sell, "198.51.100.0/24", Gbps, prices[i]))
	}
	b := spec(book.Buy, "198.51.100.0/24", 3*Gbps, 10_000)
	b.MinBlockBps = Gbps
	b.Ranking, b.PriceWeight = r, weight
	return offered(t, e, b)
}

// The rules of the performance ranking (shared/pathscore), as a buyer
// meets them in the book.
func TestPerformanceRankingLossFirst(t *testing.T) {
	cases := []struct {
		name   string
		q      quality
		prices [3]int64
		want   []uint32
	}{
		{"a lower-latency path with significantly more loss is never first",
			quality{64501: measured(61, 0, 200), 64502: measured(2, 10, 200), 64503: measured(30, 0, 200)}, [3]int64{1, 1, 1},
			[]uint32{64503, 64501, 64502}},
		{"1 of 6 lost is no worse than 0 of 6: latency decides",
			quality{64501: measured(61, 0, 6), 64502: measured(2, 1, 6), 64503: measured(30, 0, 6)}, [3]int64{1, 1, 1},
			[]uint32{64502, 64503, 64501}},
		{"5 % against 0 % over 200 probes is worse",
			quality{64501: measured(20, 10, 200), 64502: measured(20, 0, 200), 64503: measured(20, 10, 200)}, [3]int64{1, 1, 1},
			[]uint32{64502, 64501, 64503}},
		{"ties go to price",
			quality{64501: measured(20, 0, 200), 64502: measured(20, 1, 200), 64503: measured(20, 0, 200)}, [3]int64{3, 2, 1},
			[]uint32{64503, 64502, 64501}},
		{"then time priority",
			quality{64501: measured(20, 0, 200), 64502: measured(20, 1, 200), 64503: measured(20, 0, 200)}, [3]int64{1, 1, 1},
			[]uint32{64501, 64502, 64503}},
		{"latency within its spread is a tie",
			quality{64501: {LatencyUs: 22_000, LatencyErrUs: 2000, Probes: 200, Samples: 5}, 64502: {LatencyUs: 20_000, LatencyErrUs: 2000, Probes: 200, Samples: 5},
				64503: {LatencyUs: 40_000, Probes: 200, Samples: 5}}, [3]int64{1, 2, 1},
			[]uint32{64501, 64502, 64503}},
		{"unmeasured last", quality{64501: nil, 64502: measured(90, 0, 200), 64503: measured(30, 0, 200)}, [3]int64{1, 1, 1},
			[]uint32{64503, 64502, 64501}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := offersRanked(t, c.q, c.prices, book.ByPerformance, 0); !slices.Equal(got, c.want) {
				t.Fatalf("ranked %v, want %v", got, c.want)
			}
			// All performance in the weighted mix ranks the same.
			if got := offersRanked(t, c.q, c.prices, book.Weighted, 0); !slices.Equal(got, c.want) {
				t.Fatalf("weighted (all performance) ranked %v, want %v", got, c.want)
			}
		})
	}
}

// The book's performance ranking is the path score's order (then price,
// then time priority), and never puts first a path worse on every figure.
func TestPropertyPerformanceRankingIsThePathScore(tt *testing.T) {
	rapid.Check(tt, func(t *rapid.T) {
		q := quality{}
		var prices [3]int64
		for i, asn := range []uint32{64501, 64502, 64503} {
			prices[i] = rapid.Int64Range(1, 3).Draw(t, "price")
			if rapid.IntRange(0, 5).Draw(t, "unmeasured") == 0 {
				continue
			}
			probes := rapid.SampledFrom([]int64{0, 6, 30, 200}).Draw(t, "probes")
			m := &book.Measured{LatencyUs: rapid.Int64Range(1, 100).Draw(t, "ms") * 1000, LatencyErrUs: rapid.Int64Range(0, 5).Draw(t, "err") * 1000,
				JitterUs: rapid.Int64Range(0, 5).Draw(t, "jitter") * 1000, Probes: probes, Samples: 3}
			if probes > 0 {
				m.LossPPM = int32(rapid.Int64Range(0, probes).Draw(t, "lost") * 1_000_000 / probes)
			}
			q[asn] = m
		}
		got := offersRanked(tt, q, prices, book.ByPerformance, 0)
		fs := make([]*pathscore.Figures, 3)
		for i, asn := range []uint32{64501, 64502, 64503} {
			fs[i] = q[asn].Figures()
		}
		ss := pathscore.Rank(fs)
		want := []uint32{64501, 64502, 64503}
		slices.SortStableFunc(want, func(a, b uint32) int {
			return cmp.Or(ss[a-64501].Compare(ss[b-64501]), cmp.Compare(prices[a-64501], prices[b-64501]))
		})
		if !slices.Equal(got, want) {
			t.Fatalf("book ranked %v, path score %v (scores %v)", got, want, fmt.Sprint(ss))
		}
		first := got[0] - 64501
		for j, f := range fs {
			a := fs[first]
			if a != nil && f != nil && pathscore.Worse(pathscore.Loss, *a, *f) && pathscore.Worse(pathscore.Latency, *a, *f) && pathscore.Worse(pathscore.Jitter, *a, *f) {
				t.Fatalf("first AS%d is worse on every figure than AS%d", got[0], 64501+j)
			}
		}
	})
}
