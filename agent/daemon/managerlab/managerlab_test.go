// Package managerlab runs the access manager end to end in a lab exchange:
// real agents, arbiter, route server, BIRD routers, kernel tables and
// packets in network namespaces, with no order placed by hand.
package managerlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/delayline"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// The destination both sellers reach: a customer network on the LAN behind
// them (a host of its own, so each seller's path can be delayed on the
// seller's forwarding path).
var (
	dst4  = netip.MustParsePrefix("198.18.0.0/24")
	host4 = netip.MustParseAddr("198.18.0.1")
	dst6  = netip.MustParsePrefix("2001:db8:300::/48")
	host6 = netip.MustParseAddr("2001:db8:300::1")
)

const sellerConfig = `manager:
  mode: trade
  round: 1s
  sell:
    enabled: true
    destinations: ["198.18.0.0/24", "2001:db8:300::/48"]
    price: %s
    min_block: 1M
    safety_margin: 1G
    term: 2h
    renew_before: 30m
`

// buyerConfig: capture and probes every 2 s, the manager every 2 s,
// buying by performance with a 45 ms floor.
const buyerConfig = `capture:
  interfaces: [eth0]
  sample_rate: 1
  interval: 2s
  refresh: 2s
probe:
  enabled: true
  count: 3
  round: 2s
  targets: {"198.18.0.0/24": ["198.18.0.1"], "2001:db8:300::/48": ["2001:db8:300::1"]}
manager:
  mode: %s
  round: 2s
  demand: {window: 1m, top: 5, min_samples: 10, min_intervals: 2}
  quality: {rounds: 2, max_age: 30s}
  buy:
    budget: 1000
    max_price: 10
    ranking: performance
    quality_floor: {max_latency: 45ms}
    min_improvement: {latency: 5ms}
    headroom_percent: 25
    max_open_orders: 2
    max_trades: 8
    term: 1h
    renew_before: 10m
  stability: {hysteresis_percent: 25, rebuy_hold_down: 5s, switch_hold_down: 0s, max_changes_per_hour: 100}
  failover: {rounds: 2}
`

