package fib

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// desiredSet is routes of both families, one of each ECMP.
func desiredSet() []Route {
	return []Route{
		r4("198.51.100.0/24", 2),
		r4("203.0.113.0/25", 2, 3),
		r4("0.0.0.0/0", 4),
		r6("2001:db8:100::/48", 2),
		r6("2001:db8:200::/48", 2, 3),
	}
}

func TestSyncInstallsIPv4AndIPv6(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		table int
		plain bool // IPv6 routes without next-hop objects (old kernels)
	}{{0, false}, {100, false}, {1000, false}, {0, true}} {
		table := tc.table
		name := "table" + strconv.Itoa(table)
		if tc.plain {
			name += "-plainIPv6"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := member(t)
			var opts []Option
			if tc.plain {
				opts = append(opts, withPlainIPv6())
			}
			f := newFIB(t, h, Config{Table: table}, opts...)
			shown := table
			if table == 0 {
				shown = unix.RT_TABLE_MAIN
			}
			// Plus a link-local next hop, as IPv6 BGP sessions may give.
			desired := append(desiredSet(), Route{Prefix: netip.MustParsePrefix("2001:db8:500::/48"),
				NextHops: []netip.Addr{netip.MustParseAddr("fe80::2")}})
			res := mustSync(t, f, desired...)
			if len(res.Added) != len(desired) || res.Changes() != len(desired) || len(res.Refused) != 0 {
				t.Fatalf("first Sync: %+v", res)
			}
			equalLines(t, "ip route show proto "+strconv.Itoa(DefaultProtocol), ourRoutesShown(t, h, shown), routeLines(desired))
			actual, err := f.Actual()
			if err != nil {
				t.Fatal(err)
			}
			equalLines(t, "Actual", routeLines(actual), routeLines(desired))
			// The kernel has them with our protocol, table and metric.
			if out := ip(t, h, "-6", "route", "show", "2001:db8:100::/48", "table", strconv.Itoa(shown)); !strings.Contains(out, "proto 239 metric 10") {
				t.Errorf("ip -6 route show: %q lacks proto 239 metric 10", out)
			} else if strings.Contains(out, "nhid") == tc.plain {
				t.Errorf("ip -6 route show: %q: want next-hop group %v", out, !tc.plain)
			}
			// A group and its members per IPv6 route: 2+3+2.
			if got, want := len(ourNexthops(t, h)), map[bool]int{false: 7, true: 0}[tc.plain]; got != want {
				t.Errorf("%d next-hop objects of ours, want %d: %q", got, want, ourNexthops(t, h))
			}

			res = mustSync(t, f, desired...)
			if res.Changes() != 0 {
				t.Errorf("second Sync of the same state changed %+v", res)
			}
			missing, extra, err := f.Diff()
			if err != nil || len(missing)+len(extra) != 0 {
				t.Errorf("Diff after Sync: missing %v extra %v err %v", missing, extra, err)
			}
			st := f.Stats()
			if st.Syncs != 2 || st.Installs != uint64(len(desired)) || st.Errors != 0 {
				t.Errorf("Stats: %+v", st)
			}
		})
	}
}

// handAdded adds routes of other protocols, including ones for the same
// prefixes as ours (at another metric, and at ours) and a boot default,
// and next-hop objects of others: one a route uses, and two with the
// first ids of our protocol's range.
func handAdded(t *testing.T, h *labnet.Host) {
	for _, args := range [][]string{
		{"nexthop", "add", "id", "77", "via", "2001:db8::9", "dev", "eth0"},
		{"nexthop", "add", "id", strconv.Itoa(DefaultProtocol << 24), "via", "2001:db8::9", "dev", "eth0", "proto", "static"},
		{"nexthop", "add", "id", strconv.Itoa(DefaultProtocol<<24 + 1), "group", "77", "proto", "static"},
		{"-6", "route", "add", "2001:db8:700::/48", "nhid", "77", "proto", "static"},
		{"-4", "route", "add", "default", "via", "192.0.2.254", "proto", "boot"},
		{"-4", "route", "add", "198.51.100.0/24", "via", "192.0.2.9", "proto", "static"}, // metric 0
		{"-4", "route", "add", "203.0.113.0/24", "via", "192.0.2.9", "proto", "static", "metric", "10"},
		{"-4", "route", "add", "192.0.2.128/25", "via", "192.0.2.9", "proto", "bird", "table", "100"},
		{"-6", "route", "add", "2001:db8:100::/48", "via", "2001:db8::9", "proto", "static"}, // metric 1024
		{"-6", "route", "add", "2001:db8:300::/48", "via", "2001:db8::9", "proto", "static", "metric", "10"},
		{"-6", "route", "add", "default", "via", "2001:db8::254", "proto", "boot"},
	} {
		ip(t, h, args...)
	}
}

