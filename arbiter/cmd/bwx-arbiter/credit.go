package main

import (
	"fmt"

	"github.com/spf13/cobra"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/units"
)

func creditCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "credit", Short: "credit control: members' limits, payments and exposure"}
	var (
		member uint32
		limit  units.Money
		amount units.Money
		memo   string
	)
	set := &cobra.Command{
		Use:     "set",
		Short:   "set a member's credit limit (0 stops all its new buys); existing trades run on",
		Example: `  bwx-arbiter credit set --member 64500 --limit 5000.00`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit %s: must not be negative", limit)
			}
			cr, err := cli.Call(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.SetCreditLimit, &pb.SetCreditLimitRequest{MemberAsn: member, LimitMicros: int64(limit)})
			if err != nil {
				return err
			}
			return cli.Print(g.out, cr, creditRow)
		},
	}
	set.Flags().Uint32Var(&member, "member", 0, "the member's AS number")
	set.Flags().Var(&limit, "limit", "the limit in currency units, e.g. 5000.00")
	set.MarkFlagRequired("member")
	set.MarkFlagRequired("limit")

	payment := &cobra.Command{
		Use:     "payment",
		Short:   "record a member's payment in the ledger; it lowers the member's exposure",
		Example: `  bwx-arbiter credit payment --member 64500 --amount 1200.50 --memo "wire 2026-12-03"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if amount <= 0 {
				return fmt.Errorf("--amount %s: must be positive", amount)
			}
			cr, err := cli.Call(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.RecordPayment, &pb.RecordPaymentRequest{MemberAsn: member, AmountMicros: int64(amount), Memo: memo})
			if err != nil {
				return err
			}
			return cli.Print(g.out, cr, creditRow)
		},
	}
	payment.Flags().Uint32Var(&member, "member", 0, "the member's AS number")
	payment.Flags().Var(&amount, "amount", "the amount paid in currency units, e.g. 1200.50")
	payment.Flags().StringVar(&memo, "memo", "", "a note kept with the ledger entry (e.g. the bank reference)")
	payment.MarkFlagRequired("member")
	payment.MarkFlagRequired("amount")

	show := &cobra.Command{
		Use:   "show",
		Short: "members' exposure against their credit limits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := cli.Call(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.GetCredit, &pb.GetCreditRequest{MemberAsn: member})
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, resp.Credits, cli.CreditTable)
		},
	}
	show.Flags().Uint32Var(&member, "member", 0, "only this member")
	c.AddCommand(set, payment, show)
	return c
}

// creditRow is one member's credit after a change, in cli.CreditTable.
func creditRow(o cli.Output, c *pb.Credit) error { return cli.CreditTable(o, []*pb.Credit{c}) }
