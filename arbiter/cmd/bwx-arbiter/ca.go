package main

import (
	"fmt"

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
	c.AddCommand(initCmd, operator)
	return c
}
