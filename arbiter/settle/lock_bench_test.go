package settle_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
)

// BenchmarkWritersDuringRun measures what a settlement run costs the
// arbiter's other writers (the book's commits, usage reports): a writer
// reports one usage sample every millisecond while a month of n trades
// (BWX_SETTLE_BENCH_TRADES, default 20; 8,640 slots, both sides) is
// settled with the quality-matrix breach source, and the writer's worst and
// 99th-percentile commit latency are reported beside the same writer with
// no run ("idle", the baseline).
func BenchmarkWritersDuringRun(b *testing.B) {
	n := benchTrades(20)
	l := newLedger(b, terms)
	ctx := context.Background()
	var buf []settle.Sample
	var ids []int64
	for i := range n {
		buyer, seller := []uint32{asA, asB, asC, asD}[i%4], []uint32{asA, asB, asC, asD}[(i+1)%4]
		id := l.addTrade(b, settle.Trade{BuyerASN: buyer, SellerASN: seller, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000, Start: nov.Start, End: nov.End})
		ids = append(ids, id)
		buf = monthSamples(buf, id)
		for j := range buf {
			buf[j].IdempotencyKey = fmt.Sprint(id, "/", j)
		}
		for j := 0; j < len(buf); j += settle.MaxBatch {
			for _, r := range []struct {
				asn  uint32
				role settle.Role
			}{{buyer, settle.BuyerRole}, {seller, settle.SellerRole}} {
				var part []settle.Sample
				for _, s := range buf[j:min(j+settle.MaxBatch, len(buf))] {
					if s.Role == r.role {
						part = append(part, s)
					}
				}
				if acc, _, err := l.usage.Report(ctx, r.asn, part); err != nil || acc != len(part) {
					b.Fatalf("stored %d of %d samples: %v", acc, len(part), err)
				}
			}
		}
	}
	// writer reports samples of the December part of trade 0 (outside the
	// settled month) until stop closes, and returns each commit's latency.
	writer := func(u *settle.Usage, stop <-chan struct{}, seq *int) []time.Duration {
		var lat []time.Duration
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return lat
			case <-tick.C:
			}
			*seq++
			st := nov.End.Add(time.Duration(*seq) * time.Second)
			t0 := clock.Now()
			if _, _, err := u.Report(ctx, asA, []settle.Sample{{IdempotencyKey: fmt.Sprint("w", *seq), TradeID: ids[0], Role: settle.BuyerRole,
				Start: st, End: st.Add(time.Second), Bps: 1, SampleCount: 1}}); err != nil {
				b.Error(err)
				return lat
			}
			lat = append(lat, clock.Since(t0))
		}
	}
	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		if len(lat) == 0 {
			return
		}
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-write-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-write-ms")
		b.ReportMetric(float64(len(lat))/float64(b.N), "writes/op")
	}
	seq := 0
	b.Run("idle", func(b *testing.B) {
		var lat []time.Duration
		for range b.N {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); lat = append(lat, writer(l.usage, stop, &seq)...) }()
			time.Sleep(time.Second) // the baseline writes for a fixed second
			close(stop)
			wg.Wait()
		}
		report(b, lat)
	})
	b.Run("run", func(b *testing.B) {
		var lat []time.Duration
		for i := range b.N {
			// Each iteration settles its own copy of the database: a
			// settled period cannot be run again.
			b.StopTimer()
			dst := fmt.Sprintf("%s/run%d.db", b.TempDir(), i)
			if _, err := l.db.Exec("VACUUM INTO ?", dst); err != nil {
				b.Fatal(err)
			}
			db, err := store.Open(dst)
			if err != nil {
				b.Fatal(err)
			}
			s, _ := settle.NewSettlement(db, settle.Options{Config: terms, Now: func() time.Time { return nov.End.Add(time.Hour) }, Breaches: settle.NewQualityBreaches(db)})
			u := settle.New(db)
			u.Now = func() time.Time { return nov.End.Add(time.Hour) }
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); lat = append(lat, writer(u, stop, &seq)...) }()
			b.StartTimer()
			res, err := s.Run(ctx, nov, settle.BuyerFigure)
			b.StopTimer()
			close(stop)
			wg.Wait()
			db.Close()
			if err != nil || res.Exchange.Trades != n {
				b.Fatalf("run: %v", err)
			}
			b.StartTimer()
		}
		report(b, lat)
	})
}