func TestForeignRoutesUntouched(t *testing.T) {
	t.Parallel()
	h := member(t)
	handAdded(t, h)
	before := foreignRoutes(t, h)
	f := newFIB(t, h, Config{})

	desired := []Route{
		r4("198.51.100.0/24", 2),   // beside static metric 0
		r4("203.0.113.0/24", 2),    // static holds metric 10: conflict
		r6("2001:db8:100::/48", 2), // beside static metric 1024
		r6("2001:db8:300::/48", 2), // static holds metric 10: conflict
		r4("192.0.2.128/25", 3),    // bird's in table 100, ours in main
	}
	res := mustSync(t, f, desired...)
	equalLines(t, "added", routeLines(res.Added), routeLines([]Route{desired[0], desired[2], desired[4]}))
	var conflicts []string
	for _, r := range res.Refused {
		if r.Reason == ReasonConflict {
			conflicts = append(conflicts, r.Prefix.String())
		}
	}
	slices.Sort(conflicts)
	equalLines(t, "conflicts", conflicts, []string{"2001:db8:300::/48", "203.0.113.0/24"})
	if f.Stats().Refusals != 2 {
		t.Errorf("refusals counted %d, want 2", f.Stats().Refusals)
	}
	equalLines(t, "ours", ourRoutesShown(t, h, unix.RT_TABLE_MAIN), routeLines([]Route{desired[0], desired[2], desired[4]}))
	if got := foreignRoutes(t, h); got != before {
		t.Errorf("Sync changed foreign routes:\nbefore\n%s\nafter\n%s", before, got)
	}
	// The refused IPv6 route's next-hop objects went with it.
	if got := ourNexthops(t, h); len(got) != 2 {
		t.Errorf("next-hop objects of ours: %q, want 2001:db8:100::/48's group and member", got)
	}

	// A refused route is retried, and refused again, on every Sync.
	res = mustSync(t, f, desired...)
	if res.Changes() != 0 || len(res.Refused) != 2 {
		t.Errorf("second Sync: %+v", res)
	}

	// Removal: only ours go.
	res = mustSync(t, f)
	if len(res.Removed) != 3 {
		t.Errorf("Sync(nothing) removed %v, want our 3", res.Removed)
	}
	if got := ourRoutesShown(t, h, unix.RT_TABLE_MAIN); len(got) != 0 {
		t.Errorf("ours left: %v", got)
	}
	if got := ourNexthops(t, h); len(got) != 0 {
		t.Errorf("next-hop objects of ours left: %q", got)
	}
	if got := foreignRoutes(t, h); got != before {
		t.Errorf("removal changed foreign routes:\nbefore\n%s\nafter\n%s", before, got)
	}

	// Close: only ours go.
	mustSync(t, f, desired...)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ourRoutesShown(t, h, unix.RT_TABLE_MAIN); len(got) != 0 {
		t.Errorf("ours left after Close: %v", got)
	}
	if got := ourNexthops(t, h); len(got) != 0 {
		t.Errorf("next-hop objects of ours left after Close: %q", got)
	}
	if got := foreignRoutes(t, h); got != before {
		t.Errorf("Close changed foreign routes:\nbefore\n%s\nafter\n%s", before, got)
	}
	if _, err := f.Sync(desired); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
}

