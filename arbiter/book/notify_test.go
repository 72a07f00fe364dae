package book_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/invalid"
)

// measure stores one agent measurement of the path through via toward
// prefix, seen from reporter, a minute before the fixture's clock.
func (f *fixture) measure(t *testing.T, reporter, via uint32, prefix, key string, latUs, jitUs int64, lossPPM int) {
	t.Helper()
	_, err := f.db.Exec(`INSERT INTO measurements (reporter_id, idempotency_key, via_id, prefix, target, measured_us,
		latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent)
		VALUES ((SELECT id FROM members WHERE asn = ?), ?, (SELECT id FROM members WHERE asn = ?), ?, '198.51.100.1', ?, ?, ?, ?, 2, 3, 10)`,
		reporter, key, via, prefix, store.Micros(f.clock().Add(-time.Minute)), latUs, jitUs, lossPPM)
	if err != nil {
		t.Fatal(err)
	}
}

// Claim 18: every trade records the path quality measured at match time,
// also for a buy that neither limits nor ranks by quality, and it survives
// a restart; a path with nothing measured records none.
func TestTradeRecordsQualityAtMatch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 4*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "2001:db8:100::/48", 4*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 10), "")
	if err != nil || len(trades) != 1 {
		t.Fatalf("buy: %v %v", trades, err)
	}
	if trades[0].Quality != nil {
		t.Fatalf("unmeasured path recorded quality %+v", trades[0].Quality)
	}
	f.measure(t, buyer, seller, "198.51.100.0/24", "a", 12_000, 800, 500)
	f.measure(t, buyer, seller, "198.51.100.0/24", "b", 14_000, 1200, 1500)
	f.measure(t, buyer, seller, "2001:db8:100::/48", "c", 30_000, 100, 0)
	_, trades, err = f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 10), "")
	if err != nil || len(trades) != 1 {
		t.Fatalf("buy: %v %v", trades, err)
	}
	// With the sample behind the figures: 2 x 10 probes, and the spread
	// of the two measurements' means.
	want4 := book.Measured{LatencyUs: 13_000, JitterUs: 1000, LossPPM: 1000, ASHops: 2, Samples: 2, Probes: 20, LatencyErrUs: 1000, JitterErrUs: 200}
	if q := trades[0].Quality; q == nil || *q != want4 {
		t.Fatalf("IPv4 trade quality %+v, want %+v", q, want4)
	}
	// Notify (the streams, the route server) hears the trade with it too.
	var told int
	for _, e := range f.seen() {
		if e.Type == book.TradeCreated && e.Trade.ID == trades[0].ID {
			if q := e.Trade.Quality; q == nil || *q != want4 {
				t.Errorf("AS%d's trade event carries quality %+v, want %+v", e.MemberASN, q, want4)
			}
			told++
		}
	}
	if told != 2 {
		t.Errorf("trade %d told %d times, want to buyer and seller", trades[0].ID, told)
	}
	// A quality-limited buy records what matching already asked.
	limited := spec(book.Buy, "198.51.100.0/24", Gbps, 10)
	lim := int64(20_000)
	limited.Quality.MaxLatencyUs = &lim
	if _, trades, err := f.book.Place(ctx, buyer, limited, ""); err != nil || len(trades) != 1 || trades[0].Quality == nil || *trades[0].Quality != want4 {
		t.Fatalf("limited buy: %v %v", trades, err)
	}
	_, trades, err = f.book.Place(ctx, buyer, spec(book.Buy, "2001:db8:100::/48", Gbps, 10), "")
	if err != nil || len(trades) != 1 {
		t.Fatalf("IPv6 buy: %v %v", trades, err)
	}
	// One measurement: its jitter over the square root of its 10 probes.
	want6 := book.Measured{LatencyUs: 30_000, JitterUs: 100, LossPPM: 0, ASHops: 2, Samples: 1, Probes: 10, LatencyErrUs: 31, JitterErrUs: 100}
	if q := trades[0].Quality; q == nil || *q != want6 {
		t.Fatalf("IPv6 trade quality %+v, want %+v", q, want6)
	}
	// What the caller heard is what the store keeps, through a restart.
	f.restart(t)
	stored, err := f.book.Trades(ctx, buyer, false)
	if err != nil || len(stored) != 4 {
		t.Fatalf("trades: %v %v", stored, err)
	}
	if stored[0].Quality != nil || stored[1].Quality == nil || *stored[1].Quality != want4 || stored[2].Quality == nil || *stored[2].Quality != want4 ||
		stored[3].Quality == nil || *stored[3].Quality != want6 {
		t.Errorf("stored qualities %v %v %v %v", stored[0].Quality, stored[1].Quality, stored[2].Quality, stored[3].Quality)
	}
	evs, err := f.book.Events(ctx, seller, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var withQ int
	for _, e := range evs {
		if e.Type == book.TradeCreated && e.Trade.Quality != nil {
			withQ++
		}
	}
	if withQ != 3 {
		t.Errorf("seller's trade events with quality: %d, want 3", withQ)
	}
}

