package measurelab

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	arbiter "github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet/delayline"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// TestLabProbesRankSellers: two sellers toward the same destination, S2
// with 25 ms of added delay and 30 % loss (a user-space delay line: this
// kernel has no netem). The arbiter's route analysis asks the buyer's agent
// to probe S1's prefixes as soon as its stream opens, and S2's as soon as
// S2 registers them (the stream's own re-plan is an hour away, so only the
// registry change can have triggered it); the agent probes through each
// seller's table and mark, spools the results, and the quality matrix,
// from the buyer's vantage, ranks S1 above S2 in both families.
func TestLabProbesRankSellers(t *testing.T) {
	t.Parallel()
	lab := labtest.New(t, "probe")
	b := labtest.AddHost(t, lab, "b", "192.0.2.10/24", "2001:db8::10/64")
	labtest.AddHost(t, lab, "s1", "192.0.2.1/24", "2001:db8::1/64")
	labtest.AddHost(t, lab, "s2", "192.0.2.2/24", "2001:db8::2/64")
	d := labtest.AddHost(t, lab, "d", "198.51.100.1/24", "2001:db8:100::1/64")
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	dst := []netip.Prefix{p4, netip.MustParsePrefix("2001:db8:100::/64")}
	// D answers B straight over the LAN; the requests go through a seller.
	ipcmd(t, d, "route", "add", "192.0.2.0/24", "dev", "eth0")
	ipcmd(t, d, "-6", "route", "add", "2001:db8::/64", "dev", "eth0")
	for _, l := range []struct {
		h     string
		delay time.Duration
		loss  float64
	}{{"s1", time.Millisecond, 0}, {"s2", 25 * time.Millisecond, 0.3}} {
		dl, err := delayline.Add(lab.Host(l.h), "dl0", l.delay, l.loss, 1, dst...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(dl.Close)
	}
	// B's own default path is its upstream, not the LAN: only the probes'
	// marks send them through a seller.
	ipcmd(t, b, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	ipcmd(t, b, "link", "set", "up0", "up")
	ipcmd(t, b, "link", "set", "up1", "up")
	ipcmd(t, b, "addr", "add", "203.0.113.10/24", "dev", "up0")
	ipcmd(t, b, "addr", "add", "2001:db8:ffff::10/64", "dev", "up0", "nodad")
	ipcmd(t, b, "route", "add", "default", "via", "203.0.113.1", "dev", "up0")
	ipcmd(t, b, "-6", "route", "add", "default", "via", "2001:db8:ffff::1", "dev", "up0")
	sysctl(t, b, "net.ipv4.conf.all.accept_redirects", "0", "net.ipv4.conf.eth0.accept_redirects", "0",
		"net.ipv6.conf.eth0.accept_redirects", "0", "net.ipv4.conf.eth0.rp_filter", "1")

	x := startArbiter(t, func(q *arbiter.QualityConfig) { q.PollInterval = time.Hour })
	bundle, buyer := x.member(buyerASN, "192.0.2.10", "2001:db8::10")
	x.member(s1ASN, "192.0.2.1", "2001:db8::1")
	x.member(s2ASN, "192.0.2.2", "2001:db8::2")
	x.addPrefix(s1ASN, p4.String())
	x.addPrefix(s1ASN, p6.String())

	cfg := agentConfig(t, x, bundle)
	cfg.Probe.Enabled = true
	cfg.Probe.Interface = "eth0"
	cfg.Probe.Count = 20
	cfg.Probe.TargetsPerMinute = 6000
	cfg.Probe.TargetsPerPrefix = 1
	cfg.Probe.Round = time.Second
	cfg.Probe.Targets = map[string][]string{p4.String(): {"198.51.100.1"}, p6.String(): {"2001:db8:100::1"}}
	m := runMeasure(t, cfg, buyerASN, buyer, b, daemon.MeasureOptions{})

	mx := quality.New(x.db(), nil)
	ctx := context.Background()
	cell := func(via uint32, p netip.Prefix) *quality.Cell {
		c, err := mx.PathQuality(ctx, buyerASN, via, []netip.Prefix{p}, clock.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	measured := func(via uint32) func() string {
		return func() string {
			for _, p := range []netip.Prefix{p4, p6} {
				if c := cell(via, p); c == nil {
					return fmt.Sprintf("nothing through AS%d toward %v yet (%+v)", via, p, m.Status())
				}
			}
			return ""
		}
	}
	eventually(t, 20*time.Second, "S1's prefixes measured from the buyer", measured(s1ASN))
	// S2 joins the analysis: registering its prefixes wakes the streams.
	x.addPrefix(s2ASN, p4.String())
	x.addPrefix(s2ASN, p6.String())
	eventually(t, 20*time.Second, "S2's prefixes measured from the buyer", measured(s2ASN))

	if v, _ := b.Sysctl("net.ipv4.conf.eth0.rp_filter"); v != "2" {
		t.Errorf("rp_filter on the exchange interface: %q, want 2 (loose)", v)
	}
	for _, p := range []netip.Prefix{p4, p6} {
		c1, c2 := cell(s1ASN, p), cell(s2ASN, p)
		t.Logf("%v: S1 %+v", p, *c1)
		t.Logf("%v: S2 %+v", p, *c2)
		if c1.Vantage != buyerASN || c2.Vantage != buyerASN {
			t.Errorf("%v: vantage %d/%d, want the buyer's own", p, c1.Vantage, c2.Vantage)
		}
		if c1.LossPPM != 0 {
			t.Errorf("%v: S1 loss %d ppm, want 0", p, c1.LossPPM)
		}
		if c2.LatencyUs-c1.LatencyUs < 15_000 {
			t.Errorf("%v: S2-S1 latency %d us, want >= 15 ms", p, c2.LatencyUs-c1.LatencyUs)
		}
		// 30 % of 20: 6 expected; none lost has probability 0.7^20 < 0.1 %.
		if c2.LossPPM < 50_000 || c2.LossPPM > 700_000 {
			t.Errorf("%v: S2 loss %d ppm, want 5-70 %%", p, c2.LossPPM)
		}
		// The matrix's answer to "who is best toward p": S1 first.
		es, err := mx.Query(ctx, 0, p, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(es, func(i, j int) bool {
			if es[i].LossPPM != es[j].LossPPM {
				return es[i].LossPPM < es[j].LossPPM
			}
			return es[i].LatencyUs < es[j].LatencyUs
		})
		if len(es) != 2 || es[0].ViaASN != s1ASN || es[1].ViaASN != s2ASN {
			t.Errorf("%v: matrix ranks %+v, want S1 then S2", p, es)
		}
	}
	if st := m.Status(); st.Sellers != 2 || st.Parked != 0 {
		t.Errorf("status %+v: want 2 sellers probed, nothing refused", st)
	}
}