func TestAdoptAfterRestart(t *testing.T) {
	t.Parallel()
	h := member(t)
	desired := desiredSet()
	first := newFIB(t, h, Config{Table: 100, KeepOnStop: true})
	mustSync(t, first, desired...)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "kept after Close with KeepOnStop", ourRoutesShown(t, h, 100), routeLines(desired))

	second := newFIB(t, h, Config{Table: 100})
	res := mustSync(t, second, desired...)
	if res.Changes() != 0 {
		t.Fatalf("restart with the same state changed %+v", res)
	}

	// Now a changed state: one removed, one changed, one added.
	next := []Route{
		desired[0],
		r4("203.0.113.0/25", 3), // was .2,.3
		desired[2],
		desired[3],
		r6("2001:db8:400::/48", 3), // new; 2001:db8:200::/48 dropped
	}
	missing, extra, err := second.Diff()
	if err != nil {
		t.Fatal(err)
	}
	// Diff compares with the last Sync (desired): nothing.
	if len(missing)+len(extra) != 0 {
		t.Errorf("Diff: missing %v extra %v", missing, extra)
	}
	res = mustSync(t, second, next...)
	equalLines(t, "added", routeLines(res.Added), routeLines([]Route{next[4]}))
	equalLines(t, "removed", routeLines(res.Removed), routeLines([]Route{desired[4]}))
	if len(res.Changed) != 1 || res.Changed[0].New.String() != next[1].String() || res.Changed[0].Old.String() != "203.0.113.0/25 via 192.0.2.2,192.0.2.3" {
		t.Errorf("changed: %+v", res.Changed)
	}
	equalLines(t, "after change", ourRoutesShown(t, h, 100), routeLines(next))

	// A FIB with another metric adopts the routes by moving them.
	third := newFIB(t, h, Config{Table: 100, Metric: 50})
	res = mustSync(t, third, next...)
	if len(res.Added) != len(next) || len(res.Removed) != len(next) {
		t.Errorf("metric change: %+v", res)
	}
	if out := ip(t, h, "-4", "route", "show", "table", "100", "proto", "239"); strings.Contains(out, "metric 10") || !strings.Contains(out, "metric 50") {
		t.Errorf("after metric change:\n%s", out)
	}
}

// TestAdoptPlainIPv6 starts from routes a FIB without next-hop objects
// left (an older kernel or version): the first Sync moves each IPv6 route
// onto a group of its own with one replace, keeps IPv4 as it is, and the
// next Sync has nothing to do. A FIB without next-hop objects adopts
// those routes as they are.
func TestAdoptPlainIPv6(t *testing.T) {
	t.Parallel()
	h := member(t)
	desired := desiredSet()
	old := newFIB(t, h, Config{KeepOnStop: true}, withPlainIPv6())
	mustSync(t, old, desired...)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if out := ip(t, h, "-6", "route", "show", "proto", "239"); strings.Contains(out, "nhid") {
		t.Fatalf("plain FIB made next-hop groups:\n%s", out)
	}

	f := newFIB(t, h, Config{KeepOnStop: true})
	res := mustSync(t, f, desired...)
	var changed []Route
	for _, c := range res.Changed {
		if c.Old.String() != c.New.String() {
			t.Errorf("changed %v to %v, want the same next hops", c.Old, c.New)
		}
		changed = append(changed, c.New)
	}
	equalLines(t, "changed", routeLines(changed), routeLines(desired[3:]))
	if res.Changes() != 2 {
		t.Errorf("adoption did more than move the IPv6 routes: %+v", res)
	}
	equalLines(t, "routes", ourRoutesShown(t, h, unix.RT_TABLE_MAIN), routeLines(desired))
	if out := ip(t, h, "-6", "route", "show", "proto", "239"); strings.Count(out, "nhid") != 2 {
		t.Errorf("IPv6 routes not on next-hop groups:\n%s", out)
	}
	if got := ourNexthops(t, h); len(got) != 5 {
		t.Errorf("next-hop objects of ours: %q, want 5", got)
	}
	if res := mustSync(t, f, desired...); res.Changes() != 0 {
		t.Errorf("second Sync changed %+v", res)
	}
	f.Close()

	plain := newFIB(t, h, Config{}, withPlainIPv6())
	if res := mustSync(t, plain, desired...); res.Changes() != 0 {
		t.Errorf("a FIB without next-hop objects changed %+v", res)
	}
}

