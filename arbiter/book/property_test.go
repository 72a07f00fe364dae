package book_test

import (
	"context"
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
	"github.com/bwxchange/bwx/shared/clock"
)

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
	path  string
	db    *store.DB
	book  *book.Book
	now   time.Time
	ports map[uint32]int64 // capacity by member
}

func setupWorld(t *rapid.T, dir string) *propWorld {
	w := &propWorld{t: t, path: filepath.Join(dir, fmt.Sprintf("p%d.db", clock.Now().UnixNano())), now: t0.Add(-time.Hour), ports: map[uint32]int64{}}
	db, err := store.Open(w.path)
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
	// Measurements through 64501 and 64502 toward every destination.
	for via, lat := range propLatency {
		for i, d := range propDests {
			p := netip.MustParsePrefix(d)
			_, err := db.Exec(`INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target, measured_us,
				latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent)
				VALUES ((SELECT id FROM members WHERE asn = 64510), ?, (SELECT id FROM members WHERE asn = ?), ?, ?, ?, ?, 0, 0, 2, 3, 10)`,
				fmt.Sprintf("k%d-%d", via, i), via, d, p.Addr().Next().String(), store.Micros(w.now.Add(-time.Minute)), lat)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	w.db = db
	w.open()
	return w
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

func drawSpec(t *rapid.T, side book.Side) book.Spec {
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
			m = &book.Measured{LatencyUs: lat, Samples: 1}
		}
		if !buy.Spec.Quality.Meets(m) {
			w.t.Fatalf("trade %d: seller AS%d breaks the buyer's quality limits", tr.ID, tr.SellerASN)
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

func engineState(b *book.Book) (open []book.Order, peaks []int64) {
	b.Inspect(func(e *book.Engine) {
		open = e.OpenOrders()
		var ports []int64
		for _, m := range e.Members() {
			ports = append(ports, m.PortID)
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		for _, p := range ports {
			for _, win := range propWindows {
				peaks = append(peaks, e.PortPeak(p, t0.Add(time.Duration(win[0])*24*time.Hour), t0.Add(time.Duration(win[1])*24*time.Hour)))
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
	rapid.Check(t, func(t *rapid.T) {
		w := setupWorld(t, dir)
		defer func() { w.close(); os.Remove(w.path) }()
		ctx := context.Background()
		t.Repeat(map[string]func(*rapid.T){
			"sell": func(t *rapid.T) {
				o, trades, err := w.book.Place(ctx, rapid.SampledFrom(propSellers).Draw(t, "seller"), drawSpec(t, book.Sell), "")
				if err != nil {
					t.Fatal(err)
				}
				w.checkTrades(o, trades)
			},
			"buy": func(t *rapid.T) {
				o, trades, err := w.book.Place(ctx, rapid.SampledFrom(propBuyers).Draw(t, "buyer"), drawSpec(t, book.Buy), "")
				if err != nil {
					t.Fatal(err)
				}
				w.checkTrades(o, trades)
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
				s := drawSpec(t, book.Buy)
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
			"": func(t *rapid.T) { w.checkBook() },
		})
		// Rebuilding from the store gives the same book.
		open, peaks := engineState(w.book)
		w.book.Close()
		w.open()
		open2, peaks2 := engineState(w.book)
		if !reflect.DeepEqual(open, open2) {
			t.Fatalf("open orders differ after a restart:\nlive   %+v\nstored %+v", open, open2)
		}
		if !slices.Equal(peaks, peaks2) {
			t.Fatalf("port loads differ after a restart: %v vs %v", peaks, peaks2)
		}
	})
}
