package capture

import (
	"fmt"
	"net/netip"
	"testing"
)

// TestTopAddresses: heavy hitters per prefix come out in order from
// several shards, a long tail of one-off addresses cannot push them out of
// the bounded slots, unmatched traffic is not tracked, and Reset forgets.
func TestTopAddresses(t *testing.T) {
	m, err := NewMeter(MeterConfig{Interval: 60e9, Since: at(0), TopAddresses: 3})
	if err != nil {
		t.Fatal(err)
	}
	m.SetTable(mustTable(t, "198.51.100.0/24", "2001:db8:a::/48"))
	s1, s2 := m.NewShard(), m.NewShard()
	send := func(s *Shard, dst string, n int) {
		f := frame(t, frameOpts{dst: dst, mac: macA})
		for range n {
			s.Count(f, at(1), 100)
		}
	}
	send(s1, "198.51.100.7", 50)
	send(s2, "198.51.100.7", 40) // 90 in all
	send(s1, "198.51.100.9", 60)
	send(s2, "198.51.100.3", 40)
	for i := range 200 { // a tail of one-offs between the heavy frames
		send(s1, fmt.Sprintf("198.51.100.%d", 100+i%150), 1)
		if i%10 == 0 {
			send(s1, "198.51.100.9", 1)
		}
	}
	send(s1, "2001:db8:a::1", 5)
	send(s1, "2001:db8:a::2", 7)
	send(s1, "192.0.2.1", 100) // in no prefix

	top := m.TopAddresses(3)
	if len(top) != 2 {
		t.Fatalf("prefixes %v, want 2", top)
	}
	v4 := top[netip.MustParsePrefix("198.51.100.0/24")]
	want := []string{"198.51.100.7", "198.51.100.9", "198.51.100.3"}
	if len(v4) != 3 {
		t.Fatalf("v4 top %v", v4)
	}
	// .7 has 90 (50+40), .9 80 (60+20, in s1 among the tail), .3 40.
	for i, w := range want {
		if v4[i].Addr.String() != w {
			t.Errorf("v4 top %v, want %v", v4, want)
			break
		}
	}
	if v4[0].Samples < 90 || v4[1].Samples < 80 || v4[2].Samples < 40 {
		t.Errorf("counts too low (Space-Saving never undercounts): %v", v4)
	}
	v6 := top[netip.MustParsePrefix("2001:db8:a::/48")]
	if len(v6) != 2 || v6[0] != (AddrCount{netip.MustParseAddr("2001:db8:a::2"), 7}) || v6[1].Samples != 5 {
		t.Errorf("v6 top %v", v6)
	}
	if got := m.TopAddresses(1); len(got[netip.MustParsePrefix("198.51.100.0/24")]) != 1 {
		t.Errorf("n=1: %v", got)
	}
	m.ResetTopAddresses()
	if got := m.TopAddresses(3); len(got) != 0 {
		t.Errorf("after reset: %v", got)
	}
	off, _ := NewMeter(MeterConfig{Interval: 60e9, Since: at(0)})
	if off.TopAddresses(3) != nil {
		t.Error("top addresses without TopAddresses configured")
	}
	if _, err := NewMeter(MeterConfig{TopAddresses: -1}); err == nil {
		t.Error("negative TopAddresses accepted")
	}
}
