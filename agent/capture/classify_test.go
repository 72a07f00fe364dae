package capture

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	macM = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x1}
)

// frameOpts describe a test frame.
type frameOpts struct {
	dst     string // destination IP
	mac     net.HardwareAddr
	vlans   []uint16
	payload int
	inner   string // an encapsulated packet's destination (IP-in-IP / 6in4)
}

// frame builds an Ethernet frame with a UDP packet (or an ARP request if
// o.dst is empty).
func frame(t testing.TB, o frameOpts) []byte {
	t.Helper()
	if o.mac == nil {
		o.mac = macA
	}
	eth := &layers.Ethernet{SrcMAC: macM, DstMAC: o.mac}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	prev := &eth.EthernetType
	for _, v := range o.vlans {
		tag := &layers.Dot1Q{VLANIdentifier: v}
		*prev = layers.EthernetTypeDot1Q
		prev = &tag.Type
		ls = append(ls, tag)
	}
	if o.dst == "" {
		*prev = layers.EthernetTypeARP
		ls = append(ls, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: macM, SourceProtAddress: []byte{192, 0, 2, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{192, 0, 2, 2}})
	} else {
		ls = append(ls, ipLayers(t, prev, o.dst, o.inner)...)
		udp := &layers.UDP{SrcPort: 4000, DstPort: 5000}
		ls = append(ls, udp, gopacket.Payload(make([]byte, o.payload)))
		for _, l := range ls {
			if nl, ok := l.(gopacket.NetworkLayer); ok {
				udp.SetNetworkLayerForChecksum(nl)
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ipLayers(t testing.TB, etype *layers.EthernetType, dst, inner string) []gopacket.SerializableLayer {
	var out []gopacket.SerializableLayer
	a := netip.MustParseAddr(dst)
	next := layers.IPProtocolUDP
	if inner != "" {
		if netip.MustParseAddr(inner).Is4() {
			next = layers.IPProtocolIPv4
		} else {
			next = layers.IPProtocolIPv6
		}
	}
	if a.Is4() {
		*etype = layers.EthernetTypeIPv4
		out = append(out, &layers.IPv4{Version: 4, TTL: 64, Protocol: next, SrcIP: net.IP{192, 0, 2, 1}, DstIP: a.AsSlice()})
	} else {
		*etype = layers.EthernetTypeIPv6
		out = append(out, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("2001:db8::1"), DstIP: a.AsSlice()})
	}
	if inner != "" {
		var dummy layers.EthernetType
		out = append(out, ipLayers(t, &dummy, inner, "")...)
	}
	return out
}

func mustTable(t testing.TB, ps ...string) *Table {
	t.Helper()
	var pp []netip.Prefix
	for _, p := range ps {
		pp = append(pp, netip.MustParsePrefix(p))
	}
	tb, err := NewTable(pp)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestClassify(t *testing.T) {
	tb := mustTable(t,
		"198.51.100.0/24", "198.51.100.128/25", "198.51.100.192/26",
		"203.0.113.0/24",
		"2001:db8:a::/48", "2001:db8:a:8000::/49",
		"0.0.0.0/0")
	noDefault := mustTable(t, "198.51.100.0/24", "2001:db8:a::/48")
	for _, tc := range []struct {
		name   string
		o      frameOpts
		tb     *Table
		class  Class
		prefix string
	}{
		{"ipv4", frameOpts{dst: "203.0.113.9"}, tb, Matched, "203.0.113.0/24"},
		{"ipv4 nested /24", frameOpts{dst: "198.51.100.5"}, tb, Matched, "198.51.100.0/24"},
		{"ipv4 nested /25", frameOpts{dst: "198.51.100.130"}, tb, Matched, "198.51.100.128/25"},
		{"ipv4 nested /26", frameOpts{dst: "198.51.100.200"}, tb, Matched, "198.51.100.192/26"},
		{"ipv4 default route", frameOpts{dst: "192.0.2.77"}, tb, Matched, "0.0.0.0/0"},
		{"ipv4 unmatched", frameOpts{dst: "192.0.2.77"}, noDefault, Unmatched, ""},
		{"ipv6", frameOpts{dst: "2001:db8:a::1"}, tb, Matched, "2001:db8:a::/48"},
		{"ipv6 nested", frameOpts{dst: "2001:db8:a:9000::1"}, tb, Matched, "2001:db8:a:8000::/49"},
		{"ipv6 unmatched (v4 default does not cover v6)", frameOpts{dst: "2001:db8:b::1"}, tb, Unmatched, ""},
		{"vlan ipv4", frameOpts{dst: "198.51.100.5", vlans: []uint16{100}}, tb, Matched, "198.51.100.0/24"},
		{"qinq ipv6", frameOpts{dst: "2001:db8:a::1", vlans: []uint16{100, 200}}, tb, Matched, "2001:db8:a::/48"},
		{"ip-in-ip counts the outer header", frameOpts{dst: "203.0.113.1", inner: "198.51.100.130"}, tb, Matched, "203.0.113.0/24"},
		{"6in4 counts the outer header", frameOpts{dst: "203.0.113.1", inner: "2001:db8:a::1"}, tb, Matched, "203.0.113.0/24"},
		{"arp is not ip", frameOpts{}, tb, NotIP, ""},
		{"vlan arp is not ip", frameOpts{vlans: []uint16{7}}, tb, NotIP, ""},
		{"nil table", frameOpts{dst: "198.51.100.5"}, nil, Unmatched, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.mac = macB
			d := NewDecoder()
			c, mac, p := d.Classify(frame(t, tc.o), tc.tb)
			if c != tc.class {
				t.Fatalf("class = %v, want %v", c, tc.class)
			}
			want := netip.Prefix{}
			if tc.prefix != "" {
				want = netip.MustParsePrefix(tc.prefix)
			}
			if p != want {
				t.Fatalf("prefix = %v, want %v", p, want)
			}
			if (c == Matched || c == Unmatched) && net.HardwareAddr(mac[:]).String() != macB.String() {
				t.Fatalf("next hop = %v, want %v", net.HardwareAddr(mac[:]), macB)
			}
		})
	}
}

func TestClassifyTruncatedAndMalformed(t *testing.T) {
	tb := mustTable(t, "198.51.100.0/24", "2001:db8:a::/48")
	d := NewDecoder()
	for _, dst := range []string{"198.51.100.1", "2001:db8:a::1"} {
		f := frame(t, frameOpts{dst: dst, payload: 1400})
		// A snap length of 128 keeps the headers: still classified.
		if c, _, _ := d.Classify(f[:128], tb); c != Matched {
			t.Errorf("%s truncated to 128 bytes: %v, want matched", dst, c)
		}
		// Cut inside the IP header: malformed, not silently not-IP.
		if c, _, _ := d.Classify(f[:14+10], tb); c != Malformed {
			t.Errorf("%s cut in the IP header: %v, want malformed", dst, c)
		}
	}
	if c, _, _ := d.Classify([]byte{1, 2, 3}, tb); c != NotIP {
		t.Errorf("3-byte frame: %v, want not_ip", c)
	}
	if c, _, _ := d.Classify(nil, tb); c != NotIP {
		t.Errorf("empty frame: %v, want not_ip", c)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	tb := mustTable(t, "198.51.100.0/24", "2001:db8:a::/48")
	d := NewDecoder()
	f4 := frame(t, frameOpts{dst: "198.51.100.1", vlans: []uint16{5}})
	f6 := frame(t, frameOpts{dst: "2001:db8:a::1"})
	if n := testing.AllocsPerRun(100, func() {
		d.Classify(f4, tb)
		d.Classify(f6, tb)
	}); n != 0 {
		t.Fatalf("Classify allocates %v times per run", n)
	}
}

func TestNewTableRefusesBadPrefixes(t *testing.T) {
	for _, tc := range []struct{ p, want string }{
		{"198.51.100.1/24", "host bits set (did you mean 198.51.100.0/24?)"},
		{"::ffff:198.51.100.0/120", "IPv4-mapped"},
	} {
		_, err := NewTable([]netip.Prefix{netip.MustParsePrefix(tc.p)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTable(%s) = %v, want %q", tc.p, err, tc.want)
		}
	}
	if _, err := NewTable([]netip.Prefix{{}}); err == nil {
		t.Error("NewTable with the zero prefix succeeded")
	}
	tb := mustTable(t, "198.51.100.0/24", "198.51.100.0/24", "2001:db8::/32")
	if tb.Len() != 2 {
		t.Errorf("Len = %d, want 2 (duplicates collapse)", tb.Len())
	}
	if p, ok := tb.Lookup(netip.MustParseAddr("2001:db8::5")); !ok || p.String() != "2001:db8::/32" {
		t.Errorf("Lookup = %v %v", p, ok)
	}
}
