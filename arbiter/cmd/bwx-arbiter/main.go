// Command bwx-arbiter is the exchange's daemon (`run`) and its operator
// commands (ca, member, prefix, orders, trades, import, bgp, settle, credit,
// quality, federation, store).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/cli/clidoc"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bwx-arbiter:", cli.Explain(err))
		os.Exit(1)
	}
}

// newRoot is the command tree: the program, and what its manual pages and
// completions describe (the hidden gendocs command writes them).
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "bwx-arbiter",
		Short:         "bwx exchange arbiter: registry, order book, route server, settlement",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g := &globals{}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "/etc/bwx/arbiter.yaml", "arbiter config file")
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "operator socket (default: operator.socket from the config)")
	root.PersistentFlags().StringVar(&g.arbiter, "arbiter", "", "reach a remote arbiter at host:port with --bundle instead of the local socket")
	root.PersistentFlags().StringVar(&g.bundle, "bundle", "", "operator certificate bundle, with --arbiter")
	root.PersistentFlags().StringVarP(&g.out.Format, "output", "o", "table", "output format: table or json")
	root.AddCommand(runCmd(g), caCmd(g), memberCmd(g), prefixCmd(g), ordersCmd(g), tradesCmd(g), importCmd(g), bgpCmd(g), settleCmd(g), creditCmd(g), qualityCmd(g), federationCmd(g), storeCmd(g))
	root.AddCommand(clidoc.Command(root))
	return root
}
