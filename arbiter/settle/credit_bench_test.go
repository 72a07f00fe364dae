package settle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
)

// creditBench is a ledger where C, under a limit it has not reached, has
// made n buy trades this month (and A as many, without a limit), and a
// settled October and a payment are in its ledger.
func creditBench(b *testing.B, n int) *ledger {
	l := newLedger(b, terms)
	ctx := context.Background()
	l.now = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	tx, err := l.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2*n; i++ {
		buyer := []uint32{asC, asA}[i%2]
		start := nov.Start.Add(time.Duration(i) * time.Minute)
		var o int64
		if err := tx.QueryRow(`INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros, traffic_type,
			start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES (?,1,'198.51.100.0/24',1,?,?,1000000,0,?,?,1,0,3,0,0) RETURNING id`,
			l.ids[buyer], mbps, mbps, store.Micros(start), store.Micros(nov.End)).Scan(&o); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO trades (buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
			start_us, end_us, created_us) VALUES (?,?,?,?,'198.51.100.0/24',1,?,1000000,?,?,0)`, o, o, l.ids[buyer], l.ids[asB],
			mbps, store.Micros(start), store.Micros(nov.End)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := l.s.RecordPayment(ctx, asC, 1_000_000, "wire"); err != nil {
		b.Fatal(err)
	}
	if err := l.s.SetCreditLimit(ctx, asC, 1_000_000_000_000); err != nil {
		b.Fatal(err)
	}
	return l
}

// pendingBuy is one trade queued in the book, as the book passes it.
var pendingBuy = []settle.Commitment{{CapacityBps: 10 * mbps, PriceMicros: 2_000_000,
	Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)}}

// BenchmarkCheckCreditLimited is the book's credit check (CheckCreditWith) of a
// member under a limit with 5,000 buy trades this month, answered from the
// cache: nothing changed since its last check, so the reads are index
// seeks that find no new row. Run it beside BenchmarkCheckCreditFromScratch.
func BenchmarkCheckCreditLimited(b *testing.B) {
	l := creditBench(b, 5000)
	ctx := context.Background()
	if err := l.s.CheckCreditWith(ctx, asC, pendingBuy); err != nil { // fills the cache
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := l.s.CheckCreditWith(ctx, asC, pendingBuy); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckCreditFromScratch answers BenchmarkCheckCreditLimited's question by
// the full computation (Credit, as every check did before the cache): the
// member's whole ledger and every buy trade since the last settled period.
func BenchmarkCheckCreditFromScratch(b *testing.B) {
	l := creditBench(b, 5000)
	ctx := context.Background()
	for b.Loop() {
		c, err := settle.CreditFromScratch(l.s, ctx, asC, pendingBuy)
		if err != nil {
			b.Fatal(err)
		}
		if c.State == settle.CreditStopped {
			b.Fatal(errors.New("stopped"))
		}
	}
}

// BenchmarkCheckCreditUnlimited is the check of a member no limit applies to
// (the order book benchmarks' buyers): the member and its limit, nothing
// more.
func BenchmarkCheckCreditUnlimited(b *testing.B) {
	l := creditBench(b, 5000)
	ctx := context.Background()
	for b.Loop() {
		if err := l.s.CheckCreditWith(ctx, asA, pendingBuy); err != nil {
			b.Fatal(err)
		}
	}
}
