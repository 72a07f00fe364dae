package settle

import "slices"

// P95Rank is the 1-based rank of the 95th percentile among n samples:
// ceil(0.95*n), computed in integers. The top n-rank samples (floor(5 % of
// n)) are the free bursts carriers drop; the value at this rank is billed.
func P95Rank(n int) int { return (95*n + 99) / 100 }

// P95 is the 95th percentile of vs: sorted ascending, the value at rank
// ceil(0.95*n). It sorts vs in place; 0 for no samples.
func P95(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[P95Rank(len(vs))-1]
}
