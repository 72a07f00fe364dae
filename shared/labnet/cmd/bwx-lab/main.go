// Command bwx-lab brings up a local bwx exchange in network namespaces: a
// trading switch, an arbiter with its route server, two sellers whose BIRD
// announce their customer routes, a buyer, and an upstream that is everyone's
// default path; each member runs its agent. It shows trades made by
// hand-placed orders and the buyer's traffic moving from the upstream to the
// seller, then keeps the lab running for you to explore until Ctrl-C (or
// stops at once with --once). Run it through scripts/lab, as root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
)

func main() {
	once := flag.Bool("once", false, "tear the lab down as soon as the trade has reached both agents")
	keep := flag.Bool("keep-dir", false, "keep the lab directory (configs, logs, database) after teardown")
	flag.Parse()
	if err := labnet.NeedsRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "bwx-lab: %v\nThe lab builds network namespaces, a bridge and veth links: run it as root, e.g. sudo scripts/lab\n", err)
		os.Exit(2)
	}
	if err := run(*once, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "\nbwx-lab:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(once, keep bool) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "bwx-lab-")
	if err != nil {
		return err
	}
	defer func() {
		if keep || err != nil {
			fmt.Printf("lab directory kept: %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	step("building bwx-arbiter and bwx-agent")
	bin, err := exchange.Build(ctx, dir)
	if err != nil {
		return err
	}
	step("building the exchange: switch, arbiter and members in network namespaces")
	x, err := exchange.Up(ctx, dir, bin, exchange.DefaultMembers())
	if err != nil {
		return err
	}
	defer func() {
		step("tearing the lab down")
		if cerr := x.Close(); cerr != nil && err == nil {
			err = cerr
		}
		left, _ := labnet.List()
		for _, ns := range left {
			if strings.HasPrefix(ns, x.Lab.Prefix+"-") {
				err = errors.Join(err, fmt.Errorf("namespace %s was left behind", ns))
			}
		}
		if err == nil {
			fmt.Println("    all namespaces, links and processes removed")
		}
	}()
	fmt.Printf("    switch %s-sw (bridge br0), exchange LAN 192.0.2.0/24 and 2001:db8:ffff::/64\n", x.Lab.Prefix)
	fmt.Printf("    arbiter  %-16s %s, %s  (gRPC :7443, metrics :9470)\n", x.Arbiter.Netns, x.Arbiter.Addr4(), x.Arbiter.Addr6())
	for _, m := range x.Members {
		fmt.Printf("    AS%-6d %-16s %s, %s  %s  %s\n", m.ASN, m.Host.Netns, m.Host.Addr4(), m.Host.Addr6(), m.Capacity, strings.Join(m.Prefixes, " "))
	}
	step("sellers' BIRD announce their customer routes to the route server (bwx-arbiter bgp sessions)")
	if err := x.WaitRoutes(ctx, 60*time.Second); err != nil {
		return err
	}
	out, err := x.Operator(ctx, "bgp", "sessions")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	seller, buyer := x.Member("seller-a"), x.Member("buyer")
	for _, prefix := range seller.Prefixes {
		dst := netip.MustParsePrefix(prefix).Addr().Next()
		before, _ := x.RouteVia(ctx, buyer, dst)
		step("AS%d offers capacity toward %s; AS%d bids for it", seller.ASN, prefix, buyer.ASN)
		r, err := x.DemoTrade(ctx, seller, buyer, prefix)
		if err != nil {
			return err
		}
		fmt.Printf("    buyer agent:  %s\n    seller agent: %s\n", r.BuyerLine, r.SellerLine)
		gw := seller.Host.Addr4()
		if dst.Is6() {
			gw = seller.Host.Addr6()
		}
		if err := x.WaitRouteVia(ctx, buyer, dst, gw, 30*time.Second); err != nil {
			return err
		}
		fmt.Printf("    buyer's route to %v: via %v (upstream) before the trade, via %v (seller) now\n", dst, before, gw)
	}
	out, err = x.Operator(ctx, "trades")
	if err != nil {
		return err
	}
	step("trades on the exchange (bwx-arbiter trades)")
	fmt.Print(indent(out))
	out, err = x.Operator(ctx, "bgp", "sent", fmt.Sprint(buyer.ASN))
	if err != nil {
		return err
	}
	step("what the route server sends the buyer (bwx-arbiter bgp sent %d)", buyer.ASN)
	fmt.Print(indent(out))
	out, err = x.Agent(ctx, buyer, "status")
	if err != nil {
		return err
	}
	step("the buyer's agent (bwx-agent status)")
	fmt.Print(indent(out))
	if once {
		return nil
	}
	// The operator's dashboard, from this machine's browser. Port 8480 if
	// free, any other if not.
	url, err := x.ServeDashboard(ctx, "127.0.0.1:8480")
	if err != nil {
		url, err = x.ServeDashboard(ctx, "127.0.0.1:0")
	}
	if err != nil {
		return err
	}
	fmt.Printf("\nThe dashboard (the operator's view): %s\n", url)
	fmt.Printf(`
The lab is running. Try, in another shell:
  ip netns exec %[1]s %[2]s --config %[3]s trades
  ip netns exec %[1]s %[2]s --config %[3]s order buy --prefix 203.0.113.0/24 --capacity 1G --price 0.5 --duration 30d
  %[4]s --config %[5]s orders
  %[4]s --config %[5]s bgp received %[8]d
  %[4]s --config %[5]s trades --delivery
  ip netns exec %[1]s ip route show proto 239    # 239 is bwx (named once the bwx-agent package is installed)
  ip netns exec %[6]s curl -s localhost:9470/metrics | grep ^bwx_
Logs are in %[7]s. Press Ctrl-C to tear everything down.
`, buyer.Host.Netns, bin.Agent, buyer.Config, bin.Arbiter, x.ArbiterConfig, x.Arbiter.Netns, dir, seller.ASN)
	keep = true
	select {
	case <-ctx.Done():
		fmt.Println()
	case <-time.After(24 * time.Hour):
	}
	keep = false
	return nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
