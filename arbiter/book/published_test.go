package book_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
)

// What the exchange shows its peers: open sells only, each with the routes
// it sells and their pooled quality; never a route whose policy lists its
// buyers, nor a member who may not trade.
func TestOpenSellsForPeers(t *testing.T) {
	var suspended atomic.Uint32
	f := newFixtureWith(t, func(f *fixture) {
		f.active = func(asn uint32) error {
			if asn == suspended.Load() {
				return errors.New("suspended")
			}
			return nil
		}
	})
	ctx := context.Background()
	if _, err := f.reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix("192.0.2.0/24"), MemberASN: seller, Type: registry.Customer,
		AllowedBuyers: []uint32{buyer}}); err != nil {
		t.Fatal(err)
	}
	if err := f.book.RefreshMembers(ctx); err != nil {
		t.Fatal(err)
	}
	byType := spec(book.Sell, "198.51.100.0/24", 2*Gbps, 3)
	byType.Destination = book.Destination{RouteType: registry.Customer}
	placed := map[string]int64{}
	for name, s := range map[string]struct {
		asn  uint32
		spec book.Spec
	}{
		"customer routes": {seller, byType},
		"v6":              {seller, spec(book.Sell, "2001:db8:100::/48", Gbps, 4)},
		"restricted":      {seller, spec(book.Sell, "192.0.2.0/24", Gbps, 4)},
		"seller2":         {seller2, spec(book.Sell, "198.51.100.0/24", Gbps, 5)},
		"a buy":           {buyer, spec(book.Buy, "203.0.113.0/24", Gbps, 1)},
	} {
		o, _, err := f.book.Place(ctx, s.asn, s.spec, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		placed[name] = o.ID
	}
	f.measure(t, buyer, seller, "2001:db8:100::/48", "m1", 7000, 100, 0)
	suspended.Store(seller2)

	sells, err := f.book.OpenSells(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for _, s := range sells {
		lat := "-"
		if s.Measured != nil {
			lat = fmt.Sprint(s.Measured.LatencyUs)
		}
		got[s.Order.ID] = fmt.Sprint(s.Prefixes, " ", lat)
	}
	// The customer routes of the sell's protocol, less the restricted one.
	want := map[int64]string{placed["customer routes"]: "[198.51.100.0/24] -", placed["v6"]: "[2001:db8:100::/48] 7000"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("open sells %v, want %v", got, want)
	}
	// Asked about some orders only (those a change touched).
	some, err := f.book.OpenSells(ctx, []int64{placed["v6"], placed["a buy"], placed["seller2"], 99999})
	if err != nil || len(some) != 1 || some[0].Order.ID != placed["v6"] {
		t.Fatalf("open sells among some ids: %+v %v", some, err)
	}
}
