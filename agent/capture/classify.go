// Package capture measures the member's traffic: it samples frames on the
// exchange interfaces (AF_PACKET TPACKET_V3 with an in-kernel BPF filter
// that keeps one direction and samples 1 in N), classifies each by
// destination prefix (longest-prefix match) and the router on the other
// side of the link, and emits bits per second per (direction, prefix,
// router) for fixed intervals aligned to the wall clock (claim 7).
//
// Outgoing frames are the buyer's view: the router is the frame's
// destination MAC, the seller's router it was handed to. Incoming frames
// addressed to this host are the seller's view: the router is the source
// MAC, the buyer's router that sent it. Each direction has its own socket
// (gopacket does not report a frame's packet type), so a reader knows the
// direction of every frame it reads and the hot path is the same for both.
//
// The classification and accounting core (Table, Decoder, Meter) is pure
// and takes frames from memory; Capture is the live part on top of it.
package capture

import (
	"fmt"
	"net/netip"

	"github.com/gaissmai/bart"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// noPrefix is the index of "no prefix of the table".
const noPrefix = ^uint32(0)

// Table is an immutable set of destination prefixes (IPv4 and IPv6) for
// longest-prefix match. Build a new one when the prefixes change and give
// it to Meter.SetTable; readers never lock.
type Table struct {
	// The values are indexes into prefixes: a table without pointers in
	// its payload is faster to look up (and to scan for the GC) at 1M
	// prefixes.
	lpm      *bart.Table[uint32]
	prefixes []netip.Prefix
}

// NewTable builds a table of prefixes. Duplicates are fine; a prefix with
// host bits set, an IPv4-mapped IPv6 prefix or a zoned one is refused
// (with the prefix named), since it would not mean what the caller thinks.
func NewTable(prefixes []netip.Prefix) (*Table, error) {
	if uint64(len(prefixes)) >= uint64(noPrefix) {
		return nil, fmt.Errorf("capture: %d prefixes are too many", len(prefixes))
	}
	t := &Table{lpm: new(bart.Table[uint32])}
	for _, p := range prefixes {
		switch {
		case !p.IsValid():
			return nil, fmt.Errorf("capture: invalid prefix %v", p)
		case p.Addr().Is4In6():
			return nil, fmt.Errorf("capture: prefix %v is IPv4-mapped IPv6: give it as IPv4", p)
		case p.Addr().Zone() != "":
			return nil, fmt.Errorf("capture: prefix %v has a zone", p)
		case p.Masked() != p:
			return nil, fmt.Errorf("capture: prefix %v has host bits set (did you mean %v?)", p, p.Masked())
		}
		if _, dup := t.lpm.Get(p); dup {
			continue
		}
		t.lpm.Insert(p, uint32(len(t.prefixes)))
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

// Len is the number of distinct prefixes.
func (t *Table) Len() int { return len(t.prefixes) }

// Lookup returns the longest prefix of the table that holds a.
func (t *Table) Lookup(a netip.Addr) (netip.Prefix, bool) {
	i, ok := t.lpm.Lookup(a)
	if !ok {
		return netip.Prefix{}, false
	}
	return t.prefixes[i], true
}

// Decoder extracts the destination MAC and destination IP address from
// Ethernet frames (with any number of 802.1Q/802.1ad tags, IPv4 or IPv6).
// It does not allocate. A Decoder is not safe for concurrent use.
type Decoder struct {
	parser  *gopacket.DecodingLayerParser
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     lastIPv4
	ip6     lastIPv6
	decoded []gopacket.LayerType
	dst     netip.Addr // of the last frame classify saw
	// macOff is where in the frame the MAC reported is: 0, the
	// destination, or 6, the source (a reader of incoming frames: the
	// router that sent them).
	macOff int
}

// lastIPv4 and lastIPv6 end the parse at the first IP header: the one
// routed on this link (an inner one, IP-in-IP or 6in4, is not), and the
// transport layers are not needed.
type lastIPv4 struct{ layers.IPv4 }
type lastIPv6 struct{ layers.IPv6 }

func (*lastIPv4) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }
func (*lastIPv6) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

// NewDecoderFor returns a Decoder for frames of direction dir: it reports
// the destination MAC of outgoing frames and the source MAC of incoming
// ones, the router on the other side of the link either way.
func NewDecoderFor(dir Direction) *Decoder {
	d := NewDecoder()
	if dir == Incoming {
		d.macOff = 6
	}
	return d
}

// NewDecoder returns a Decoder of outgoing frames.
func NewDecoder() *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 8)}
	d.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	// A sparse slice indexed by layer type beats the default map.
	d.parser.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range []gopacket.DecodingLayer{&d.eth, &d.dot1q, &d.ip4, &d.ip6} {
		d.parser.AddDecodingLayer(l)
	}
	d.parser.IgnoreUnsupported = true
	return d
}

