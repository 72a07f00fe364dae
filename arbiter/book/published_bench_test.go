package book

import (
	"testing"
)

// BenchmarkOpenSellsLocked is the longest the publishing to peer exchanges
// holds the book's lock: one chunk of sells of the benchmark book's
// 100,000; compare with BenchmarkMatchInMemory's one buy in the same run.
func BenchmarkOpenSellsLocked(b *testing.B) {
	e := makeBenchBook().engine(b)
	var ids []int64
	for id, o := range e.open {
		if o.Spec.Side == Sell && len(ids) < sellChunk {
			ids = append(ids, id)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if n := len(e.openSells(ids)); n != sellChunk {
			b.Fatalf("%d sells", n)
		}
	}
}
