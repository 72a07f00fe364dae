package federation

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func offer(id int64, prefixes ...string) Offer {
	o := Offer{ID: id, SellerASN: 64500, CapacityBps: 10_000_000, MinBlockBps: 1_000_000, PriceMicros: 3_000_000,
		Start: t0, End: t0.Add(time.Hour), TrafficType: book.AnyTraffic}
	for _, p := range prefixes {
		o.Prefixes = append(o.Prefixes, netip.MustParsePrefix(p))
	}
	return o
}

func testView(maxOffers int) *View {
	cfg := Config{Name: "ix-b", MaxOffers: maxOffers, Peers: []PeerConfig{
		{Name: "ix-a", Address: "127.0.0.1:1", CA: "x", InterconnectBps: 5_000_000, AddedLatency: 2 * time.Millisecond},
		{Name: "ix-c", Address: "127.0.0.1:2", CA: "x", InterconnectBps: 100_000_000}}}
	return NewView(cfg, func() time.Time { return t0 }, quiet())
}

func synced(t *testing.T, v *View, peer, epoch string, seq int64, offers ...Offer) {
	t.Helper()
	if err := v.Apply(peer, Update{Kind: SnapshotPart, Epoch: epoch, Seq: seq, Offers: offers}); err != nil {
		t.Fatal(err)
	}
	if err := v.Apply(peer, Update{Kind: SnapshotEnd, Epoch: epoch, Seq: seq}); err != nil {
		t.Fatal(err)
	}
}

func TestViewFollowsSnapshotAndChanges(t *testing.T) {
	v := testView(0)
	synced(t, v, "ix-a", "e1", 7, offer(1, "198.51.100.0/24"), offer(2, "2001:db8:100::/48"))
	if got := v.Toward(netip.MustParsePrefix("198.51.100.0/25"), t0); len(got) != 1 || got[0].Offer.ID != 1 ||
		got[0].Prefixes[0] != netip.MustParsePrefix("198.51.100.0/25") || got[0].AvailableBps != 5_000_000 {
		t.Fatalf("toward 198.51.100.0/25: %+v", got)
	}
	// A buy for a wider prefix than the route is not served by it.
	if got := v.Toward(netip.MustParsePrefix("198.51.0.0/16"), t0); len(got) != 0 {
		t.Fatalf("a /16 is not inside a /24 route: %+v", got)
	}
	o1 := offer(1, "198.51.100.0/24")
	o1.PriceMicros = 2_000_000
	o1.Measured = &book.Measured{LatencyUs: 1000, Samples: 3}
	if err := v.Apply("ix-a", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 8, Offers: []Offer{o1}, Removed: []int64{2}}); err != nil {
		t.Fatal(err)
	}
	got := v.Toward(netip.MustParsePrefix("198.51.100.0/24"), t0)
	if len(got) != 1 || got[0].Offer.PriceMicros != 2_000_000 || got[0].Measured.LatencyUs != 3000 {
		t.Fatalf("after the change (price 2, latency 1 ms + 2 ms interconnect): %+v", got)
	}
	if o1.Measured.LatencyUs != 1000 {
		t.Fatal("the interconnect's latency was added to the view's own copy")
	}
	if got := v.Toward(netip.MustParsePrefix("2001:db8:100::/48"), t0); len(got) != 0 {
		t.Fatalf("removed offer still there: %+v", got)
	}
	if err := v.Apply("ix-a", Update{Kind: Heartbeat, Epoch: "e1", Seq: 8}); err != nil {
		t.Fatal(err)
	}
	// The offer is over: not usable, though listed.
	if got := v.Toward(netip.MustParsePrefix("198.51.100.0/24"), t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("an offer past its end is usable: %+v", got)
	}
	ps := v.Peers()
	if ps[0].Name != "ix-a" || ps[0].State != Up || ps[0].Offers != 1 || ps[0].Resyncs != 0 || ps[1].State != Connecting {
		t.Fatalf("peers: %+v", ps)
	}
}

