package exchange_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/bird"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
)

// TestLabTradeReachesBothAgents runs the whole lab as scripts/lab does: real
// binaries in namespaces, orders placed with the agent's commands, and the
// trade event arriving at both agents over mTLS across the switch.
func TestLabTradeReachesBothAgents(t *testing.T) {
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := exchange.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	x, err := exchange.Up(ctx, dir, bin, exchange.DefaultMembers())
	if err != nil {
		t.Fatal(err)
	}
	prefix := x.Lab.Prefix
	closed := false
	defer func() {
		if !closed {
			x.Close()
		}
	}()
	// The sellers' BIRDs announce their customer routes; the route server
	// accepts them against the registry and the IRR the lab imported.
	if err := x.WaitRoutes(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	seller, buyer := x.Member("seller-a"), x.Member("buyer")
	// Before any trade the buyer reaches the sellers through its upstream.
	for _, p := range seller.Prefixes {
		dst := netip.MustParsePrefix(p).Addr().Next()
		up := x.Upstream.Addr4()
		if dst.Is6() {
			up = x.Upstream.Addr6()
		}
		if via, err := x.RouteVia(ctx, buyer, dst); err != nil || via != up {
			t.Fatalf("before the trade %v goes via %v (%v), want the upstream %v", dst, via, err, up)
		}
	}
	for _, p := range seller.Prefixes {
		r, err := x.DemoTrade(ctx, seller, buyer, p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Trades, p) {
			t.Errorf("operator's trade list lacks %s:\n%s", p, r.Trades)
		}
		// The route server delivers the trade to the buyer's agent, which
		// installs it: the buyer's traffic to the prefix now goes to the
		// seller's router, not to the upstream.
		pfx := netip.MustParsePrefix(p)
		gw := seller.Host.Addr4()
		if pfx.Addr().Is6() {
			gw = seller.Host.Addr6()
		}
		if err := x.WaitRouteVia(ctx, buyer, pfx.Addr().Next(), gw, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := buyer.Host.Ping(ctx, pfx.Addr().Next()); err != nil {
			t.Errorf("ping %v through the seller: %v", pfx.Addr().Next(), err)
		}
	}
	// Restart the arbiter: the trades are still there, and both running
	// agents reconnect and receive the next trade.
	// The buyer keeps the traded routes through it (graceful restart): every
	// lookup during the restart still goes to the seller.
	dst := netip.MustParsePrefix(seller.Prefixes[0]).Addr().Next()
	sampling, lookups, wrong := make(chan struct{}), 0, []string{}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-sampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			via, err := x.RouteVia(ctx, buyer, dst)
			lookups++
			if err != nil || via != seller.Host.Addr4() {
				wrong = append(wrong, fmt.Sprintf("%v (%v)", via, err))
			}
		}
	}()
	err = x.RestartArbiter(ctx)
	if err == nil {
		err = x.WaitRoutes(ctx, 30*time.Second)
	}
	close(sampling)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if len(wrong) > 0 || lookups < 10 {
		t.Errorf("%d of %d lookups during the arbiter restart did not go via the seller, e.g. %v", len(wrong), lookups, wrong[:min(len(wrong), 3)])
	}
	out, err := x.Operator(ctx, "trades")
	if err != nil || strings.Count(out, "AS64501") != 2 {
		t.Fatalf("trades after an arbiter restart: %v\n%s", err, out)
	}
	if _, err := x.DemoTrade(ctx, x.Member("seller-b"), buyer, "203.0.113.0/24"); err != nil {
		t.Fatalf("trade after an arbiter restart did not reach the agents: %v", err)
	}

	// Seller-a's router stops: the route server withdraws its trades from
	// the buyer, whose traffic goes back to the upstream, and the delivery
	// record shows the gap, whose cause is the seller, to the operator and
	// to the buyer. The router comes back: so do the trades.
	if err := seller.Router.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := x.WaitRouteVia(ctx, buyer, dst, x.Upstream.Addr4(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, view := range []func() (string, error){
		func() (string, error) { return x.Operator(ctx, "trades", "--member", "64510", "--delivery") },
		func() (string, error) { return x.Agent(ctx, buyer, "trades", "--delivery") },
	} {
		if out, err := view(); err != nil || !strings.Contains(out, "not delivered (seller): seller session down") {
			t.Errorf("delivery record lacks the seller's gap: %v\n%s", err, out)
		}
	}
	if seller.Router, err = bird.Start(ctx, seller.Host, seller.Router.Dir, seller.Router.Config()); err != nil {
		t.Fatal(err)
	}
	if err := x.WaitRouteVia(ctx, buyer, dst, seller.Host.Addr4(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	out, err = x.Operator(ctx, "trades", "--member", "64510", "--delivery")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delivery after seller-a's router came back:\n%s", out)
	var gapThenBack bool
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		// TRADE SESSION FROM TO STATE: the open interval after the gap.
		if len(f) >= 5 && f[0] == "1" && f[1] == buyer.Host.Addr4().String() && f[3] == "now" && f[4] == "delivered" {
			gapThenBack = true
		}
	}
	if !gapThenBack || !strings.Contains(out, "seller session down") {
		t.Errorf("delivery record does not show the gap and the return:\n%s", out)
	}

	// The arbiter's dashboard reaches the machine running the lab, with
	// the exchange's figures on it.
	url, err := x.ServeDashboard(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url + "trades")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "AS64510") || !strings.Contains(string(page), "198.51.100.0/24") {
		t.Errorf("dashboard %strades: %s\n%.500s", url, resp.Status, page)
	}
	if _, err := x.ServeDashboard(ctx, "0.0.0.0:0"); err == nil {
		t.Error("the unauthenticated dashboard was offered beyond loopback")
	}

	// The buyer's own view, as a script would read it.
	out, err = x.Agent(ctx, buyer, "trades", "--output", "json")
	if err != nil || strings.Count(out, `"seller_asn": 64501`) != 2 {
		t.Fatalf("buyer's trades: %v\n%s", err, out)
	}
	// A member may not sell what it has not registered.
	if out, err := x.Agent(ctx, x.Member("seller-b"), "order", "sell", "--prefix", "198.51.100.0/24", "--capacity", "1G", "--price", "1"); err == nil ||
		!strings.Contains(out, "spec.destination") {
		t.Fatalf("seller-b sold seller-a's prefix: %v\n%s", err, out)
	}

	closed = true
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// The daemons got SIGTERM and stopped gracefully, not by SIGKILL.
	for _, log := range []string{x.ArbiterLog, seller.Log, buyer.Log} {
		if _, err := exchange.WaitLog(ctx, log, time.Second, `"msg":"stopped"`); err != nil {
			t.Errorf("no graceful stop: %v", err)
		}
	}
	left, _ := labnet.List()
	for _, ns := range left {
		if strings.HasPrefix(ns, prefix+"-") {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(out) > 0 {
		t.Errorf("processes left behind: %s", out)
	}
}
