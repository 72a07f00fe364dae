package rpki

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
)

// State is a route's RPKI origin validation state (RFC 6811).
type State int

const (
	NotFound State = iota // no ROA covers the prefix
	Valid                 // a covering ROA matches origin and length
	Invalid               // covered, but no covering ROA matches
)

func (s State) String() string {
	switch s {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	default:
		return "not-found"
	}
}

type vrp struct {
	maxLen uint8
	asn    uint32
}

// Index holds the ROAs for validation. It is safe for concurrent readers
// once built; build a new one to change it.
type Index struct {
	t bart.Table[[]vrp]
	n int
}

// NewIndex builds an index; duplicate (prefix, maxLength, asn) are kept once.
func NewIndex(roas []ROA) (*Index, error) {
	ix := &Index{}
	for _, r := range roas {
		if err := ix.Add(r); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// Add puts one ROA in the index.
func (ix *Index) Add(r ROA) error {
	if !r.Prefix.IsValid() || r.Prefix != r.Prefix.Masked() || r.Prefix.Addr().Is4In6() {
		return fmt.Errorf("ROA prefix %v: not a canonical IPv4 or IPv6 prefix", r.Prefix)
	}
	if r.MaxLength < r.Prefix.Bits() || r.MaxLength > r.Prefix.Addr().BitLen() {
		return fmt.Errorf("ROA %v: maxLength %d outside %d..%d", r.Prefix, r.MaxLength, r.Prefix.Bits(), r.Prefix.Addr().BitLen())
	}
	v := vrp{maxLen: uint8(r.MaxLength), asn: r.ASN}
	ix.t.Modify(r.Prefix, func(vs []vrp, _ bool) ([]vrp, bool) {
		if !slices.Contains(vs, v) {
			vs = append(vs, v)
			ix.n++
		}
		return vs, false
	})
	return nil
}

// Len is the number of distinct ROAs (prefix, maxLength, asn).
func (ix *Index) Len() int { return ix.n }

// Validate is RFC 6811 route origin validation of a route for prefix
// originated by origin. A ROA covers the route when the route's prefix is
// its prefix or a more specific of it; it matches when it also has the
// origin and the route is no longer than its maxLength. Valid: some covering
// ROA matches. Invalid: covered, none matches (so a route more specific than
// maxLength is invalid, not unknown). NotFound: nothing covers it.
//
// AS0 ROAs (RFC 6483, 7607) cover but never match. Pass origin 0 when the
// origin cannot be determined (the AS_PATH ends in an AS_SET): such a route
// is never Valid, as RFC 6811 says for origin "NONE".
func (ix *Index) Validate(prefix netip.Prefix, origin uint32) State {
	if !prefix.IsValid() {
		return NotFound
	}
	prefix = prefix.Masked()
	bits := prefix.Bits()
	covered := false
	for _, vs := range ix.t.Supernets(prefix) {
		covered = true
		for _, v := range vs {
			if v.asn != 0 && v.asn == origin && bits <= int(v.maxLen) {
				return Valid
			}
		}
	}
	if covered {
		return Invalid
	}
	return NotFound
}