func TestViewGapsAndNewEpochsResync(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    Update
	}{
		{"a skipped change", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 3}},
		{"a repeated change", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 1}},
		{"a heartbeat ahead", Update{Kind: Heartbeat, Epoch: "e1", Seq: 2}},
		{"a restarted publisher", Update{Kind: ChangeUpdate, Epoch: "e2", Seq: 2}},
		{"an unknown kind", Update{Kind: 99, Epoch: "e1", Seq: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testView(0)
			synced(t, v, "ix-a", "e1", 1, offer(1, "198.51.100.0/24"))
			if err := v.Apply("ix-a", tc.u); !errors.Is(err, ErrResync) {
				t.Fatalf("want ErrResync, got %v", err)
			}
			v.Lost("ix-a", errors.New("gap"))
			if got := v.Toward(netip.MustParsePrefix("198.51.100.0/24"), t0); len(got) != 0 {
				t.Fatalf("a down peer's offers are usable: %+v", got)
			}
			if ps := v.Peers(); ps[0].State != Down || ps[0].Offers != 1 || ps[0].LastError != "gap" {
				t.Fatalf("down peer: %+v", ps[0])
			}
			// The snapshot again replaces the view exactly.
			synced(t, v, "ix-a", "e2", 5, offer(3, "203.0.113.0/24"))
			if got := v.Offers("", netip.Prefix{}); len(got) != 1 || got[0].Offer.ID != 3 || !got[0].Usable {
				t.Fatalf("after the resync: %+v", got)
			}
			if got := v.Toward(netip.MustParsePrefix("198.51.100.0/24"), t0); len(got) != 0 {
				t.Fatalf("an offer the snapshot no longer has is still indexed: %+v", got)
			}
			if ps := v.Peers(); ps[0].Resyncs != 1 || ps[0].State != Up {
				t.Fatalf("resyncs: %+v", ps[0])
			}
		})
	}
}