func TestCloseKeepOnStop(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run("keep="+strconv.FormatBool(keep), func(t *testing.T) {
			t.Parallel()
			h := member(t)
			handAdded(t, h)
			before := foreignRoutes(t, h)
			f := newFIB(t, h, Config{KeepOnStop: keep})
			desired := desiredSet()[:2]
			desired = append(desired, r6("2001:db8:200::/48", 2, 3))
			mustSync(t, f, desired...)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			var want []string
			wantNH := 0
			if keep {
				want = routeLines(desired)
				wantNH = 3 // the IPv6 route's group of two
			}
			equalLines(t, "ours after Close", ourRoutesShown(t, h, unix.RT_TABLE_MAIN), want)
			if got := ourNexthops(t, h); len(got) != wantNH {
				t.Errorf("next-hop objects of ours after Close: %q, want %d", got, wantNH)
			}
			if got := foreignRoutes(t, h); got != before {
				t.Errorf("Close changed foreign routes:\nbefore\n%s\nafter\n%s", before, got)
			}
		})
	}
}

func TestRefusesUnusableNextHops(t *testing.T) {
	t.Parallel()
	h := member(t)
	// A neighbor that never answers goes FAILED after one probe of 50ms.
	for _, kv := range [][2]string{
		{"net.ipv4.neigh.eth0.mcast_solicit", "1"}, {"net.ipv4.neigh.eth0.retrans_time_ms", "50"},
		{"net.ipv6.neigh.eth0.mcast_solicit", "1"}, {"net.ipv6.neigh.eth0.retrans_time_ms", "50"},
	} {
		if err := h.SetSysctl(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	nh := handleIn(t, h)
	silent4, silent6 := lanAddr4(77), lanAddr6(77)
	for _, a := range []netip.Addr{silent4, silent6} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		h.Ping(ctx, a) // fails: nobody there
		cancel()
		eventually(t, "FAILED neighbor "+a.String(), func() bool {
			ns, err := nh.NeighList(0, netlink.FAMILY_ALL)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ns {
				if n.IP.Equal(a.AsSlice()) && n.State&unix.NUD_FAILED != 0 {
					return true
				}
			}
			return false
		})
	}

	f := newFIB(t, h, Config{})
	offLink4 := netip.MustParseAddr("203.0.113.1")
	offLink6 := netip.MustParseAddr("2001:db8:ffff::1")
	desired := []Route{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHops: []netip.Addr{offLink4}},
		{Prefix: netip.MustParsePrefix("198.51.100.0/25"), NextHops: []netip.Addr{lanAddr4(1)}}, // own
		{Prefix: netip.MustParsePrefix("198.51.100.128/25"), NextHops: []netip.Addr{silent4}},
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), NextHops: []netip.Addr{lanAddr4(2), offLink4}},
		{Prefix: netip.MustParsePrefix("2001:db8:100::/48"), NextHops: []netip.Addr{offLink6}},
		{Prefix: netip.MustParsePrefix("2001:db8:200::/48"), NextHops: []netip.Addr{silent6, lanAddr6(3)}},
	}
	res := mustSync(t, f, desired...)
	got := map[string]Reason{}
	for _, r := range res.Refused {
		k := r.Prefix.String()
		if r.NextHop.IsValid() {
			k += " " + r.NextHop.String()
		}
		got[k] = r.Reason
		if r.Detail == "" {
			t.Errorf("refusal without detail: %+v", r)
		}
	}
	want := map[string]Reason{
		"198.51.100.0/24 203.0.113.1":        ReasonOffLink,
		"198.51.100.0/24":                    ReasonNoNextHop,
		"198.51.100.0/25 192.0.2.1":          ReasonOwnAddress,
		"198.51.100.0/25":                    ReasonNoNextHop,
		"198.51.100.128/25 192.0.2.77":       ReasonNeighborFailed,
		"198.51.100.128/25":                  ReasonNoNextHop,
		"203.0.113.0/24 203.0.113.1":         ReasonOffLink,
		"2001:db8:100::/48 2001:db8:ffff::1": ReasonOffLink,
		"2001:db8:100::/48":                  ReasonNoNextHop,
		"2001:db8:200::/48 2001:db8::4d":     ReasonNeighborFailed,
	}
	if len(got) != len(want) {
		t.Errorf("refused %v, want %v", got, want)
	}
	for k, r := range want {
		if got[k] != r {
			t.Errorf("refusal %s: %q, want %q", k, got[k], r)
		}
	}
	// Only the usable next hops are installed.
	equalLines(t, "installed", ourRoutesShown(t, h, unix.RT_TABLE_MAIN), routeLines([]Route{
		r4("203.0.113.0/24", 2), r6("2001:db8:200::/48", 3),
	}))
}

