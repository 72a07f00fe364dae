package daemon_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The agent, given a route server that sends a default route, prefixes it
// did not buy and paths whose next hop is not in its trade (IPv4 and
// IPv6): installs none of them, counts and logs each, and keeps its real
// trade installed. The route server is the real one (GoBGP), misbehaving
// on purpose: it delivers trades the buyer's arbiter never told it of; the
// routes are read from the buyer's kernel. A path that arrives before its
// trade's event (the race) is held, then installed, and never counted.
func TestLabAgentRefusesRoutesItDidNotBuy(t *testing.T) {
	l := newRouteLab(t)
	s1, s1v6 := l.s1.Addr4().String(), l.s1.Addr6().String()
	l.startAgent()
	l.waitAgentReady()

	// Bought: 198.51.100.0/24 and 2001:db8:100::/48 from seller 1.
	l.trade(1, l.s1, seller1AS, p4a, p6a)
	l.waitRoutes("the bought trade installed", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})

	// Never bought, sent anyway with the buyer's communities: default
	// routes, two prefixes, and seller 2 as next hop for the bought ones.
	p6b := netip.MustParsePrefix("2001:db8:200::/48")
	l.deliver(91, l.s1, seller1AS, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	l.deliver(92, l.s2, seller2AS, p4b, p6b)
	l.deliver(93, l.s2, seller2AS, p4a, p6a)

	type rej struct{ prefix, nextHop, reason string }
	s2, s2v6 := l.s2.Addr4().String(), l.s2.Addr6().String()
	want := []rej{
		{"0.0.0.0/0", s1, "default-route"},
		{"198.51.100.0/24", s2, "next-hop-not-in-trade"},
		{"203.0.113.0/24", s2, "prefix-not-traded"},
		{"::/0", s1v6, "default-route"},
		{"2001:db8:100::/48", s2v6, "next-hop-not-in-trade"},
		{"2001:db8:200::/48", s2v6, "prefix-not-traded"},
	}
	eventually(t, 15*time.Second, "each bad path refused", func() string {
		var got []rej
		for _, r := range l.status().Routing.Rejected {
			if r.State != "refused" {
				return fmt.Sprintf("%v via %v still %s", r.Prefix, r.NextHop, r.State)
			}
			got = append(got, rej{r.Prefix.String(), r.NextHop.String(), r.Reason})
		}
		if !slices.Equal(got, want) {
			return fmt.Sprintf("rejected %v, want %v", got, want)
		}
		return ""
	})
	// Past the grace period, the kernel still holds only the bought
	// trade, and traffic goes as bought: the bought prefixes via seller 1
	// only, the others by the normal path.
	l.waitRoutes("only the bought trade", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}})
	l.sendVia(dst4a, l.s1, l.up, l.s2)
	l.sendVia(dst6a, l.s1, l.up, l.s2)
	l.sendVia(dst4b, l.up, l.s1, l.s2)
	l.sendVia(netip.MustParseAddr("2001:db8:200::7"), l.up, l.s1, l.s2)
	if out := l.ip(l.buyer, "route", "show", "default"); !strings.Contains(out, "via 192.0.2.20") || strings.Contains(out, "bwx") || strings.Contains(out, "239") {
		t.Fatalf("IPv4 default route changed: %q", out)
	}
	if out := l.ip(l.buyer, "-6", "route", "show", "default"); !strings.Contains(out, "via 2001:db8::14") || strings.Contains(out, "239") {
		t.Fatalf("IPv6 default route changed: %q", out)
	}

	// Nor does the member's own router get any of them from the agent
	// (the re-announce over iBGP): it has the bought trade alone.
	memberHas := func(p string) string {
		out, _ := exec.Command("birdc", "-s", l.memberSock, "show", "route", p, "all").CombinedOutput()
		return string(out)
	}
	eventually(t, 10*time.Second, "the member router has the bought trade", func() string {
		for _, c := range []struct{ p, via string }{{p4a.String(), "via 192.0.2.11"}, {p6a.String(), "via 2001:db8::b"}} {
			if out := memberHas(c.p); !strings.Contains(out, c.via) {
				return c.p + ":\n" + out
			}
		}
		return ""
	})
	for _, c := range []struct{ p, bad string }{
		{"0.0.0.0/0", "[agent"}, {"::/0", "[agent"}, {p4b.String(), "[agent"}, {p6b.String(), "[agent"},
		{p4a.String(), "via 192.0.2.12"}, {p6a.String(), "via 2001:db8::c"},
	} {
		if out := memberHas(c.p); strings.Contains(out, c.bad) {
			t.Errorf("the member router got %s (%s) from the agent:\n%s", c.p, c.bad, out)
		}
	}

	// Counted once each, by reason.
	c := &http.Client{Transport: &http.Transport{DialContext: l.buyer.DialContext}, Timeout: 10 * time.Second}
	m := scrapeWith(t, c, "http://127.0.0.1:9480")
	for reason, n := range map[string]float64{"default-route": 2, "prefix-not-traded": 2, "next-hop-not-in-trade": 2, "malformed": 0, "trade-not-active": 0} {
		if got := m[`bwx_agent_routes_rejected_total{reason="`+reason+`"}`]; got != n {
			t.Errorf("bwx_agent_routes_rejected_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if m["bwx_agent_routes_pending"] != 0 || m["bwx_agent_routes_trades_known"] != 1 || m["bwx_agent_routes_installed"] != 2 {
		t.Errorf("pending %v, trades known %v, installed %v; want 0, 1, 2", m["bwx_agent_routes_pending"],
			m["bwx_agent_routes_trades_known"], m["bwx_agent_routes_installed"])
	}
	// Logged once each.
	b, err := os.ReadFile(l.agent.log)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "route from the route server refused") {
			lines = append(lines, line)
		}
	}
	if len(lines) != len(want) {
		t.Fatalf("%d refusal log lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, ""))
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(s string) bool {
			return strings.Contains(s, "prefix="+w.prefix+" ") && strings.Contains(s, "next_hop="+w.nextHop+" ") && strings.Contains(s, "reason="+w.reason)
		}) {
			t.Errorf("no log line for %v:\n%s", w, strings.Join(lines, ""))
		}
	}

	// The race: the route server delivers a trade before the agent hears
	// of it; the path is held, and installed when the event comes within
	// the grace period. Nothing more is counted.
	p4c, p6c := netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:db8:300::/48")
	l.deliver(4, l.s1, seller1AS, p4c, p6c)
	eventually(t, 10*time.Second, "the early paths held", func() string {
		n := 0
		for _, r := range l.status().Routing.Rejected {
			if r.State == "pending" && r.Reason == "prefix-not-traded" {
				n++
			}
		}
		if n != 2 {
			return fmt.Sprintf("%d pending", n)
		}
		return ""
	})
	if got := l.kernelRoutes(); len(got) != 2 {
		t.Fatalf("held paths installed: %v", got)
	}
	if out := memberHas(p4c.String()) + memberHas(p6c.String()); strings.Contains(out, "[agent") {
		t.Fatalf("held paths re-announced to the member router:\n%s", out)
	}
	l.arb.bought(4, l.s1, seller1AS, p4c, p6c)
	l.waitRoutes("the late trade installed", map[string][]string{p4a.String(): {s1}, p6a.String(): {s1v6}, p4c.String(): {s1}, p6c.String(): {s1v6}})
	eventually(t, 10*time.Second, "the member router has the late trade", func() string {
		if out := memberHas(p4c.String()) + memberHas(p6c.String()); strings.Count(out, "[agent") != 2 {
			return out
		}
		return ""
	})
	m = scrapeWith(t, c, "http://127.0.0.1:9480")
	if got := m[`bwx_agent_routes_rejected_total{reason="prefix-not-traded"}`]; got != 2 {
		t.Errorf("prefix-not-traded counted %v after the race, want still 2", got)
	}

	// The refused paths block no withdrawal: the trades end, their
	// routes go; the refused ones were never there.
	l.endTrade(1)
	l.endTrade(4)
	l.waitRoutes("the trades withdrawn", map[string][]string{})
	st := l.status().Routing
	if st.SyncErr != "" || len(st.Missing)+len(st.Extra) != 0 {
		t.Fatalf("after the withdrawals: sync error %q, missing %v, extra %v", st.SyncErr, st.Missing, st.Extra)
	}
}
