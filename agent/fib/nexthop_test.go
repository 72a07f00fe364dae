package fib

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestIDAlloc(t *testing.T) {
	a := newIDAlloc(DefaultProtocol)
	lo := uint32(DefaultProtocol) << 24
	a.reset([]uint32{5, lo, lo + 1, lo + 3})
	var got []uint32
	for range 3 {
		id, err := a.take()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if want := []uint32{lo + 2, lo + 4, lo + 5}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v (skipping ids in use)", got, want)
	}
	// The next round goes on from there, and wraps at the end of the range.
	a.next = lo | 0xfffffe
	a.reset([]uint32{lo})
	for _, want := range []uint32{lo | 0xfffffe, lo | 0xffffff, lo + 1} {
		if id, err := a.take(); err != nil || id != want {
			t.Errorf("took %#x, %v; want %#x", id, err, want)
		}
	}
	// A full range fails with an error naming it.
	a = &idAlloc{lo: 10, hi: 12, next: 10}
	a.reset([]uint32{11})
	for range 2 {
		if _, err := a.take(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.take(); err == nil || !strings.Contains(err.Error(), "0xa-0xc") {
		t.Errorf("exhausted range: %v", err)
	}
}

// nhFixture: group 100 (members 1, 2) of a route; group 200 (members 2,
// 3), which shares 2; group 300 (member 4) of no route; 9 is another
// protocol's, in group 900, also another's.
func nhFixture() *nhState {
	gw := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	s := &nhState{ours: []nhObj{
		{id: 1, gw: gw("2001:db8::2"), ifindex: 2},
		{id: 2, gw: gw("2001:db8::3"), ifindex: 2},
		{id: 3, gw: gw("2001:db8::5"), ifindex: 2},
		{id: 4, gw: gw("2001:db8::6"), ifindex: 2},
		{id: 5, gw: gw("2001:db8::7"), ifindex: 2}, // in 900
		{id: 100, isGroup: true, group: []nhRef{{id: 1}, {id: 2}}},
		{id: 200, isGroup: true, group: []nhRef{{id: 2}, {id: 3}}},
		{id: 300, isGroup: true, group: []nhRef{{id: 4}}},
	}}
	s.ids = []uint32{1, 2, 3, 4, 5, 9, 100, 200, 300, 900}
	s.members = []uint32{1, 2, 2, 3, 4, 5, 9}
	return s
}

func TestNexthopResolve(t *testing.T) {
	s := nhFixture()
	for _, tc := range []struct {
		nhid  uint32
		uses  int
		hops  string
		owned bool
	}{
		{100, 1, "2001:db8::2 2001:db8::3", false}, // member 2 is also in 200
		{300, 1, "2001:db8::6", true},
		{300, 2, "2001:db8::6", false}, // two routes use it
		{1, 1, "", false},              // a single next hop, not a group
		{900, 1, "", false},            // not ours
	} {
		kr := kroute{nhid: tc.nhid, owned: true}
		s.resolve(&kr, slices.Repeat([]uint32{tc.nhid}, tc.uses))
		var hops []string
		for _, h := range kr.hops {
			hops = append(hops, h.gw.String())
		}
		if strings.Join(hops, " ") != tc.hops || kr.owned != tc.owned {
			t.Errorf("group %d used by %d: hops %v owned %v, want %q %v", tc.nhid, tc.uses, hops, kr.owned, tc.hops, tc.owned)
		}
	}
}

func TestNexthopCollect(t *testing.T) {
	deleted := func(ops []op) []uint32 {
		var ids []uint32
		for _, o := range ops {
			if o.kind != opNHDelete {
				t.Fatalf("op %v", o.kind)
			}
			ids = append(ids, o.nh.id)
		}
		return ids
	}
	s := nhFixture()
	// 100 and 200 in use: 300 and its member go, group first; 5 stays
	// (another's group has it).
	if got := deleted(s.collect(nil, []uint32{200, 2, 3, 100, 1}, nil, nil)); !slices.Equal(got, []uint32{300, 4}) {
		t.Errorf("deleted %v, want [300 4]", got)
	}
	// 200 goes: 3 with it, not 2 (still in 100).
	if got := deleted(s.collect(nil, []uint32{100, 1, 2}, nil, nil)); !slices.Equal(got, []uint32{200, 300, 3, 4}) {
		t.Errorf("deleted %v, want [200 300 3 4]", got)
	}
	// 100's members were replaced in place by 6 and 7 (created): 1 goes,
	// 2 stays in 200; created objects not in use go, last made first.
	live := []uint32{100, 6, 7, 200, 2, 3, 300, 4}
	if got := deleted(s.collect(nil, live, []uint32{6, 7, 8, 10}, []uint32{1, 2})); !slices.Equal(got, []uint32{1, 10, 8}) {
		t.Errorf("deleted %v, want [1 10 8]", got)
	}
	// Nothing in use (Close): every group, then every member but 5.
	if got := deleted(s.collect(nil, nil, nil, nil)); !slices.Equal(got, []uint32{100, 200, 300, 1, 2, 3, 4}) {
		t.Errorf("deleted %v", got)
	}
}

// TestWriterNexthops sends next-hop objects, groups and routes on them in
// one batch, some of which the kernel refuses, checks each error lands on
// its request and reads the objects back.
func TestWriterNexthops(t *testing.T) {
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
	route := func(pfx string, nhid uint32) kroute {
		return kroute{prefix: netip.MustParsePrefix(pfx), metric: 10, typ: unix.RTN_UNICAST, nhid: nhid}
	}
	ops := []op{
		{kind: opNHAdd, nh: nhObj{id: 11, gw: lanAddr6(2), ifindex: idx}},
		{kind: opNHAdd, nh: nhObj{id: 12, gw: netip.MustParseAddr("2001:db8:ffff::1"), ifindex: idx}}, // off-link
		{kind: opNHAdd, nh: nhObj{id: 13, gw: lanAddr6(3), ifindex: idx}},
		{kind: opNHAdd, nh: nhObj{id: 20, isGroup: true, group: []nhRef{{id: 11}, {id: 12}}}}, // 12 is missing
		{kind: opNHAdd, nh: nhObj{id: 21, isGroup: true, group: []nhRef{{id: 11}, {id: 13}}}},
		{kind: opAdd, r: route("2001:db8:100::/48", 21)},
		{kind: opAdd, r: route("2001:db8:200::/48", 20)},                  // no such group
		{kind: opNHAdd, nh: nhObj{id: 11, gw: lanAddr6(4), ifindex: idx}}, // id taken
	}
	errs, err := w.run(ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if fail := i == 1 || i == 3 || i == 6 || i == 7; fail != (err != nil) {
			t.Errorf("op %d (%v): err %v", i, ops[i].kind, err)
		}
	}
	nhs, err := w.listNexthops()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range nhs.ours {
		got = append(got, fmtObj(o))
	}
	want := []string{"11 2001:db8::2", "13 2001:db8::3", "21 group 11 13"}
	if !slices.Equal(got, want) {
		t.Errorf("objects %q, want %q", got, want)
	}
	var rs []kroute
	if err := w.dump(unix.AF_INET6, func(kr kroute) { rs = append(rs, kr) }); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].nhid != 21 || len(rs[0].hops) != 2 {
		t.Errorf("routes %+v, want 2001:db8:100::/48 on group 21 with its two next hops", rs)
	}
	// In place: the group gets a new member, the route stays.
	errs, _ = w.run([]op{
		{kind: opNHAdd, nh: nhObj{id: 14, gw: lanAddr6(5), ifindex: idx}},
		{kind: opNHReplace, nh: nhObj{id: 21, isGroup: true, group: []nhRef{{id: 14}}}},
		{kind: opNHReplace, nh: nhObj{id: 22, isGroup: true, group: []nhRef{{id: 14}}}}, // no such group
	})
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Errorf("replace: %v", errs)
	}
	if out := ip(t, h, "-6", "route", "show", "table", "100"); !strings.Contains(out, "nhid 21") || !strings.Contains(out, "via 2001:db8::5") || strings.Contains(out, "2001:db8::2") {
		t.Errorf("after the replace:\n%s", out)
	}
	errs, _ = w.run([]op{{kind: opDelete, r: route("2001:db8:100::/48", 0)},
		{kind: opNHDelete, nh: nhObj{id: 21}}, {kind: opNHDelete, nh: nhObj{id: 11}},
		{kind: opNHDelete, nh: nhObj{id: 13}}, {kind: opNHDelete, nh: nhObj{id: 14}},
		{kind: opNHDelete, nh: nhObj{id: 12}}}) // never made
	for i, err := range errs {
		if (i == 5) != (err != nil) {
			t.Errorf("delete %d: %v", i, err)
		}
	}
	if got := ourNexthops(t, h); len(got) != 0 {
		t.Errorf("left: %q", got)
	}
}

func fmtObj(o nhObj) string {
	if o.isGroup {
		var ids []string
		for _, m := range o.group {
			ids = append(ids, strconv.Itoa(int(m.id)))
		}
		return strconv.Itoa(int(o.id)) + " group " + strings.Join(ids, " ")
	}
	return strconv.Itoa(int(o.id)) + " " + o.gw.String()
}