func TestNextHopDown(t *testing.T) {
	t.Parallel()
	h := member(t)
	f := newFIB(t, h, Config{})
	a4, b4, a6, b6 := lanAddr4(2), lanAddr4(3), lanAddr6(2), lanAddr6(3)
	desired := []Route{r4("198.51.100.0/24", 2, 3), r4("203.0.113.0/24", 3), r6("2001:db8:100::/48", 2, 3)}
	mustSync(t, f, desired...)

	step := func(addr netip.Addr, down bool, want ...Route) {
		t.Helper()
		if _, err := f.SetNextHopDown(addr, down); err != nil {
			t.Fatal(err)
		}
		equalLines(t, "after marking "+addr.String()+" down="+strconv.FormatBool(down), ourRoutesShown(t, h, unix.RT_TABLE_MAIN), routeLines(want))
	}
	step(a4, true, r4("198.51.100.0/24", 3), r4("203.0.113.0/24", 3), desired[2])
	step(b4, true, desired[2]) // every IPv4 next hop down: both IPv4 routes go
	step(a6, true, r6("2001:db8:100::/48", 3))
	step(a4, false, r4("198.51.100.0/24", 2), r6("2001:db8:100::/48", 3))
	step(b4, false, r4("198.51.100.0/24", 2, 3), r4("203.0.113.0/24", 3), r6("2001:db8:100::/48", 3))
	step(b6, true, r4("198.51.100.0/24", 2, 3), r4("203.0.113.0/24", 3))
	step(a6, false, desired[0], desired[1], r6("2001:db8:100::/48", 2))
	step(b6, false, desired...)

	// Marks survive a new desired state.
	f.SetNextHopDown(b4, true)
	res := mustSync(t, f, r4("192.0.2.128/25", 3))
	if len(res.Refused) != 2 || res.Refused[0].Reason != ReasonDown {
		t.Errorf("refused %+v", res.Refused)
	}
}

