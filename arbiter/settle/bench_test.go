package settle_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
)

// benchTrades is the 10,000 trades unless BWX_SETTLE_BENCH_TRADES says.
func benchTrades(def int) int {
	if n, err := strconv.Atoi(os.Getenv("BWX_SETTLE_BENCH_TRADES")); err == nil && n > 0 {
		return n
	}
	return def
}

// monthSamples fills buf with trade id's month: one buyer and one seller
// sample per slot, agreeing within sampling error except every 500th slot.
func monthSamples(buf []settle.Sample, id int64) []settle.Sample {
	buf = buf[:0]
	x := uint64(id)*0x9E3779B97F4A7C15 + 1
	for i := 0; i < 8640; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		bps := int64(200*mbps + x%(1200*mbps))
		st := nov.Start.Add(time.Duration(i) * settle.SlotLength)
		seller := bps - bps/1000
		if i%500 == 0 {
			seller = bps / 2
		}
		buf = append(buf,
			settle.Sample{TradeID: id, Role: settle.BuyerRole, Start: st, End: st.Add(settle.SlotLength), Bps: bps, SampleCount: 5000},
			settle.Sample{TradeID: id, Role: settle.SellerRole, Start: st, End: st.Add(settle.SlotLength), Bps: seller, SampleCount: 5000})
	}
	return buf
}

// peakHeap samples the live heap while f runs and returns the highest value.
func peakHeap(f func()) uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return peak
}

// BenchmarkSettleMonth bills a month of 5-minute samples (8,640 per side)
// for 10,000 trades and builds the invoices; "read" is the baseline that
// only produces and reads the same samples.
//
//	go test -run '^$' -bench SettleMonth -benchtime 1x ./arbiter/settle
func BenchmarkSettleMonth(b *testing.B) {
	n := benchTrades(10_000)
	trade := func(i int) settle.Trade {
		return settle.Trade{ID: int64(i + 1), BuyerASN: uint32(64500 + i%50), SellerASN: uint32(64550 + i%50), CapacityBps: 1000 * mbps,
			PriceMicros: 2_000_000, Start: nov.Start, End: nov.End}
	}
	b.Run("read", func(b *testing.B) {
		var sink int64
		var buf []settle.Sample
		peak := peakHeap(func() {
			for range b.N {
				for i := range n {
					buf = monthSamples(buf, int64(i+1))
					for _, s := range buf {
						sink += s.Bps
					}
				}
			}
		})
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
		b.ReportMetric(float64(n), "trades")
		_ = sink
	})
	b.Run("settle", func(b *testing.B) {
		var buf []settle.Sample
		peak := peakHeap(func() {
			for range b.N {
				biller, err := settle.NewBiller(terms, nov, settle.BuyerFigure)
				if err != nil {
					b.Fatal(err)
				}
				bills := make([]settle.TradeBill, 0, n)
				for i := range n {
					buf = monthSamples(buf, int64(i+1))
					bill, err := biller.Bill(trade(i), buf, nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					bills = append(bills, bill)
				}
				if _, ex := settle.Invoices(nov, bills); ex.Balance != 0 || ex.Trades != n {
					b.Fatalf("exchange %+v", ex)
				}
			}
		})
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
		b.ReportMetric(float64(n), "trades")
	})
}

// BenchmarkRunFromStore is Run over a real sqlite file holding a month of
// samples for 100 trades (BWX_SETTLE_BENCH_TRADES for more); "read" is the
// baseline that only selects the same samples the same way.
//
//	go test -run '^$' -bench RunFromStore -benchtime 3x ./arbiter/settle
func BenchmarkRunFromStore(b *testing.B) {
	n := benchTrades(100)
	l := newLedger(b, terms)
	var buf []settle.Sample
	ctx := context.Background()
	for i := range n {
		buyer, seller := []uint32{asA, asB, asC, asD}[i%4], []uint32{asA, asB, asC, asD}[(i+1)%4]
		id := l.addTrade(b, settle.Trade{BuyerASN: buyer, SellerASN: seller, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000, Start: nov.Start, End: nov.End})
		buf = monthSamples(buf, id)
		for j := 0; j < len(buf); j += 2000 {
			chunk := buf[j:min(j+2000, len(buf))]
			args := make([]any, 0, len(chunk)*9)
			for k, s := range chunk {
				rep := l.ids[buyer]
				if s.Role == settle.SellerRole {
					rep = l.ids[seller]
				}
				args = append(args, rep, fmt.Sprint(id, "/", j+k), id, s.Role, store.Micros(s.Start), store.Micros(s.End), s.Bps, s.SampleCount, 0)
			}
			if _, err := l.db.Exec(store.InsertRows("usage_samples", "reporter_id, idempotency_key, trade_id, role, start_us, end_us, bps, sample_count, id",
				"(?,?,?,?,?,?,?,?,NULLIF(?,0))", len(chunk)), args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := l.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	src := l.db.Path()
	b.Run("read", func(b *testing.B) {
		var rows int
		peak := peakHeap(func() {
			for range b.N {
				r, err := l.db.QueryContext(ctx, "SELECT id FROM trades ORDER BY id")
				if err != nil {
					b.Fatal(err)
				}
				var ids []int64
				for r.Next() {
					var id int64
					r.Scan(&id)
					ids = append(ids, id)
				}
				r.Close()
				for _, id := range ids {
					r, err := l.db.QueryContext(ctx, `SELECT role, start_us, end_us, bps, sample_count FROM usage_samples
						WHERE trade_id = ? AND start_us >= ? AND start_us < ? ORDER BY start_us, id`, id, store.Micros(nov.Start), store.Micros(nov.End))
					if err != nil {
						b.Fatal(err)
					}
					for r.Next() {
						var role, st, en, bps, cnt int64
						r.Scan(&role, &st, &en, &bps, &cnt)
						rows++
					}
					r.Close()
				}
			}
		})
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
		b.ReportMetric(float64(rows)/float64(b.N), "samples")
	})
	b.Run("run", func(b *testing.B) {
		var peak uint64
		for i := range b.N {
			b.StopTimer()
			dst := filepath.Join(b.TempDir(), fmt.Sprint("run", i, ".db"))
			if err := copyFile(src, dst); err != nil {
				b.Fatal(err)
			}
			db, err := store.Open(dst)
			if err != nil {
				b.Fatal(err)
			}
			s, _ := settle.NewSettlement(db, settle.Options{Config: terms, Now: func() time.Time { return nov.End }})
			b.StartTimer()
			peak = max(peak, peakHeap(func() {
				res, err := s.Run(ctx, nov, settle.BuyerFigure)
				if err != nil || res.Exchange.Trades != n {
					b.Fatalf("run: %v", err)
				}
			}))
			b.StopTimer()
			db.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
