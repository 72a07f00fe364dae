package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/pages"
	"github.com/bwxchange/bwx/shared/units"
)

func invoicesCmd(g *globals) *cobra.Command {
	var period string
	c := &cobra.Command{
		Use:   "invoices",
		Short: "this member's invoices from the exchange (-o table, json or csv)",
		Long: `Without --period, every settled period's invoice (a summary per period in a
table; the full documents with -o json or csv). With --period, that month's
invoice line by line. Only the member's own invoices: the identity is the
certificate.`,
		Example: "  bwx-agent invoices\n  bwx-agent invoices --period 2026-11 -o csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			csv := g.out.CSV()
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				uc := pb.NewUsageServiceClient(conn)
				reqs := []*pb.GetInvoiceRequest{{Period: period}}
				if period == "" {
					invs, err := pages.List(cx, uc.ListInvoices, &pb.ListInvoicesRequest{}, (*pb.ListInvoicesResponse).GetInvoices, 0)
					if err != nil {
						return err
					}
					if !csv && !g.out.JSON() {
						return invoiceSummary(g.out, invs)
					}
					reqs = reqs[:0]
					for _, inv := range invs {
						reqs = append(reqs, &pb.GetInvoiceRequest{Period: inv.Period})
					}
				}
				docs, err := cli.GetInvoices(cx, uc, reqs)
				if err != nil {
					return err
				}
				return cli.PrintInvoices(g.out, csv, period != "", docs, func(o cli.Output, docs []*pb.GetInvoiceResponse) error {
					return invoiceLines(o, docs[0].Invoice)
				})
			})
		},
	}
	c.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (default: every settled period)")
	return c
}

func usageCmd(g *globals) *cobra.Command {
	return cli.TradeUsageCommand(&cobra.Command{
		Use:   "usage TRADE-ID",
		Short: "one of this member's trades slot by slot: both sides' figures, the one billed, and whether they agree",
		Long: `A trade this member bought or sold, slot by slot (the exchange's
settle.slot), exactly as settlement bills it: the buyer's and the seller's
figures with the packet samples each reported behind it, the figure billed
under the default policy (the buyer's), and the slot's state: agree,
disputed (further apart than sampling error allows), buyer only or seller
only. By default from the trade's start to now or its end; at most 10000
slots in one call.`,
		Example: "  bwx-agent usage 7\n  bwx-agent usage 7 --from 2026-11-03T10:00:00Z --to 2026-11-03T12:00:00Z -o json",
	}, &g.out, g.connect)
}

func creditCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "credit",
		Short: "this member's exposure against its credit limit (at the limit, new buys are refused)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := cli.Call(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.GetCredit, &pb.GetCreditRequest{})
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, resp.Credits, cli.CreditTable)
		},
	}
}

func invoiceSummary(o cli.Output, invs []*pb.Invoice) error {
	if len(invs) == 0 {
		fmt.Fprintln(o.W, "no invoices yet")
		return nil
	}
	var rows [][]string
	for _, inv := range invs {
		rows = append(rows, []string{inv.Period, strconv.Itoa(len(inv.Lines)), units.Money(inv.PaidMicros).Exact(), units.Money(inv.ReceivedMicros).Exact(),
			units.Money(inv.FeesMicros).Exact(), units.Money(inv.TotalMicros).Exact()})
	}
	return o.Table([]string{"PERIOD", "LINES", "PAID", "RECEIVED", "FEES", "NET"}, rows)
}

func invoiceLines(o cli.Output, inv *pb.Invoice) error {
	var rows [][]string
	for _, l := range inv.Lines {
		rows = append(rows, []string{strconv.FormatUint(l.TradeId, 10), l.Side, fmt.Sprintf("AS%d", l.CounterpartyAsn),
			units.Bandwidth(l.CapacityBps).String(), units.Bandwidth(l.P95Bps).String(), undelivered(l.UndeliveredSeconds), breach(l.BreachedSeconds, l.DisputedBreachSeconds), fmt.Sprintf("%d/%s", l.DisputedSlots, l.Figure),
			units.Money(l.CommittedMicros).Exact(), units.Money(l.OverageMicros).Exact(), units.Money(l.SlaCreditMicros).Exact(), units.Money(l.FeeMicros).Exact(), units.Money(l.AmountMicros).Exact()})
	}
	fmt.Fprintf(o.W, "invoice %s\n", inv.Id)
	if err := o.Table([]string{"TRADE", "SIDE", "WITH", "CAPACITY", "P95", "UNDELIVERED", "SLA_BREACH", "DISPUTED", "COMMITTED", "OVERAGE", "SLA_CREDIT", "FEE", "NET"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(o.W, "paid %s  received %s  fees %s  net %s (positive: the exchange owes you)\n",
		units.Money(inv.PaidMicros).Exact(), units.Money(inv.ReceivedMicros).Exact(), units.Money(inv.FeesMicros).Exact(), units.Money(inv.TotalMicros).Exact())
	return nil
}

// breach is a line's SLA breach time: credited (corroborated by another
// vantage), and on the buyer's measurements alone (disputed, not
// credited); "-" for none.
func breach(credited, disputed float64) string {
	switch {
	case credited == 0 && disputed == 0:
		return "-"
	case disputed == 0:
		return (time.Duration(credited * float64(time.Second))).String()
	}
	return fmt.Sprintf("%s +%s disputed", time.Duration(credited*float64(time.Second)), time.Duration(disputed*float64(time.Second)))
}

// undelivered is the time a trade was not delivered (not charged), or "-".
func undelivered(s float64) string {
	if s <= 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
