package routeserver

import (
	"context"
	"net/netip"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
)

// A prefix the route server withholds (the seller's allow list changed
// after the trade) shows in the delivery record as the seller's gap, with
// why; without BGP sessions to judge, nothing here needs GoBGP.
func TestWithheldPrefixIsTheSellersGap(t *testing.T) {
	s, err := New(Config{ASN: rsASN, RouterID: addr("127.0.0.1"), Checker: newFakeChecker()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []Member{{ASN: 64501, Addresses: []netip.Addr{addr("192.0.2.11")}}, {ASN: 64502, Addresses: []netip.Addr{addr("192.0.2.12")}}} {
		if err := s.AddMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	s.nbrs[addr("192.0.2.12")].state = api.PeerState_ESTABLISHED // the buyer's session is up
	tr := Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501,
		Withheld: map[netip.Prefix]string{netip.MustParsePrefix("198.51.100.0/24"): "AS64502 is not on the seller's allow list"}}
	if err := s.SetActive(ctx, []Trade{tr}); err != nil {
		t.Fatal(err)
	}
	s.syncMu.Lock()
	cs := s.deliveryChanges()
	s.syncMu.Unlock()
	want := Delivery{TradeID: 1, BuyerASN: 64502, Session: addr("192.0.2.12"), Reason: "withheld: AS64502 is not on the seller's allow list", Cause: CauseSeller}
	if len(cs) != 1 || cs[0].Delivery != want || cs[0].Ended {
		t.Fatalf("changes %+v, want %+v", cs, want)
	}
	tr.Withheld = map[netip.Prefix]string{netip.MustParsePrefix("198.51.100.0/24"): "x"}
	tr.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	tr.NextHop4 = addr("192.0.2.11")
	if err := s.SetActive(ctx, []Trade{tr}); err == nil {
		t.Error("a prefix both delivered and withheld was accepted")
	}
}