func tradeFixture(t *testing.T) (*fixture, book.Trade) {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 4*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 10), "")
	if err != nil || len(trades) != 1 {
		t.Fatalf("buy: %v %v", trades, err)
	}
	return f, trades[0]
}

// Settlement's notifications go through the group commit to the members'
// logs and to Notify; a use event sent again (same trade, kind, start) is
// appended once, also after a restart; credit events carry no trade.
func TestAppendEventsReachLogsOnce(t *testing.T) {
	f, tr := tradeFixture(t)
	ctx := context.Background()
	start := t0.Add(2 * time.Hour)
	use := &book.UseNotice{Start: start, End: start.Add(time.Hour), CapacityBps: Gbps, PeakBps: 3 * Gbps / 2, MinBps: Gbps * 11 / 10}
	over := []book.Event{
		{MemberASN: buyer, Type: book.UseOver, Trade: &book.Trade{ID: tr.ID}, Use: use},
		{MemberASN: seller, Type: book.UseOver, Trade: &book.Trade{ID: tr.ID}, Use: use},
	}
	before := len(f.seen())
	got, err := f.book.AppendEvents(ctx, over)
	if err != nil || len(got) != 2 || got[0].Seq == 0 || got[1].Seq <= got[0].Seq {
		t.Fatalf("append: %+v %v", got, err)
	}
	if n := len(f.seen()) - before; n != 2 {
		t.Errorf("Notify heard %d events, want 2", n)
	}
	credit := book.Event{MemberASN: buyer, Type: book.CreditWarning,
		Credit: &book.CreditNotice{LimitMicros: 100e6, UnpaidMicros: 50e6, AccruedMicros: 35e6, ExposureMicros: 85e6}}
	if _, err := f.book.AppendEvents(ctx, []book.Event{credit}); err != nil {
		t.Fatal(err)
	}
	// Again, also after a restart: nothing new.
	if got, err := f.book.AppendEvents(ctx, over); err != nil || len(got) != 0 {
		t.Fatalf("repeat appended %+v %v", got, err)
	}
	f.restart(t)
	if got, err := f.book.AppendEvents(ctx, over[:1]); err != nil || len(got) != 0 {
		t.Fatalf("repeat after restart appended %+v %v", got, err)
	}
	evs, err := f.book.Events(ctx, buyer, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var uses, credits int
	var last int64
	for _, e := range evs {
		switch e.Type {
		case book.UseOver:
			uses++
			if e.Trade == nil || e.Trade.ID != tr.ID || e.Trade.BuyerASN != buyer || e.Use == nil || !e.Use.Start.Equal(start) ||
				!e.Use.End.Equal(start.Add(time.Hour)) || e.Use.PeakBps != 3*Gbps/2 || e.Use.MinBps != Gbps*11/10 || e.Use.CapacityBps != Gbps {
				t.Errorf("use event read back as %+v trade %+v", e.Use, e.Trade)
			}
		case book.CreditWarning:
			credits++
			if e.Trade != nil || e.Order != nil || e.Credit == nil || *e.Credit != *credit.Credit {
				t.Errorf("credit event read back as %+v", e)
			}
		}
		last = e.Seq
	}
	if uses != 1 || credits != 1 {
		t.Errorf("buyer's log has %d use and %d credit events, want 1 and 1", uses, credits)
	}
	// A different run of the same trade is news, and numbering goes on
	// after the restart.
	under := book.Event{MemberASN: buyer, Type: book.UseUnder, Trade: &book.Trade{ID: tr.ID},
		Use: &book.UseNotice{Start: start.Add(5 * time.Hour), End: start.Add(7 * time.Hour), CapacityBps: Gbps}}
	got, err = f.book.AppendEvents(ctx, []book.Event{under})
	if err != nil || len(got) != 1 || got[0].Seq <= last {
		t.Fatalf("new run: %+v %v (last seq %d)", got, err, last)
	}
	if evs, err := f.book.Events(ctx, seller, 0, 100); err != nil || evs[len(evs)-1].Type != book.UseOver {
		t.Errorf("seller's log does not end with its use event: %v", err)
	}
	if evs, err := f.book.Events(ctx, seller2, 0, 100); err != nil || len(evs) != 0 {
		t.Errorf("a member not party to the trade sees %d events (%v)", len(evs), err)
	}
	if typ, err := f.book.LastEventType(ctx, buyer, book.CreditWarning, book.CreditStopped); err != nil || typ != book.CreditWarning {
		t.Errorf("last credit event %v %v", typ, err)
	}
	if typ, err := f.book.LastEventType(ctx, seller, book.CreditWarning, book.CreditStopped); err != nil || typ != 0 {
		t.Errorf("seller's last credit event %v %v, want none", typ, err)
	}
}

func TestAppendEventsRefusesBadInput(t *testing.T) {
	f, tr := tradeFixture(t)
	ctx := context.Background()
	use := &book.UseNotice{Start: t0, End: t0.Add(time.Hour), CapacityBps: Gbps}
	credit := &book.CreditNotice{LimitMicros: 1}
	for _, c := range []struct {
		name  string
		ev    book.Event
		field string
	}{
		{"not a settlement type", book.Event{MemberASN: buyer, Type: book.TradeCreated, Trade: &book.Trade{ID: tr.ID}, Use: use}, "events[0].type"},
		{"use without trade", book.Event{MemberASN: buyer, Type: book.UseOver, Use: use}, "events[0]"},
		{"use without figures", book.Event{MemberASN: buyer, Type: book.UseUnder, Trade: &book.Trade{ID: tr.ID}}, "events[0]"},
		{"use ending before it starts", book.Event{MemberASN: buyer, Type: book.UseOver, Trade: &book.Trade{ID: tr.ID},
			Use: &book.UseNotice{Start: t0, End: t0}}, "events[0].use"},
		{"credit about a trade", book.Event{MemberASN: buyer, Type: book.CreditStopped, Trade: &book.Trade{ID: tr.ID}, Credit: credit}, "events[0]"},
		{"credit without figures", book.Event{MemberASN: buyer, Type: book.CreditWarning}, "events[0]"},
		{"trade of other members", book.Event{MemberASN: seller2, Type: book.UseOver, Trade: &book.Trade{ID: tr.ID}, Use: use}, "events[0].trade"},
		{"unknown trade", book.Event{MemberASN: buyer, Type: book.UseOver, Trade: &book.Trade{ID: 999}, Use: use}, "events[0].trade"},
	} {
		_, err := f.book.AppendEvents(ctx, []book.Event{c.ev})
		var ie *invalid.Error
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%s: %v, want an invalid.Error on %s", c.name, err, c.field)
		}
	}
	if _, err := f.book.AppendEvents(ctx, []book.Event{{MemberASN: 65000, Type: book.CreditWarning, Credit: credit}}); err == nil {
		t.Error("an unknown member's event was appended")
	}
	// Nothing bad was stored, and the book still works.
	if evs, err := f.book.Events(ctx, buyer, 0, 100); err != nil || evs[len(evs)-1].Type == book.UseOver {
		t.Errorf("after refusals: %v", err)
	}
	if _, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 10), ""); err != nil || len(trades) != 1 {
		t.Errorf("book after refusals: %v %v", trades, err)
	}
}

