package fib

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

func TestValidate(t *testing.T) {
	a4, a6 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	for _, tc := range []struct {
		name  string
		route Route
		want  string // in the error
	}{
		{"zero prefix", Route{NextHops: []netip.Addr{a4}}, "invalid prefix"},
		{"host bits", Route{Prefix: netip.MustParsePrefix("198.51.100.1/24"), NextHops: []netip.Addr{a4}}, "host bits set (want 198.51.100.0/24)"},
		{"mapped", Route{Prefix: netip.MustParsePrefix("::ffff:198.51.100.0/120"), NextHops: []netip.Addr{a6}}, "IPv4-mapped"},
		{"no next hop", Route{Prefix: p4}, "no next hop"},
		{"family", Route{Prefix: p4, NextHops: []netip.Addr{a6}}, "not of the prefix's family"},
		{"family6", Route{Prefix: p6, NextHops: []netip.Addr{a4}}, "not of the prefix's family"},
		{"unspecified", Route{Prefix: p4, NextHops: []netip.Addr{netip.IPv4Unspecified()}}, "not a unicast address"},
		{"multicast", Route{Prefix: p6, NextHops: []netip.Addr{netip.MustParseAddr("ff02::1")}}, "not a unicast address"},
		{"broadcast", Route{Prefix: p4, NextHops: []netip.Addr{netip.MustParseAddr("255.255.255.255")}}, "not a unicast address"},
		{"twice", Route{Prefix: p4, NextHops: []netip.Addr{a4, a4}}, "listed twice"},
		{"zone", Route{Prefix: p6, NextHops: []netip.Addr{netip.MustParseAddr("fe80::1%eth1")}}, "zone is not the exchange interface eth0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := Route{Prefix: netip.MustParsePrefix("2001:db8:999::/48"), NextHops: []netip.Addr{a6}}
			ok, refused := validate([]Route{good, tc.route}, "eth0")
			if len(refused) != 1 || refused[0].Reason != ReasonInvalid || !strings.Contains(refused[0].Detail, tc.want) ||
				!strings.Contains(refused[0].Detail, "route 1") {
				t.Errorf("refused %v, want route 1 alone, invalid, with %q", refused, tc.want)
			}
			// The bad route blocks nothing: the good one is there.
			if len(ok) != 1 || ok[0].prefix != good.Prefix {
				t.Errorf("validated %+v, want the good route", ok)
			}
		})
	}
	// A prefix listed twice: every copy refused, the others kept.
	ok, refused := validate([]Route{{Prefix: p4, NextHops: []netip.Addr{a4}}, {Prefix: p6, NextHops: []netip.Addr{a6}},
		{Prefix: p4, NextHops: []netip.Addr{netip.MustParseAddr("192.0.2.3")}}}, "eth0")
	if len(refused) != 2 || !strings.Contains(refused[0].Detail, "prefix listed 2 times") || len(ok) != 1 || ok[0].prefix != p6 {
		t.Errorf("duplicate prefix: validated %+v, refused %v", ok, refused)
	}
	want, refused := validate([]Route{
		{Prefix: p6, NextHops: []netip.Addr{netip.MustParseAddr("fe80::2%eth0"), a6}},
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NextHops: []netip.Addr{a4}},
	}, "eth0")
	if len(refused) != 0 {
		t.Fatal(refused)
	}
	if len(want) != 2 || want[0].prefix.Bits() != 0 || want[1].prefix != p6 {
		t.Fatalf("validated %+v: want sorted by prefix", want)
	}
	if got := want[1].hops; len(got) != 2 || got[0] != a6 || got[1] != netip.MustParseAddr("fe80::2") {
		t.Errorf("next hops %v: want sorted, zone stripped", got)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no exchange interface"},
		{Config{Interface: "eth0", Table: 255}, "local table"},
		{Config{Interface: "eth0", Table: -1}, "out of range"},
		{Config{Interface: "eth0", Protocol: 4}, "want 5-255"},
		{Config{Interface: "eth0", Protocol: 256}, "want 5-255"},
		{Config{Interface: "eth0", Metric: -1}, "metric -1"},
	} {
		if err := tc.cfg.fill(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{Interface: "eth0"}
	if err := c.fill(); err != nil || c.Table != 254 || c.Protocol != DefaultProtocol || c.Metric != DefaultMetric || c.ResyncInterval != DefaultResyncInterval {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	if _, err := New(Config{Interface: "eth0", Protocol: 2}); err == nil {
		t.Error("New accepted protocol 2 (kernel)")
	}
}

// TestProtocolNameFile checks that the iproute2 name file we ship names
// our protocol number "bwx".
func TestProtocolNameFile(t *testing.T) {
	f, err := os.Open("../../packaging/iproute2/rt_protos.d/bwx.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.Atoi(fs[0])
		if len(fs) != 2 || err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		names[fs[1]] = n
	}
	if names["bwx"] != DefaultProtocol || len(names) != 1 {
		t.Errorf("bwx.conf maps %v, want bwx=%d only", names, DefaultProtocol)
	}
}

func TestParseReplies(t *testing.T) {
	ne := binary.NativeEndian
	errMsg := func(seq uint32, errno int32, text string) []byte {
		var b []byte
		b = ne.AppendUint32(b, 0)
		b = ne.AppendUint16(b, unix.NLMSG_ERROR)
		flags := uint16(unix.NLM_F_CAPPED)
		if text != "" {
			flags |= unix.NLM_F_ACK_TLVS
		}
		b = ne.AppendUint16(b, flags)
		b = ne.AppendUint32(b, seq)
		b = ne.AppendUint32(b, 1)
		b = ne.AppendUint32(b, uint32(-errno))
		b = append(b, make([]byte, 16)...) // the request's header
		if text != "" {
			b = appendAttr(b, unix.NLMSGERR_ATTR_MSG, append([]byte(text), 0))
		}
		ne.PutUint32(b, uint32(len(b)))
		return b
	}
	errs := make([]error, 3)
	buf := slices.Concat(errMsg(99, int32(unix.EEXIST), ""), errMsg(11, int32(unix.EEXIST), "File exists here"))
	if parseReplies(buf, 10, 12, errs) {
		t.Error("done before the last reply")
	}
	if !parseReplies(errMsg(12, 0, ""), 10, 12, errs) {
		t.Error("not done after the last ack")
	}
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], unix.EEXIST) || !strings.Contains(errs[1].Error(), "File exists here") {
		t.Errorf("errs %v", errs)
	}
	// Sequence numbers wrap.
	errs = make([]error, 2)
	if !parseReplies(errMsg(0, int32(unix.ESRCH), ""), ^uint32(0), 0, errs) || !errors.Is(errs[1], unix.ESRCH) {
		t.Errorf("wrapped: %v", errs)
	}
}

