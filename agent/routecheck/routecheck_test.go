package routecheck

import (
	"bytes"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const us = 64501

// t0 is an arbitrary fixed instant: nothing here reads the real clock.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func newChecker(t *testing.T, grace time.Duration) (*Checker, *fakeClock, *bytes.Buffer) {
	t.Helper()
	clk := &fakeClock{now: t0}
	var buf bytes.Buffer
	c := New(Config{ASN: us, Grace: grace, Now: clk.Now, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	return c, clk, &buf
}

// trades are the member's: #1 bought from the seller at .11 / ::b (IPv4
// and IPv6), #2 from .12 for another prefix, #3 ended an hour ago, #4
// starts in an hour, #5 cancelled, #6 bought by another member, #7 the
// default route (which no trade makes acceptable).
func trades() []Trade {
	return []Trade{
		{ID: 1, BuyerASN: us, Prefixes: []netip.Prefix{pfx("198.51.100.0/24"), pfx("2001:db8:100::/48")},
			NextHops: []netip.Addr{addr("192.0.2.11"), addr("2001:db8::b")}, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)},
		{ID: 2, BuyerASN: us, Prefixes: []netip.Prefix{pfx("203.0.113.0/24")},
			NextHops: []netip.Addr{addr("192.0.2.12")}, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)},
		{ID: 3, BuyerASN: us, Prefixes: []netip.Prefix{pfx("192.0.2.128/25")},
			NextHops: []netip.Addr{addr("192.0.2.12")}, Start: t0.Add(-2 * time.Hour), End: t0.Add(-time.Hour)},
		{ID: 4, BuyerASN: us, Prefixes: []netip.Prefix{pfx("2001:db8:400::/48")},
			NextHops: []netip.Addr{addr("2001:db8::c")}, Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)},
		{ID: 5, BuyerASN: us, Prefixes: []netip.Prefix{pfx("100.64.0.0/16")},
			NextHops: []netip.Addr{addr("192.0.2.12")}, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour), Cancelled: true},
		{ID: 6, BuyerASN: 64999, Prefixes: []netip.Prefix{pfx("10.0.0.0/8")},
			NextHops: []netip.Addr{addr("192.0.2.12")}, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)},
		{ID: 7, BuyerASN: us, Prefixes: []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")},
			NextHops: []netip.Addr{addr("192.0.2.11"), addr("2001:db8::b")}, Start: t0.Add(-time.Hour), End: t0.Add(time.Hour)},
	}
}

func TestRule(t *testing.T) {
	for _, c := range []struct {
		name   string
		prefix string
		hop    string
		state  State
		reason Reason
		by     []uint64
	}{
		{"bought, IPv4", "198.51.100.0/24", "192.0.2.11", Accepted, "", []uint64{1}},
		{"bought, IPv6", "2001:db8:100::/48", "2001:db8::b", Accepted, "", []uint64{1}},
		{"another trade, its own seller", "203.0.113.0/24", "192.0.2.12", Accepted, "", []uint64{2}},
		{"default route IPv4, even in a trade", "0.0.0.0/0", "192.0.2.11", Refused, ReasonDefaultRoute, nil},
		{"default route IPv6, even in a trade", "::/0", "2001:db8::b", Refused, ReasonDefaultRoute, nil},
		{"prefix not bought IPv4", "198.18.0.0/15", "192.0.2.11", Refused, ReasonNotTraded, nil},
		{"prefix not bought IPv6", "2001:db8:999::/48", "2001:db8::b", Refused, ReasonNotTraded, nil},
		{"more specific of a bought prefix", "198.51.100.0/25", "192.0.2.11", Refused, ReasonNotTraded, nil},
		{"less specific of a bought prefix", "198.51.0.0/16", "192.0.2.11", Refused, ReasonNotTraded, nil},
		{"next hop of another seller IPv4", "198.51.100.0/24", "192.0.2.12", Refused, ReasonNextHop, nil},
		{"next hop of another seller IPv6", "2001:db8:100::/48", "2001:db8::c", Refused, ReasonNextHop, nil},
		{"next hop of another of our trades", "203.0.113.0/24", "192.0.2.11", Refused, ReasonNextHop, nil},
		{"trade ended", "192.0.2.128/25", "192.0.2.12", Refused, ReasonInactive, nil},
		{"trade not started", "2001:db8:400::/48", "2001:db8::c", Refused, ReasonInactive, nil},
		{"trade cancelled", "100.64.0.0/16", "192.0.2.12", Refused, ReasonInactive, nil},
		{"another member's trade", "10.0.0.0/8", "192.0.2.12", Refused, ReasonNotTraded, nil},
		{"next hop of the other family", "198.51.100.0/24", "2001:db8::b", Refused, ReasonMalformed, nil},
		{"IPv4-mapped next hop for IPv6", "2001:db8:100::/48", "::ffff:192.0.2.11", Refused, ReasonMalformed, nil},
		{"unspecified next hop", "198.51.100.0/24", "0.0.0.0", Refused, ReasonMalformed, nil},
		{"loopback next hop", "2001:db8:100::/48", "::1", Refused, ReasonMalformed, nil},
		{"multicast next hop", "198.51.100.0/24", "224.0.0.5", Refused, ReasonMalformed, nil},
		{"no next hop", "198.51.100.0/24", "", Refused, ReasonMalformed, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Grace 0: what a path becomes once its grace is over.
			ck, _, _ := newChecker(t, -1)
			ck.SetTrades(trades())
			var nh netip.Addr
			if c.hop != "" {
				nh = addr(c.hop)
			}
			v := ck.Check([]Path{{Prefix: pfx(c.prefix), NextHop: nh, Trades: []uint64{1}}}).Verdicts[0]
			if v.State != c.state || v.Reason != c.reason || !slices.Equal(v.Justified, c.by) {
				t.Fatalf("got %v %q %v (%s), want %v %q %v", v.State, v.Reason, v.Justified, v.Detail, c.state, c.reason, c.by)
			}
			if v.State == Refused && v.Detail == "" {
				t.Fatal("refused without a detail")
			}
		})
	}
}