func TestWatchRepairs(t *testing.T) {
	t.Parallel()
	h := member(t)
	f := newFIB(t, h, Config{Table: 100})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.Watch(ctx); err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })

	desired := desiredSet()
	mustSync(t, f, desired...)
	want := routeLines(desired)
	restored := func(what string) {
		t.Helper()
		eventually(t, what+" repaired", func() bool {
			got := ourRoutesShown(t, h, 100)
			return strings.Join(got, "|") == strings.Join(want, "|")
		})
	}

	ip(t, h, "-4", "route", "del", "198.51.100.0/24", "table", "100")
	restored("deleted IPv4 route")
	ip(t, h, "-6", "route", "del", "2001:db8:200::/48", "table", "100")
	restored("deleted IPv6 ECMP route")
	// The repair made the route a new group; the old one went.
	nexthops := func() int { return len(ourNexthops(t, h)) }
	eventually(t, "5 next-hop objects of ours", func() bool { return nexthops() == 5 })
	// Our objects deleted by hand: a member (the group shrinks), then a
	// group (the kernel deletes the route with it).
	group := func(pfx string) (id string, members []string) {
		f := strings.Fields(ip(t, h, "-6", "route", "show", pfx, "table", "100"))
		if i := slices.Index(f, "nhid"); i >= 0 && i+1 < len(f) {
			id = f[i+1]
		}
		for _, line := range ourNexthops(t, h) {
			if g := strings.Fields(line); len(g) >= 4 && g[1] == id && g[2] == "group" {
				members = strings.Split(g[3], "/")
			}
		}
		return id, members
	}
	_, members := group("2001:db8:200::/48")
	if len(members) != 2 {
		t.Fatalf("group of 2001:db8:200::/48 has members %v", members)
	}
	ip(t, h, "nexthop", "del", "id", members[0])
	restored("next-hop object deleted from a group")
	id, _ := group("2001:db8:100::/48")
	ip(t, h, "nexthop", "del", "id", id)
	restored("next-hop group deleted")
	eventually(t, "5 next-hop objects of ours", func() bool { return nexthops() == 5 })
	ip(t, h, "-4", "route", "replace", "203.0.113.0/25", "via", "192.0.2.9", "table", "100", "proto", "239", "metric", "10")
	restored("changed IPv4 route")
	ip(t, h, "-4", "route", "add", "192.0.2.128/25", "via", "192.0.2.9", "table", "100", "proto", "239")
	restored("IPv4 route added with our protocol")
	// Routes are back before their repair is counted.
	eventually(t, "6 repairs counted", func() bool { return f.Stats().Repairs >= 6 })

	// A hand route replacing ours at our key is never written over:
	// the repair sees the conflict and leaves it.
	syncs := f.Stats().Syncs
	ip(t, h, "-4", "route", "replace", "198.51.100.0/24", "via", "192.0.2.9", "table", "100", "proto", "static", "metric", "10")
	eventually(t, "a repair after the hand replace", func() bool { return f.Stats().Syncs > syncs })
	// Diff waits for the repair under way.
	missing, _, err := f.Diff()
	if err != nil || len(missing) != 1 || missing[0].Prefix.String() != "198.51.100.0/24" {
		t.Errorf("Diff: missing %v, err %v", missing, err)
	}
	out := ip(t, h, "-4", "route", "show", "198.51.100.0/24", "table", "100")
	if !strings.Contains(out, "via 192.0.2.9") || !strings.Contains(out, "proto static") || strings.Contains(out, "proto 239") {
		t.Errorf("hand route written over:\n%s", out)
	}

	// When the hand route goes, ours comes back.
	ip(t, h, "-4", "route", "del", "198.51.100.0/24", "table", "100", "proto", "static")
	restored("route after the conflicting hand route went")

	// The exchange interface goes down: the kernel drops our routes
	// (without telling); the link event makes Watch notice and refuse
	// them. Up again: the IPv4 ones come back at once (the IPv6
	// addresses went with the link, so those stay refused).
	refusals := f.Stats().Refusals
	ip(t, h, "link", "set", "eth0", "down")
	eventually(t, "refusals after link down", func() bool { return f.Stats().Refusals >= refusals+uint64(len(desired)) })
	if got := ourRoutesShown(t, h, 100); len(got) != 0 {
		t.Errorf("routes with the interface down: %v", got)
	}
	ip(t, h, "link", "set", "eth0", "up")
	eventually(t, "IPv4 routes back after link up", func() bool {
		return len(ourRoutesShown(t, h, 100)) == 3
	})
	equalLines(t, "after link up", ourRoutesShown(t, h, 100), routeLines(desired[:3]))

	// Watch returns when the FIB is closed.
	f.Close()
	wg.Wait()
}

// TestWriterMapsErrors sends thousands of routes in several batches, some
// of which the kernel refuses, and checks each error lands on its route.
func TestWriterMapsErrors(t *testing.T) {
	t.Parallel()
	h := member(t)
	w, err := openWriter(nsOf(t, h), 100, DefaultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	link, err := handleIn(t, h).LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	idx := link.Attrs().Index
	const n = 3000
	bad := func(i int) bool { return i%499 == 7 }
	ops := make([]op, n)
	for i := range ops {
		gw := lanAddr4(2)
		if bad(i) {
			gw = netip.MustParseAddr("203.0.113.1") // off-link: the kernel refuses
		}
		if i%2 == 1 { // IPv6 too, ECMP
			gw6 := []khop{{gw: lanAddr6(2), ifindex: idx}, {gw: lanAddr6(3), ifindex: idx}}
			if bad(i) {
				gw6[1].gw = netip.MustParseAddr("2001:db8:ffff::1")
			}
			ops[i] = op{kind: opAdd, r: kroute{prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x10, byte(i >> 8), byte(i)}), 64),
				metric: 10, typ: unix.RTN_UNICAST, hops: gw6}}
			continue
		}
		ops[i] = op{kind: opAdd, r: kroute{prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32),
			metric: 10, typ: unix.RTN_UNICAST, hops: []khop{{gw: gw, ifindex: idx}}}}
	}
	if w.maxMsgs >= n {
		t.Fatalf("batches of %d: test needs several", w.maxMsgs)
	}
	errs, err := w.run(ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if bad(i) != (err != nil) {
			t.Errorf("op %d (%v): err %v", i, ops[i].r.route(), err)
		}
		// The kernel's extended ack text (IPv6 sends none for this).
		if err != nil && i%2 == 0 && !strings.Contains(err.Error(), "Nexthop has invalid gateway") {
			t.Errorf("op %d: error %q lacks the kernel's message", i, err)
		}
	}
	// Adding again: every one exists (EEXIST), except the refused ones.
	errs, _ = w.run(ops)
	for i, err := range errs {
		if !bad(i) && !errors.Is(err, unix.EEXIST) {
			t.Errorf("second add %d: %v", i, err)
		}
	}
	out := ip(t, h, "-4", "route", "show", "table", "100", "proto", "239")
	out += ip(t, h, "-6", "route", "show", "table", "100", "proto", "239")
	if got := strings.Count(out, "via 2001:db8::3"); got != n/2-3 {
		t.Errorf("%d IPv6 ECMP routes installed, want %d", got, n/2-3)
	}
	for i := range ops {
		ops[i].kind = opDelete
	}
	errs, _ = w.run(ops)
	for i, err := range errs {
		if bad(i) != errors.Is(err, unix.ESRCH) {
			t.Errorf("delete %d: %v", i, err)
		}
	}
}