// Class is what a frame turned out to be.
type Class uint8

// Classes of frames.
const (
	// NotIP: a frame without an IPv4 or IPv6 packet (ARP, LLDP...). Ignored.
	NotIP Class = iota
	// Malformed: an IP packet whose header could not be decoded. Ignored.
	Malformed
	// Unmatched: an IP packet toward a destination in no prefix of the
	// table; counted under the zero prefix.
	Unmatched
	// Matched: an IP packet toward one of the table's prefixes.
	Matched
)

var classNames = [...]string{"not_ip", "malformed", "unmatched", "matched"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", c)
}

// Decode returns the frame's destination MAC (the source MAC for a
// Decoder of incoming frames, see NewDecoderFor) and its IP destination. dst
// is invalid for frames that carry no IP packet, and then malformed tells
// whether the frame announced IPv4 or IPv6 whose header could not be
// decoded. Truncated frames (a short snap length) decode as long as the IP
// header is whole.
func (d *Decoder) Decode(frame []byte) (mac [6]byte, dst netip.Addr, malformed bool) {
	err := d.parser.DecodeLayers(frame, &d.decoded)
	if n := len(d.decoded); n > 0 {
		switch d.decoded[n-1] {
		case layers.LayerTypeIPv4:
			if len(d.ip4.DstIP) == 4 {
				dst = netip.AddrFrom4([4]byte(d.ip4.DstIP))
			}
		case layers.LayerTypeIPv6:
			if len(d.ip6.DstIP) == 16 {
				dst = netip.AddrFrom16([16]byte(d.ip6.DstIP))
			}
		}
	}
	if !dst.IsValid() && err != nil && len(d.decoded) > 0 {
		switch d.decoded[len(d.decoded)-1] {
		case layers.LayerTypeEthernet:
			malformed = ipEtherType(d.eth.EthernetType)
		case layers.LayerTypeDot1Q:
			malformed = ipEtherType(d.dot1q.Type)
		}
	}
	if dst.IsValid() {
		// The frame starts with its Ethernet header: destination MAC at
		// 0, source at 6 (no branch on the hot path).
		copy(mac[:], frame[d.macOff:d.macOff+6])
	}
	return mac, dst, malformed
}

func ipEtherType(t layers.EthernetType) bool {
	return t == layers.EthernetTypeIPv4 || t == layers.EthernetTypeIPv6
}

// Classify decodes frame and looks its destination up in t (which may be
// nil: everything IP is then unmatched). p is the longest matching prefix
// for Matched frames.
func (d *Decoder) Classify(frame []byte, t *Table) (c Class, mac [6]byte, p netip.Prefix) {
	c, mac, i := d.classify(frame, t)
	if c == Matched {
		p = t.prefixes[i]
	}
	return c, mac, p
}

// classify returns the index of the matching prefix in t.
func (d *Decoder) classify(frame []byte, t *Table) (Class, [6]byte, uint32) {
	mac, dst, bad := d.Decode(frame)
	d.dst = dst
	switch {
	case dst.IsValid():
	case bad:
		return Malformed, mac, noPrefix
	default:
		return NotIP, mac, noPrefix
	}
	if t != nil {
		if i, ok := t.lpm.Lookup(dst); ok {
			return Matched, mac, i
		}
	}
	return Unmatched, mac, noPrefix
}
