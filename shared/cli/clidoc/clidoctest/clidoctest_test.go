package clidoctest

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/shared/cli/clidoc"
)

func TestCheckPages(t *testing.T) {
	root := &cobra.Command{Use: "prog", Short: "a program"}
	order := &cobra.Command{Use: "order", Short: "place orders", RunE: func(*cobra.Command, []string) error { return nil }}
	order.AddCommand(&cobra.Command{Use: "secret", Short: "hidden", Hidden: true, Run: func(*cobra.Command, []string) {}})
	root.AddCommand(order, clidoc.Command(root))
	CheckPages(t, root)
}
