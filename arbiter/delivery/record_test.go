package delivery

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

var (
	b4  = netip.MustParseAddr("192.0.2.12")
	b4b = netip.MustParseAddr("192.0.2.13")
	b6  = netip.MustParseAddr("2001:db8::12")
)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func iv(s netip.Addr, from, to int, delivered bool, cause string) Interval {
	i := Interval{TradeID: 1, Session: s, From: at(from), Delivered: delivered, Cause: cause}
	if to >= 0 {
		i.To = at(to)
	}
	return i
}

// The rule billing follows, case by case.
func TestSellerGaps(t *testing.T) {
	for _, c := range []struct {
		name string
		ivs  []Interval
		want [][2]int // minutes
	}{
		{"no record: delivered", nil, nil},
		{"delivered all along", []Interval{iv(b4, 0, -1, true, "")}, nil},
		{"seller's gap", []Interval{iv(b4, 0, 10, true, ""), iv(b4, 10, 25, false, CauseSeller), iv(b4, 25, -1, true, "")}, [][2]int{{10, 25}}},
		{"buyer's own session down: charged", []Interval{iv(b4, 0, 10, true, ""), iv(b4, 10, 25, false, CauseBuyer), iv(b4, 25, -1, true, "")}, nil},
		{"open gap lasts to the end", []Interval{iv(b4, 0, 50, true, ""), iv(b4, 50, -1, false, CauseSeller)}, [][2]int{{50, 60}}},
		{"another session of the family delivers", []Interval{iv(b4, 0, -1, false, CauseSeller), iv(b4b, 0, 30, true, ""), iv(b4b, 30, -1, false, CauseBuyer)},
			[][2]int{{30, 60}}},
		{"one family missing is a gap", []Interval{iv(b4, 0, -1, true, ""), iv(b6, 0, 20, false, CauseSeller), iv(b6, 20, -1, true, "")}, [][2]int{{0, 20}}},
		{"adjacent gaps merge", []Interval{iv(b4, 0, 20, false, CauseSeller), iv(b6, 0, 10, true, ""), iv(b6, 10, 40, false, CauseSeller), iv(b4, 20, -1, true, "")},
			[][2]int{{0, 40}}},
		{"outside the window", []Interval{iv(b4, -30, 0, false, CauseSeller), iv(b4, 0, -1, true, "")}, nil},
	} {
		var want []Span
		for _, w := range c.want {
			want = append(want, Span{at(w[0]), at(w[1])})
		}
		if got := SellerGaps(c.ivs, at(0), at(60)); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
	}
}

// The record in a real database: intervals open and close in order, a
// repeated state is no new interval, an end closes it, bad changes are
// refused whole.
func TestRecord(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	id := addTrade(t, db)
	r := NewRecord(db)
	apply := func(cs ...Change) {
		t.Helper()
		if err := r.Apply(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	apply(Change{TradeID: id, Session: b4, At: at(0), Delivered: true}, Change{TradeID: id, Session: b6, At: at(0), Delivered: true})
	apply(Change{TradeID: id, Session: b4, At: at(10), Reason: "seller session down", Cause: CauseSeller})
	apply(Change{TradeID: id, Session: b4, At: at(12), Reason: "seller session down", Cause: CauseSeller}) // again, after a restart
	// A state that lasts no time leaves nothing, and the one before goes
	// on.
	apply(Change{TradeID: id, Session: b4, At: at(25), Delivered: true})
	apply(Change{TradeID: id, Session: b4, At: at(30), Reason: "seller does not announce the prefix", Cause: CauseSeller})
	apply(Change{TradeID: id, Session: b4, At: at(30), Delivered: true})
	apply(Change{TradeID: id, Session: b4, At: at(40), Ended: true}, Change{TradeID: id, Session: b6, At: at(40), Ended: true})
	got, err := r.Intervals(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []Interval{
		{TradeID: id, Session: b4, From: at(0), To: at(10), Delivered: true},
		{TradeID: id, Session: b4, From: at(10), To: at(25), Reason: "seller session down", Cause: CauseSeller},
		{TradeID: id, Session: b4, From: at(25), To: at(40), Delivered: true},
		{TradeID: id, Session: b6, From: at(0), To: at(40), Delivered: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("record\n%+v\nwant\n%+v", got, want)
	}
	gaps, err := r.SellerGaps(ctx, id, at(0), at(60))
	if err != nil || !slices.Equal(gaps, []Span{{at(10), at(25)}}) {
		t.Errorf("SellerGaps = %v, %v", gaps, err)
	}
	if err := r.Apply(ctx, []Change{{TradeID: id, Session: b4, At: at(50), Delivered: true}, {TradeID: id, Session: b4, At: at(51), Reason: "x", Cause: "nobody"}}); err == nil {
		t.Error("a change with an unknown cause was accepted")
	}
	if after, _ := r.Intervals(ctx, id); len(after) != len(want) {
		t.Errorf("a refused batch wrote part of itself: %+v", after)
	}
}

// addTrade stores a trade the way the book leaves one.
func addTrade(t *testing.T, db *store.DB) int64 {
	t.Helper()
	ctx := context.Background()
	reg := registry.New(db)
	var mids []int64
	for i, asn := range []uint32{64501, 64502} {
		m, err := reg.AddMember(ctx, registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 1e10},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)})}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		mids = append(mids, m.ID)
	}
	var oids []int64
	for i, m := range mids {
		var id int64
		if err := db.QueryRow(`INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps, price_micros, traffic_type,
			start_us, end_us, order_type, priority, status, created_us, updated_us) VALUES (?,?,'198.51.100.0/24',1,1000000,1000000,1,0,?,?,1,0,3,0,0) RETURNING id`,
			m, i+1, store.Micros(at(0)), store.Micros(at(60))).Scan(&id); err != nil {
			t.Fatal(err)
		}
		oids = append(oids, id)
	}
	var id int64
	if err := db.QueryRow(`INSERT INTO trades (buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
		start_us, end_us, created_us) VALUES (?,?,?,?,'198.51.100.0/24',1,1000000,1,?,?,0) RETURNING id`, oids[0], oids[1], mids[1], mids[0],
		store.Micros(at(0)), store.Micros(at(60))).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