func TestLabManagerBuysBetterSellerAndFailsOver(t *testing.T) {
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := exchange.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	members := []*exchange.Member{
		{Name: "seller-a", ASN: 64501, Capacity: "10G", Prefixes: []string{"198.51.100.0/24", "2001:db8:100::/48"},
			Remote: []string{dst4.String(), dst6.String()}, AgentConfig: fmt.Sprintf(sellerConfig, "2")},
		{Name: "seller-b", ASN: 64502, Capacity: "10G", Prefixes: []string{"203.0.113.0/24", "2001:db8:200::/48"},
			Remote: []string{dst4.String(), dst6.String()}, AgentConfig: fmt.Sprintf(sellerConfig, "3")},
		{Name: "buyer", ASN: 64510, Capacity: "10G", AgentConfig: fmt.Sprintf(buyerConfig, "trade")},
		{Name: "shadow", ASN: 64520, Capacity: "10G", AgentConfig: fmt.Sprintf(buyerConfig, "shadow")},
	}
	x, err := exchange.Up(ctx, dir, bin, members)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	sa, sb, buyer, shadow := x.Member("seller-a"), x.Member("seller-b"), x.Member("buyer"), x.Member("shadow")
	defer func() {
		if t.Failed() {
			for _, m := range x.Members {
				t.Logf("%s log (decisions, warnings, errors):\n%s", m.Name, interesting(m.Log, 30))
			}
		}
	}()

	// The customer network: a host on the LAN that every path reaches
	// on-link. The upstream (the default path) is slow, seller-a middling,
	// seller-b fast.
	dest, err := x.Lab.AddHost("dest", netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("2001:db8:300::1/64"))
	if err != nil {
		t.Fatal(err)
	}
	ip(t, dest, "route", "add", "192.0.2.0/24", "dev", "eth0")
	ip(t, dest, "-6", "route", "add", "2001:db8:ffff::/64", "dev", "eth0")
	lines := map[*labnet.Host]*delayline.Line{}
	delay := func(h *labnet.Host, dev string, d time.Duration) {
		t.Helper()
		if l := lines[h]; l != nil {
			l.Close()
			ip(t, h, "route", "flush", "table", "100")
			ip(t, h, "-6", "route", "flush", "table", "100")
		}
		l, err := delayline.Add(h, dev, d, 0, 1, dst4, dst6)
		if err != nil {
			t.Fatal(err)
		}
		lines[h] = l
	}
	defer func() {
		for _, l := range lines {
			l.Close()
		}
	}()
	delay(x.Upstream, "dl0", 60*time.Millisecond)
	delay(sa.Host, "dl0", 20*time.Millisecond)
	delay(sb.Host, "dl0", time.Millisecond)
	if err := x.WaitRoutes(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Before any trade the destination is reached through the upstream.
	if via, err := x.RouteVia(ctx, buyer, host4); err != nil || via != x.Upstream.Addr4() {
		t.Fatalf("before trading %v goes via %v (%v), want the upstream %v", host4, via, err, x.Upstream.Addr4())
	}
	if via, err := x.RouteVia(ctx, buyer, host6); err != nil || via != x.Upstream.Addr6() {
		t.Fatalf("before trading %v goes via %v (%v), want the upstream %v", host6, via, err, x.Upstream.Addr6())
	}

	// Real traffic: 100 UDP packets of 1000 bytes a second to each family
	// from each buyer.
	var sent atomic.Int64
	for _, m := range []*exchange.Member{buyer, shadow} {
		for _, h := range []netip.Addr{host4, host6} {
			c, err := m.Host.DialContext(ctx, "udp", netip.AddrPortFrom(h, 9).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go send(ctx, c, m == buyer, &sent)
		}
	}

	// The buyer's manager buys from seller-b (fastest: its policy ranks by
	// performance though seller-b costs more), and the route is installed.
	start := clock.Now()
	if err := x.WaitRouteVia(ctx, buyer, host4, sb.Host.Addr4(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := x.WaitRouteVia(ctx, buyer, host6, sb.Host.Addr6(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("bought from seller-b and routed after %v", clock.Since(start).Round(time.Millisecond))
	ds := decisions(ctx, t, x, buyer)
	trades, err := x.Operator(ctx, "trades", "--member", strconv.Itoa(int(buyer.ASN)))
	for _, p := range []netip.Prefix{dst4, dst6} {
		buy := find(ds.Decisions, manager.KindBuy, sb.ASN, p)
		if buy == nil || buy.Shadow || buy.SizeBps <= 0 || buy.PriceMicros != 3_000_000 {
			t.Fatalf("no buy of %v from AS%d at 3/Mbps in the journal: %+v", p, sb.ASN, ds.Decisions)
		}
		if buy.GainLatencyUs < 40_000 {
			t.Errorf("buy of %v gains %d us over the default path, want about 60 ms", p, buy.GainLatencyUs)
		}
		// Chosen by the path score: on enough probes, not significantly
		// lossier than the default path, and latency decided.
		if buy.Current == nil || buy.Chosen == nil || buy.Current.Probes < 20 || buy.Chosen.Probes < 20 {
			t.Errorf("buy of %v decided on too few probes: current %+v, chosen %+v", p, buy.Current, buy.Chosen)
		} else if pathscore.Worse(pathscore.Loss, figures(*buy.Chosen), figures(*buy.Current)) {
			t.Errorf("buy of %v moved to a path with significantly more loss: %s", p, buy.Compared)
		}
		if !strings.Contains(buy.Compared, "latency") || !strings.Contains(buy.Compared, "significantly lower") {
			t.Errorf("buy of %v journals no latency comparison: %q", p, buy.Compared)
		}
		if err != nil || !strings.Contains(trades, p.String()) {
			t.Fatalf("operator's trades of the buyer lack %v (%v):\n%s", p, err, trades)
		}
	}
	// The traffic goes through seller-b: its delay line forwards it.
	through(ctx, t, &sent, map[*labnet.Host]string{sb.Host: "dl0"}, map[*labnet.Host]string{sa.Host: "dl0", x.Upstream: "dl0"})

	// Shadow mode, same setup: the same choice, journaled as shadow, and
	// nothing traded.
	sum := summary(ctx, t, x, shadow, 2)
	if len(sum.Destinations) != 2 || sum.Destinations[0].Prefix != dst4 || sum.Destinations[1].Prefix != dst6 ||
		sum.Destinations[0].Seller != sb.ASN || sum.Destinations[1].Seller != sb.ASN {
		t.Fatalf("shadow summary %+v, want %v and %v from AS%d", sum, dst4, dst6, sb.ASN)
	}
	for _, v := range sum.Destinations {
		if v.GainLatencyUs < 40_000 || v.MonthlyMicros <= 0 || v.PriceMicros != 3_000_000 {
			t.Errorf("shadow summary lacks the gain or the price: %+v", v)
		}
		// The gain with its uncertainty: well beyond its margin.
		if v.GainLatencyMarginUs <= 0 || v.GainLatencyMarginUs > v.GainLatencyUs/2 || v.GainLossMarginPPM <= 0 {
			t.Errorf("shadow summary's gains lack their margins: %+v", v)
		}
	}
	sds := decisions(ctx, t, x, shadow)
	for _, d := range sds.Decisions {
		if !d.Shadow || len(d.Intents) > 0 {
			t.Errorf("shadow agent decided for real: %s", d)
		}
	}
	if out, err := x.Operator(ctx, "orders", "--member", strconv.Itoa(int(shadow.ASN)), "-o", "json"); err != nil || strings.Contains(out, `"id"`) {
		t.Errorf("the shadow agent placed orders (%v):\n%s", err, out)
	}
	if via, err := x.RouteVia(ctx, shadow, host4); err != nil || via != x.Upstream.Addr4() {
		t.Errorf("shadow member's traffic goes via %v (%v), want its upstream", via, err)
	}
	if via, err := x.RouteVia(ctx, shadow, host6); err != nil || via != x.Upstream.Addr6() {
		t.Errorf("shadow member's IPv6 traffic goes via %v (%v), want its upstream", via, err)
	}

	// seller-b's path degrades far beyond the floor: the manager reports
	// the breach and moves the destination to seller-a.
	delay(sb.Host, "dl1", 150*time.Millisecond)
	start = clock.Now()
	if err := x.WaitRouteVia(ctx, buyer, host4, sa.Host.Addr4(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := x.WaitRouteVia(ctx, buyer, host6, sa.Host.Addr6(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("failed over to seller-a after %v", clock.Since(start).Round(time.Millisecond))
	// The breach needs quality.min_probes probes beyond the limits
	// (7 rounds of 3): it may come after the switch.
	deadline := clock.Now().Add(30 * time.Second)
	for {
		ds = decisions(ctx, t, x, buyer)
		if (find(ds.Decisions, manager.KindBreach, sb.ASN, dst4) != nil && find(ds.Decisions, manager.KindBreach, sb.ASN, dst6) != nil) ||
			clock.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // polling the agent's journal
	}
	for _, p := range []netip.Prefix{dst4, dst6} {
		if br := find(ds.Decisions, manager.KindBreach, sb.ASN, p); br != nil && (br.Chosen == nil || br.Chosen.Probes < 20) {
			t.Errorf("breach of AS%d toward %v on too few probes: %s", sb.ASN, p, br)
		}
		if find(ds.Decisions, manager.KindBreach, sb.ASN, p) == nil {
			t.Errorf("no breach of AS%d toward %v journaled: %+v", sb.ASN, p, ds.Decisions)
		}
		// Depending on how the probe rounds fall, the manager switches
		// (the smoothed latency already favours seller-a) or buys after
		// the breach: either way from seller-a.
		if find(ds.Decisions, manager.KindBuy, sa.ASN, p) == nil && find(ds.Decisions, manager.KindSwitch, sa.ASN, p) == nil {
			t.Errorf("no failover buy or switch to AS%d toward %v journaled: %+v", sa.ASN, p, ds.Decisions)
		}
	}
	if _, err := exchange.WaitLog(ctx, x.ArbiterLog, 10*time.Second, "SLA breach reported", "64502"); err != nil {
		t.Error(err)
	}
	through(ctx, t, &sent, map[*labnet.Host]string{sa.Host: "dl0"}, map[*labnet.Host]string{sb.Host: "dl1", x.Upstream: "dl0"})
}

// send writes 1000-byte datagrams at 100 a second until ctx ends, counting
// them into sent when count is set.
func send(ctx context.Context, c net.Conn, count bool, sent *atomic.Int64) {
	buf := make([]byte, 1000)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.Write(buf); err == nil && count {
			sent.Add(1)
		}
	}
}

// through checks over a window of about 3 s that the buyer's datagrams go
// through the via hosts' delay lines and not the others': the lines' TUN
// devices count what they forward.
func through(ctx context.Context, t *testing.T, sent *atomic.Int64, via, not map[*labnet.Host]string) {
	t.Helper()
	count := func() map[*labnet.Host]int64 {
		out := map[*labnet.Host]int64{}
		for _, m := range []map[*labnet.Host]string{via, not} {
			for h, dev := range m {
				out[h] = txPackets(ctx, t, h, dev)
			}
		}
		return out
	}
	before, s0 := count(), sent.Load()
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(3 * time.Second):
	}
	after, s1 := count(), sent.Load()
	n := s1 - s0
	// The shadow member's traffic goes through the upstream too; probes
	// add a few packets everywhere.
	for h, dev := range via {
		if got := after[h] - before[h]; got < n*8/10 {
			t.Errorf("%s %s forwarded %d packets while the buyer sent %d", h.Name, dev, got, n)
		}
	}
	for h, dev := range not {
		if h.Name == "upstream" {
			continue // carries the shadow member's traffic
		}
		if got := after[h] - before[h]; got > n/10 {
			t.Errorf("%s %s forwarded %d packets while the buyer sent %d through another seller", h.Name, dev, got, n)
		}
	}
}

func txPackets(ctx context.Context, t *testing.T, h *labnet.Host, dev string) int64 {
	t.Helper()
	out, err := h.Command(ctx, "ip", "-s", "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("%s: ip -s link show %s: %v", h.Name, dev, err)
	}
	var ls []struct {
		Stats64 struct {
			TX struct {
				Packets int64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("%s: ip -s -j link show %s: %v\n%s", h.Name, dev, err, out)
	}
	return ls[0].Stats64.TX.Packets
}

func decisions(ctx context.Context, t *testing.T, x *exchange.Exchange, m *exchange.Member) daemon.Decisions {
	t.Helper()
	out, err := x.Agent(ctx, m, "decisions", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ds daemon.Decisions
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatalf("decisions -o json: %v\n%s", err, out)
	}
	if tbl, err := x.Agent(ctx, m, "decisions"); err == nil {
		t.Logf("%s decisions:\n%s", m.Name, tbl)
	}
	return ds
}

// summary polls m's shadow summary until it holds want destinations (each
// decided when its own paths have been probed enough) or 30 s pass.
func summary(ctx context.Context, t *testing.T, x *exchange.Exchange, m *exchange.Member, want int) manager.Summary {
	t.Helper()
	deadline := clock.Now().Add(30 * time.Second)
	for {
		out, err := x.Agent(ctx, m, "decisions", "--summary", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var s manager.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("decisions --summary -o json: %v\n%s", err, out)
		}
		if len(s.Destinations) >= want || clock.Now().After(deadline) {
			if tbl, err := x.Agent(ctx, m, "decisions", "--summary"); err == nil {
				t.Logf("%s summary:\n%s", m.Name, tbl)
			}
			return s
		}
		time.Sleep(500 * time.Millisecond) // polling the agent's journal
	}
}

func figures(q manager.Quality) pathscore.Figures {
	return pathscore.Figures{LatencyUs: q.LatencyUs, JitterUs: q.JitterUs, LossPPM: q.LossPPM, Probes: q.Probes,
		LatencyErrUs: q.LatencyErrUs, JitterErrUs: q.JitterErrUs}
}

func find(ds []manager.Decision, k manager.Kind, seller uint32, p netip.Prefix) *manager.Decision {
	for i := range ds {
		if ds[i].Kind == k && ds[i].Seller == seller && ds[i].Prefix == p {
			return &ds[i]
		}
	}
	return nil
}

// interesting returns the last n log lines about decisions, warnings and
// errors.
func interesting(path string, n int) string {
	var keep []string
	for _, l := range strings.Split(exchange.Tail(path, 100000), "\n") {
		if strings.Contains(l, `"decision"`) || strings.Contains(l, `"WARN"`) || strings.Contains(l, `"ERROR"`) || strings.Contains(l, "bought") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

func ip(t *testing.T, h *labnet.Host, args ...string) {
	t.Helper()
	if out, err := h.Command(context.Background(), "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: ip %s: %v\n%s", h.Name, strings.Join(args, " "), err, out)
	}
}
