package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/delivery"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
)

func TestUseWatcherTellsEachEventOnce(t *testing.T) {
	var logs bytes.Buffer
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	start := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	ev := settle.TradeUse{UseEvent: settle.UseEvent{TradeID: 7, Kind: settle.Overuse, Start: start, End: start.Add(time.Hour), CapacityBps: 1e9, PeakBps: 2e9},
		BuyerASN: 64510, SellerASN: 64501}
	var asked [2]time.Time
	var fail error
	w := &useWatcher{log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }, seen: map[useKey]bool{},
		events: func(_ context.Context, from, to time.Time) ([]settle.TradeUse, error) {
			asked = [2]time.Time{from, to}
			return []settle.TradeUse{ev}, fail
		}}
	got, err := w.check(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("first check: %v %v, want the event", got, err)
	}
	if !asked[0].Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !asked[1].Equal(now) {
		t.Errorf("asked for %v, want the month so far", asked)
	}
	if l := logs.String(); strings.Count(l, "trade use outside its capacity") != 2 || !strings.Contains(l, "member=64510") || !strings.Contains(l, "member=64501") {
		t.Errorf("want one line per member:\n%s", l)
	}
	// The same run seen again, longer, is not news.
	ev.End = ev.End.Add(time.Hour)
	if got, _ := w.check(context.Background()); len(got) != 0 {
		t.Errorf("second check repeated %v", got)
	}
	// A new run of the same trade is.
	ev.Start, ev.Kind = ev.Start.Add(5*time.Hour), settle.Underuse
	if got, _ := w.check(context.Background()); len(got) != 1 {
		t.Errorf("new run not told: %v", got)
	}
	fail = errors.New("database is locked")
	if _, err := w.check(context.Background()); err == nil {
		t.Error("an error was swallowed")
	}
}

// A use event whose notification failed is not marked told: the next
// check hands it to notify again.
func TestUseWatcherRetriesFailedNotifications(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ev := settle.TradeUse{UseEvent: settle.UseEvent{TradeID: 7, Kind: settle.Underuse, Start: now.Add(-3 * time.Hour), End: now, CapacityBps: 1e9},
		BuyerASN: 64510, SellerASN: 64501}
	var told []settle.TradeUse
	fail := errors.New("database is locked")
	w := &useWatcher{log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), now: func() time.Time { return now }, seen: map[useKey]bool{},
		events: func(context.Context, time.Time, time.Time) ([]settle.TradeUse, error) {
			return []settle.TradeUse{ev}, nil
		},
		notify: func(_ context.Context, us []settle.TradeUse) error {
			if fail != nil {
				return fail
			}
			told = append(told, us...)
			return nil
		}}
	if _, err := w.check(context.Background()); !errors.Is(err, fail) {
		t.Fatalf("failed notification: %v", err)
	}
	fail = nil
	if got, err := w.check(context.Background()); err != nil || len(got) != 1 || len(told) != 1 || told[0].TradeID != 7 {
		t.Fatalf("retry: %v %v, told %v", got, err, told)
	}
	if got, _ := w.check(context.Background()); len(got) != 0 || len(told) != 1 {
		t.Errorf("told again: %v", told)
	}
}

// Billing follows delivery through the wiring: the route server's changes
// go to the delivery record (onDelivery), settlement reads its gaps
// (deliveryGaps), and the invoice drops by exactly the time the seller's
// session was down; the hour the buyer's own session was down is charged.
func TestBillingFollowsTheDeliveryRecord(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "bwx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	nov := settle.Month(2026, time.November)
	reg := registry.New(db)
	var ids [2]int64
	for i, asn := range []uint32{64501, 64510} {
		m, err := reg.AddMember(ctx, registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 1e10},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.ID
	}
	var orders [2]int64
	for i, id := range ids {
		res, err := db.Exec(`INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros, traffic_type,
			start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES (?,?,'198.51.100.0/24',1,1000000000,1000000,2000000,0,?,?,1,0,3,0,0)`,
			id, 2-i, store.Micros(nov.Start), store.Micros(nov.End))
		if err != nil {
			t.Fatal(err)
		}
		orders[i], _ = res.LastInsertId()
	}
	res, err := db.Exec(`INSERT INTO trades (buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
		start_us, end_us, created_us) VALUES (?,?,?,?,'198.51.100.0/24',1,1000000000,2000000,?,?,0)`, orders[1], orders[0], ids[1], ids[0],
		store.Micros(nov.Start), store.Micros(nov.End))
	if err != nil {
		t.Fatal(err)
	}
	tradeID, _ := res.LastInsertId()

	b := &bgpSide{log: slog.New(slog.DiscardHandler), record: delivery.NewRecord(db)}
	session := netip.MustParseAddr("192.0.2.12")
	day := func(d, h int) time.Time { return nov.Start.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }
	for _, c := range []routeserver.DeliveryChange{
		{Delivery: routeserver.Delivery{Delivered: true}, At: nov.Start},
		{Delivery: routeserver.Delivery{Reason: routeserver.ReasonSellerDown, Cause: routeserver.CauseSeller}, At: day(9, 0)},
		{Delivery: routeserver.Delivery{Delivered: true}, At: day(9, 3)},
		{Delivery: routeserver.Delivery{Reason: routeserver.ReasonBuyerDown, Cause: routeserver.CauseBuyer}, At: day(11, 1)},
		{Delivery: routeserver.Delivery{Delivered: true}, At: day(11, 2)},
	} {
		c.TradeID, c.BuyerASN, c.Session = uint64(tradeID), 64510, session
		b.onDelivery([]routeserver.DeliveryChange{c})
	}
	st, err := settle.NewSettlement(db, settle.Options{Config: settle.DefaultConfig(), Now: func() time.Time { return nov.End.Add(time.Hour) },
		Gaps: deliveryGaps{delivery.NewRecord(db)}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := st.Run(ctx, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range run.Invoices {
		if inv.ASN != 64510 {
			continue
		}
		l := inv.Lines[0]
		// 1 Gbps at 2 per Mbps-month: 2000 for the month, less 3 h of 720.
		if l.Committed != -1_991_666_667 || l.UndeliveredSeconds != 3*3600 {
			t.Errorf("buyer's line: committed %d, undelivered %v s; want -1991666667 and 10800 (the buyer's own hour down is charged)", l.Committed, l.UndeliveredSeconds)
		}
		return
	}
	t.Fatalf("no invoice for the buyer: %+v", run.Invoices)
}