func TestEdgesOfTheDeliveryPeriod(t *testing.T) {
	const grace = 10 * time.Second
	for _, c := range []struct {
		name string
		at   time.Duration // from t0
		want State
	}{
		{"before start, beyond grace", -time.Hour - grace - time.Second, Refused},
		{"before start, within grace (clock skew)", -time.Hour - grace + time.Second, Accepted},
		{"at start", -time.Hour, Accepted},
		{"just before end", time.Hour - time.Second, Accepted},
		{"after end, within grace", time.Hour + grace - time.Second, Accepted},
		{"after end, beyond grace", time.Hour + grace, Refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			ck, clk, _ := newChecker(t, grace)
			clk.now = t0.Add(c.at)
			ck.SetTrades(trades()[:1])
			// Seen long ago: its own grace is over.
			ck.Check([]Path{{Prefix: pfx("198.51.100.0/24"), NextHop: addr("192.0.2.11")}})
			clk.advance(grace)
			clk.now = t0.Add(c.at)
			ck.mu.Lock()
			for k := range ck.seen {
				ck.seen[k] = clk.now.Add(-2 * grace)
			}
			ck.mu.Unlock()
			v := ck.Check([]Path{{Prefix: pfx("198.51.100.0/24"), NextHop: addr("192.0.2.11")}}).Verdicts[0]
			if v.State != c.want {
				t.Fatalf("%v (%s %s), want %v", v.State, v.Reason, v.Detail, c.want)
			}
		})
	}
}

