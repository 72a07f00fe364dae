package quality

import (
	"net/netip"
	"testing"
	"time"
)

var (
	t0   = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func sellers() []Seller {
	return []Seller{
		{ASN: 64501, NextHop4: addr("192.0.2.1"), NextHop6: addr("2001:db8::1"),
			Prefixes: []netip.Prefix{pfx("198.51.100.0/24"), pfx("2001:db8:100::/48")},
			ASHops:   map[netip.Prefix]int32{pfx("198.51.100.0/24"): 2}},
		{ASN: 64502, NextHop4: addr("192.0.2.2"), // no IPv6 router
			Prefixes: []netip.Prefix{pfx("203.0.113.0/24"), pfx("2001:db8:200::/48")}},
		{ASN: 64503, NextHop4: addr("192.0.2.3"), NextHop6: addr("2001:db8::3"), Prefixes: []netip.Prefix{pfx("198.18.0.0/15")}},
	}
}

func TestPlannerRouteAnalysisOfEveryPath(t *testing.T) {
	p := &Planner{Revalidate: time.Hour, Retry: 5 * time.Minute}
	none := func(Path) time.Time { return time.Time{} }
	got := p.Due(64503, sellers(), none, t0)
	// The vantage's own prefixes are skipped, and so is an IPv6 prefix whose
	// seller has no IPv6 router.
	want := map[Path]netip.Addr{
		{64503, 64501, pfx("198.51.100.0/24")}:   addr("192.0.2.1"),
		{64503, 64501, pfx("2001:db8:100::/48")}: addr("2001:db8::1"),
		{64503, 64502, pfx("203.0.113.0/24")}:    addr("192.0.2.2"),
	}
	if len(got) != len(want) {
		t.Fatalf("got %d tasks %+v, want %d", len(got), got, len(want))
	}
	for _, task := range got {
		nh, ok := want[task.Path]
		if !ok || task.NextHop != nh || !task.Never {
			t.Errorf("unexpected task %+v", task)
		}
		if wantHops := map[bool]int32{true: 2}[task.Prefix == pfx("198.51.100.0/24")]; task.ASHops != wantHops {
			t.Errorf("task %v: AS hops %d, want %d (the seller's announced path; 0 unknown)", task.Path, task.ASHops, wantHops)
		}
		if len(task.Targets) != 1 || !task.Prefix.Contains(task.Targets[0]) {
			t.Errorf("task %v: target %v not inside the prefix", task.Path, task.Targets)
		}
	}
	// Handed out: not again before Retry, again after it if no result came.
	if again := p.Due(64503, sellers(), none, t0.Add(time.Minute)); len(again) != 0 {
		t.Errorf("tasks repeated within Retry: %+v", again)
	}
	if again := p.Due(64503, sellers(), none, t0.Add(6*time.Minute)); len(again) != 3 {
		t.Errorf("after Retry without results: %d tasks, want 3", len(again))
	}
}

func TestPlannerRevalidatesStalestFirst(t *testing.T) {
	p := &Planner{Revalidate: time.Hour, Retry: 5 * time.Minute, MaxPerRound: 2}
	last := map[Path]time.Time{
		{64503, 64501, pfx("198.51.100.0/24")}:   t0.Add(-30 * time.Minute), // fresh
		{64503, 64501, pfx("2001:db8:100::/48")}: t0.Add(-3 * time.Hour),    // stale
		{64503, 64502, pfx("203.0.113.0/24")}:    t0.Add(-2 * time.Hour),    // stale, less so
	}
	got := p.Due(64503, sellers(), func(k Path) time.Time { return last[k] }, t0)
	if len(got) != 2 || got[0].Prefix != pfx("2001:db8:100::/48") || got[1].Prefix != pfx("203.0.113.0/24") || got[0].Never {
		t.Fatalf("want the two stale paths, stalest first: %+v", got)
	}
	// A new member's never-measured prefix goes before revalidations.
	p2 := &Planner{Revalidate: time.Hour, Retry: 5 * time.Minute, MaxPerRound: 1}
	ss := append(sellers(), Seller{ASN: 64504, NextHop4: addr("192.0.2.4"), Prefixes: []netip.Prefix{pfx("100.64.0.0/10")}})
	got = p2.Due(64503, ss, func(k Path) time.Time { return last[k] }, t0)
	if len(got) != 1 || got[0].Via != 64504 || !got[0].Never {
		t.Fatalf("want the new member's path first: %+v", got)
	}
}

func TestDefaultTarget(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.0/24": "198.51.100.1", "198.51.100.77/24": "198.51.100.1",
		"2001:db8:100::/48": "2001:db8:100::1", "192.0.2.9/32": "192.0.2.9",
	} {
		if got := DefaultTarget(pfx(in)); got != addr(want) {
			t.Errorf("DefaultTarget(%s) = %v, want %s", in, got, want)
		}
	}
}
