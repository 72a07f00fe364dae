package netx

import (
	"net/netip"
	"slices"
	"testing"
)

func TestComparePrefixIsTableOrder(t *testing.T) {
	var ps []netip.Prefix
	for _, s := range []string{"2001:db8::/32", "198.18.0.0/24", "10.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24", "2001:db8::/48"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	slices.SortFunc(ps, ComparePrefix)
	want := []string{"10.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24", "198.18.0.0/24", "2001:db8::/32", "2001:db8::/48"}
	for i, p := range ps {
		if p.String() != want[i] {
			t.Fatalf("sorted %v, want %v", ps, want)
		}
	}
}
