package book

import (
	"context"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

// The commit collapses each order to its last state in a batch, writes
// fills that leave an order open with a narrower statement, and splits
// rows over multi-row statements. These tests commit batches built by the
// engine and compare every stored row with the last state the changes
// carry, the way a reader after a restart would see them.

const commitGbps = 1_000_000_000

func commitFixture(t *testing.T) (*store.DB, *Engine) {
	t.Helper()
	db := storetest.Open(t)
	members := map[uint32]*MemberInfo{}
	add := func(id int64, asn uint32, router string, prefixes ...string) {
		m := &MemberInfo{ASN: asn, ID: id, PortID: id, Capacity: 1000 * commitGbps, Routers: []netip.Addr{netip.MustParseAddr(router)}}
		mustExec(t, db, "INSERT INTO members (id, asn, name, created_us) VALUES (?, ?, 'm', 0)", id, asn)
		mustExec(t, db, "INSERT INTO ports (id, member_id, name, capacity_bps) VALUES (?, ?, 'p', ?)", id, id, m.Capacity)
		mustExec(t, db, "INSERT INTO routers (member_id, address) VALUES (?, ?)", id, router)
		for _, p := range prefixes {
			r := registry.Prefix{Prefix: netip.MustParsePrefix(p), MemberASN: asn, Type: registry.Customer, OriginASN: asn}
			m.Routes = append(m.Routes, r)
			mustExec(t, db, "INSERT INTO prefixes (member_id, prefix, route_type, origin_asn) VALUES (?, ?, ?, ?)", id, p, r.Type, asn)
		}
		members[asn] = m
	}
	add(1, 64501, "192.0.2.1", "198.51.100.0/24")
	add(2, 64502, "2001:db8::2", "2001:db8:100::/48")
	add(3, 64510, "192.0.2.10")
	add(4, 64511, "192.0.2.11")
	e := NewEngine()
	e.SetMembers(members)
	return db, e
}

func mustExec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func commitSpec(side Side, prefix string, capacity, price int64, typ OrderType) Spec {
	p := netip.MustParsePrefix(prefix)
	s := Spec{Side: side, Destination: Destination{Prefix: p}, Protocol: IPv4, CapacityBps: capacity, MinBlockBps: commitGbps,
		PriceMicros: price, TrafficType: AnyTraffic, Start: benchStart, End: benchStart.AddDate(0, 1, 0), Type: typ}
	if side == Buy {
		s.Ranking = ByPrice
	}
	if p.Addr().Is6() {
		s.Protocol = IPv6
	}
	return s
}

// batch records the changes of engine operations for one commit and the
// last state of every order they touch.
type batch struct {
	t    *testing.T
	chs  []*Change
	last map[int64]Order
}

func (b *batch) add(ch *Change, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
	b.chs = append(b.chs, ch)
	for _, o := range append(append([]Order{}, ch.New...), ch.Orders...) {
		b.last[o.ID] = o
	}
}

func (b *batch) place(e *Engine, now time.Time, asn uint32, s Spec) Order {
	b.t.Helper()
	o, _, ch, err := e.Place(now, asn, s, "", 0)
	b.add(ch, err)
	return o
}

func TestCommitBatchStoresLastStateOfEachOrder(t *testing.T) {
	db, e := commitFixture(t)
	ctx := context.Background()
	now := benchStart.Add(-time.Hour)
	last := map[int64]Order{}

	// Batch 1: a sell placed and partly filled in the same batch (its
	// insert carries the fill), a resting buy, and 70 more sells: more
	// rows than one statement takes.
	b := &batch{t: t, last: last}
	a := b.place(e, now, 64501, commitSpec(Sell, "198.51.100.0/24", 10*commitGbps, 100, Limit))
	b.place(e, now, 64510, commitSpec(Buy, "198.51.100.0/24", 2*commitGbps, 200, IOC))
	// A buy that rests, with a client id: its full write in the next
	// batch meets the (member, client id) unique index as well as the
	// primary key.
	rest, _, ch, err := e.Place(now, 64511, commitSpec(Buy, "198.51.100.0/24", commitGbps, 50, Limit), "rest-1", 0)
	b.add(ch, err)
	var many []Order
	for i := 0; i < 70; i++ {
		many = append(many, b.place(e, now, 64501, commitSpec(Sell, "198.51.100.0/24", 2*commitGbps, int64(1000+i), Limit)))
	}
	if err := commitChanges(ctx, db, b.chs); err != nil {
		t.Fatal(err)
	}

	// Batch 2: the stored sell filled twice (fill-only, collapsed), an
	// IPv6 sell placed and filled completely (status changes), a third
	// fill then a cancel of the same sell (the cancel's full write wins),
	// a price change of the stored buy, and 71 buys of 1G against the 2G
	// sells: 35 of them filled (two fills, the second full), one half.
	now = now.Add(time.Minute)
	b = &batch{t: t, last: last}
	b.place(e, now, 64510, commitSpec(Buy, "198.51.100.0/24", 3*commitGbps, 200, IOC))
	b.place(e, now, 64511, commitSpec(Buy, "198.51.100.0/24", commitGbps, 200, IOC))
	b.place(e, now, 64502, commitSpec(Sell, "2001:db8:100::/48", 4*commitGbps, 300, Limit))
	b.place(e, now, 64510, commitSpec(Buy, "2001:db8:100::/48", 4*commitGbps, 300, IOC))
	b.place(e, now, 64510, commitSpec(Buy, "198.51.100.0/24", commitGbps, 200, IOC))
	_, ch, err = e.Cancel(now, 64501, a.ID)
	b.add(ch, err)
	price := int64(60)
	_, _, ch, err = e.Modify(now, 64511, rest.ID, nil, &price)
	b.add(ch, err)
	for i := 0; i < 71; i++ {
		b.place(e, now, 64510+uint32(i%2), commitSpec(Buy, "198.51.100.0/24", commitGbps, 5000, IOC))
	}
	if err := commitChanges(ctx, db, b.chs); err != nil {
		t.Fatal(err)
	}

	stored, err := queryOrders(ctx, db, selectOrder+" ORDER BY o.id")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(last) {
		t.Fatalf("%d orders stored, want %d", len(stored), len(last))
	}
	var wantOpen []int64
	for _, got := range stored {
		want := last[got.ID]
		if got.ClientOrderID != want.ClientOrderID {
			t.Errorf("order %d stored with client id %q, want %q", got.ID, got.ClientOrderID, want.ClientOrderID)
		}
		if got.Status != want.Status || got.FilledBps != want.FilledBps || got.Spec.CapacityBps != want.Spec.CapacityBps ||
			got.Spec.PriceMicros != want.Spec.PriceMicros || got.Priority != want.Priority || !got.Updated.Equal(want.Updated) {
			t.Errorf("order %d stored as status %v filled %d capacity %d price %d priority %d updated %v;\nwant status %v filled %d capacity %d price %d priority %d updated %v",
				got.ID, got.Status, got.FilledBps, got.Spec.CapacityBps, got.Spec.PriceMicros, got.Priority, got.Updated,
				want.Status, want.FilledBps, want.Spec.CapacityBps, want.Spec.PriceMicros, want.Priority, want.Updated)
		}
		if want.Status == Open {
			wantOpen = append(wantOpen, got.ID)
		}
	}
	if got := last[a.ID]; got.Status != Cancelled || got.FilledBps != 7*commitGbps {
		t.Fatalf("fixture: order %d is %v with %d filled, want cancelled with 7G filled", a.ID, got.Status, got.FilledBps)
	}
	if got := last[many[0].ID]; got.Status != Filled {
		t.Fatalf("fixture: order %d is %v, want filled", many[0].ID, got.Status)
	}
	if got := last[many[35].ID]; got.Status != Open || got.FilledBps != commitGbps {
		t.Fatalf("fixture: order %d is %v with %d filled, want open with 1G filled (a fill-only write)", many[35].ID, got.Status, got.FilledBps)
	}

	// The status index agrees with the rows: fill-only writes leave it
	// alone, full writes move the entry.
	var gotOpen []int64
	indexed := " INDEXED BY orders_open" // sqlite: read the index, not the table
	if db.Dialect() != store.SQLite {
		indexed = ""
	}
	rows, err := db.Query("SELECT id FROM orders o" + indexed + " WHERE " + openCond)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		gotOpen = append(gotOpen, id)
	}
	rows.Close()
	sort.Slice(gotOpen, func(i, j int) bool { return gotOpen[i] < gotOpen[j] })
	if len(gotOpen) != len(wantOpen) || len(gotOpen) != e.OpenCount() {
		t.Fatalf("open orders by index: %v, want %v (engine has %d)", gotOpen, wantOpen, e.OpenCount())
	}
	for i := range gotOpen {
		if gotOpen[i] != wantOpen[i] {
			t.Fatalf("open orders by index: %v, want %v", gotOpen, wantOpen)
		}
	}
	if db.Dialect() == store.SQLite {
		var check string
		if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check = %q, %v", check, err)
		}
	}

	var trades, events int64
	db.QueryRow("SELECT count(*) FROM trades").Scan(&trades)
	db.QueryRow("SELECT count(*) FROM events").Scan(&events)
	if trades != e.lastTrade || events != e.lastSeq {
		t.Fatalf("stored %d trades and %d events, want %d and %d", trades, events, e.lastTrade, e.lastSeq)
	}

	// And the book a restart loads is the engine's.
	s, err := LoadSnapshot(ctx, db, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Open) != e.OpenCount() || s.LastOrder != e.lastOrder || s.LastTrade != e.lastTrade || s.LastSeq != e.lastSeq {
		t.Fatalf("snapshot: %d open, last order %d trade %d seq %d; engine: %d open, %d, %d, %d",
			len(s.Open), s.LastOrder, s.LastTrade, s.LastSeq, e.OpenCount(), e.lastOrder, e.lastTrade, e.lastSeq)
	}
}

// A batch that breaks a constraint writes nothing: the multi-row
// statements before the failing one roll back with it.
func TestCommitBatchIsAllOrNothing(t *testing.T) {
	db, e := commitFixture(t)
	ctx := context.Background()
	now := benchStart.Add(-time.Hour)
	b := &batch{t: t, last: map[int64]Order{}}
	for i := 0; i < 40; i++ {
		b.place(e, now, 64501, commitSpec(Sell, "198.51.100.0/24", 2*commitGbps, 100, Limit))
	}
	b.place(e, now, 64510, commitSpec(Buy, "198.51.100.0/24", 2*commitGbps, 200, IOC))
	// An event for a member the store does not know breaks the events
	// insert, the last statement of the batch.
	bad := &Change{Events: []Event{{Seq: e.lastSeq + 1, MemberASN: 65999, Type: OrderAccepted, Time: now, Order: &Order{ID: 1}}}}
	err := commitChanges(ctx, db, append(b.chs, bad))
	if err == nil {
		t.Fatal("a batch with an event for an unknown member committed")
	}
	for _, table := range []string{"orders", "trades", "events"} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s has %d rows after the failed batch (%v), want 0", table, n, err)
		}
	}
}
