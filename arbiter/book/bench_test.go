package book

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// The benchmark book: 200 sellers with 100 registered routes each (20,000
// destination prefixes, a quarter IPv6, a fifth of them nested inside
// another), five sell orders per route (100,000 resting sells), and 1,000
// buyers. Ports are large enough that capacity never blocks a fill: what is
// measured is the matching.
const (
	benchSellers  = 200
	benchRoutes   = 100
	benchPerRoute = 5
	benchBuyers   = 1000
)

var benchStart = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

type benchBook struct {
	members map[uint32]*MemberInfo
	routes  []registry.Prefix
	sells   []Spec
	sellers []uint32
}

func makeBenchBook() *benchBook {
	r := rand.New(rand.NewPCG(1, 2))
	bb := &benchBook{members: map[uint32]*MemberInfo{}}
	var id int64
	for s := 0; s < benchSellers; s++ {
		asn := uint32(65000 + s)
		id++
		m := &MemberInfo{ASN: asn, ID: id, PortID: id, Capacity: 1 << 60,
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, byte(s >> 8), byte(s)}), netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(s)})}}
		for k := 0; k < benchRoutes; k++ {
			n := s*benchRoutes + k
			var p netip.Prefix
			switch {
			case k%4 == 3: // IPv6
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(n >> 8), byte(n)}), 48)
			case k%5 == 4 && len(m.Routes) > 0 && m.Routes[len(m.Routes)-1].Prefix.Addr().Is4(): // nested in the previous route
				prev := m.Routes[len(m.Routes)-1].Prefix
				p = netip.PrefixFrom(prev.Addr(), prev.Bits()+2)
			default:
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + n>>16), byte(n >> 8), byte(n), 0}), 24)
			}
			rt := registry.Prefix{Prefix: p, MemberASN: asn, Type: registry.RouteType(1 + r.IntN(4)), OriginASN: asn}
			m.Routes = append(m.Routes, rt)
			bb.routes = append(bb.routes, rt)
			for i := 0; i < benchPerRoute; i++ {
				s := Spec{Side: Sell, Destination: Destination{Prefix: p}, Protocol: IPv4, CapacityBps: 1 << 40, MinBlockBps: 1e8,
					PriceMicros: int64(100 + r.IntN(900)), TrafficType: AnyTraffic, Start: benchStart, End: benchStart.AddDate(1, 0, 0), Type: Limit}
				if p.Addr().Is6() {
					s.Protocol = IPv6
				}
				bb.sells = append(bb.sells, s)
				bb.sellers = append(bb.sellers, asn)
			}
		}
		bb.members[asn] = m
	}
	for b := 0; b < benchBuyers; b++ {
		asn := uint32(70000 + b)
		id++
		bb.members[asn] = &MemberInfo{ASN: asn, ID: id, PortID: id, Capacity: 1 << 60, Routers: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, byte(b >> 8), byte(b)})}}
	}
	return bb
}

// buy draws a buy: a random registered route, or a more specific inside
// it, with a limit that about half the time is below every ask.
func (bb *benchBook) buy(r *rand.Rand) (uint32, Spec) {
	rt := bb.routes[r.IntN(len(bb.routes))]
	p := rt.Prefix
	if r.IntN(3) == 0 && p.Bits() < p.Addr().BitLen()-4 {
		p = netip.PrefixFrom(p.Addr(), p.Bits()+4)
	}
	s := Spec{Side: Buy, Destination: Destination{Prefix: p}, Protocol: IPv4, CapacityBps: 1e9, MinBlockBps: 1e8,
		PriceMicros: int64(50 + r.IntN(1000)), TrafficType: AnyTraffic, Start: benchStart.AddDate(0, 1, 0),
		End: benchStart.AddDate(0, 2, 0), Type: IOC, Ranking: ByPrice}
	if p.Addr().Is6() {
		s.Protocol = IPv6
	}
	return uint32(70000 + r.IntN(benchBuyers)), s
}

