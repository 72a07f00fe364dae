package book_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
)

// TestCreditLimitNeverPassed: for any sequence of buys (any size, term,
// start, type), sells, modifies and cancels, a limited member's exposure
// as settlement reports it (its trades, its open buys at their worst
// case) is within its limit after every call, accepted or not.
func TestCreditLimitNeverPassed(t *testing.T) {
	dir := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() { // durability is not under test
		if d, err := os.MkdirTemp("/dev/shm", "bwx-credit-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
	}
	const me, s1, s2 = 64510, 64501, 64502
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		ctx := context.Background()
		db, err := store.OpenConfig(storeIn(t, dir, fmt.Sprintf("c%d.db", run)))
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		reg := registry.New(db)
		for i, asn := range []uint32{s1, s2, me} {
			m := registry.Member{ASN: asn, Name: "n", Port: registry.Port{Name: "p", CapacityBps: 100e9},
				Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}}
			if _, err := reg.AddMember(ctx, m, nil); err != nil {
				rt.Fatal(err)
			}
		}
		for _, asn := range []uint32{s1, s2} {
			if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MemberASN: asn, Type: registry.Customer}); err != nil {
				rt.Fatal(err)
			}
		}
		now := time.Date(2026, 11, 17, 6, 30, 0, 0, time.UTC)
		cfg := settle.DefaultConfig()
		cfg.CreditHorizonMonths = rapid.SampledFrom([]int{0, 1, 3, 12}).Draw(rt, "horizon")
		st, err := settle.NewSettlement(db, settle.Options{Config: cfg, Now: func() time.Time { return now }})
		if err != nil {
			rt.Fatal(err)
		}
		// Amounts are drawn from their scales (rapid favours small numbers).
		limit := rapid.SampledFrom([]int64{0, 1, 50e6, 300e6, 3000e6}).Draw(rt, "limitScale") + rapid.Int64Range(0, 1e6).Draw(rt, "limitExtra")
		blocks := func(name string) int64 { return rapid.SampledFrom([]int64{1, 3, 10, 40, 100}).Draw(rt, name) }
		price := func(name string) int64 {
			return rapid.SampledFrom([]int64{0, 1, 7_000, 50_000, 130_000, 300_000}).Draw(rt, name)
		}
		if err := st.SetCreditLimit(ctx, me, limit); err != nil {
			rt.Fatal(err)
		}
		bk, err := book.Start(ctx, db, book.Options{Now: func() time.Time { return now }, ExpireEvery: -1, CreditCheck: st.BookCreditCheck})
		if err != nil {
			rt.Fatal(err)
		}
		defer bk.Close()

		const block = 100_000_000
		dest := book.Destination{Prefix: netip.MustParsePrefix("198.51.100.0/24")}
		var open []int64 // my orders, maybe still open
		accepted := 0
		ops := rapid.IntRange(1, 25).Draw(rt, "ops")
		for i := 0; i < ops; i++ {
			var err error
			var what string
			switch op := rapid.IntRange(0, 5).Draw(rt, "op"); op {
			case 0, 1, 2:
				start := now.AddDate(0, 0, rapid.SampledFrom([]int{0, 0, 3, 45, 400}).Draw(rt, "startDays"))
				s := book.Spec{Side: book.Buy, Destination: dest, Protocol: book.IPv4, MinBlockBps: block,
					CapacityBps: block * blocks("blocks"), PriceMicros: price("price"), TrafficType: book.AnyTraffic, Start: start,
					End:  start.Add(time.Duration(rapid.SampledFrom([]int{1, 20, 31, 200, 365, 3650}).Draw(rt, "days")) * 24 * time.Hour),
					Type: rapid.SampledFrom([]book.OrderType{book.Limit, book.Limit, book.IOC, book.FOK}).Draw(rt, "type"), Ranking: book.ByPrice}
				var o book.Order
				if rapid.Bool().Draw(rt, "take") {
					o, _, err = bk.Take(ctx, me, rapid.Int64Range(1, int64(i)+1).Draw(rt, "offer"), s, "")
				} else {
					o, _, err = bk.Place(ctx, me, s, "")
				}
				what = fmt.Sprintf("buy %+v", s)
				if err == nil {
					open = append(open, o.ID)
				}
			case 3:
				s := book.Spec{Side: book.Sell, Destination: dest, Protocol: book.IPv4, MinBlockBps: block,
					CapacityBps: block * blocks("sellBlocks"), PriceMicros: price("ask"), TrafficType: book.AnyTraffic, Start: now,
					End: now.AddDate(12, 0, 0), Type: book.Limit}
				_, _, err = bk.Place(ctx, rapid.SampledFrom([]uint32{s1, s2}).Draw(rt, "seller"), s, "")
				what = fmt.Sprintf("sell %+v", s)
			case 4:
				if len(open) == 0 {
					continue
				}
				id := rapid.SampledFrom(open).Draw(rt, "modified")
				var capacity, newPrice *int64
				if rapid.Bool().Draw(rt, "newCapacity") {
					c := block * blocks("newBlocks")
					capacity = &c
				}
				if capacity == nil || rapid.Bool().Draw(rt, "repriced") {
					p := price("newPrice")
					newPrice = &p
				}
				_, _, err = bk.Modify(ctx, me, id, capacity, newPrice)
				what = fmt.Sprintf("modify %d to %v %v", id, capacity, newPrice)
			case 5:
				if len(open) == 0 {
					continue
				}
				id := rapid.SampledFrom(open).Draw(rt, "cancelled")
				_, err = bk.Cancel(ctx, me, id)
				what = fmt.Sprintf("cancel %d", id)
			}
			var re *book.RefusedError
			if err == nil {
				accepted++
			} else if errors.As(err, &re) && !errors.Is(err, settle.ErrCreditLimit) {
				rt.Fatalf("%s: refused for another reason: %v", what, err)
			}
			c, cerr := st.Credit(ctx, me)
			if cerr != nil {
				rt.Fatal(cerr)
			}
			if c.ExposureMicros > limit {
				rt.Fatalf("after %s (%v): exposure %d (accrued %d, open buys %d) above the limit %d", what, err, c.ExposureMicros, c.AccruedMicros, c.OrdersMicros, limit)
			}
		}
	})
}