// TestPlanConverges: applying a plan to the actual routes, the way the
// kernel would, gives exactly the plan's wanted routes; adds never hit an
// existing key, replaces and deletes only touch routes that are there; and
// every desired next hop is installed or refused.
func TestPlanConverges(t *testing.T) {
	prefixes := []string{"198.51.100.0/24", "198.51.100.0/25", "203.0.113.0/24", "0.0.0.0/0",
		"2001:db8:100::/48", "2001:db8:200::/48", "::/0"}
	hops4 := []string{"192.0.2.2", "192.0.2.3", "192.0.2.1", "203.0.113.9", "192.0.2.77"}
	hops6 := []string{"2001:db8::2", "2001:db8::3", "fe80::2", "2001:db8:1::9", "2001:db8::77"}
	rapid.Check(t, func(t *rapid.T) {
		e := &env{
			ifname: "eth0", ifindex: 2, metric: 10,
			subnets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64"), netip.MustParsePrefix("fe80::/64")},
			own:     map[netip.Addr]bool{netip.MustParseAddr("192.0.2.1"): true},
			failed:  map[netip.Addr]bool{netip.MustParseAddr("192.0.2.77"): true, netip.MustParseAddr("2001:db8::77"): true},
			down:    map[netip.Addr]bool{},
			ifDown:  rapid.IntRange(0, 9).Draw(t, "ifDown") == 0,
			nh6:     rapid.Bool().Draw(t, "nh6"),
		}
		for _, h := range append(slices.Clone(hops4), hops6...) {
			if rapid.Bool().Draw(t, "down "+h) {
				e.down[netip.MustParseAddr(h)] = true
			}
		}
		pick := func(label, pfx string) []netip.Addr {
			pool := hops4
			if strings.Contains(pfx, ":") {
				pool = hops6
			}
			var out []netip.Addr
			for _, h := range rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, 3, rapid.ID).Draw(t, label) {
				out = append(out, netip.MustParseAddr(h))
			}
			return out
		}
		var desired []dest
		for _, p := range rapid.SliceOfDistinct(rapid.SampledFrom(prefixes), rapid.ID).Draw(t, "desired") {
			if hops := pick("hops "+p, p); len(hops) > 0 {
				slices.SortFunc(hops, netip.Addr.Compare)
				desired = append(desired, dest{prefix: netip.MustParsePrefix(p), hops: hops})
			}
		}
		slices.SortFunc(desired, func(a, b dest) int { return comparePrefix(a.prefix, b.prefix) })
		type key struct {
			p netip.Prefix
			m uint32
		}
		table := map[key]kroute{}
		var actual []kroute
		for _, p := range rapid.SliceOfDistinct(rapid.SampledFrom(prefixes), rapid.ID).Draw(t, "actual") {
			for _, m := range rapid.SliceOfDistinct(rapid.SampledFrom([]uint32{10, 20}), rapid.ID).Draw(t, "metrics "+p) {
				kr := kroute{prefix: netip.MustParsePrefix(p), metric: m, typ: unix.RTN_UNICAST}
				for _, h := range pick(fmt.Sprintf("actual hops %s %d", p, m), p) {
					kr.hops = append(kr.hops, khop{gw: h, ifindex: rapid.IntRange(2, 3).Draw(t, "ifindex")})
				}
				sortHops(kr.hops)
				// On a group of its own (nexthop.go), or not.
				kr.owned = rapid.Bool().Draw(t, fmt.Sprintf("owned %s %d", p, m))
				actual = append(actual, kr)
				table[key{kr.prefix, m}] = kr
			}
		}

		p := makePlan(desired, slices.Clone(actual), e)
		for _, r := range p.add {
			k := key{r.prefix, r.metric}
			if _, ok := table[k]; ok {
				t.Fatalf("add over an existing route %v", r)
			}
			table[k] = r
		}
		for i, r := range p.replace {
			k := key{r.prefix, r.metric}
			// A replace changes the next hops, or moves an IPv6 route
			// onto a group of its own.
			if old, ok := table[k]; !ok || !old.equal(p.old[i]) || (old.equal(r) && (old.owned || !r.owned)) {
				t.Fatalf("replace %v: table has %v (ok %v), plan says old %v", r, old, ok, p.old[i])
			}
			table[k] = r
		}
		for _, r := range p.del {
			k := key{r.prefix, r.metric}
			if old, ok := table[k]; !ok || !old.equal(r) {
				t.Fatalf("delete of %v, which is not there", r)
			}
			delete(table, k)
		}
		if len(table) != len(p.want) {
			t.Fatalf("table has %d routes, want %d", len(table), len(p.want))
		}
		wantBy := map[netip.Prefix]kroute{}
		for _, w := range p.want {
			wantBy[w.prefix] = w
			if got, ok := table[key{w.prefix, e.metric}]; !ok || !got.equal(w) {
				t.Fatalf("%v: table has %v, want %v", w.prefix, got, w)
			}
			if w.owned != (e.nh6 && w.prefix.Addr().Is6()) {
				t.Fatalf("%v: want owned %v with nh6 %v", w.prefix, w.owned, e.nh6)
			}
		}
		for _, l := range [][]kroute{p.add, p.replace, p.old, p.del, p.want} {
			if !slices.IsSortedFunc(l, func(a, b kroute) int { return comparePrefix(a.prefix, b.prefix) }) {
				t.Fatalf("not sorted: %v", l)
			}
		}
		refused := map[[2]netip.Addr]bool{}
		for _, r := range p.refused {
			if r.NextHop.IsValid() {
				refused[[2]netip.Addr{r.Prefix.Addr(), r.NextHop}] = true
			}
		}
		for _, d := range desired {
			pfx := d.prefix
			for _, h := range d.hops {
				in := slices.ContainsFunc(wantBy[pfx].hops, func(k khop) bool { return k.gw == h && k.ifindex == e.ifindex })
				if in == refused[[2]netip.Addr{pfx.Addr(), h}] {
					t.Fatalf("%v via %v: installed %v, refused %v", pfx, h, in, !in)
				}
				if in && (e.ifDown || e.down[h] || e.own[h] || e.failed[h] || !e.onLink(h)) {
					t.Fatalf("%v via unusable %v installed", pfx, h)
				}
			}
		}
		// A second plan against the result changes nothing.
		var after []kroute
		for _, r := range table {
			after = append(after, r)
		}
		if p2 := makePlan(desired, after, e); len(p2.add)+len(p2.replace)+len(p2.del) != 0 {
			t.Fatalf("second plan not empty: %+v", p2)
		}
	})
}
