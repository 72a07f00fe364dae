package rpki

import (
	"fmt"
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

// naive is RFC 6811 section 2 read literally, over a list.
func naive(roas []ROA, p netip.Prefix, origin uint32) State {
	state := NotFound
	for _, r := range roas {
		if r.Prefix.Addr().Is4() != p.Addr().Is4() || r.Prefix.Bits() > p.Bits() || !r.Prefix.Contains(p.Addr()) {
			continue // not covered
		}
		state = Invalid
		if r.ASN != 0 && r.ASN == origin && p.Bits() <= r.MaxLength {
			return Valid
		}
	}
	return state
}

// drawPrefix draws from a small space so that ROAs and routes overlap.
func drawPrefix(t *rapid.T, label string) netip.Prefix {
	if rapid.Bool().Draw(t, label+"v6") {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rapid.IntRange(0, 3).Draw(t, label+"b4")), byte(rapid.IntRange(0, 255).Draw(t, label+"b5"))})
		return netip.PrefixFrom(a, rapid.IntRange(30, 52).Draw(t, label+"len")).Masked()
	}
	a := netip.AddrFrom4([4]byte{192, 0, byte(rapid.IntRange(0, 3).Draw(t, label+"b2")), byte(rapid.IntRange(0, 255).Draw(t, label+"b3"))})
	return netip.PrefixFrom(a, rapid.IntRange(14, 28).Draw(t, label+"len")).Masked()
}

func TestValidateMatchesRFC6811(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var roas []ROA
		for i := range rapid.IntRange(0, 30).Draw(t, "n") {
			p := drawPrefix(t, fmt.Sprint("roa", i))
			ml := rapid.IntRange(p.Bits(), min(p.Bits()+8, p.Addr().BitLen())).Draw(t, fmt.Sprint("ml", i))
			roas = append(roas, ROA{Prefix: p, MaxLength: ml, ASN: uint32(rapid.IntRange(0, 4).Draw(t, fmt.Sprint("asn", i)))})
		}
		ix, err := NewIndex(roas)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 20 {
			p := drawPrefix(t, fmt.Sprint("route", j))
			origin := uint32(rapid.IntRange(0, 4).Draw(t, fmt.Sprint("origin", j)))
			if got, want := ix.Validate(p, origin), naive(roas, p, origin); got != want {
				t.Fatalf("Validate(%v, AS%d) = %v, RFC 6811 says %v; ROAs %v", p, origin, got, want, roas)
			}
		}
	})
}