// TestCreditLimitHoldsAgainstConcurrentBuys is the attacker's test with
// settlement's real check and store: a member firing many buys at once
// gets exactly as many as its limit covers, not one more, whether its
// limit was set before it started buying or lowered while it was (its
// standing then cached as unlimited).
func TestCreditLimitHoldsAgainstConcurrentBuys(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const me, seller = 64510, 64501
	reg := registry.New(db)
	for i, asn := range []uint32{seller, me} {
		m := registry.Member{ASN: asn, Name: "n", Port: registry.Port{Name: "p", CapacityBps: 1e15},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}}
		if _, err := reg.AddMember(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MemberASN: seller, Type: registry.Customer}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 17, 6, 30, 0, 0, time.UTC)
	st, err := settle.NewSettlement(db, settle.Options{Config: settle.DefaultConfig(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	bk, err := book.Start(ctx, db, book.Options{Now: func() time.Time { return now }, ExpireEvery: -1, CreditCheck: st.BookCreditCheck})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	const block, price = 100_000_000, 50_000
	dest := book.Destination{Prefix: netip.MustParsePrefix("198.51.100.0/24")}
	if _, _, err := bk.Place(ctx, seller, book.Spec{Side: book.Sell, Destination: dest, Protocol: book.IPv4, MinBlockBps: block,
		CapacityBps: 1000 * block, PriceMicros: price, TrafficType: book.AnyTraffic, Start: now, End: now.AddDate(1, 0, 0), Type: book.Limit}, ""); err != nil {
		t.Fatal(err)
	}
	// Every buy trades all of itself at its own limit price: its worst
	// case is exactly what its trade then counts.
	buy := book.Spec{Side: book.Buy, Destination: dest, Protocol: book.IPv4, MinBlockBps: block, CapacityBps: block, PriceMicros: price,
		TrafficType: book.AnyTraffic, Start: now, End: now.AddDate(0, 0, 20), Type: book.IOC, Ranking: book.ByPrice}
	exposure := func() int64 {
		t.Helper()
		c, err := st.Credit(ctx, me)
		if err != nil {
			t.Fatal(err)
		}
		return c.ExposureMicros
	}
	// Bought without a limit: the check caches "no limit" for me.
	if _, trades, err := bk.Place(ctx, me, buy, ""); err != nil || len(trades) != 1 {
		t.Fatalf("first buy: %v %v", trades, err)
	}
	each := exposure()
	if each <= 0 {
		t.Fatalf("a buy counts %d", each)
	}
	attack := func(what string, want int) {
		t.Helper()
		const n = 48
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, trades, err := bk.Place(ctx, me, buy, "")
				switch {
				case err == nil && len(trades) == 1:
					mu.Lock()
					ok++
					mu.Unlock()
				case !errors.Is(err, settle.ErrCreditLimit):
					t.Errorf("%s: buy %v %v, want traded or refused for credit", what, trades, err)
				}
			}()
		}
		wg.Wait()
		if ok != want {
			t.Fatalf("%s: %d of %d concurrent buys traded, want %d", what, ok, n, want)
		}
	}
	// Lowered while me is cached as unlimited: room for 3 more and a half.
	if err := st.SetCreditLimit(ctx, me, 4*each+each/2); err != nil {
		t.Fatal(err)
	}
	attack("limit set after the first buy", 3)
	if e := exposure(); e != 4*each {
		t.Fatalf("exposure %d, want 4 buys' %d", e, 4*each)
	}
	// Raised, then lowered below what is already bought.
	if err := st.SetCreditLimit(ctx, me, 6*each); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCreditLimit(ctx, me, each); err != nil {
		t.Fatal(err)
	}
	attack("limit lowered below the exposure", 0)
	if err := st.SetCreditLimit(ctx, me, 6*each); err != nil {
		t.Fatal(err)
	}
	attack("limit raised by two buys", 2)
}

// BenchmarkMatchDurableCredit is BenchmarkMatchDurable with settlement's
// credit check (book.Options.CreditCheck) on every buy, as the arbiter runs it
// with the default configuration: no member has a credit limit. Run it
// beside BenchmarkMatchDurable.
func BenchmarkMatchDurableCredit(b *testing.B) { benchCredit(b, false) }

// BenchmarkMatchDurableCreditLimited is BenchmarkMatchDurableCredit with a
// credit limit (one it never reaches) on every buyer: the reads of each
// buyer's exposure are the cost measured.
func BenchmarkMatchDurableCreditLimited(b *testing.B) { benchCredit(b, true) }

func benchCredit(b *testing.B, limited bool) {
	book.BenchDurable(b, func(db *store.DB) book.Options {
		st, err := settle.NewSettlement(db, settle.Options{Config: settle.DefaultConfig(), Now: func() time.Time { return book.BenchStart.Add(-time.Hour) }})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; limited && i < book.BenchBuyers; i++ {
			if err := st.SetCreditLimit(context.Background(), uint32(70000+i), 1e15); err != nil {
				b.Fatal(err)
			}
		}
		return book.Options{CreditCheck: st.BookCreditCheck}
	})
}
