package book_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/invalid"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// storeIn is a store for a rapid run: a file named name in dir on sqlite,
// a fresh database of t's on PostgreSQL.
func storeIn(t *testing.T, dir, name string) store.Config {
	if storetest.Dialect() == store.SQLite {
		return store.Config{Driver: store.SQLite, Path: filepath.Join(dir, name)}
	}
	return storetest.Config(t)
}

// fastDir is a RAM-backed directory when the machine has one: durability
// is not under test here, the invariants are.
func fastDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "bwx-book-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

var (
	propSellers = []uint32{64501, 64502, 64503}
	propBuyers  = []uint32{64510, 64511}
	propDests   = []string{"198.51.100.0/24", "198.51.100.0/25", "198.51.100.128/26", "2001:db8:100::/48", "2001:db8:100:8000::/49"}
	// Measured latency per seller; 64503 has none.
	propLatency = map[uint32]int64{64501: 10_000, 64502: 30_000}
	propWindows = [][2]int{{0, 30}, {0, 10}, {10, 20}, {5, 25}}
)

type propWorld struct {
	t     *rapid.T
	cfg   store.Config
	db    *store.DB
	book  *book.Book
	now   time.Time
	ports map[uint32]int64 // capacity by member
	ticks int              // measurements rounds written
}

