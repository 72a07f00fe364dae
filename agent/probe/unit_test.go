package probe

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestSelectTargets(t *testing.T) {
	p4, p6, p9 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48"), netip.MustParsePrefix("203.0.113.0/24")
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	s1 := Seller{Name: "s1", ASN: 64501, ID: 1, NextHop4: a("192.0.2.1")}
	s2 := Seller{Name: "s2", ASN: 64502, ID: 2, NextHop4: a("192.0.2.2")}
	paths := []Path{{p4, s2, 2}, {p4, s1, 1}, {p6, s1, 3}, {p9, s1, 1}}
	configured := map[netip.Prefix][]netip.Addr{p4: {a("198.51.100.1")}}
	seen := map[netip.Prefix][]netip.Addr{
		p4: {a("198.51.100.1"), a("198.51.100.77"), a("198.51.100.5")},
		p6: {a("2001:db8:100::9"), a("2001:db8:999::1")}, // the second is outside
	}
	ts, missing, err := SelectTargets(paths, configured, seen, 2, PathsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, t := range ts {
		got = append(got, t.Addr.String()+"/"+t.Seller)
	}
	want := "198.51.100.1/s1 198.51.100.1/s2 198.51.100.77/s1 198.51.100.77/s2 2001:db8:100::9/s1"
	if strings.Join(got, " ") != want {
		t.Errorf("targets %v, want %s", got, want)
	}
	if ts[0].Mark != DefaultMarkBase+1 || ts[1].Mark != DefaultMarkBase+2 || ts[0].ASHops != 1 || ts[1].ASHops != 2 || ts[1].ASN != 64502 {
		t.Errorf("target fields: %+v %+v", ts[0], ts[1])
	}
	if len(missing) != 1 || missing[0] != p9 {
		t.Errorf("missing %v, want %v", missing, p9)
	}
	if err := CheckTargets(ts); err != nil {
		t.Error(err)
	}
	_, _, err = SelectTargets(paths, map[netip.Prefix][]netip.Addr{p4: {a("192.0.2.9")}}, nil, 1, PathsConfig{})
	if err == nil || !strings.Contains(err.Error(), "192.0.2.9 is not in its prefix 198.51.100.0/24") {
		t.Errorf("configured outside: %v", err)
	}
	if _, _, err := SelectTargets(paths, nil, nil, 0, PathsConfig{}); err == nil {
		t.Error("0 per prefix accepted")
	}
}

func TestCheckTargets(t *testing.T) {
	p := netip.MustParsePrefix("198.51.100.0/24")
	ok := Target{Addr: netip.MustParseAddr("198.51.100.1"), Prefix: p, Seller: "s"}
	for _, c := range []struct {
		mod  func(*Target)
		want string
	}{
		{func(t *Target) { t.Addr = netip.Addr{} }, "no address"},
		{func(t *Target) { t.Addr = netip.MustParseAddr("::ffff:198.51.100.1") }, "IPv4-mapped"},
		{func(t *Target) { t.Prefix = netip.Prefix{} }, "no prefix"},
		{func(t *Target) { t.Addr = netip.MustParseAddr("192.0.2.1") }, "not in its prefix"},
		{func(t *Target) { t.Seller = "" }, "no seller"},
		{func(t *Target) { t.ASHops = -1 }, "negative AS hops"},
	} {
		x := ok
		c.mod(&x)
		if err := CheckTargets([]Target{ok, x}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", x, err, c.want)
		}
	}
}

// TestSummarize checks the arithmetic on a hand-made round: per-target
// jitter pairs only (never across targets), loss over all requests,
// median hops, paths split by seller and prefix.
func TestSummarize(t *testing.T) {
	p := netip.MustParsePrefix("198.51.100.0/24")
	ms := time.Millisecond
	r := &round{
		start: time.Date(2026, 11, 26, 1, 0, 0, 0, time.FixedZone("x", 3600)),
		targets: []Target{
			{Addr: netip.MustParseAddr("198.51.100.2"), Prefix: p, Seller: "a", ASHops: 2},
			{Addr: netip.MustParseAddr("198.51.100.1"), Prefix: p, Seller: "a", ASHops: 2},
			{Addr: netip.MustParseAddr("198.51.100.1"), Prefix: p, Seller: "b"},
		},
		rtts: [][]time.Duration{{10 * ms, 14 * ms, -1, 12 * ms}, {20 * ms, -1, -1, -1}, {-1, -1, -1, -1}},
		ttls: [][]uint8{{60, 60, 0, 250}, {120, 0, 0, 0}, {0, 0, 0, 0}},
		sent: []int32{4, 4, 4},
	}
	got := summarize(r, 4)
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	a, b := got[0], got[1]
	// a: RTTs 10, 14, 12, 20 -> mean 14; jitter |14-10|, |12-14| = 3 (the
	// 20 of the other target pairs with nothing); loss 4 of 8.
	if a.Seller != "a" || a.Received != 4 || a.Sent != 8 || a.LatencyUs != 14000 || a.MinUs != 10000 || a.MaxUs != 20000 ||
		a.JitterUs != 3000 || a.LossPPM != 500_000 || a.ASHops != 2 || len(a.Targets) != 2 || a.Targets[0].String() != "198.51.100.1" {
		t.Errorf("a: %+v", a)
	}
	// hops: 64-60+1=5, 5, 255-250+1=6, 128-120+1=9 -> median of 5,5,6,9 = 6
	if a.IPHops != 6 {
		t.Errorf("a hops %d, want 6", a.IPHops)
	}
	if !a.At.Equal(r.start) || a.At.Location() != time.UTC {
		t.Errorf("At %v not the start in UTC", a.At)
	}
	if b.Seller != "b" || b.Received != 0 || b.LossPPM != 1_000_000 || b.LatencyUs != 0 || b.MinUs != 0 || b.IPHops != 0 || b.JitterUs != 0 {
		t.Errorf("b: %+v", b)
	}
}

func TestHopsFromTTL(t *testing.T) {
	for ttl, want := range map[uint8]int32{64: 1, 63: 2, 1: 64, 65: 64, 128: 1, 129: 127, 255: 1, 240: 16} {
		if got := hopsFromTTL(ttl); got != want {
			t.Errorf("ttl %d: %d hops, want %d", ttl, got, want)
		}
	}
}

func TestProberConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Count: -1}, "count -1"},
		{Config{Spacing: -1}, "spacing"},
		{Config{Timeout: -1}, "timeout"},
		{Config{TargetsPerMinute: -5}, "targets per minute -5"},
		{Config{TargetsPerMinute: 1_000_000, Count: 5, Timeout: time.Second}, "sequence space"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
