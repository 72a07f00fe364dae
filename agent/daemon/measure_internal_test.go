package daemon

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bwxchange/bwx/agent/capture"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// TestSumFiguresByDirection: a trade's buyer figure adds only outgoing
// frames through the seller's MAC; its seller figure only incoming frames
// from the buyer's MAC; other prefixes and routers are left out.
func TestSumFiguresByDirection(t *testing.T) {
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	other := netip.MustParsePrefix("203.0.113.0/24")
	seller, buyer, third := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.HardwareAddr{2, 0, 0, 0, 0, 3}
	iv := capture.Interval{Figures: []capture.Figure{
		{Direction: capture.Outgoing, Prefix: p4, NextHop: seller, BitsPerSecond: 1000, Samples: 10},
		{Direction: capture.Outgoing, Prefix: p6, NextHop: seller, BitsPerSecond: 500, Samples: 5},
		{Direction: capture.Outgoing, Prefix: other, NextHop: seller, BitsPerSecond: 7, Samples: 1},
		{Direction: capture.Outgoing, Prefix: p4, NextHop: third, BitsPerSecond: 7, Samples: 1},
		{Direction: capture.Incoming, Prefix: p4, NextHop: buyer, BitsPerSecond: 900, Samples: 9},
		{Direction: capture.Incoming, Prefix: p6, NextHop: buyer, BitsPerSecond: 600, Samples: 6},
		{Direction: capture.Incoming, Prefix: p4, NextHop: third, BitsPerSecond: 7, Samples: 1},
		{Direction: capture.Incoming, Prefix: p4, NextHop: seller, BitsPerSecond: 7, Samples: 1},
	}}
	prefixes := map[netip.Prefix]bool{p4: true, p6: true}
	if bps, n := sumFigures(iv, capture.Outgoing, prefixes, map[[6]byte]bool{[6]byte(seller): true}); bps != 1500 || n != 15 {
		t.Errorf("buyer's figure %d bit/s from %d samples, want 1500 from 15", bps, n)
	}
	if bps, n := sumFigures(iv, capture.Incoming, prefixes, map[[6]byte]bool{[6]byte(buyer): true}); bps != 1500 || n != 15 {
		t.Errorf("seller's figure %d bit/s from %d samples, want 1500 from 15", bps, n)
	}
	if bps, n := sumFigures(iv, capture.Incoming, prefixes, map[[6]byte]bool{}); bps != 0 || n != 0 {
		t.Errorf("no buyer MAC resolved: %d bit/s from %d samples, want nothing", bps, n)
	}
}

// TestUsageRecordKey: the key names trade, interval and role, so the
// arbiter keeps one report per (trade, interval, reporter).
func TestUsageRecordKey(t *testing.T) {
	from := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	iv := capture.Interval{From: from, To: from.Add(5 * time.Minute)}
	r, ok := usageRecord(42, pb.ReporterRole_REPORTER_ROLE_SELLER, iv, 123, 4)
	if !ok || r.Key != "usage:42:1795654800000000:1795655100000000:seller" {
		t.Fatalf("key %q", r.Key)
	}
	var s pb.UsageSample
	if err := proto.Unmarshal(r.Payload, &s); err != nil {
		t.Fatal(err)
	}
	if s.IdempotencyKey != r.Key || s.TradeId != 42 || s.Role != pb.ReporterRole_REPORTER_ROLE_SELLER || s.BitsPerSecond != 123 ||
		s.SampleCount != 4 || !s.IntervalStart.AsTime().Equal(iv.From) || !s.IntervalEnd.AsTime().Equal(iv.To) {
		t.Errorf("sample %v", &s)
	}
	if b, _ := usageRecord(42, pb.ReporterRole_REPORTER_ROLE_BUYER, iv, 123, 4); b.Key == r.Key {
		t.Error("buyer and seller share a key")
	}
}

// The status's top destinations sum a prefix's next hops, leave incoming
// frames out, and put the busiest first, at most MaxTopDestinations.
func TestTopDestinations(t *testing.T) {
	hwA, hwB := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	iv := capture.Interval{Figures: []capture.Figure{
		{Prefix: p4, NextHop: hwA, BitsPerSecond: 300, Samples: 3},
		{Prefix: p4, NextHop: hwB, BitsPerSecond: 500, Samples: 5},
		{Prefix: p6, NextHop: hwA, BitsPerSecond: 900, Samples: 9},
		{Direction: capture.Incoming, Prefix: p4, NextHop: hwB, BitsPerSecond: 10_000, Samples: 100},
		{BitsPerSecond: 50, Samples: 1}, // unmatched
	}}
	for i := range 20 {
		iv.Figures = append(iv.Figures, capture.Figure{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), BitsPerSecond: 1})
	}
	top := topDestinations(iv)
	if len(top) != MaxTopDestinations {
		t.Fatalf("%d destinations, want %d", len(top), MaxTopDestinations)
	}
	if top[0].Prefix != p6 || top[0].BitsPerSecond != 900 || top[1].Prefix != p4 || top[1].BitsPerSecond != 800 || top[1].Samples != 8 ||
		len(top[1].NextHops) != 2 || top[2].Prefix.IsValid() || top[2].BitsPerSecond != 50 {
		t.Errorf("top %+v", top[:3])
	}
}
