package capture

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// FuzzFrame: any bytes as a captured frame, for both directions. A
// destination the decoder finds is the one in the frame: the IP header
// after the Ethernet header and its VLAN tags, of the family the EtherType
// names, and the router's MAC is the frame's own (destination or source).
// Classification agrees with the table: a match is the longest prefix
// holding the destination, an unmatched destination is in none.
func FuzzFrame(f *testing.F) {
	for _, o := range []frameOpts{
		{dst: "198.51.100.7", payload: 64},
		{dst: "2001:db8:100::1", vlans: []uint16{10}},
		{dst: "203.0.113.9", vlans: []uint16{100, 200}},
		{dst: "192.0.2.1", inner: "198.51.100.1"},
		{dst: "2001:db8::1", inner: "2001:db8:100::5"},
		{},
	} {
		f.Add(frame(f, o))
	}
	table := mustTable(f, "198.51.100.0/24", "198.51.100.0/25", "2001:db8:100::/48", "0.0.0.0/1", "2001:db8::/32")
	out, in := NewDecoderFor(Outgoing), NewDecoderFor(Incoming)
	f.Fuzz(func(t *testing.T, fr []byte) {
		orig := bytes.Clone(fr)
		want, ok := refDst(fr)
		for _, d := range []*Decoder{out, in} {
			mac, dst, malformed := d.Decode(fr)
			if dst.IsValid() {
				if !ok || dst != want {
					t.Fatalf("decoded %v, the frame's IP header says %v (%v)", dst, want, ok)
				}
				if !bytes.Equal(mac[:], fr[d.macOff:d.macOff+6]) {
					t.Fatalf("MAC %x is not the frame's %x", mac, fr[d.macOff:d.macOff+6])
				}
				if malformed {
					t.Fatal("a destination and malformed")
				}
			}
			c, _, p := d.Classify(fr, table)
			switch c {
			case Matched:
				lp, found := table.Lookup(dst)
				if !dst.IsValid() || !found || p != lp || !p.Contains(dst) {
					t.Fatalf("%v matched %v; the table's longest prefix is %v", dst, p, lp)
				}
			case Unmatched:
				if _, found := table.Lookup(dst); !dst.IsValid() || found {
					t.Fatalf("%v unmatched", dst)
				}
			case Malformed, NotIP:
				if dst.IsValid() {
					t.Fatalf("%v decoded but classified %v", dst, c)
				}
			default:
				t.Fatalf("class %v", c)
			}
		}
		if !bytes.Equal(fr, orig) {
			t.Fatal("decoding changed the frame")
		}
	})
}

// refDst reads the destination address of the first IP header of an
// Ethernet frame, after any 802.1Q/802.1ad tags, the plain way.
func refDst(fr []byte) (netip.Addr, bool) {
	if len(fr) < 14 {
		return netip.Addr{}, false
	}
	et, off := binary.BigEndian.Uint16(fr[12:]), 14
	for et == 0x8100 || et == 0x88a8 {
		if len(fr) < off+4 {
			return netip.Addr{}, false
		}
		et, off = binary.BigEndian.Uint16(fr[off+2:]), off+4
	}
	switch {
	case et == 0x0800 && len(fr) >= off+20:
		return netip.AddrFrom4([4]byte(fr[off+16 : off+20])), true
	case et == 0x86dd && len(fr) >= off+40:
		return netip.AddrFrom16([16]byte(fr[off+24 : off+40])), true
	}
	return netip.Addr{}, false
}
