package routeserver

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The seller's prepends (registry routing policy) lengthen the delivered
// AS_PATH with the seller's ASN, per prefix.
func TestTradePrepends(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24")
	seller := l.member(64501, "127.0.0.2", Member{})
	buyer := l.member(64502, "127.0.0.3", Member{})
	waitEstablished(t, l.rs, waitBGP)
	seller.announce("198.51.100.0/24", netip.Addr{}, 64510)
	seller.announce("198.51.101.0/24", netip.Addr{})
	l.waitAccepted(64501, 2)

	ctx := context.Background()
	p0, p1 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("198.51.101.0/24")
	tr := Trade{ID: 7, BuyerASN: 64502, SellerASN: 64501, Prefixes: []netip.Prefix{p0, p1},
		NextHop4: addr("127.0.0.2"), Prepends: map[netip.Prefix]int{p0: 2}}
	if err := l.rs.AnnounceTrade(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if got := hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")[0]; got.ASPath != "65000 64501 64501 64501 64510" {
		t.Errorf("prepended twice: got %v", got)
	}
	if got := hasOnly(t, buyer, "198.51.101.0/24", "127.0.0.2")[0]; got.ASPath != "65000 64501" {
		t.Errorf("no prepends: got %v", got)
	}
	if a := l.rs.Announced(); len(a) != 2 || len(a[0].ASPath) != 4 {
		t.Errorf("Announced() = %+v", a)
	}

	// Changing the policy re-announces the path.
	tr.Prepends = map[netip.Prefix]int{p0: 1}
	if err := l.rs.SetActive(ctx, []Trade{tr}); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitBGP, "one prepend", func() string {
		if r := routesFor(buyer.rib(), "198.51.100.0/24"); len(r) != 1 || r[0].ASPath != "65000 64501 64501 64510" {
			return fmt.Sprint(r)
		}
		return ""
	})

	for _, bad := range []map[netip.Prefix]int{
		{p0: MaxPrepends + 1},
		{p0: -1},
		{netip.MustParsePrefix("203.0.113.0/24"): 1},
	} {
		tr.Prepends = bad
		if err := l.rs.AnnounceTrade(ctx, tr); err == nil || !strings.Contains(err.Error(), "prepends") {
			t.Errorf("prepends %v: err = %v, want one naming prepends", bad, err)
		}
	}
}

// A prefix the seller lets buyers pass on is delivered without NO_EXPORT;
// the others keep it, and a path shared with a trade that does not allow it
// keeps it too.
func TestTradeExportable(t *testing.T) {
	if !isolate(t) {
		return
	}
	l := newLoopLab(t)
	l.checker.register(64501, "198.51.100.0/24", "198.51.101.0/24")
	seller := l.member(64501, "127.0.0.2", Member{})
	buyer := l.member(64502, "127.0.0.3", Member{})
	other := l.member(64503, "127.0.0.4", Member{})
	waitEstablished(t, l.rs, waitBGP)
	seller.announce("198.51.100.0/24", netip.Addr{})
	seller.announce("198.51.101.0/24", netip.Addr{})
	l.waitAccepted(64501, 2)

	ctx := context.Background()
	p0, p1 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("198.51.101.0/24")
	tr := Trade{ID: 8, BuyerASN: 64502, SellerASN: 64501, Prefixes: []netip.Prefix{p0, p1},
		NextHop4: addr("127.0.0.2"), Exportable: map[netip.Prefix]bool{p1: true}}
	if err := l.rs.AnnounceTrade(ctx, tr); err != nil {
		t.Fatal(err)
	}
	noExport := func(r ribRoute) bool { return slices.Contains(r.Communities, "65535:65281") }
	if got := hasOnly(t, buyer, "198.51.100.0/24", "127.0.0.2")[0]; !noExport(got) {
		t.Errorf("%v lost NO_EXPORT", got)
	}
	if got := hasOnly(t, buyer, "198.51.101.0/24", "127.0.0.2")[0]; noExport(got) {
		t.Errorf("exportable %v carries NO_EXPORT", got)
	}
	// Another buyer's trade for the same route without the permission: its
	// path carries NO_EXPORT, the first buyer's still does not.
	if err := l.rs.AnnounceTrade(ctx, Trade{ID: 9, BuyerASN: 64503, SellerASN: 64501, Prefixes: []netip.Prefix{p1}, NextHop4: addr("127.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	if got := hasOnly(t, other, "198.51.101.0/24", "127.0.0.2")[0]; !noExport(got) {
		t.Errorf("the other buyer's %v lacks NO_EXPORT", got)
	}
	if got := hasOnly(t, buyer, "198.51.101.0/24", "127.0.0.2")[0]; noExport(got) {
		t.Errorf("exportable %v took NO_EXPORT from another buyer's trade", got)
	}
	tr.Exportable = map[netip.Prefix]bool{netip.MustParsePrefix("203.0.113.0/24"): true}
	if err := l.rs.AnnounceTrade(ctx, tr); err == nil || !strings.Contains(err.Error(), "exportable") {
		t.Errorf("exportable prefix outside the trade: err = %v", err)
	}
}
