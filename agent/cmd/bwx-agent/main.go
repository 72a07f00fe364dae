// Command bwx-agent is the member's access manager: the daemon (`run`) and
// the commands a person uses to trade by hand (order, offers, take, trades).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/cli/clidoc"
	"github.com/bwxchange/bwx/shared/logging"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

type globals struct {
	configPath string
	arbiter    string
	bundle     string
	out        cli.Output
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "bwx-agent:", cli.Explain(err))
		os.Exit(1)
	}
}

// newRoot is the command tree: the program, and what its manual pages and
// completions describe (the hidden gendocs command writes them).
func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "bwx-agent",
		Short:         "bwx access manager: measures, trades and installs the routes it bought",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "/etc/bwx/agent.yaml", "agent config file")
	pf.StringVar(&g.arbiter, "arbiter", "", "arbiter host:port, or several separated by commas (default: arbiter.addresses from the config)")
	pf.StringVar(&g.bundle, "bundle", "", "member certificate bundle (default: bundle from the config)")
	pf.StringVarP(&g.out.Format, "output", "o", "table", "output format: table or json")
	root.AddCommand(runCmd(g), orderCmd(g), offersCmd(g), takeCmd(g), tradesCmd(g), statusCmd(g), decisionsCmd(g), invoicesCmd(g), usageCmd(g), creditCmd(g))
	root.AddCommand(clidoc.Command(root))
	return root
}

// config reads the config file, lets flags override it, and validates.
func (g *globals) config() (daemon.Config, error) {
	return daemon.LoadConfigThen(g.configPath, func(cfg *daemon.Config) {
		if g.arbiter != "" {
			cfg.Arbiter.Address, cfg.Arbiter.Addresses = "", strings.Split(g.arbiter, ",")
		}
		if g.bundle != "" {
			cfg.Bundle = g.bundle
		}
	})
}

// dial connects as the member for a one-off command.
func (g *globals) dial() (*grpc.ClientConn, error) {
	g.out.W = os.Stdout
	if err := g.out.Check(); err != nil {
		return nil, err
	}
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	b, err := pki.LoadBundle(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	return rpc.DialTLSAny(cfg.ArbiterAddresses(), cfg.Arbiter.ServerName, b)
}

// connect dials the arbiter for one command (a cli.Connect).
func (g *globals) connect() (*grpc.ClientConn, context.Context, func(), error) {
	return cli.Dial(g.dial, cli.CallTimeout)
}

// fromAgent is what fetch reads from the running agent on its status
// socket (the flag's, or the config's), once the output is checked.
func fromAgent[T any](g *globals, socket string, fetch func(ctx context.Context, socket string) (T, error)) (T, error) {
	var none T
	g.out.W = os.Stdout
	if err := g.out.Check(); err != nil {
		return none, err
	}
	if socket == "" {
		cfg, err := g.config()
		if err != nil {
			return none, err
		}
		socket = cfg.SocketPath()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return fetch(ctx, socket)
}

func runCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "run the agent daemon (systemd: bwx-agent.service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			log, level, err := logging.NewReloadable(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			if err != nil {
				return err
			}
			a, err := daemon.New(cfg, log)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			go func() {
				for range hup {
					next, err := g.config() // the flags still replace their keys
					if err != nil {
						log.Error("reload refused, keeping the running config", "error", err)
						continue
					}
					lv, _ := logging.ParseLevel(next.Log.Level)
					level.Set(lv)
					log.Info("config reloaded (log.level; other keys need a restart)", "log_level", lv.String())
				}
			}()
			err = a.Run(ctx)
			log.Info("stopped")
			return err
		},
	}
}
