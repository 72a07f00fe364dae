// Package managerlab runs the access manager end to end in the lab
// exchange, as the lab's story (shared/labnet/story, scripts/lab) tells it:
// real agents, arbiter, route server, BIRD routers, kernel tables and
// packets in network namespaces, with no order placed by hand.
package managerlab

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/agent/manager"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
	"github.com/bwxchange/bwx/shared/labnet/story"
	"github.com/bwxchange/bwx/shared/pathscore"
)

// TestLabStory runs the lab's story (what `scripts/lab --once` shows: the
// access manager in shadow mode, then trading, buying from the faster
// seller, failing over when its path degrades, usage agreed by both sides
// and an invoice) and checks each step's outcome, the journal's reasons
// and that the lab leaves nothing behind.
func TestLabStory(t *testing.T) {
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("the lab story runs in the full pass only (-short): it takes two minutes of real time")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := exchange.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	x, err := exchange.UpWith(ctx, dir, bin, story.Members(), exchange.Options{ArbiterConfig: story.ArbiterConfig})
	if err != nil {
		t.Fatal(err)
	}
	prefix := x.Lab.Prefix
	closed := false
	closeLab := func() {
		if !closed {
			closed = true
			if err := x.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	defer closeLab()
	sa, sb, buyer := x.Member("seller-a"), x.Member("seller-b"), x.Member("buyer")
	var out bytes.Buffer
	st := &story.Story{X: x, Out: &out}
	defer st.Close()
	res, err := st.Run(ctx)
	t.Logf("the story as scripts/lab prints it:\n%s", out.String())
	if err != nil {
		for _, m := range x.Members {
			t.Logf("%s log (decisions, warnings, errors):\n%s", m.Name, interesting(m.Log, 30))
		}
		t.Fatal(err)
	}
	t.Logf("from traffic to invoice in %v", res.Took)

	// Shadow mode: the choice of seller-b for both families, with the
	// gains and their margins, and no order placed.
	var sum manager.Summary
	if err := json.Unmarshal([]byte(res.ShadowSummary), &sum); err != nil {
		t.Fatalf("shadow summary: %v\n%s", err, res.ShadowSummary)
	}
	if len(sum.Destinations) != 2 || sum.Destinations[0].Prefix != story.Dest4 || sum.Destinations[1].Prefix != story.Dest6 ||
		sum.Destinations[0].Seller != sb.ASN || sum.Destinations[1].Seller != sb.ASN {
		t.Errorf("shadow summary %+v, want %v and %v from AS%d", sum, story.Dest4, story.Dest6, sb.ASN)
	}
	for _, v := range sum.Destinations {
		if v.GainLatencyUs < 40_000 || v.MonthlyMicros <= 0 || v.PriceMicros != 3_000_000 {
			t.Errorf("shadow summary lacks the gain or the price: %+v", v)
		}
		if v.GainLatencyMarginUs <= 0 || v.GainLatencyMarginUs > v.GainLatencyUs/2 || v.GainLossMarginPPM <= 0 {
			t.Errorf("shadow summary's gains lack their margins: %+v", v)
		}
	}
	if strings.Contains(res.ShadowOrders, "\"id\"") {
		t.Errorf("the agent placed orders in shadow mode:\n%s", res.ShadowOrders)
	}

	// The buy and the failover, each in both families, and the traffic
	// through the seller each time.
	for _, c := range []struct {
		name   string
		trades []*pb.Trade
		seller uint32
	}{{"buy", res.Bought, sb.ASN}, {"failover", res.FailedOver, sa.ASN}} {
		if len(c.trades) != 2 || c.trades[0].Protocol == c.trades[1].Protocol {
			t.Errorf("%s: trades %v, want one IPv4 and one IPv6 from AS%d", c.name, c.trades, c.seller)
		}
	}
	for _, c := range []struct {
		name          string
		through, sent int64
	}{{"seller-b after the buy", res.Through, res.Sent}, {"seller-a after the failover", res.FailoverThrough, res.FailoverSent}} {
		if c.sent < 300 || c.through < c.sent*8/10 {
			t.Errorf("%s forwarded %d packets of the buyer's %d", c.name, c.through, c.sent)
		}
	}

	// The journal: the buy chosen by the path score on enough probes; the
	// breach (which needs quality.min_probes probes beyond the limits, so
	// may come after the switch) and the failover to seller-a.
	deadline := clock.Now().Add(30 * time.Second)
	var ds daemon.Decisions
	for {
		ds = decisions(ctx, t, x, buyer)
		if (find(ds.Decisions, manager.KindBreach, sb.ASN, story.Dest4) != nil && find(ds.Decisions, manager.KindBreach, sb.ASN, story.Dest6) != nil) ||
			clock.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second) // polling the agent's journal
	}
	for _, p := range []netip.Prefix{story.Dest4, story.Dest6} {
		buy := find(ds.Decisions, manager.KindBuy, sb.ASN, p)
		if buy == nil || buy.Shadow || buy.SizeBps <= 0 || buy.PriceMicros != 3_000_000 {
			t.Fatalf("no buy of %v from AS%d at 3/Mbps in the journal: %+v", p, sb.ASN, ds.Decisions)
		}
		if buy.GainLatencyUs < 40_000 {
			t.Errorf("buy of %v gains %d us over the default path, want about 60 ms", p, buy.GainLatencyUs)
		}
		if buy.Current == nil || buy.Chosen == nil || buy.Current.Probes < 20 || buy.Chosen.Probes < 20 {
			t.Errorf("buy of %v decided on too few probes: current %+v, chosen %+v", p, buy.Current, buy.Chosen)
		} else if pathscore.Worse(pathscore.Loss, figures(*buy.Chosen), figures(*buy.Current)) {
			t.Errorf("buy of %v moved to a path with significantly more loss: %s", p, buy.Compared)
		}
		if !strings.Contains(buy.Compared, "latency") || !strings.Contains(buy.Compared, "significantly lower") {
			t.Errorf("buy of %v journals no latency comparison: %q", p, buy.Compared)
		}
		if br := find(ds.Decisions, manager.KindBreach, sb.ASN, p); br == nil {
			t.Errorf("no breach of AS%d toward %v journaled: %+v", sb.ASN, p, ds.Decisions)
		} else if br.Chosen == nil || br.Chosen.Probes < 20 {
			t.Errorf("breach of AS%d toward %v on too few probes: %s", sb.ASN, p, br)
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

	// The invoice bills the trades with the use the buyer measured: about
	// 0.85 Mbit/s per family through seller-a's trades, all agreed.
	inv := res.Invoice
	if inv.ASN != buyer.ASN || len(inv.Lines) != 4 || inv.NetMicros >= 0 {
		t.Fatalf("buyer's invoice for %s: %+v, want AS%d paying for 4 trades", res.Period, inv, buyer.ASN)
	}
	for _, l := range inv.Lines {
		if l.CommittedMicros >= 0 || l.DisputedSlots != 0 {
			t.Errorf("invoice line %+v: want a committed charge and no disputed slot", l)
		}
	}
	for _, tr := range res.FailedOver {
		for _, l := range inv.Lines {
			if l.TradeID == tr.Id && (l.P95Bps < 500_000 || l.P95Bps > 1_200_000) {
				t.Errorf("trade %d (seller-a, %v): 95th percentile %d bit/s, want the ~850 kbit/s sent", tr.Id, tr.Prefixes, l.P95Bps)
			}
		}
	}

	st.Close()
	closeLab()
	left, _ := labnet.List()
	for _, ns := range left {
		if strings.HasPrefix(ns, prefix+"-") {
			t.Errorf("namespace %s left behind", ns)
		}
	}
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

func figures(q manager.Quality) pathscore.Figures {
	return pathscore.Figures{LatencyUs: q.LatencyUs, JitterUs: q.JitterUs, LossPPM: q.LossPPM, Probes: q.Probes,
		LatencyErrUs: q.LatencyErrUs, JitterErrUs: q.JitterErrUs}
}

// find is the first decision of kind k about p through seller made in trade
// mode (the shadow ones are the summary's).
func find(ds []manager.Decision, k manager.Kind, seller uint32, p netip.Prefix) *manager.Decision {
	for i := range ds {
		if ds[i].Kind == k && ds[i].Seller == seller && ds[i].Prefix == p && !ds[i].Shadow {
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
