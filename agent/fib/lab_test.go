package fib

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Addresses of the exchange LAN in the lab.
var (
	lan4 = netip.MustParsePrefix("192.0.2.0/24")
	lan6 = netip.MustParsePrefix("2001:db8::/64")
)

func lanAddr4(i byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, i}) }

func lanAddr6(i byte) netip.Addr {
	a := lan6.Addr().As16()
	a[15] = i
	return netip.AddrFrom16(a)
}

func hostAddrs(i byte) []string {
	return []string{
		netip.PrefixFrom(lanAddr4(i), lan4.Bits()).String(),
		netip.PrefixFrom(lanAddr6(i), lan6.Bits()).String(),
	}
}

// member builds a lab with one host, "member" (192.0.2.1, 2001:db8::1).
func member(t *testing.T) *labnet.Host {
	t.Helper()
	lab := labtest.New(t, "fib")
	return labtest.AddHost(t, lab, "member", hostAddrs(1)...)
}

// nsOf opens the host's namespace for the test's duration.
func nsOf(t testing.TB, h *labnet.Host) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromName(h.Netns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// newFIB opens a FIB on the host's eth0, closed at the end of the test.
func newFIB(t testing.TB, h *labnet.Host, cfg Config, opts ...Option) *FIB {
	t.Helper()
	if cfg.Interface == "" {
		cfg.Interface = h.Iface
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	f, err := New(cfg, append(opts, WithNetns(nsOf(t, h)))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// handleIn is a netlink handle in the host's namespace.
func handleIn(t testing.TB, h *labnet.Host) *netlink.Handle {
	t.Helper()
	nh, err := netlink.NewHandleAt(nsOf(t, h))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// ip runs ip(8) in the host's namespace and returns its output.
func ip(t testing.TB, h *labnet.Host, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Command(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s in %s: %v\n%s", strings.Join(args, " "), h.Name, err, out)
	}
	return string(out)
}

// shownRoutes parses `ip route show` output into "prefix via a,b" lines,
// sorted, for comparison with routes.
func shownRoutes(t testing.TB, out string) []string {
	t.Helper()
	var lines []string
	var cur *[]string
	var routes [][]string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "nexthop" { // continuation of an ECMP route
			if cur != nil && len(f) >= 3 && f[1] == "via" {
				*cur = append(*cur, f[2])
			}
			continue
		}
		r := []string{f[0]}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "via" {
				r = append(r, f[i+1])
			}
		}
		routes = append(routes, r)
		cur = &routes[len(routes)-1]
	}
	for _, r := range routes {
		pfx, hops := r[0], r[1:]
		if pfx == "default" {
			pfx = "0.0.0.0/0"
		} else if !strings.Contains(pfx, "/") {
			if strings.Contains(pfx, ":") {
				pfx += "/128"
			} else {
				pfx += "/32"
			}
		}
		slices.Sort(hops)
		lines = append(lines, pfx+" via "+strings.Join(hops, ","))
	}
	slices.Sort(lines)
	return lines
}

func routeLines(rs []Route) []string {
	var lines []string
	for _, r := range rs {
		hops := make([]string, len(r.NextHops))
		for i, h := range r.NextHops {
			hops[i] = h.String()
		}
		slices.Sort(hops)
		lines = append(lines, r.Prefix.String()+" via "+strings.Join(hops, ","))
	}
	slices.Sort(lines)
	return lines
}

// ourRoutesShown is what `ip route show proto P table T` (both families)
// lists in the host.
func ourRoutesShown(t testing.TB, h *labnet.Host, table int) []string {
	t.Helper()
	p, tb := strconv.Itoa(DefaultProtocol), strconv.Itoa(table)
	out := ip(t, h, "-4", "route", "show", "proto", p, "table", tb) +
		ip(t, h, "-6", "route", "show", "proto", p, "table", tb)
	return shownRoutes(t, out)
}

// foreignRoutes is every route of every table and every next-hop object
// that is not ours, as ip prints them: what the FIB must never touch.
func foreignRoutes(t testing.TB, h *labnet.Host) string {
	t.Helper()
	var b bytes.Buffer
	for _, line := range strings.Split(ip(t, h, "nexthop", "show"), "\n") {
		if !strings.Contains(line, "proto "+strconv.Itoa(DefaultProtocol)+" ") {
			b.WriteString(line + "\n")
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		skip := false
		for _, line := range strings.Split(ip(t, h, fam, "route", "show", "table", "all"), "\n") {
			if !strings.HasPrefix(line, "\t") { // not an ECMP next hop line
				skip = strings.Contains(line, "proto "+strconv.Itoa(DefaultProtocol)+" ")
			}
			if !skip {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// ourNexthops lists the next-hop objects of our protocol, as ip prints
// them, one a line.
func ourNexthops(t testing.TB, h *labnet.Host) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(ip(t, h, "nexthop", "show", "protocol", strconv.Itoa(DefaultProtocol)), "\n") {
		if strings.TrimSpace(line) != "" {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func r4(pfx string, hops ...byte) Route {
	r := Route{Prefix: netip.MustParsePrefix(pfx)}
	for _, h := range hops {
		r.NextHops = append(r.NextHops, lanAddr4(h))
	}
	return r
}

func r6(pfx string, hops ...byte) Route {
	r := Route{Prefix: netip.MustParsePrefix(pfx)}
	for _, h := range hops {
		r.NextHops = append(r.NextHops, lanAddr6(h))
	}
	return r
}

// eventually polls cond every 20ms for up to 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := clock.Now().Add(5 * time.Second)
	for !cond() {
		if clock.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustSync(t testing.TB, f *FIB, desired ...Route) Result {
	t.Helper()
	res, err := f.Sync(desired)
	if err != nil {
		t.Fatalf("Sync: %v (result %+v)", err, res)
	}
	return res
}

func equalLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}