func TestGraceForTheRaceWithTheEventStream(t *testing.T) {
	const grace = 10 * time.Second
	ck, clk, logs := newChecker(t, grace)
	p := Path{Prefix: pfx("198.51.100.0/24"), NextHop: addr("192.0.2.11"), Trades: []uint64{1}}
	def := Path{Prefix: pfx("0.0.0.0/0"), NextHop: addr("192.0.2.11"), Trades: []uint64{9}}

	// Before any trade list: held, however long it takes, except the
	// default route, which needs no trade to be refused.
	rep := ck.Check([]Path{p, def})
	if rep.Verdicts[0].State != Pending || rep.Verdicts[1].State != Refused || !rep.Recheck.IsZero() {
		t.Fatalf("before the trade list: %+v", rep)
	}
	clk.advance(30 * time.Minute)
	if v := ck.Check([]Path{p, def}).Verdicts[0]; v.State != Pending {
		t.Fatalf("half an hour later, still no trade list: %v", v.State)
	}

	// The list comes without the trade: the path was seen long ago,
	// so it is refused at once.
	ck.SetTrades(nil)
	if v := ck.Check([]Path{p, def}).Verdicts[0]; v.State != Refused || v.Reason != ReasonNotTraded {
		t.Fatalf("after an empty list: %v %s", v.State, v.Reason)
	}
	// The trade event arrives: accepted.
	ck.AddTrade(trades()[0])
	if v := ck.Check([]Path{p, def}).Verdicts[0]; v.State != Accepted {
		t.Fatalf("after the trade event: %v %s", v.State, v.Detail)
	}

	// A new path for a trade not heard of yet: pending, with a recheck at
	// the end of its grace; the event arrives within it: accepted, and it
	// was never counted.
	q := Path{Prefix: pfx("203.0.113.0/24"), NextHop: addr("192.0.2.12"), Trades: []uint64{2}}
	rep = ck.Check([]Path{p, q, def})
	if v := rep.Verdicts[1]; v.State != Pending || v.Reason != ReasonNotTraded {
		t.Fatalf("new path before its trade: %v %s", v.State, v.Reason)
	}
	if want := clk.Now().Add(grace); !rep.Recheck.Equal(want) {
		t.Fatalf("recheck at %v, want %v", rep.Recheck, want)
	}
	clk.advance(grace / 2)
	ck.AddTrade(trades()[1])
	if v := ck.Check([]Path{p, q, def}).Verdicts[1]; v.State != Accepted {
		t.Fatalf("after its trade event within the grace: %v", v.State)
	}

	// A path whose trade never comes: refused at the end of the grace.
	r := Path{Prefix: pfx("198.18.0.0/15"), NextHop: addr("192.0.2.12")}
	if v := ck.Check([]Path{p, q, r, def}).Verdicts[2]; v.State != Pending {
		t.Fatalf("unknown path at first: %v", v.State)
	}
	clk.advance(grace)
	if v := ck.Check([]Path{p, q, r, def}).Verdicts[2]; v.State != Refused || v.Reason != ReasonNotTraded {
		t.Fatalf("unknown path after the grace: %v %s", v.State, v.Reason)
	}

	got := ck.Counts()
	want := map[Reason]uint64{ReasonDefaultRoute: 1, ReasonNotTraded: 2, ReasonMalformed: 0, ReasonNextHop: 0, ReasonInactive: 0}
	for _, reason := range Reasons {
		if got[reason] != want[reason] {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
	if n := strings.Count(logs.String(), "refused: not installed"); n != 3 {
		t.Fatalf("%d refusal log lines, want 3 (once per refused path):\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "no longer refused") {
		t.Fatalf("no line when the first path became justified:\n%s", logs)
	}
}

func TestCountsOncePerRefusalAndAgainAfterAWithdraw(t *testing.T) {
	ck, _, logs := newChecker(t, -1)
	ck.SetTrades(trades())
	def := Path{Prefix: pfx("::/0"), NextHop: addr("2001:db8::b")}
	hop := Path{Prefix: pfx("198.51.100.0/24"), NextHop: addr("192.0.2.12")}
	good := Path{Prefix: pfx("198.51.100.0/24"), NextHop: addr("192.0.2.11")}
	for range 5 {
		rep := ck.Check([]Path{def, hop, good})
		if rep.Verdicts[0].State != Refused || rep.Verdicts[1].State != Refused || rep.Verdicts[2].State != Accepted {
			t.Fatalf("verdicts %+v", rep.Verdicts)
		}
	}
	if c := ck.Counts(); c[ReasonDefaultRoute] != 1 || c[ReasonNextHop] != 1 {
		t.Fatalf("counts after 5 checks: %v", c)
	}
	if s := ck.Stats(); s.Refused != 2 || s.Pending != 0 || !s.Loaded || s.Trades != 7-1 {
		t.Fatalf("stats %+v", s)
	}
	// Withdrawn, then sent again: a new refusal.
	ck.Check([]Path{good})
	ck.Check([]Path{def, hop, good})
	if c := ck.Counts(); c[ReasonDefaultRoute] != 2 || c[ReasonNextHop] != 2 {
		t.Fatalf("counts after a withdraw and a new announce: %v", c)
	}
	if n := strings.Count(logs.String(), "refused: not installed"); n != 4 {
		t.Fatalf("%d refusal log lines, want 4:\n%s", n, logs)
	}
}

func TestTradeChangesOverTime(t *testing.T) {
	const grace = 5 * time.Second
	ck, clk, _ := newChecker(t, grace)
	tr := trades()[0]
	tr.Start, tr.End = t0.Add(time.Minute), t0.Add(2*time.Minute)
	ck.SetTrades([]Trade{tr})
	p := Path{Prefix: pfx("2001:db8:100::/48"), NextHop: addr("2001:db8::b")}
	rep := ck.Check([]Path{p})
	if rep.Verdicts[0].State != Pending || rep.Verdicts[0].Reason != ReasonInactive {
		t.Fatalf("before the start: %+v", rep.Verdicts[0])
	}
	// The next change is the path's own grace end, then the trade's start.
	if want := t0.Add(grace); !rep.Recheck.Equal(want) {
		t.Fatalf("recheck %v, want %v", rep.Recheck, want)
	}
	clk.advance(grace)
	rep = ck.Check([]Path{p})
	if rep.Verdicts[0].State != Refused || !rep.Recheck.Equal(t0.Add(time.Minute-grace)) {
		t.Fatalf("after its grace: %+v, recheck %v", rep.Verdicts[0], rep.Recheck)
	}
	clk.now = rep.Recheck
	rep = ck.Check([]Path{p})
	if rep.Verdicts[0].State != Accepted || !rep.Recheck.Equal(t0.Add(2*time.Minute+grace)) {
		t.Fatalf("at the start: %+v, recheck %v", rep.Verdicts[0], rep.Recheck)
	}
	// An ended event ends it early; one for a trade unknown, or at or
	// after its end, changes nothing.
	if ck.EndTrade(6, clk.Now()) || ck.EndTrade(1, t0.Add(time.Hour)) {
		t.Fatal("an ended event that ends nothing earlier reported a change")
	}
	if !ck.EndTrade(1, clk.Now().Add(-time.Hour)) {
		t.Fatal("an ended event that ends the trade early reported no change")
	}
	if v := ck.Check([]Path{p}).Verdicts[0]; v.State != Refused || v.Reason != ReasonInactive {
		t.Fatalf("after an ended event: %+v", v)
	}
	// Long after its end the trade is forgotten.
	clk.advance(3 * time.Hour)
	later := trades()[1]
	later.Start, later.End = clk.Now(), clk.Now().Add(time.Hour)
	ck.AddTrade(later)
	if s := ck.Stats(); s.Trades != 1 {
		t.Fatalf("trades kept %d, want 1", s.Trades)
	}
	if ck.AddTrade(trades()[5]) {
		t.Fatal("another member's trade was taken")
	}
	// Nothing pending or refused: a new trade changes no verdict, the
	// same trade again neither; a changed one may.
	ck.Check([]Path{{Prefix: pfx("203.0.113.0/24"), NextHop: addr("192.0.2.12")}})
	next := later
	next.ID = 8
	first := ck.AddTrade(next)
	again := ck.AddTrade(next)
	if first || again {
		t.Fatal("a new trade with nothing pending or refused reported a change")
	}
	next.NextHops = []netip.Addr{addr("192.0.2.13")}
	if !ck.AddTrade(next) {
		t.Fatal("a changed trade reported no change")
	}
	ck.Check([]Path{{Prefix: pfx("198.18.0.0/15"), NextHop: addr("192.0.2.12")}})
	next.ID = 9
	if !ck.AddTrade(next) {
		t.Fatal("a new trade with a path pending reported no change")
	}
}

func TestLogIsBounded(t *testing.T) {
	ck, _, logs := newChecker(t, -1)
	ck.SetTrades(trades())
	var paths []Path
	for i := range 300 {
		paths = append(paths, Path{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32), NextHop: addr("192.0.2.12")})
	}
	ck.Check(paths)
	if n := strings.Count(logs.String(), "refused: not installed\""); n != maxLogged {
		t.Fatalf("%d refusal lines for 300 refused paths, want %d", n, maxLogged)
	}
	if !strings.Contains(logs.String(), "not_logged=200") {
		t.Fatalf("no summary of the lines left out:\n%s", logs.String()[len(logs.String())-300:])
	}
	if c := ck.Counts(); c[ReasonNotTraded] != 300 {
		t.Fatalf("counted %d, want 300", c[ReasonNotTraded])
	}
}

// A trade event that moves a known trade's end so far back that it is
// forgotten at once is a change, not a crash.
func TestAddTradeThatEndedLongAgo(t *testing.T) {
	ck, _, _ := newChecker(t, time.Minute)
	tr := trades()[0]
	ck.AddTrade(tr)
	tr.Start, tr.End = t0.Add(-10*time.Hour), t0.Add(-5*time.Hour)
	if !ck.AddTrade(tr) {
		t.Fatal("a known trade forgotten by its new end reported no change")
	}
}