func (bb *benchBook) engine(b *testing.B) *Engine {
	e := NewEngine()
	e.SetMembers(bb.members)
	now := benchStart.Add(-time.Hour)
	for i, s := range bb.sells {
		if _, _, _, err := e.Place(now, bb.sellers[i], s, "", 0); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkMatchInMemory: buys against the 100,000-sell book, one core, no
// store.
func BenchmarkMatchInMemory(b *testing.B) {
	bb := makeBenchBook()
	e := bb.engine(b)
	now := benchStart.Add(-time.Hour)
	r := rand.New(rand.NewPCG(3, 4))
	var traded int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		asn, s := bb.buy(r)
		_, trades, _, err := e.Place(now, asn, s, "", 0)
		if err != nil {
			b.Fatal(err)
		}
		traded += len(trades)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(traded)/float64(b.N), "trades/order")
}

// seedStore writes the benchmark book's members and sells to a database.
func seedStore(b *testing.B, bb *benchBook) (*store.DB, string) {
	path := filepath.Join(b.TempDir(), "bench.db")
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	asns := make([]uint32, 0, len(bb.members))
	for asn := range bb.members {
		asns = append(asns, asn)
	}
	sort.Slice(asns, func(i, j int) bool { return asns[i] < asns[j] })
	tx, _ := db.Begin()
	for _, asn := range asns {
		m := bb.members[asn]
		tx.Exec("INSERT INTO members (id, asn, name, created_us) VALUES (?, ?, 'm', 0)", m.ID, asn)
		tx.Exec("INSERT INTO ports (id, member_id, name, capacity_bps) VALUES (?, ?, 'p', ?)", m.PortID, m.ID, m.Capacity)
		for _, a := range m.Routers {
			tx.Exec("INSERT INTO routers (member_id, address) VALUES (?, ?)", m.ID, a.String())
		}
		for _, r := range m.Routes {
			tx.Exec("INSERT INTO prefixes (member_id, prefix, route_type, origin_asn) VALUES (?, ?, ?, ?)", m.ID, r.Prefix.String(), r.Type, r.OriginASN)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	e := NewEngine()
	e.SetMembers(bb.members)
	var chs []*Change
	now := benchStart.Add(-time.Hour)
	for i, s := range bb.sells {
		_, _, ch, err := e.Place(now, bb.sellers[i], s, "", 0)
		if err != nil {
			b.Fatal(err)
		}
		chs = append(chs, ch)
	}
	if err := commitChanges(ctx, db, chs); err != nil {
		b.Fatal(err)
	}
	return db, path
}

// benchCallers are the concurrent callers of the durable benchmarks: a
// group commit carries about half of them (the other half is matching the
// next orders while it is written), so they set the batch size.
var benchCallers = []int{128, 512}

// startBenchBook opens the seeded store as a Book.
func startBenchBook(b *testing.B, bb *benchBook) (*Book, *store.DB) {
	db, _ := seedStore(b, bb)
	bk, err := Start(context.Background(), db, Options{Now: func() time.Time { return benchStart.Add(-time.Hour) }, ExpireEvery: -1})
	if err != nil {
		db.Close()
		b.Fatal(err)
	}
	return bk, db
}

// runCallers runs op from callers goroutines until b.N calls are done and
// reports orders/s and the changes each commit carried.
func runCallers(b *testing.B, bk *Book, callers int, op func(r *rand.Rand) error) {
	var seed atomic.Uint64
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 5))
		for pb.Next() {
			if err := op(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	bk.Close() // commits and committed are the commit loop's, read once it stopped
	if bk.commits > 0 {
		b.ReportMetric(float64(bk.committed)/float64(bk.commits), "orders/commit")
	}
}

// BenchmarkMatchDurable: the same buys through the Book: matched, then
// committed to sqlite (WAL, synchronous=FULL) in group commits, each caller
// answered only after its commit.
func BenchmarkMatchDurable(b *testing.B) {
	benchDurable(b, func(*store.DB) Options { return Options{} })
}

// BenchmarkBareInsertDurable is the baseline for BenchmarkMatchDurable:
// the very rows matching writes (the buy orders, the resting orders'
// fills, the trades, the events), computed beforehand by the same buys on
// a copy of the book, written through the same group commit by as many
// callers, with no matching on the way.
func BenchmarkBareInsertDurable(b *testing.B) {
	bb := makeBenchBook()
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			bk, db := startBenchBook(b, bb)
			defer db.Close()
			defer bk.Close()
			e := bb.engine(b) // numbers orders, trades and events as the store's book does
			now := benchStart.Add(-time.Hour)
			r := rand.New(rand.NewPCG(5, 5))
			chs := make([]*Change, b.N)
			for i := range chs {
				asn, s := bb.buy(r)
				_, _, ch, err := e.Place(now, asn, s, "", 0)
				if err != nil {
					b.Fatal(err)
				}
				chs[i] = ch
			}
			var next atomic.Int64
			runCallers(b, bk, callers, func(*rand.Rand) error {
				// Taken under the book's lock, so queued in the order made.
				_, err := bk.apply(func(*Engine) (*Change, error) { return chs[next.Add(1)-1], nil })
				return err
			})
		})
	}
}

