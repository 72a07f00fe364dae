package federation

import (
	"fmt"
	"net/netip"
	"testing"
)

// viewOf is a view holding n offers of one peer, spread over n/4 /24s
// (four sellers per destination).
func viewOf(b *testing.B, n int) *View {
	v := testView(n)
	var offers []Offer
	for i := range n {
		d := i / 4
		offers = append(offers, offer(int64(i+1), fmt.Sprintf("10.%d.%d.0/24", d>>8&255, d&255)))
	}
	for i := 0; i < len(offers); i += MaxItemsPerUpdate {
		if err := v.Apply("ix-a", Update{Kind: SnapshotPart, Epoch: "e", Offers: offers[i:min(i+MaxItemsPerUpdate, len(offers))]}); err != nil {
			b.Fatal(err)
		}
	}
	if err := v.Apply("ix-a", Update{Kind: SnapshotEnd, Epoch: "e"}); err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkViewToward is the lookup matching will make per buy: compare
// the sizes in one run (the machine is shared).
func BenchmarkViewToward(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v := viewOf(b, n)
			dest := netip.MustParsePrefix("10.0.7.0/24")
			b.ResetTimer()
			for b.Loop() {
				if len(v.Toward(dest, t0)) != 4 {
					b.Fatal("want 4 offers")
				}
			}
		})
	}
}

// BenchmarkViewSnapshot is taking a peer's whole book of 100,000 offers.
func BenchmarkViewSnapshot(b *testing.B) {
	for b.Loop() {
		viewOf(b, 100_000)
	}
}