// TestWatchSurvivesEventFlood runs Watch through a Sync of 30,000 routes:
// Watch takes our own changes for what they are (no repair), and still
// repairs a route deleted by hand afterwards.
func TestWatchSurvivesEventFlood(t *testing.T) {
	t.Parallel()
	h := member(t)
	f := newFIB(t, h, Config{Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := f.Watch(ctx); err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })

	install, _ := benchRoutes(25_000, 5_000)
	if res := mustSync(t, f, install...); len(res.Added) != len(install) {
		t.Fatalf("added %d", len(res.Added))
	}
	victim := install[12345].Prefix.String()
	ip(t, h, "route", "del", victim)
	eventually(t, victim+" repaired", func() bool {
		return strings.Contains(ip(t, h, "route", "show", victim, "proto", "239"), "via")
	})
	// The route is back before the repair is counted.
	eventually(t, "the repair counted", func() bool { return f.Stats().Repairs > 0 })
	if st := f.Stats(); st.Repairs != 1 || st.Installs != uint64(len(install))+1 || st.Errors != 0 {
		t.Errorf("after the flood and one repair: %+v", st)
	}
}

// One bad route in the desired set (what a misbehaving route server could
// make the agent ask for) is refused alone: the good routes are installed,
// changed and removed as usual, IPv4 and IPv6, and nothing fails.
func TestBadRouteDoesNotBlockTheSync(t *testing.T) {
	t.Parallel()
	h := member(t)
	f := newFIB(t, h, Config{})
	before := []Route{
		r4("198.51.100.0/24", 2),
		r4("203.0.113.0/24", 2),
		r6("2001:db8:100::/48", 2),
		r6("2001:db8:200::/48", 2),
		r4("192.0.2.128/25", 3),
	}
	mustSync(t, f, before...)

	a6 := lanAddr6(3)
	desired := []Route{
		r4("198.51.100.0/24", 2, 3), // changed
		// 203.0.113.0/24 and 2001:db8:200::/48 withdrawn
		r6("2001:db8:100::/48", 3), // changed
		r4("100.64.0.0/16", 3),     // new
		r6("2001:db8:300::/48", 2), // new
		// Bad: an IPv6 prefix with an IPv4 next hop (an IPv4-mapped next
		// hop unmapped), host bits, an IPv4 prefix with an IPv6 next hop,
		// a loopback next hop, and 192.0.2.128/25 (installed) listed twice.
		{Prefix: netip.MustParsePrefix("2001:db8:400::/48"), NextHops: []netip.Addr{lanAddr4(3)}},
		{Prefix: netip.MustParsePrefix("198.18.0.1/15"), NextHops: []netip.Addr{lanAddr4(3)}},
		{Prefix: netip.MustParsePrefix("198.18.0.0/15"), NextHops: []netip.Addr{a6}},
		{Prefix: netip.MustParsePrefix("2001:db8:500::/48"), NextHops: []netip.Addr{netip.IPv6Loopback()}},
		r4("192.0.2.128/25", 3),
		r4("192.0.2.128/25", 2),
	}
	res, err := f.Sync(desired)
	if err != nil {
		t.Fatalf("Sync failed over bad routes: %v", err)
	}
	good := []Route{desired[0], desired[1], desired[2], desired[3]}
	equalLines(t, "added", routeLines(res.Added), routeLines([]Route{desired[2], desired[3]}))
	if len(res.Changed) != 2 {
		t.Errorf("changed %+v, want 2", res.Changed)
	}
	equalLines(t, "removed", routeLines(res.Removed), routeLines([]Route{before[1], before[3], before[4]}))
	var invalid []string
	for _, r := range res.Refused {
		if r.Reason != ReasonInvalid {
			t.Errorf("refused %v, want only invalid routes", r)
		}
		invalid = append(invalid, r.Detail[:strings.Index(r.Detail, " ")+2])
	}
	slices.Sort(invalid)
	equalLines(t, "refused routes", invalid, []string{"route 4", "route 5", "route 6", "route 7", "route 8", "route 9"})
	equalLines(t, "kernel", ourRoutesShown(t, h, unix.RT_TABLE_MAIN), routeLines(good))

	// The same input again: nothing to do, the refusals stay.
	res = mustSync(t, f, desired...)
	if res.Changes() != 0 || len(res.Refused) != 6 {
		t.Errorf("second Sync: %+v", res)
	}
	// The bad routes go from the input: nothing refused.
	res = mustSync(t, f, good...)
	if res.Changes() != 0 || len(res.Refused) != 0 {
		t.Errorf("Sync without the bad routes: %+v", res)
	}
}

