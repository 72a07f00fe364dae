package routeserver

import (
	"context"
	"fmt"
	"net/netip"
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
