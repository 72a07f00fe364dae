package netx

import (
	"cmp"
	"net/netip"
)

// ComparePrefix orders prefixes as people read a routing table: by
// address, then the shorter first (IPv4 before IPv6). netip.Prefix.Compare
// orders by length first, which scatters a table's neighbours.
func ComparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
