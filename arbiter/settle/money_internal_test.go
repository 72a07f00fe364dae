package settle

import (
	"math/big"
	"testing"
)

func TestDivRoundHalfAwayFromZero(t *testing.T) {
	cases := []struct{ num, den, want int64 }{
		{5, 2, 3}, {-5, 2, -3}, {4, 2, 2}, {7, 3, 2}, {-7, 3, -2}, {8, 3, 3}, {-8, 3, -3},
		{1, 2, 1}, {-1, 2, -1}, {1, 3, 0}, {-1, 3, 0}, {0, 7, 0}, {2_499_999, 1_000_000, 2}, {2_500_000, 1_000_000, 3},
	}
	for _, c := range cases {
		if got := divRound(big.NewInt(c.num), big.NewInt(c.den)); got != c.want {
			t.Errorf("round(%d/%d) = %d, want %d", c.num, c.den, got, c.want)
		}
	}
	// 10 Tbps at 1,000,000.000000 per Mbps for a month overflows int64 in
	// between; the fraction is still exact.
	if got := fraction([]int64{10_000_000_000_000, 100_000_000_000, 2_592_000_000_000}, []int64{1_000_000, 2_592_000_000_000}); got != 1_000_000_000_000_000_000 {
		t.Errorf("large fraction = %d", got)
	}
	if _, ok := fractionOK([]int64{10_000_000_000_000, 1_000_000_000_000}, []int64{1_000_000}); ok {
		t.Error("1e19 fits int64?")
	}
}
