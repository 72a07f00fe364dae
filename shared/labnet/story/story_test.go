package story_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
	"github.com/bwxchange/bwx/shared/labnet/story"
)

// TestStory runs what `scripts/lab --once` shows and checks each step's
// outcome: the buy from the faster seller in both families, the traffic
// through it, the failover, both sides' usage agreeing, and an invoice
// billing the measured use; and that the lab leaves nothing behind.
func TestStory(t *testing.T) {
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
	var out bytes.Buffer
	s := &story.Story{X: x, Out: &out}
	res, err := s.Run(ctx)
	s.Close()
	if cerr := x.Close(); cerr != nil {
		t.Error(cerr)
	}
	t.Logf("the story as scripts/lab prints it:\n%s", out.String())
	if err != nil {
		for _, m := range x.Members {
			t.Logf("%s log tail:\n%s", m.Name, exchange.Tail(m.Log, 40))
		}
		t.Fatal(err)
	}
	left, _ := labnet.List()
	for _, ns := range left {
		if strings.HasPrefix(ns, prefix+"-") {
			t.Errorf("namespace %s left behind", ns)
		}
	}

	for _, c := range []struct {
		name   string
		trades []*pb.Trade
		seller uint32
	}{{"buy", res.Bought, 64502}, {"failover", res.FailedOver, 64501}} {
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
	// The invoice bills the trades with the use the buyer measured: about
	// 0.85 Mbit/s per family through seller-a's trades, all agreed.
	inv := res.Invoice
	if inv.ASN != 64510 || len(inv.Lines) != 4 || inv.NetMicros >= 0 {
		t.Fatalf("buyer's invoice for %s: %+v, want AS64510 paying for 4 trades", res.Period, inv)
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
	t.Logf("from traffic to invoice in %v", res.Took)
}
