// Command bwx-lab brings up a local bwx exchange in network namespaces and
// tells its story with no order placed by hand: a trading switch, an arbiter
// with its route server, two sellers whose BIRD announce their routes and a
// buyer, each with its agent; the buyer's traffic is measured, the paths
// through both sellers probed, the access manager decides in shadow mode and
// then buys, the traffic moves, a degraded seller is failed over, both sides
// report usage, and the lab's period is settled into an invoice. Then it
// keeps the lab running for you to explore until Ctrl-C (or stops at once
// with --once). Run it through scripts/lab, as root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
	"github.com/bwxchange/bwx/shared/labnet/story"
)

func main() {
	once := flag.Bool("once", false, "tear the lab down as soon as the buyer's invoice is shown")
	keep := flag.Bool("keep-dir", false, "keep the lab directory (configs, logs, database) after teardown")
	binDir := flag.String("bin", "", "a directory holding bwx-arbiter and bwx-agent already built (scripts/lab builds them); empty: build them")
	flag.Parse()
	if err := labnet.NeedsRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "bwx-lab: %v\nThe lab builds network namespaces, a bridge and veth links: run it as root, e.g. sudo scripts/lab\n", err)
		os.Exit(2)
	}
	if err := run(*once, *keep, *binDir); err != nil {
		fmt.Fprintln(os.Stderr, "\nbwx-lab:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(once, keep bool, binDir string) (err error) {
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
	bin := exchange.Binaries{Arbiter: filepath.Join(binDir, "bwx-arbiter"), Agent: filepath.Join(binDir, "bwx-agent")}
	if binDir == "" {
		step("building bwx-arbiter and bwx-agent")
		if bin, err = exchange.Build(ctx, dir); err != nil {
			return err
		}
	}
	step("building the exchange: switch, arbiter and members in network namespaces")
	x, err := exchange.UpWith(ctx, dir, bin, story.Members(), exchange.Options{ArbiterConfig: story.ArbiterConfig})
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
	st := &story.Story{X: x, Out: os.Stdout}
	defer st.Close()
	if _, err := st.Run(ctx); err != nil {
		return err
	}
	seller, buyer := x.Member("seller-a"), x.Member("buyer")
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