// errCredit stands for settlement's refusal.
var errCredit = errors.New("credit limit reached")

// The credit check runs inside the book's serialized section and sees the
// buyer's trades still on their way to the store: of many concurrent buys
// by a member allowed one trade, exactly one trades.
func TestCreditCheckIsAtomicWithMatching(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	checks := map[uint32]int{}
	f.creditCheck = func(ctx context.Context, asn uint32, pending []book.Trade) (book.BuyCheck, error) {
		mu.Lock()
		checks[asn]++
		mu.Unlock()
		var stored int
		if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM trades t JOIN members m ON m.id = t.buyer_id WHERE m.asn = ?`, asn).Scan(&stored); err != nil {
			return nil, err
		}
		for _, p := range pending {
			if p.BuyerASN != asn {
				return nil, fmt.Errorf("pending trade %d is AS%d's, asked for AS%d", p.ID, p.BuyerASN, asn)
			}
		}
		if stored+len(pending) >= 1 {
			return nil, fmt.Errorf("AS%d: %w", asn, errCredit)
		}
		return nil, nil
	}
	f.restart(t)
	ctx := context.Background()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 9*Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	traded := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps/2, 10), "")
			errs[i], traded[i] = err, len(trades)
		}()
	}
	wg.Wait()
	var ok, refused int
	for i, err := range errs {
		var re *book.RefusedError
		switch {
		case err == nil && traded[i] == 1:
			ok++
		case errors.As(err, &re) && errors.Is(err, errCredit) && re.ASN == buyer:
			refused++
		default:
			t.Errorf("buy %d: %v (%d trades)", i, err, traded[i])
		}
	}
	if ok != 1 || refused != n-1 {
		t.Fatalf("%d buys traded and %d were refused, want 1 and %d", ok, refused, n-1)
	}
	// Sells are never checked; Take is; a Modify that may spend more is,
	// one that lowers is not.
	mu.Lock()
	checks[seller] = 0
	mu.Unlock()
	if _, _, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", Gbps, 1), ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.book.Take(ctx, buyer, 1, spec(book.Buy, "198.51.100.0/24", Gbps/2, 10), ""); !errors.Is(err, errCredit) {
		t.Errorf("take: %v, want the credit refusal", err)
	}
	mu.Lock()
	if checks[seller] != 0 {
		t.Errorf("a sell was credit-checked")
	}
	mu.Unlock()
	// A resting buy placed before the limit was reached (seller2 has no
	// sell matching an IPv6 buy, so it rests).
	f.creditCheck = nil
	f.restart(t)
	resting, _, err := f.book.Place(ctx, buyer, spec(book.Buy, "2001:db8:100::/48", Gbps, 10), "")
	if err != nil || resting.Status != book.Open {
		t.Fatalf("resting buy: %+v %v", resting, err)
	}
	f.creditCheck = func(context.Context, uint32, []book.Trade) (book.BuyCheck, error) { return nil, errCredit }
	f.restart(t)
	lower, higher := int64(5), int64(20)
	if o, _, err := f.book.Modify(ctx, buyer, resting.ID, nil, &lower); err != nil || o.Spec.PriceMicros != 5 {
		t.Errorf("lowering the price: %+v %v", o, err)
	}
	if _, _, err := f.book.Modify(ctx, buyer, resting.ID, nil, &higher); !errors.Is(err, errCredit) {
		t.Errorf("raising the price: %v, want the credit refusal", err)
	}
	more := int64(2 * Gbps)
	if _, _, err := f.book.Modify(ctx, buyer, resting.ID, &more, nil); !errors.Is(err, errCredit) {
		t.Errorf("raising the capacity: %v, want the credit refusal", err)
	}
	if o, err := f.book.Get(ctx, buyer, resting.ID); err != nil || o.Spec.PriceMicros != 5 || o.Spec.CapacityBps != Gbps {
		t.Errorf("a refused modify changed the order: %+v %v", o, err)
	}
	// A refused buy uses no order id: the next accepted one is numbered on.
	f.creditCheck = nil
	f.restart(t)
	o, _, err := f.book.Place(ctx, buyer, spec(book.Buy, "2001:db8:100::/48", Gbps, 10), "")
	if err != nil || o.ID != resting.ID+1 {
		t.Errorf("next order %d (%v), want %d", o.ID, err, resting.ID+1)
	}
}

// Migration 8 rebuilds the events table: every event and its seq stay, an
// event may now be about neither a trade nor an order, never both.
func TestMigrationKeepsEvents(t *testing.T) {
	cfg := storetest.EmptyConfig(t)
	db, err := store.OpenConfigVersion(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO members (id, asn, name, created_us) VALUES (1, 64501, 'a', 0), (2, 64510, 'b', 0)",
		`INSERT INTO orders (id, member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros, traffic_type,
			start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES
			(1, 1, 2, '198.51.100.0/24', 4, 10, 10, 1, 0, 0, 10, 1, 1, 1, 0, 0),
			(2, 2, 1, '198.51.100.0/24', 4, 10, 10, 1, 0, 0, 10, 1, 2, 3, 0, 0)`,
		`INSERT INTO trades (id, buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
			start_us, end_us, created_us) VALUES (1, 2, 1, 2, 1, '198.51.100.0/24', 4, 10, 1, 0, 10, 0)`,
		"INSERT INTO events (seq, member_id, type, order_id, created_us) VALUES (3, 1, 5, 1, 7)",
		"INSERT INTO events (seq, member_id, type, trade_id, created_us) VALUES (9, 2, 1, 1, 8)",
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if db, err = store.OpenConfig(cfg); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT seq, member_id, type, coalesce(trade_id, 0), coalesce(order_id, 0), created_us FROM events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	var got [][6]int64
	for rows.Next() {
		var r [6]int64
		if err := rows.Scan(&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	rows.Close()
	if want := [][6]int64{{3, 1, 5, 0, 1, 7}, {9, 2, 1, 1, 0, 8}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events after migration %v, want %v", got, want)
	}
	var lat any
	if err := db.QueryRow("SELECT latency_us FROM trades WHERE id = 1").Scan(&lat); err != nil || lat != nil {
		t.Errorf("an old trade's quality: %v %v, want NULL (unmeasured)", lat, err)
	}
	if _, err := db.Exec("INSERT INTO events (seq, member_id, type, created_us, detail) VALUES (10, 2, 12, 9, '{}')"); err != nil {
		t.Errorf("an event about neither trade nor order: %v", err)
	}
	if _, err := db.Exec("INSERT INTO events (seq, member_id, type, trade_id, order_id, created_us) VALUES (11, 2, 1, 1, 2, 9)"); err == nil {
		t.Error("an event about both a trade and an order was stored")
	}
	if _, err := db.Exec("INSERT INTO events (seq, member_id, type, trade_id, created_us, dedup) VALUES (12, 2, 10, 1, 9, 'k'), (13, 2, 10, 1, 9, 'k')"); err == nil {
		t.Error("a duplicate notification was stored")
	}
}

// A buy resting from before its member reached the credit limit is not
// filled by a sell arriving after: the incoming sell asks about the buyer.
func TestRestingBuyCheckedWhenASellArrives(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	stopped := false
	f.creditCheck = func(ctx context.Context, asn uint32, pending []book.Trade) (book.BuyCheck, error) {
		mu.Lock()
		defer mu.Unlock()
		if stopped && asn == buyer {
			return nil, fmt.Errorf("AS%d: %w", asn, errCredit)
		}
		return nil, nil
	}
	f.restart(t)
	ctx := context.Background()
	if _, trades, err := f.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 10), ""); err != nil || len(trades) != 0 {
		t.Fatalf("resting buy: %v %v", trades, err)
	}
	mu.Lock()
	stopped = true
	mu.Unlock()
	if _, trades, err := f.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", Gbps, 1), ""); err != nil || len(trades) != 0 {
		t.Fatalf("a sell filled a buy over its member's credit limit: %v %v", trades, err)
	}
	mu.Lock()
	stopped = false
	mu.Unlock()
	if _, trades, err := f.book.Place(ctx, seller2, spec(book.Sell, "198.51.100.0/24", Gbps, 1), ""); err != nil || len(trades) != 1 {
		t.Fatalf("after a payment the resting buy trades again: %v %v", trades, err)
	}
}

// A member's log read back across the index's blocks of sequence numbers
// (4096 each): whole, in pages, and from the middle, with another member's
// events between its own.
func TestEventsAcrossBlocks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	credit := &book.CreditNotice{LimitMicros: 100e6, ExposureMicros: 85e6}
	var evs []book.Event
	for i := 0; i < 9000; i++ {
		asn := uint32(seller)
		if i%700 == 0 { // the buyer's events: in three blocks, one on a block's first seq
			asn = buyer
		}
		evs = append(evs, book.Event{MemberASN: asn, Type: book.CreditWarning, Credit: credit})
	}
	got, err := f.book.AppendEvents(ctx, evs)
	if err != nil || len(got) != len(evs) {
		t.Fatalf("append: %d events, %v", len(got), err)
	}
	var want []int64
	for _, e := range got {
		if e.MemberASN == buyer {
			want = append(want, e.Seq)
		}
	}
	read := func(after int64, limit int) []int64 {
		t.Helper()
		es, err := f.book.Events(ctx, buyer, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range es {
			if e.MemberASN != buyer || e.Type != book.CreditWarning || e.Credit == nil || *e.Credit != *credit {
				t.Fatalf("event %d read back as %+v", e.Seq, e)
			}
			seqs = append(seqs, e.Seq)
		}
		return seqs
	}
	if all := read(0, 1000); fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("whole log %v, want %v", all, want)
	}
	var paged []int64
	for after := int64(0); ; {
		page := read(after, 4)
		if len(page) == 0 {
			break
		}
		if len(page) > 4 {
			t.Fatalf("page of %d events, limit 4", len(page))
		}
		paged, after = append(paged, page...), page[len(page)-1]
	}
	if fmt.Sprint(paged) != fmt.Sprint(want) {
		t.Fatalf("paged log %v, want %v", paged, want)
	}
	if mid := read(want[5], 1000); fmt.Sprint(mid) != fmt.Sprint(want[6:]) {
		t.Fatalf("log after %d: %v, want %v", want[5], mid, want[6:])
	}
	if none := read(want[len(want)-1], 1000); len(none) != 0 {
		t.Fatalf("log after the last event: %v", none)
	}
}
