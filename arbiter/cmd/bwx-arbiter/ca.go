package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/shared/pki"
)

func caCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "ca", Short: "the exchange's certificate authority"}
	var (
		dir, name string
		hosts     []string
	)
	caDir := func() (string, error) {
		if dir != "" {
			return dir, nil
		}
		cfg, err := loadConfigOrDefault(g.configPath)
		if err != nil {
			return "", err
		}
		return cfg.CADir(), nil
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "create the exchange CA and the arbiter's server certificate",
		Long: `Creates the CA that signs every member's and operator's certificate, and the
arbiter's TLS server certificate for the given host names and addresses.
The directory defaults to ca.dir (state_dir/ca) from the config. It refuses
to overwrite an existing CA.`,
		Example: "  bwx-arbiter ca init --host arbiter.ix.example --host 192.0.2.1 --host 2001:db8::1",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := caDir()
			if err != nil {
				return err
			}
			if _, err := pki.InitCA(d, name, hosts); err != nil {
				return err
			}
			fmt.Printf("created the exchange CA in %s (keep ca.key secret and backed up)\n", d)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "CA directory (default: from the config)")
	initCmd.Flags().StringVar(&name, "name", "bwx exchange CA", "the CA's name")
	initCmd.Flags().StringSliceVar(&hosts, "host", nil, "a name or address agents use to reach the arbiter (repeat)")

	var opName, out string
	operator := &cobra.Command{
		Use:   "operator",
		Short: "issue an operator certificate bundle (for bwx-arbiter --arbiter ... --bundle ...)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := caDir()
			if err != nil {
				return err
			}
			ca, err := pki.LoadCA(d)
			if err != nil {
				return err
			}
			if err := pki.IssueBundle(ca, pki.OperatorIdentity(opName), out); err != nil {
				return err
			}
			fmt.Printf("operator %q certificate bundle written to %s\n", opName, out)
			return nil
		},
	}
	operator.Flags().StringVar(&dir, "dir", "", "CA directory (default: from the config)")
	operator.Flags().StringVar(&opName, "name", "", "the operator's name ([a-z0-9._-])")
	operator.Flags().StringVar(&out, "bundle-out", "", "file to write the bundle to")
	operator.MarkFlagRequired("name")
	operator.MarkFlagRequired("bundle-out")
	var exName string
	var exHosts []string
	exchange := &cobra.Command{
		Use:   "exchange",
		Short: "issue this exchange's federation certificate bundle (federation.bundle)",
		Long: `Issues the certificate this exchange's arbiter presents to its peer
exchanges (federation), naming it bwx://exchange/<name> (federation.name),
for the host names and addresses peers dial (federation.listen). The bundle
holds the CA certificate too: give that (ca.crt) to each peer exchange's
operator, who configures it as this exchange's CA (federation.peers[].ca).`,
		Example: "  bwx-arbiter ca exchange --name ix-a --host fed.ix-a.example --bundle-out /var/lib/bwx-arbiter/federation.pem",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := caDir()
			if err != nil {
				return err
			}
			ca, err := pki.LoadCA(d)
			if err != nil {
				return err
			}
			certPEM, keyPEM, err := ca.IssueExchange(exName, exHosts, 0)
			if err != nil {
				return err
			}
			if err := pki.WriteBundle(out, certPEM, keyPEM, ca.CertPEM()); err != nil {
				return err
			}
			fmt.Printf("exchange %q federation bundle written to %s; its CA for the peers is %s\n", exName, out, filepath.Join(d, pki.CACertFile))
			return nil
		},
	}
	exchange.Flags().StringVar(&dir, "dir", "", "CA directory (default: from the config)")
	exchange.Flags().StringVar(&exName, "name", "", "this exchange's name ([a-z0-9._-]), as federation.name")
	exchange.Flags().StringSliceVar(&exHosts, "host", nil, "a name or address peers use to reach the federation listener (repeat)")
	exchange.Flags().StringVar(&out, "bundle-out", "", "file to write the bundle to")
	exchange.MarkFlagRequired("name")
	exchange.MarkFlagRequired("bundle-out")
	c.AddCommand(initCmd, operator, exchange)
	return c
}
