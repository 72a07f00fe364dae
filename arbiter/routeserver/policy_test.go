package routeserver

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/gaissmai/bart"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
)

type verdictFunc func(uint32, netip.Prefix, uint32) registry.Verdict

func (f verdictFunc) Check(m uint32, p netip.Prefix, o uint32) registry.Verdict { return f(m, p, o) }

func TestImportPolicy(t *testing.T) {
	good := registry.Verdict{Registered: true, OriginMatches: true, IRR: irr.Result{Valid: true}, RPKI: rpki.Valid}
	for _, tc := range []struct {
		name       string
		change     func(*registry.Verdict)
		requireIRR bool
		ok         bool
		reason     string
	}{
		{"valid", func(*registry.Verdict) {}, true, true, "RPKI valid"},
		{"not registered", func(v *registry.Verdict) { v.Registered = false }, true, false, ReasonNotRegistered},
		{"other origin", func(v *registry.Verdict) { v.OriginMatches = false }, true, false, ReasonOriginDiffers},
		{"rpki invalid", func(v *registry.Verdict) { v.RPKI = rpki.Invalid }, true, false, ReasonRPKIInvalid},
		{"rpki not found is fine", func(v *registry.Verdict) { v.RPKI = rpki.NotFound }, true, true, "RPKI not-found"},
		{"no IRR object", func(v *registry.Verdict) { v.IRR.Valid = false }, true, false, ReasonNoIRR},
		{"no IRR object, not required", func(v *registry.Verdict) { v.IRR.Valid = false }, false, true, "RPKI valid"},
		{"RPKI invalid beats a missing IRR object", func(v *registry.Verdict) { v.IRR.Valid, v.RPKI = false, rpki.Invalid }, true, false, ReasonRPKIInvalid},
	} {
		v := good
		tc.change(&v)
		p := ImportPolicy{Registry: verdictFunc(func(uint32, netip.Prefix, uint32) registry.Verdict { return v }), RequireIRR: tc.requireIRR}
		ok, reason := p.Check(64501, netip.MustParsePrefix("198.51.100.0/24"), 64501)
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("%s: got %v %q, want %v %q", tc.name, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestFromBook(t *testing.T) {
	a := netip.MustParseAddr
	pf := netip.MustParsePrefix
	members := map[uint32]Member{
		64501: {ASN: 64501, Addresses: []netip.Addr{a("192.0.2.11"), a("2001:db8::11"), a("192.0.2.21")}},
		64502: {ASN: 64502, Addresses: []netip.Addr{a("192.0.2.12")}},
		64503: {ASN: 64503, Addresses: []netip.Addr{a("192.0.2.13")}},
	}
	policies := Policies{}
	pol := new(bart.Table[registry.Prefix])
	pol.Insert(pf("198.51.100.0/22"), registry.Prefix{Prefix: pf("198.51.100.0/22"), Prepends: 2, AllowedBuyers: []uint32{64502}})
	pol.Insert(pf("2001:db8:100::/48"), registry.Prefix{Prefix: pf("2001:db8:100::/48"), AllowExport: true})
	policies[64501] = pol

	tr := book.Trade{ID: 7, BuyerASN: 64502, SellerASN: 64501,
		Prefixes:       []netip.Prefix{pf("198.51.100.0/24"), pf("2001:db8:100::/48"), pf("203.0.113.0/24")},
		SellerNextHops: []netip.Addr{a("192.0.2.99"), a("192.0.2.11"), a("2001:db8::11"), a("192.0.2.21")}}
	got, why := FromBook(tr, members, policies)
	want := &Trade{ID: 7, BuyerASN: 64502, SellerASN: 64501,
		Prefixes: []netip.Prefix{pf("198.51.100.0/24"), pf("2001:db8:100::/48"), pf("203.0.113.0/24")},
		NextHop4: a("192.0.2.11"), NextHop6: a("2001:db8::11"), Standby: []netip.Addr{a("192.0.2.21")},
		Prepends:   map[netip.Prefix]int{pf("198.51.100.0/24"): 2},
		Exportable: map[netip.Prefix]bool{pf("2001:db8:100::/48"): true}}
	if !reflect.DeepEqual(got, want) || why != "" {
		t.Fatalf("FromBook = %+v %q\nwant %+v", got, why, want)
	}

	// The allow list excludes this buyer from the IPv4 prefix; a seller
	// without an IPv6 next hop in the trade loses the IPv6 prefix.
	tr.BuyerASN, tr.SellerNextHops = 64503, []netip.Addr{a("192.0.2.11")}
	got, why = FromBook(tr, members, policies)
	if got == nil || !reflect.DeepEqual(got.Prefixes, []netip.Prefix{pf("203.0.113.0/24")}) ||
		!strings.Contains(why, "not on the seller's allow list") || !strings.Contains(why, "no router of that family") {
		t.Fatalf("partial: %+v %q", got, why)
	}
	// What is left out stays in the trade, withheld with its reason, so
	// the delivery record shows it.
	if w := got.Withheld; len(w) != 2 || w[pf("198.51.100.0/24")] != "AS64503 is not on the seller's allow list" ||
		w[pf("2001:db8:100::/48")] != "seller has no router of that family on the route server" {
		t.Errorf("withheld %v", w)
	}

	for _, tc := range []struct {
		tr   book.Trade
		want string
	}{
		{book.Trade{ID: 1 << 32, BuyerASN: 64502, SellerASN: 64501}, "32-bit"},
		{book.Trade{ID: 1, BuyerASN: 64502, SellerASN: 64999}, "seller AS64999"},
		{book.Trade{ID: 1, BuyerASN: 64999, SellerASN: 64501}, "buyer AS64999"},
	} {
		if got, why := FromBook(tc.tr, members, policies); got != nil || !strings.Contains(why, tc.want) {
			t.Errorf("FromBook(%+v) = %+v %q, want nil and %q", tc.tr, got, why, tc.want)
		}
	}
}
