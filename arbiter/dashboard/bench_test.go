package dashboard

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
)

// The benchmark book: 200 sellers with 50 registered routes each (10,000
// destinations, a quarter IPv6); per route five sells by its owner and
// five buys by 100 buyers: 100,000 open orders.
const (
	benchSellers, benchRoutes, benchBuyers, benchPerSide = 200, 50, 100, 5
	benchOrders                                          = benchSellers * benchRoutes * benchPerSide * 2
)

func benchStore(b testing.TB, sellers int) *store.DB {
	b.Helper()
	db, err := store.Open(filepath.Join(b.TempDir(), "bwx.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	now := clock.Now()
	start, end := store.Micros(now.Add(-time.Hour)), store.Micros(now.AddDate(0, 3, 0))
	err = db.Tx(context.Background(), func(tx *sql.Tx) error {
		mem := func(asn uint32, i int) (int64, error) {
			res, err := tx.Exec(`INSERT INTO members (asn, name, created_us) VALUES (?, ?, ?)`, asn, fmt.Sprintf("Net %d", asn), store.Micros(now))
			if err != nil {
				return 0, err
			}
			id, _ := res.LastInsertId()
			if _, err := tx.Exec(`INSERT INTO ports (member_id, name, capacity_bps) VALUES (?, ?, ?)`, id, fmt.Sprintf("swp%d", i), int64(1)<<50); err != nil {
				return 0, err
			}
			_, err = tx.Exec(`INSERT INTO routers (member_id, address) VALUES (?, ?)`, id, netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}).String())
			return id, err
		}
		var buyers []int64
		for i := range benchBuyers {
			id, err := mem(uint32(70000+i), 1000+i)
			if err != nil {
				return err
			}
			buyers = append(buyers, id)
		}
		order, err := tx.Prepare(`INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros,
			traffic_type, start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer order.Close()
		prio := int64(0)
		for s := range sellers {
			id, err := mem(uint32(65000+s), s)
			if err != nil {
				return err
			}
			for k := range benchRoutes {
				n := s*benchRoutes + k
				p, proto := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + n>>16), byte(n >> 8), byte(n), 0}), 24), book.IPv4
				if k%4 == 3 {
					p, proto = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(n >> 8), byte(n)}), 48), book.IPv6
				}
				if _, err := tx.Exec(`INSERT INTO prefixes (member_id, prefix, route_type, origin_asn) VALUES (?, ?, ?, ?)`, id, p.String(), 1+r.IntN(4), 65000+s); err != nil {
					return err
				}
				for range benchPerSide {
					// Sells above 500, buys below: a book that does not cross.
					for _, o := range []struct {
						member int64
						side   book.Side
						price  int64
					}{{id, book.Sell, int64(500 + r.IntN(500))}, {buyers[r.IntN(len(buyers))], book.Buy, int64(1 + r.IntN(499))}} {
						prio++
						if _, err := order.Exec(o.member, int(o.side), p.String(), int(proto), int64(1+r.IntN(100))*1e8, 1e8, o.price,
							int(book.AnyTraffic), start, end, int(book.Limit), prio, int(book.Open), start, start); err != nil {
							return err
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkBookPage renders the book depth page over 100,000 open orders,
// from the engine's memory and from SQL, beside the bare aggregations as
// the baseline. ms/render is the figure to read.
func BenchmarkBookPage(b *testing.B) {
	db := benchStore(b, benchSellers)
	ctx := context.Background()
	bk, err := book.Start(ctx, db, book.Options{ExpireEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	if n := bk.OpenCount(); n != benchOrders {
		b.Fatalf("book holds %d orders, want %d", n, benchOrders)
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/render")
	}
	page := func(withBook bool) func(b *testing.B) {
		return func(b *testing.B) {
			o := Options{DB: db, DepthMaxAge: -1}
			if withBook {
				o.Book = bk
			}
			s, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler(LocalOperator)
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/book", nil))
				if rec.Code != 200 {
					b.Fatalf("GET /book: %d", rec.Code)
				}
			}
			report(b)
		}
	}
	b.Run("page/engine", page(true))
	b.Run("page/sql", page(false))
	b.Run("baseline/sql-aggregation", func(b *testing.B) {
		for b.Loop() {
			rows, err := depthRowsSQL(ctx, db, clock.Now())
			if err != nil || len(rows) != benchSellers*benchRoutes {
				b.Fatalf("%d rows, %v", len(rows), err)
			}
		}
		report(b)
	})
	// The part under the book's lock, in inspectChunk pieces: matching
	// waits for one piece at a time.
	b.Run("baseline/engine-locked", func(b *testing.B) {
		ids, err := openIDs(ctx, db, clock.Now())
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if rows, _ := aggregateEngine(bk, ids, clock.Now()); len(rows) != benchSellers*benchRoutes {
				b.Fatalf("%d rows", len(rows))
			}
		}
		report(b)
	})
	b.Run("page/engine-cached", func(b *testing.B) {
		s, err := New(Options{DB: db, Book: bk})
		if err != nil {
			b.Fatal(err)
		}
		h := s.Handler(LocalOperator)
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/book", nil))
			if rec.Code != 200 {
				b.Fatalf("GET /book: %d", rec.Code)
			}
		}
		report(b)
	})
	b.Run("baseline/engine-aggregation", func(b *testing.B) {
		for b.Loop() {
			if rows, _, err := depthEngine(ctx, db, bk, clock.Now()); err != nil || len(rows) != benchSellers*benchRoutes {
				b.Fatalf("%d rows, %v", len(rows), err)
			}
		}
		report(b)
	})
}

// BenchmarkPages renders every page over the same 100,000-order book; the
// store-only baseline is BenchmarkBookPage/baseline/sql-aggregation.
func BenchmarkPages(b *testing.B) {
	db := benchStore(b, benchSellers)
	bk, err := book.Start(context.Background(), db, book.Options{ExpireEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer bk.Close()
	s, err := New(Options{DB: db, Book: bk, DepthMaxAge: -1})
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		auth Authenticate
	}{{"operator", LocalOperator}, {"member", as(Viewer{ASN: 70001})}} {
		h := s.Handler(v.auth)
		for _, p := range pages {
			b.Run(v.name+p, func(b *testing.B) {
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
					if rec.Code != 200 {
						b.Fatalf("GET %s: %d", p, rec.Code)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/render")
			})
		}
	}
}

// The engine's chunked aggregation and the SQL one agree on a book larger
// than one chunk.
func TestEngineDepthMatchesSQL(t *testing.T) {
	db := benchStore(t, 20) // 10,000 orders
	ctx := context.Background()
	bk, err := book.Start(ctx, db, book.Options{ExpireEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	now := clock.Now()
	er, eo, err := depthEngine(ctx, db, bk, now)
	if err != nil {
		t.Fatal(err)
	}
	sr, so, err := depthSQL(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}
	sortDepth(er)
	sortDepth(sr)
	if len(er) != 20*benchRoutes || !slices.Equal(er, sr) {
		t.Errorf("engine and SQL depth differ: %d and %d rows", len(er), len(sr))
	}
	if !maps.Equal(eo, so) || len(eo) != 20+benchBuyers {
		t.Errorf("open orders per member differ: %d and %d members", len(eo), len(so))
	}
}
