package settle_test

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/arbiter/settle"
)

// The charge credit counts is never more for a whole than for its parts
// at or below its price: a buy's worst case covers every way it can fill.
// It never overflows.
func TestCommittedCoversItsParts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rapid.Int64Range(0, 400*24*3600).Draw(t, "from")) * time.Second)
		to := from.Add(time.Duration(rapid.Int64Range(1, 4000*24*3600).Draw(t, "length")) * time.Second)
		price := rapid.Int64Range(0, 5_000_000).Draw(t, "price")
		var whole int64
		var parts int64
		for i, n := 0, rapid.IntRange(1, 6).Draw(t, "parts"); i < n; i++ {
			c := rapid.Int64Range(1, 10_000).Draw(t, "mbps") * 1_000_000
			whole += c
			parts += settle.Committed(c, rapid.Int64Range(0, price).Draw(t, "partPrice"), from.UnixMicro(), to.UnixMicro())
		}
		if w := settle.Committed(whole, price, from.UnixMicro(), to.UnixMicro()); parts > w {
			t.Fatalf("parts %d above the whole %d", parts, w)
		}
	})
	if got := settle.Committed(math.MaxInt64, math.MaxInt64, 0, 1e15); got != math.MaxInt64 {
		t.Errorf("overflowing charge %d, want the largest amount", got)
	}
	if got := settle.Committed(1e12, 9e12, 0, 1e16); got != math.MaxInt64 {
		t.Errorf("a long term of a huge monthly charge %d, want the largest amount", got)
	}
}