func TestViewChangeBeforeSnapshotEndIsRefused(t *testing.T) {
	v := testView(0)
	if err := v.Apply("ix-a", Update{Kind: SnapshotPart, Epoch: "e1", Seq: 1, Offers: []Offer{offer(1, "198.51.100.0/24")}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Apply("ix-a", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 2}); !errors.Is(err, ErrResync) {
		t.Fatalf("a change during the snapshot: %v", err)
	}
	if err := v.Apply("ix-a", Update{Kind: SnapshotPart, Epoch: "e9", Seq: 1}); !errors.Is(err, ErrResync) {
		t.Fatalf("a snapshot that changes epoch midway: %v", err)
	}
	if got := v.Offers("", netip.Prefix{}); len(got) != 0 {
		t.Fatalf("an unfinished snapshot is in the view: %+v", got)
	}
	if err := v.Apply("ix-z", Update{Kind: SnapshotEnd}); err == nil {
		t.Fatal("an unknown peer's update was applied")
	}
}

// A peer that lies: every kind of invalid offer is rejected with a reason,
// and replaces nothing valid with garbage.
func TestViewRejectsInvalidOffers(t *testing.T) {
	mod := func(f func(*Offer)) Offer {
		o := offer(5, "198.51.100.0/24")
		f(&o)
		return o
	}
	for _, tc := range []struct {
		o    Offer
		want string
	}{
		{mod(func(o *Offer) { o.ID = 0 }), "order_id"},
		{mod(func(o *Offer) { o.SellerASN = 0 }), "seller_asn"},
		{mod(func(o *Offer) { o.Prefixes = nil }), "prefixes: none"},
		{mod(func(o *Offer) { o.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")} }), "host bits"},
		{mod(func(o *Offer) { o.Prefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} }), "default route"},
		{mod(func(o *Offer) { o.Prefixes = append(o.Prefixes, netip.MustParsePrefix("2001:db8::/32")) }), "family"},
		{mod(func(o *Offer) { o.Prefixes = append(o.Prefixes, o.Prefixes[0]) }), "twice"},
		{mod(func(o *Offer) {
			o.Prefixes = nil
			for i := range MaxPrefixesPerOffer + 1 {
				o.Prefixes = append(o.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
			}
		}), "more than"},
		{mod(func(o *Offer) { o.CapacityBps = -1 }), "capacity_bps"},
		{mod(func(o *Offer) { o.MinBlockBps = o.CapacityBps + 1 }), "min_block_bps"},
		{mod(func(o *Offer) { o.PriceMicros = -1 }), "price_micros"},
		{mod(func(o *Offer) { o.End = o.Start }), "not after"},
		{mod(func(o *Offer) { o.Start, o.End = t0.Add(-2*time.Hour), t0.Add(-time.Hour) }), "in the past"},
		{mod(func(o *Offer) { o.End = o.Start.Add(book.MaxPeriod + time.Hour) }), "10 years"},
		{mod(func(o *Offer) { o.TrafficType = 9 }), "traffic_type"},
		{mod(func(o *Offer) { o.Measured = &book.Measured{LossPPM: 2_000_000} }), "loss_ppm"},
		{mod(func(o *Offer) { o.Measured = &book.Measured{LatencyUs: -5} }), "negative latency"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			v := testView(0)
			synced(t, v, "ix-a", "e1", 1, offer(5, "198.51.100.0/24"))
			if err := v.Apply("ix-a", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 2, Offers: []Offer{tc.o}}); err != nil {
				t.Fatal(err) // an invalid offer is the offer's problem, not the stream's
			}
			// An offer without a valid id cannot name the one held.
			want := 0
			if tc.o.ID != 5 {
				want = 1
			}
			if got := v.Offers("", netip.Prefix{}); len(got) != want {
				t.Fatalf("the invalid offer (or its stale version) is in the view: %+v", got)
			}
			ps := v.Peers()
			if ps[0].Rejected != 1 || !strings.Contains(ps[0].LastError, tc.want) {
				t.Fatalf("rejection: %d %q, want the reason to name %q", ps[0].Rejected, ps[0].LastError, tc.want)
			}
		})
	}
}

// A peer cannot make the view grow without bound: past max_offers its
// new offers are rejected, in a snapshot and in changes, and a message
// with too many items ends the stream.
func TestViewIsBounded(t *testing.T) {
	v := testView(3)
	var offers []Offer
	for i := range 5 {
		offers = append(offers, offer(int64(i+1), fmt.Sprintf("10.0.%d.0/24", i)))
	}
	synced(t, v, "ix-a", "e1", 1, offers...)
	if ps := v.Peers(); ps[0].Offers != 3 || ps[0].Rejected != 2 {
		t.Fatalf("after a snapshot of 5 with room for 3: %+v", ps[0])
	}
	if err := v.Apply("ix-a", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 2, Offers: []Offer{offer(9, "10.9.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	// A change to an offer held still fits.
	o := offer(1, "10.0.0.0/24")
	o.PriceMicros = 1
	if err := v.Apply("ix-a", Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 3, Offers: []Offer{o}}); err != nil {
		t.Fatal(err)
	}
	if ps := v.Peers(); ps[0].Offers != 3 || ps[0].Rejected != 3 {
		t.Fatalf("after a new offer with the view full: %+v", ps[0])
	}
	if got := v.Offers("ix-a", netip.MustParsePrefix("10.0.0.0/24")); len(got) != 1 || got[0].Offer.PriceMicros != 1 {
		t.Fatalf("the change to a held offer: %+v", got)
	}
	// The other peer's room is its own.
	synced(t, v, "ix-c", "x", 1, offer(1, "10.0.0.0/24"))
	if got := v.Toward(netip.MustParsePrefix("10.0.0.0/24"), t0); len(got) != 2 || got[0].Exchange != "ix-a" || got[1].Exchange != "ix-c" {
		t.Fatalf("two exchanges' offers toward one prefix: %+v", got)
	}
	big := Update{Kind: ChangeUpdate, Epoch: "e1", Seq: 4, Removed: make([]int64, MaxItemsPerUpdate+1)}
	if err := v.Apply("ix-a", big); !errors.Is(err, ErrResync) {
		t.Fatalf("an oversized message: %v", err)
	}
}