// BenchmarkMatchDurableMeasured is BenchmarkMatchDurable with every seller
// route measured (three vantages, one measurement each, half an hour
// before the benchmark's clock): each trade's quality is an average the
// book computes once per path and then answers from memory.
func BenchmarkMatchDurableMeasured(b *testing.B) {
	bb := makeBenchBook()
	benchDurableOf(b, bb, func(db *store.DB) Options {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		at := store.Micros(benchStart.Add(-90 * time.Minute))
		for i, rt := range bb.routes {
			for v := 0; v < 3; v++ {
				if _, err := tx.Exec(`INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target, measured_us,
					latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
					bb.members[uint32(70000+v)].ID, fmt.Sprint(i, "/", v), bb.members[rt.MemberASN].ID, rt.Prefix.String(), rt.Prefix.Addr().Next().String(),
					at, 10_000+i%5000, 500, 0, 2, 8, 5); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		return Options{}
	})
}

// BenchmarkMatchDurableUnmeasured is BenchmarkMatchDurable without the
// quality matrix (NoQuality): no trade looks up its path's quality, as
// before claim 18 was recorded per trade. Beside BenchmarkMatchDurable it
// is the cost of that lookup (two indexed reads under the book's lock).
func BenchmarkMatchDurableUnmeasured(b *testing.B) {
	benchDurable(b, func(*store.DB) Options { return Options{Quality: NoQuality{}} })
}

// benchDurable runs BenchmarkMatchDurable's buys through a Book with the
// options opts makes (clock and expiry are the benchmark's), and reports
// how many of the trades per order carry a measured quality.
func benchDurable(b *testing.B, opts func(*store.DB) Options) {
	benchDurableOf(b, makeBenchBook(), opts)
}

func benchDurableOf(b *testing.B, bb *benchBook, opts func(*store.DB) Options) {
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			db, _ := seedStore(b, bb)
			defer db.Close()
			o := opts(db)
			o.Now, o.ExpireEvery = func() time.Time { return benchStart.Add(-time.Hour) }, -1
			bk, err := Start(context.Background(), db, o)
			if err != nil {
				b.Fatal(err)
			}
			defer bk.Close()
			var measured atomic.Int64
			runCallers(b, bk, callers, func(r *rand.Rand) error {
				asn, s := bb.buy(r)
				_, trades, err := bk.Place(context.Background(), asn, s, "")
				for _, t := range trades {
					if t.Quality != nil {
						measured.Add(1)
					}
				}
				return err
			})
			b.ReportMetric(float64(measured.Load())/float64(b.N), "measured-trades/order")
		})
	}
}

// TestMatchAllocations: a buy that trades once allocates only what it
// hands out, ten objects: the order, the change and its lists (new orders,
// trades, changed orders and which are fills, events), the copies the
// events hold (the order, the trade) and the traded prefix; never the
// matching's own working lists, which are the engine's scratch (the
// benchmark's buys took 17 allocations before).
func TestMatchAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates: counts only hold without it")
	}
	e := NewEngine()
	p := netip.MustParsePrefix("198.51.100.0/24")
	e.SetMembers(map[uint32]*MemberInfo{
		1: {ASN: 1, ID: 1, PortID: 1, Capacity: 1 << 60, Routers: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
			Routes: []registry.Prefix{{Prefix: p, MemberASN: 1, Type: registry.Customer, OriginASN: 1}}},
		2: {ASN: 2, ID: 2, PortID: 2, Capacity: 1 << 60, Routers: []netip.Addr{netip.MustParseAddr("192.0.2.2")}},
	})
	now := benchStart.Add(-time.Hour)
	for i := range 5 {
		if _, _, _, err := e.Place(now, 1, Spec{Side: Sell, Destination: Destination{Prefix: p}, Protocol: IPv4, CapacityBps: 1 << 50, MinBlockBps: 1e8,
			PriceMicros: int64(100 + i), TrafficType: AnyTraffic, Start: benchStart, End: benchStart.AddDate(1, 0, 0), Type: Limit}, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	buy := Spec{Side: Buy, Destination: Destination{Prefix: netip.PrefixFrom(p.Addr(), 28)}, Protocol: IPv4, CapacityBps: 1e9, MinBlockBps: 1e8,
		PriceMicros: 1000, TrafficType: AnyTraffic, Start: benchStart.AddDate(0, 1, 0), End: benchStart.AddDate(0, 2, 0), Type: IOC, Ranking: ByPrice}
	var trades int
	allocs := testing.AllocsPerRun(100, func() {
		_, ts, _, err := e.Place(now, 2, buy, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		trades += len(ts)
	})
	if trades != 101 {
		t.Fatalf("%d trades in 101 buys, want one each", trades)
	}
	if allocs > 10 {
		t.Errorf("a buy that trades once: %v allocations, want at most 10", allocs)
	}
}