func setupWorld(outer *testing.T, t *rapid.T, dir string) *propWorld {
	w := &propWorld{t: t, cfg: storeIn(outer, dir, fmt.Sprintf("p%d.db", clock.Now().UnixNano())), now: t0.Add(-time.Hour), ports: map[uint32]int64{}}
	db, err := store.OpenConfig(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(db)
	ctx := context.Background()
	for i, asn := range append(append([]uint32{}, propSellers...), propBuyers...) {
		capacity := int64(rapid.IntRange(2, 10).Draw(t, fmt.Sprintf("port%d", asn))) * Gbps
		w.ports[asn] = capacity
		m := registry.Member{ASN: asn, Name: "n", Port: registry.Port{Name: "p", CapacityBps: capacity},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", i+1))}}
		if _, err := reg.AddMember(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, asn := range propSellers {
		for _, p := range []string{"198.51.100.0/24", "2001:db8:100::/48"} {
			if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix(p), MemberASN: asn, Type: registry.Customer}); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.db = db
	w.measure()
	w.open()
	return w
}

// measure writes a fresh round of measurements through 64501 and 64502
// toward every destination, so that they stay fresh as the clock moves;
// each counts enough probes (pathscore.MinProbes) to verify a limit.
func (w *propWorld) measure() {
	w.ticks++
	for via, lat := range propLatency {
		for i, d := range propDests {
			p := netip.MustParsePrefix(d)
			_, err := w.db.Exec(`INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target, measured_us,
				latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent)
				VALUES ((SELECT id FROM members WHERE asn = 64510), ?, (SELECT id FROM members WHERE asn = ?), ?, ?, ?, ?, 0, 0, 2, 3, 20)`,
				fmt.Sprintf("k%d-%d-%d", via, i, w.ticks), via, d, p.Addr().Next().String(), store.Micros(w.now.Add(-time.Minute)), lat)
			if err != nil {
				w.t.Fatal(err)
			}
		}
	}
}

func (w *propWorld) open() {
	b, err := book.Start(context.Background(), w.db, book.Options{Now: func() time.Time { return w.now }, ExpireEvery: -1})
	if err != nil {
		w.t.Fatal(err)
	}
	w.book = b
}

func (w *propWorld) close() {
	w.book.Close()
	w.db.Close()
}

// drawSpec draws an order; its start may have passed at now (refused
// unless drawn as "start now").
func drawSpec(t *rapid.T, side book.Side, now time.Time) book.Spec {
	d := netip.MustParsePrefix(rapid.SampledFrom(propDests).Draw(t, "dest"))
	win := rapid.SampledFrom(propWindows).Draw(t, "window")
	block := int64(rapid.SampledFrom([]int{1, 2, 5}).Draw(t, "block")) * Gbps / 10
	s := book.Spec{
		Side: side, Destination: book.Destination{Prefix: d}, Protocol: book.IPv4,
		CapacityBps: block * int64(rapid.IntRange(1, 30).Draw(t, "blocks")), MinBlockBps: block,
		PriceMicros: int64(rapid.IntRange(1, 10).Draw(t, "price")), TrafficType: book.AnyTraffic,
		Start: t0.Add(time.Duration(win[0]) * 24 * time.Hour), End: t0.Add(time.Duration(win[1]) * 24 * time.Hour),
		Type: rapid.SampledFrom([]book.OrderType{book.Limit, book.Limit, book.IOC, book.FOK}).Draw(t, "type"),
	}
	if rapid.Bool().Draw(t, "start now") && s.Start.Before(now) {
		s.Start = now
	}
	if d.Addr().Is6() {
		s.Protocol = book.IPv6
	}
	if side == book.Buy {
		s.Ranking = rapid.SampledFrom([]book.Ranking{book.ByPrice, book.ByPerformance, book.Weighted}).Draw(t, "ranking")
		if s.Ranking == book.Weighted {
			s.PriceWeight = uint32(rapid.IntRange(0, 100).Draw(t, "weight"))
		}
		s.SingleSeller = rapid.Bool().Draw(t, "single")
		if rapid.Bool().Draw(t, "limited") {
			lat := int64(rapid.SampledFrom([]int{5_000, 20_000, 50_000}).Draw(t, "maxlat"))
			s.Quality.MaxLatencyUs = &lat
			s.Quality.AllowUnverified = rapid.Bool().Draw(t, "unverified")
		}
	}
	return s
}

// checkTrades checks what one operation returned against the rules.
func (w *propWorld) checkTrades(incoming book.Order, trades []book.Trade) {
	ctx := context.Background()
	var prev *book.Order
	for _, tr := range trades {
		buy, err := w.book.Get(ctx, book.Operator, tr.BuyOrderID)
		if err != nil {
			w.t.Fatal(err)
		}
		sell, err := w.book.Get(ctx, book.Operator, tr.SellOrderID)
		if err != nil {
			w.t.Fatal(err)
		}
		if block := max(buy.Spec.MinBlockBps, sell.Spec.MinBlockBps); tr.CapacityBps <= 0 || tr.CapacityBps%block != 0 {
			w.t.Fatalf("trade %d: %d bit/s is not whole blocks of %d", tr.ID, tr.CapacityBps, block)
		}
		if tr.PriceMicros > buy.Spec.PriceMicros {
			w.t.Fatalf("trade %d: buyer pays %d above its limit %d", tr.ID, tr.PriceMicros, buy.Spec.PriceMicros)
		}
		if tr.PriceMicros < sell.Spec.PriceMicros {
			w.t.Fatalf("trade %d: seller gets %d below its ask %d", tr.ID, tr.PriceMicros, sell.Spec.PriceMicros)
		}
		var m *book.Measured
		if lat, ok := propLatency[tr.SellerASN]; ok {
			m = &book.Measured{LatencyUs: lat, Samples: 1, Probes: pathscore.MinProbes}
		}
		if !buy.Spec.Quality.Meets(m) {
			w.t.Fatalf("trade %d: seller AS%d breaks the buyer's quality limits", tr.ID, tr.SellerASN)
		}
		if !tr.Start.Equal(later(buy.Spec.Start, w.now)) || !tr.Created.Equal(w.now) {
			w.t.Fatalf("trade %d made at %v starts at %v; want the later of the buy's start %v and the match", tr.ID, tr.Created, tr.Start, buy.Spec.Start)
		}
		if buy.Spec.SingleSeller && tr.CapacityBps != buy.Spec.CapacityBps {
			w.t.Fatalf("trade %d: single-seller buy split (%d of %d)", tr.ID, tr.CapacityBps, buy.Spec.CapacityBps)
		}
		// Among sells of equal price for a price-ranked buy, time priority.
		if incoming.Spec.Side == book.Buy && incoming.Spec.Ranking == book.ByPrice {
			if prev != nil && (sell.Spec.PriceMicros < prev.Spec.PriceMicros ||
				(sell.Spec.PriceMicros == prev.Spec.PriceMicros && sell.Priority < prev.Priority)) {
				w.t.Fatalf("trade %d: sell %d (price %d, priority %d) filled after sell %d (price %d, priority %d)",
					tr.ID, sell.ID, sell.Spec.PriceMicros, sell.Priority, prev.ID, prev.Spec.PriceMicros, prev.Priority)
			}
			prev = &sell
		}
	}
}

// checkBook checks the committed state: no order or port oversold at any
// instant.
func (w *propWorld) checkBook() {
	ctx := context.Background()
	trades, err := w.book.Trades(ctx, book.Operator, false)
	if err != nil {
		w.t.Fatal(err)
	}
	orders, err := w.book.Orders(ctx, book.Operator, false)
	if err != nil {
		w.t.Fatal(err)
	}
	filled := map[int64]int64{}
	type span struct{ s, e, bps int64 }
	load := map[uint32][]span{}
	for _, tr := range trades {
		filled[tr.BuyOrderID] += tr.CapacityBps
		filled[tr.SellOrderID] += tr.CapacityBps
		sp := span{tr.Start.UnixMicro(), tr.End.UnixMicro(), tr.CapacityBps}
		load[tr.BuyerASN] = append(load[tr.BuyerASN], sp)
		load[tr.SellerASN] = append(load[tr.SellerASN], sp)
	}
	for _, o := range orders {
		if filled[o.ID] != o.FilledBps || o.FilledBps > o.Spec.CapacityBps {
			w.t.Fatalf("order %d: filled_bps %d, trades sum %d, capacity %d", o.ID, o.FilledBps, filled[o.ID], o.Spec.CapacityBps)
		}
	}
	for asn, spans := range load {
		var points []int64
		for _, s := range spans {
			points = append(points, s.s)
		}
		for _, at := range points {
			var sum int64
			for _, s := range spans {
				if s.s <= at && at < s.e {
					sum += s.bps
				}
			}
			if sum > w.ports[asn] {
				w.t.Fatalf("AS%d port oversold at %v: %d of %d", asn, time.UnixMicro(at).UTC(), sum, w.ports[asn])
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// place places an order drawn at the world's time and checks the answer:
// refused naming the field when its start has passed beyond the skew
// allowance or its end has, accepted otherwise.
func (w *propWorld) place(t *rapid.T, asn uint32, s book.Spec) {
	o, trades, err := w.book.Place(context.Background(), asn, s, "")
	var want string
	switch {
	case !s.End.After(w.now):
		want = "spec.delivery_end"
	case s.Start.Before(w.now.Add(-book.StartSkew)):
		want = "spec.delivery_start"
	}
	if want != "" {
		var inv *invalid.Error
		if !errors.As(err, &inv) || inv.Field != want {
			t.Fatalf("placing %+v at %v: want a refusal naming %s, got %v", s, w.now, want, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	w.checkTrades(o, trades)
}

// checkUncrossed checks that no resting buy could trade with any resting
// sell now: the book is never left crossed where a trade is possible. Two
// orders could trade when the order terms fit from their effective starts
// (Compatible), the sell's prefix covers the buy's, the buyer's quality
// limits are met, and both ports have a whole block free over the buy's
// period from its effective start (all of the buy's remaining capacity for
// a single-seller buy).
func (w *propWorld) checkUncrossed() {
	type port struct{ id, capacity int64 }
	var open []book.Order
	ports := map[uint32]port{}
	peak := map[[3]int64]int64{}
	w.book.Inspect(func(e *book.Engine) {
		open = e.OpenOrders()
		for asn, m := range e.Members() {
			ports[asn] = port{m.PortID, m.Capacity}
		}
		for _, b := range open {
			if b.Spec.Side != book.Buy {
				continue
			}
			s, end := later(b.Spec.Start, w.now), b.Spec.End
			for _, p := range ports {
				peak[[3]int64{p.id, s.UnixMicro(), end.UnixMicro()}] = e.PortPeak(p.id, s, end)
			}
		}
	})
	free := func(asn uint32, b book.Order) int64 {
		p := ports[asn]
		return p.capacity - peak[[3]int64{p.id, later(b.Spec.Start, w.now).UnixMicro(), b.Spec.End.UnixMicro()}]
	}
	for _, b := range open {
		if b.Spec.Side != book.Buy || !b.Spec.End.After(w.now) {
			continue
		}
		for _, s := range open {
			if s.Spec.Side != book.Sell || s.MemberASN == b.MemberASN || !s.Spec.End.After(w.now) {
				continue
			}
			sp, bp := s.Spec.Destination.Prefix, b.Spec.Destination.Prefix
			if !book.Compatible(b.Spec, s.Spec, w.now) || sp.Bits() > bp.Bits() || !sp.Contains(bp.Addr()) {
				continue
			}
			var m *book.Measured
			if lat, ok := propLatency[s.MemberASN]; ok {
				m = &book.Measured{LatencyUs: lat, Samples: 1, Probes: pathscore.MinProbes}
			}
			if !b.Spec.Quality.Meets(m) {
				continue
			}
			avail := min(b.Remaining(), s.Remaining(), free(b.MemberASN, b), free(s.MemberASN, b))
			bps := book.FillSize(b.Remaining(), avail, b.Spec.MinBlockBps, s.Spec.MinBlockBps)
			if bps == 0 || (b.Spec.SingleSeller && bps != b.Remaining()) {
				continue
			}
			w.t.Fatalf("book crossed at %v: buy %d (AS%d %v %v from %v, price %d, %d left) could trade %d bit/s with sell %d (AS%d %v from %v, price %d, %d left)",
				w.now, b.ID, b.MemberASN, bp, b.Spec.Type, b.Spec.Start, b.Spec.PriceMicros, b.Remaining(), bps,
				s.ID, s.MemberASN, sp, s.Spec.Start, s.Spec.PriceMicros, s.Remaining())
		}
	}
}

// engineState is what a restart must rebuild: the open orders and the port
// loads from now on (what is past is pruned, and not reloaded).
func engineState(b *book.Book, now time.Time) (open []book.Order, peaks []int64) {
	b.Inspect(func(e *book.Engine) {
		open = e.OpenOrders()
		var ports []int64
		for _, m := range e.Members() {
			ports = append(ports, m.PortID)
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		for _, p := range ports {
			for _, win := range propWindows {
				from, to := later(t0.Add(time.Duration(win[0])*24*time.Hour), now), t0.Add(time.Duration(win[1])*24*time.Hour)
				if to.After(from) {
					peaks = append(peaks, e.PortPeak(p, from, to))
				}
			}
		}
	})
	for i := range open {
		// Times round-trip through the store at microsecond precision.
		open[i].Created, open[i].Updated = open[i].Created.Truncate(time.Microsecond), open[i].Updated.Truncate(time.Microsecond)
	}
	return open, peaks
}

func TestBookProperties(t *testing.T) {
	dir := fastDir(t)
	outer := t
	rapid.Check(t, func(t *rapid.T) {
		w := setupWorld(outer, t, dir)
		defer func() { w.close(); os.Remove(w.cfg.Path) }()
		ctx := context.Background()
		t.Repeat(map[string]func(*rapid.T){
			"sell": func(t *rapid.T) {
				w.place(t, rapid.SampledFrom(propSellers).Draw(t, "seller"), drawSpec(t, book.Sell, w.now))
			},
			"buy": func(t *rapid.T) {
				w.place(t, rapid.SampledFrom(propBuyers).Draw(t, "buyer"), drawSpec(t, book.Buy, w.now))
			},
			// Time passes: starts arrive, trades end and free their ports.
			"tick": func(t *rapid.T) {
				w.now = w.now.Add(rapid.SampledFrom([]time.Duration{7 * time.Minute, time.Hour, 24 * time.Hour, 6 * 24 * time.Hour}).Draw(t, "tick"))
				w.measure()
				if err := w.book.Expire(ctx); err != nil {
					t.Fatal(err)
				}
			},
			"modify": func(t *rapid.T) {
				open, _ := w.book.Orders(ctx, book.Operator, true)
				if len(open) == 0 {
					t.Skip("nothing open")
				}
				o := rapid.SampledFrom(open).Draw(t, "order")
				price := int64(rapid.IntRange(1, 10).Draw(t, "newprice"))
				capacity := o.FilledBps + o.Spec.MinBlockBps*int64(rapid.IntRange(1, 10).Draw(t, "newblocks"))
				got, trades, err := w.book.Modify(ctx, o.MemberASN, o.ID, &capacity, &price)
				if err != nil {
					t.Fatal(err)
				}
				w.checkTrades(got, trades)
			},
			"cancel": func(t *rapid.T) {
				open, _ := w.book.Orders(ctx, book.Operator, true)
				if len(open) == 0 {
					t.Skip("nothing open")
				}
				o := rapid.SampledFrom(open).Draw(t, "order")
				if _, err := w.book.Cancel(ctx, o.MemberASN, o.ID); err != nil {
					t.Fatal(err)
				}
			},
			"take": func(t *rapid.T) {
				buyer := rapid.SampledFrom(propBuyers).Draw(t, "buyer")
				s := drawSpec(t, book.Buy, w.now)
				offers, err := w.book.Offers(ctx, buyer, s)
				if err != nil || len(offers) == 0 {
					t.Skip("no offers")
				}
				of := rapid.SampledFrom(offers).Draw(t, "offer")
				s.CapacityBps = of.AvailableBps
				s.MinBlockBps = max(s.MinBlockBps, of.Order.Spec.MinBlockBps)
				if s.CapacityBps%s.MinBlockBps != 0 || s.SingleSeller {
					t.Skip("offer not in whole blocks of the buy")
				}
				o, trades, err := w.book.Take(ctx, buyer, of.Order.ID, s, "")
				if err != nil {
					t.Fatalf("taking a listed offer in full: %v", err)
				}
				if o.Status != book.Filled || len(trades) != 1 || trades[0].SellOrderID != of.Order.ID {
					t.Fatalf("take: %+v %+v", o, trades)
				}
				w.checkTrades(o, trades)
			},
			"": func(t *rapid.T) { w.checkBook(); w.checkUncrossed() },
		})
		// Rebuilding from the store gives the same book.
		open, peaks := engineState(w.book, w.now)
		w.book.Close()
		w.open()
		open2, peaks2 := engineState(w.book, w.now)
		if !reflect.DeepEqual(open, open2) {
			t.Fatalf("open orders differ after a restart:\nlive   %+v\nstored %+v", open, open2)
		}
		if !slices.Equal(peaks, peaks2) {
			t.Fatalf("port loads differ after a restart: %v vs %v", peaks, peaks2)
		}
	})
}