// TestKnownStateIsTheKernels: after a Sync in which every request
// succeeded, what the FIB keeps as the kernel's state (planned against by
// the next Sync instead of a dump) is what a dump finds, routes and
// next-hop objects, beside other protocols' objects; after a refusal it
// reads the kernel again.
func TestKnownStateIsTheKernels(t *testing.T) {
	t.Parallel()
	h := member(t)
	handAdded(t, h)
	f := newFIB(t, h, Config{})
	check := func(step string, wantKnown bool) {
		t.Helper()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.known != wantKnown {
			t.Fatalf("%s: known %v, want %v", step, f.known, wantKnown)
		}
		if !f.known {
			return
		}
		cur, nhs, err := f.listOurs()
		if err != nil {
			t.Fatal(err)
		}
		sortKroutes(cur)
		if got, want := fmt.Sprintf("%+v", f.cur), fmt.Sprintf("%+v", cur); got != want {
			t.Fatalf("%s: routes known\n%s\nkernel\n%s", step, got, want)
		}
		if got, want := fmt.Sprintf("%+v", *f.curNH), fmt.Sprintf("%+v", *nhs); got != want {
			t.Fatalf("%s: next-hop objects known\n%s\nkernel\n%s", step, got, want)
		}
	}
	steps := [][]Route{
		desiredSet(),
		{r4("198.51.100.0/24", 3), r4("203.0.113.0/25", 2, 3), r4("0.0.0.0/0", 4), r6("2001:db8:100::/48", 2, 3), r6("2001:db8:200::/48", 3)},
		{r4("198.51.100.0/24", 3), r6("2001:db8:100::/48", 5), r6("2001:db8:400::/48", 2), r6("2001:db8:500::/48", 2, 3, 5)},
		{r4("198.51.100.0/25", 2), r6("2001:db8:100::/48", 5), r6("2001:db8:500::/48", 3)},
		nil,
		desiredSet(),
	}
	for i, desired := range steps {
		mustSync(t, f, desired...)
		check(fmt.Sprintf("step %d", i), true)
	}
	if _, err := f.SetNextHopDown(lanAddr6(2), true); err != nil {
		t.Fatal(err)
	}
	check("next hop down", true)
	// 203.0.113.0/24 is a static route's key: refused, so read again.
	mustSync(t, f, r4("203.0.113.0/24", 2), r6("2001:db8:100::/48", 3))
	check("conflict", false)
	mustSync(t, f, r6("2001:db8:100::/48", 3, 5))
	check("after the conflict", true)
	// Another protocol's change without Watch is not seen until a repair.
	ip(t, h, "-6", "route", "del", "2001:db8:100::/48", "proto", strconv.Itoa(DefaultProtocol))
	f.repair("test")
	check("repair", true)
	equalLines(t, "repaired", ourRoutesShown(t, h, unix.RT_TABLE_MAIN), routeLines([]Route{r6("2001:db8:100::/48", 3, 5)}))
}
