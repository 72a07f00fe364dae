package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelState lists our rules (family, table, mark) and the default routes
// of tables 20000-20100 as strings, for comparison.
func kernelState(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	if err := h.SetStrictCheck(false); err != nil {
		t.Fatal(err)
	}
	defer h.SetStrictCheck(true)
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Table >= 20000 && r.Table < 20100 || r.Priority == DefaultRulePriority {
				out = append(out, fmt.Sprintf("rule fam=%d pref=%d mark=%#x table=%d proto=%d", fam, r.Priority, r.Mark, r.Table, r.Protocol))
			}
		}
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Table >= 20000 && r.Table < 20100 {
				out = append(out, fmt.Sprintf("route fam=%d table=%d dst=%v via=%v type=%d metric=%d proto=%d", fam, r.Table, r.Dst, r.Gw, r.Type, r.Priority, r.Protocol))
			}
		}
	}
	return out
}

func has(state []string, sub string) bool {
	for _, s := range state {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestPathsReconcile: tables and rules appear, are adopted by a new Paths
// (an agent restart), follow a changed next hop, go with their seller and
// with Close; a foreign rule and a foreign route in our range stay.
func TestPathsReconcile(t *testing.T) {
	t.Parallel()
	lab := labtest.New(t, "probe-paths")
	p := labtest.AddHost(t, lab, "p", "192.0.2.10/24", "2001:db8::10/64")
	h := handleIn(t, p)
	// Someone else's rule at our priority (another protocol) and one of
	// theirs pointing into our range, plus their route in one of our tables.
	ipcmd(t, p, "ip", "rule", "add", "pref", "20000", "fwmark", "0x99", "lookup", "20050", "proto", "static")
	ipcmd(t, p, "ip", "-6", "rule", "add", "pref", "30000", "fwmark", "0x62770001", "lookup", "20001")
	ipcmd(t, p, "ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.99", "table", "20001")

	paths, err := NewPaths(h, PathsConfig{Link: "eth0", Sysctl: p})
	if err != nil {
		t.Fatal(err)
	}
	s1 := Seller{Name: "s1", ID: 1, NextHop4: netip.MustParseAddr("192.0.2.1"), NextHop6: netip.MustParseAddr("2001:db8::1")}
	s2 := Seller{Name: "s2", ID: 2, NextHop4: netip.MustParseAddr("192.0.2.2")} // IPv4 only
	if err := paths.Reconcile([]Seller{s1, s2}); err != nil {
		t.Fatal(err)
	}
	st := kernelState(t, h)
	for _, want := range []string{
		"rule fam=2 pref=20000 mark=0x62770001 table=20001 proto=239",
		"rule fam=10 pref=20000 mark=0x62770001 table=20001 proto=239",
		"rule fam=2 pref=20000 mark=0x62770002 table=20002 proto=239",
		"rule fam=10 pref=20000 mark=0x62770002 table=20002 proto=239",
		"route fam=2 table=20001 dst=0.0.0.0/0 via=192.0.2.1 type=1 metric=1024 proto=239",
		"route fam=10 table=20001 dst=::/0 via=2001:db8::1 type=1 metric=1024 proto=239",
		"route fam=2 table=20002 dst=0.0.0.0/0 via=192.0.2.2 type=1 metric=1024 proto=239",
		"route fam=2 table=20001 dst=0.0.0.0/0 via=<nil> type=7 metric=4294967295 proto=239",
		"route fam=10 table=20001 dst=::/0 via=<nil> type=7 metric=4294967295 proto=239",
		"route fam=2 table=20002 dst=0.0.0.0/0 via=<nil> type=7 metric=4294967295 proto=239",
		"route fam=10 table=20002 dst=::/0 via=<nil> type=7 metric=4294967295 proto=239",
	} {
		if !has(st, want) {
			t.Errorf("missing %q in\n%s", want, strings.Join(st, "\n"))
		}
	}
	if has(st, "route fam=10 table=20002 dst=::/0 via=2001") {
		t.Errorf("IPv6 path for an IPv4-only seller:\n%s", strings.Join(st, "\n"))
	}
	// The kernel agrees: a marked lookup goes via the seller. (The IPv6
	// route get is refused on a strict-checking socket.)
	if err := h.SetStrictCheck(false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s   Seller
		dst string
		gw  string
	}{{s1, "198.51.100.1", "192.0.2.1"}, {s2, "198.51.100.1", "192.0.2.2"}, {s1, "2001:db8:100::1", "2001:db8::1"}} {
		rs, err := h.RouteGetWithOptions(net.ParseIP(c.dst), &netlink.RouteGetOptions{Mark: paths.Config().Mark(c.s)})
		if err != nil || len(rs) == 0 || rs[0].Gw.String() != c.gw {
			t.Errorf("route get %s mark %s: %v %v, want via %s", c.dst, c.s.Name, rs, err, c.gw)
		}
	}
	// s2 has no IPv6 router: its IPv6 probes must fail, not fall through
	// to the main table (which here routes 2001:db8:100::/48 via eth0).
	ipcmd(t, p, "ip", "-6", "route", "add", "2001:db8:100::/48", "via", "2001:db8::99")
	if rs, err := h.RouteGetWithOptions(net.ParseIP("2001:db8:100::1"), &netlink.RouteGetOptions{Mark: paths.Config().Mark(s2)}); err == nil {
		t.Errorf("IPv6 via s2 (no IPv6 next hop) leaks: %v", rs)
	}
	// The backstop also holds when someone deletes a seller's route.
	ipcmd(t, p, "ip", "route", "del", "default", "via", "192.0.2.2", "table", "20002")
	if rs, err := h.RouteGetWithOptions(net.ParseIP("198.51.100.1"), &netlink.RouteGetOptions{Mark: paths.Config().Mark(s2)}); err == nil {
		t.Errorf("IPv4 via s2 after its route was deleted leaks: %v", rs)
	}
	if err := paths.Reconcile([]Seller{s1, s2}); err != nil {
		t.Fatal(err)
	}
	if err := h.SetStrictCheck(true); err != nil {
		t.Fatal(err)
	}
	st = kernelState(t, h)

	// A restarted agent adopts everything: no change.
	again, err := NewPaths(h, PathsConfig{Link: "eth0", Sysctl: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Reconcile([]Seller{s2, s1}); err != nil {
		t.Fatal(err)
	}
	if st2 := kernelState(t, h); strings.Join(st2, "\n") != strings.Join(st, "\n") {
		t.Errorf("re-reconcile changed the kernel:\n%s\nvs\n%s", strings.Join(st, "\n"), strings.Join(st2, "\n"))
	}

	// s1 moves its router; s2 leaves.
	s1.NextHop4 = netip.MustParseAddr("192.0.2.11")
	if err := again.Reconcile([]Seller{s1}); err != nil {
		t.Fatal(err)
	}
	st = kernelState(t, h)
	if !has(st, "route fam=2 table=20001 dst=0.0.0.0/0 via=192.0.2.11 type=1 metric=1024 proto=239") || has(st, "via=192.0.2.1 ") {
		t.Errorf("s1's new next hop not in place:\n%s", strings.Join(st, "\n"))
	}
	if has(st, "table=20002") || has(st, "mark=0x62770002") {
		t.Errorf("s2's table or rule left behind:\n%s", strings.Join(st, "\n"))
	}
	foreign := []string{
		"rule fam=2 pref=20000 mark=0x99 table=20050 proto=4",
		"rule fam=10 pref=30000 mark=0x62770001 table=20001",
		"route fam=2 table=20001 dst=203.0.113.0/24 via=192.0.2.99",
	}
	for _, f := range foreign {
		if !has(st, f) {
			t.Errorf("foreign %q was touched:\n%s", f, strings.Join(st, "\n"))
		}
	}

	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	st = kernelState(t, h)
	if has(st, "proto=239") {
		t.Errorf("Close left ours:\n%s", strings.Join(st, "\n"))
	}
	for _, f := range foreign {
		if !has(st, f) {
			t.Errorf("Close removed foreign %q:\n%s", f, strings.Join(st, "\n"))
		}
	}
}

type fakeSysctl struct {
	vals   map[string]string
	setErr error
}

func (f *fakeSysctl) Sysctl(k string) (string, error) {
	v, ok := f.vals[k]
	if !ok {
		return "", errors.New("no such sysctl")
	}
	return v, nil
}

func (f *fakeSysctl) SetSysctl(k, v string) error {
	if f.setErr != nil {
		return f.setErr
	}
	f.vals[k] = v
	return nil
}

func TestCheckRPFilter(t *testing.T) {
	for _, c := range []struct {
		all, dev string
		mode     int
		strict   bool
	}{{"0", "0", 0, false}, {"0", "1", 1, true}, {"1", "0", 1, true}, {"1", "2", 2, false}, {"2", "1", 2, false}} {
		f := &fakeSysctl{vals: map[string]string{"net/ipv4/conf/all/rp_filter": c.all, "net/ipv4/conf/eth0/rp_filter": c.dev}}
		mode, err := CheckRPFilter(f, "eth0")
		if mode != c.mode || errors.Is(err, ErrStrictRPFilter) != c.strict {
			t.Errorf("all=%s eth0=%s: mode %d err %v", c.all, c.dev, mode, err)
		}
		if c.strict && !strings.Contains(err.Error(), "net.ipv4.conf.eth0.rp_filter=2") {
			t.Errorf("error does not say the fix: %v", err)
		}
	}
	f := &fakeSysctl{vals: map[string]string{"net/ipv4/conf/all/rp_filter": "x", "net/ipv4/conf/eth0/rp_filter": "0"}}
	if _, err := CheckRPFilter(f, "eth0"); err == nil || !strings.Contains(err.Error(), "all/rp_filter") {
		t.Errorf("garbage sysctl: %v", err)
	}
	// A read-only /proc/sys: the error says strict and why it stayed so.
	p := &Paths{cfg: PathsConfig{Link: "eth0", Sysctl: &fakeSysctl{
		vals:   map[string]string{"net/ipv4/conf/all/rp_filter": "1", "net/ipv4/conf/eth0/rp_filter": "0"},
		setErr: errors.New("read-only file system")}}}
	if err := p.rpFilter(); !errors.Is(err, ErrStrictRPFilter) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("unwritable sysctl: %v", err)
	}
	p.cfg.Sysctl.(*fakeSysctl).setErr = nil
	if err := p.rpFilter(); err != nil || p.cfg.Sysctl.(*fakeSysctl).vals["net/ipv4/conf/eth0/rp_filter"] != "2" {
		t.Errorf("loosening: %v", err)
	}
}

func TestCheckSellers(t *testing.T) {
	nh4, nh6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, c := range []struct {
		s    []Seller
		want string
	}{
		{[]Seller{{Name: "a", NextHop4: nh4}, {Name: "b", ID: 1, NextHop6: nh6}}, ""},
		{[]Seller{{ID: 1, NextHop4: nh4}}, "no name"},
		{[]Seller{{Name: "a", NextHop4: nh4}, {Name: "a", ID: 1, NextHop4: nh4}}, "twice"},
		{[]Seller{{Name: "a", NextHop4: nh4}, {Name: "b", NextHop4: nh4}}, "share ID 0"},
		{[]Seller{{Name: "a", ID: MaxSellerID + 1, NextHop4: nh4}}, "ID 4096"},
		{[]Seller{{Name: "a"}}, "no next hop"},
		{[]Seller{{Name: "a", NextHop4: nh6}}, "not IPv4"},
		{[]Seller{{Name: "a", NextHop6: nh4}}, "not IPv6"},
	} {
		err := CheckSellers(c.s)
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}

func TestPathsConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  PathsConfig
		want string
	}{
		{PathsConfig{}, "no exchange interface"},
		{PathsConfig{Link: "eth0", TableBase: 200}, "overlap"},
		{PathsConfig{Link: "eth0", MarkBase: 0xffffffff}, "overflows"},
		{PathsConfig{Link: "eth0", RulePriority: 40000}, "rule priority"},
		{PathsConfig{Link: "eth0", Protocol: 2}, "protocol 2"},
	} {
		if err := c.cfg.defaults(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
