package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/pages"
	"github.com/bwxchange/bwx/shared/units"
)

func settleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "settle", Short: "settlement: run a period, invoices, disputes, use events, the exchange's statement"}
	var (
		period, policy string
		correct        bool
		member         uint32
		timeout        time.Duration
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "settle a month that is over: invoices and ledger entries in one transaction",
		Long: `Settle a calendar month (UTC) that is over: every member's invoice and the
append-only ledger entries commit in one transaction, or nothing does. A
settled period is refused unless --correct is given, which writes only the
differences as correction entries and re-issues the invoices that changed.`,
		Example: "  bwx-arbiter settle run --period 2026-11\n  bwx-arbiter settle run --period 2026-11 --policy seller --correct",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			long := func() (*grpc.ClientConn, context.Context, func(), error) { return g.connectLong(timeout) }
			resp, err := cli.Call(long, pb.NewUsageServiceClient, pb.UsageServiceClient.RunSettlement, &pb.RunSettlementRequest{Period: period, Policy: policy, Correct: correct})
			if err != nil {
				return err
			}
			return cli.Print(g.out, resp, printRun)
		},
	}
	run.Flags().StringVar(&period, "period", "", "the month to settle, YYYY-MM, or any span as START/END in RFC 3339 on settle.slot boundaries")
	run.Flags().StringVar(&policy, "policy", "buyer", "whose figure disputed slots are billed at: buyer, seller, min or max")
	run.Flags().BoolVar(&correct, "correct", false, "settle a settled period again, writing only the differences")
	run.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait for the run")
	run.MarkFlagRequired("period")

	invoices := &cobra.Command{
		Use:     "invoices",
		Short:   "members' invoices for a period (-o table, json or csv)",
		Example: "  bwx-arbiter settle invoices --period 2026-11\n  bwx-arbiter settle invoices --member 64500 --period 2026-11 -o csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			csv := g.out.CSV()
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				uc := pb.NewUsageServiceClient(conn)
				reqs := []*pb.GetInvoiceRequest{{MemberAsn: member, Period: period}}
				if member == 0 {
					invs, err := pages.List(cx, uc.ListInvoices, &pb.ListInvoicesRequest{Period: period}, (*pb.ListInvoicesResponse).GetInvoices, 0)
					if err != nil {
						return err
					}
					reqs = reqs[:0]
					for _, inv := range invs {
						reqs = append(reqs, &pb.GetInvoiceRequest{MemberAsn: inv.MemberAsn, Period: period})
					}
				}
				docs, err := cli.GetInvoices(cx, uc, reqs)
				if err != nil {
					return err
				}
				return cli.PrintInvoices(g.out, csv, true, docs, func(o cli.Output, docs []*pb.GetInvoiceResponse) error {
					if member != 0 {
						return invoiceTable(o, docs[0].Invoice)
					}
					return invoiceSummary(o, period, docs)
				})
			})
		},
	}
	invoices.Flags().Uint32Var(&member, "member", 0, "only this member's invoice (with its lines)")
	invoices.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (or a span settled as START/END)")
	invoices.MarkFlagRequired("period")

	statement := &cobra.Command{
		Use:   "statement",
		Short: "the exchange's own statement for a period: fee income against the members' net, balancing to zero",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ex, err := cli.Call(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.GetExchangeStatement, &pb.GetExchangeStatementRequest{Period: period})
			if err != nil {
				return err
			}
			if g.out.JSON() {
				// Every field, so a balance of zero is shown, not left out.
				b, err := protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true, Multiline: true}.Marshal(ex)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(g.out.W, string(b))
				return err
			}
			return statementTable(g.out, ex)
		},
	}
	statement.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (or a span settled as START/END)")
	statement.MarkFlagRequired("period")

	disputes := &cobra.Command{
		Use:   "disputes",
		Short: "a member's disputed 5-minute slots in a period, with both figures and the one billed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := cli.CallList(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.ListDisputes, &pb.ListDisputesRequest{MemberAsn: member, Period: period}, (*pb.ListDisputesResponse).GetDisputes, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, ds, disputeTable)
		},
	}
	disputes.Flags().Uint32Var(&member, "member", 0, "the member")
	disputes.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (or a span settled as START/END)")
	disputes.MarkFlagRequired("member")
	disputes.MarkFlagRequired("period")

	use := &cobra.Command{
		Use:   "use",
		Short: "sustained overuse and underuse of trades (default: the current month so far)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			evs, err := cli.CallList(g.connect, pb.NewUsageServiceClient, pb.UsageServiceClient.ListUseEvents, &pb.ListUseEventsRequest{MemberAsn: member, Period: period}, (*pb.ListUseEventsResponse).GetEvents, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, evs, useTable)
		},
	}
	use.Flags().Uint32Var(&member, "member", 0, "only this member's trades")
	use.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (default: the current month so far)")

	c.AddCommand(run, invoices, statement, disputes, use, usageCmd(g))
	return c
}

func usageCmd(g *globals) *cobra.Command {
	return cli.TradeUsageCommand(&cobra.Command{
		Use:   "usage TRADE-ID",
		Short: "a trade's usage slot by slot: both sides' figures, the one billed, and whether they agree",
		Long: `A trade's usage slot by slot (settle.slot), exactly as settlement bills it:
the buyer's and the seller's figures with the packet samples each reported
behind it, the figure billed under the default policy (the buyer's; a
disputed slot is billed at the run's policy), and the slot's state: agree,
disputed (further apart than sampling error allows), buyer only or seller
only. Slots neither side reported are not listed. By default from the
trade's start to now or its end; at most 10000 slots in one call.`,
		Example: "  bwx-arbiter settle usage 7\n  bwx-arbiter settle usage 7 --from 2026-11-03T10:00:00Z --to 2026-11-03T12:00:00Z -o json",
	}, &g.out, g.connect)
}

// connectLong is connect for a call that may run long (a settlement run
// reads a whole month of samples): its deadline is timeout, not 30 s.
func (g *globals) connectLong(timeout time.Duration) (*grpc.ClientConn, context.Context, func(), error) {
	return cli.Dial(g.dial, timeout)
}

func printRun(o cli.Output, r *pb.RunSettlementResponse) error {
	what := "settled"
	if r.Seq > 0 {
		what = "corrected"
	}
	fmt.Fprintf(o.W, "%s %s (run %d, seq %d, disputed slots billed at the %s figure): %d invoices, %d ledger entries\n",
		what, r.Period, r.RunId, r.Seq, r.Policy, len(r.Invoices), r.Entries)
	if err := statementTable(o, r.Exchange); err != nil {
		return err
	}
	if len(r.Invoices) > 0 {
		fmt.Fprintln(o.W)
		var docs []*pb.GetInvoiceResponse
		for _, inv := range r.Invoices {
			docs = append(docs, &pb.GetInvoiceResponse{Invoice: inv})
		}
		if err := invoiceSummary(o, r.Period, docs); err != nil {
			return err
		}
	}
	if len(r.SetAside) > 0 {
		fmt.Fprintf(o.W, "\n%d trades set aside, not billed (the others settled; fix and run settle correct):\n", len(r.SetAside))
		rows := make([][]string, 0, len(r.SetAside))
		for _, a := range r.SetAside {
			rows = append(rows, []string{strconv.FormatUint(a.TradeId, 10), a.Reason})
		}
		if err := o.Table([]string{"TRADE", "REASON"}, rows); err != nil {
			return err
		}
	}
	if len(r.UseEvents) > 0 {
		fmt.Fprintln(o.W)
		return useTable(o, r.UseEvents)
	}
	return nil
}

func invoiceSummary(o cli.Output, period string, docs []*pb.GetInvoiceResponse) error {
	var rows [][]string
	for _, d := range docs {
		inv := d.Invoice
		rows = append(rows, []string{fmt.Sprintf("AS%d", inv.MemberAsn), inv.Period, strconv.Itoa(len(inv.Lines)),
			units.Money(inv.PaidMicros).Exact(), units.Money(inv.ReceivedMicros).Exact(), units.Money(inv.FeesMicros).Exact(), units.Money(inv.TotalMicros).Exact()})
	}
	if len(rows) == 0 {
		fmt.Fprintf(o.W, "no invoices for %s\n", period)
		return nil
	}
	return o.Table([]string{"MEMBER", "PERIOD", "LINES", "PAID", "RECEIVED", "FEES", "NET"}, rows)
}

// invoiceTable is one member's invoice, line by line, and its totals.
func invoiceTable(o cli.Output, inv *pb.Invoice) error {
	fmt.Fprintf(o.W, "invoice %s: AS%d, %s to %s\n", inv.Id, inv.MemberAsn,
		inv.PeriodStart.AsTime().Format("2006-01-02T15:04:05Z"), inv.PeriodEnd.AsTime().Format("2006-01-02T15:04:05Z"))
	var rows [][]string
	for _, l := range inv.Lines {
		rows = append(rows, []string{strconv.FormatUint(l.TradeId, 10), l.Side, fmt.Sprintf("AS%d", l.CounterpartyAsn),
			units.Bandwidth(l.CapacityBps).String(), units.Money(l.PriceMicros).Exact(), strconv.Itoa(int(l.Slots)), units.Bandwidth(l.P95Bps).String(),
			units.Bandwidth(l.OverageBps).String(), strconv.FormatFloat(l.UndeliveredSeconds, 'f', -1, 64), strconv.FormatFloat(l.BreachedSeconds, 'f', -1, 64),
			strconv.FormatFloat(l.DisputedBreachSeconds, 'f', -1, 64), fmt.Sprintf("%d/%s", l.DisputedSlots, l.Figure),
			units.Money(l.CommittedMicros).Exact(), units.Money(l.OverageMicros).Exact(), units.Money(l.SlaCreditMicros).Exact(), units.Money(l.FeeMicros).Exact(), units.Money(l.AmountMicros).Exact()})
	}
	if err := o.Table([]string{"TRADE", "SIDE", "WITH", "CAPACITY", "PRICE/MBPS", "SLOTS", "P95", "OVERAGE", "UNDELIVERED_S", "BREACHED_S", "DISPUTED_BREACH_S", "DISPUTED",
		"COMMITTED", "OVERAGE_AMT", "SLA_CREDIT", "FEE", "NET"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(o.W, "paid %s  received %s  fees %s  net %s (positive: the exchange owes the member)\n",
		units.Money(inv.PaidMicros).Exact(), units.Money(inv.ReceivedMicros).Exact(), units.Money(inv.FeesMicros).Exact(), units.Money(inv.TotalMicros).Exact())
	return nil
}

func statementTable(o cli.Output, ex *pb.ExchangeStatement) error {
	return o.Table([]string{"PERIOD", "MEMBERS", "TRADES", "GROSS", "FEE_INCOME", "MEMBER_NET", "BALANCE"}, [][]string{{
		ex.Period, strconv.Itoa(int(ex.Members)), strconv.Itoa(int(ex.Trades)), units.Money(ex.GrossMicros).Exact(), units.Money(ex.FeeIncomeMicros).Exact(),
		units.Money(ex.MemberNetMicros).Exact(), units.Money(ex.BalanceMicros).Exact()}})
}

func disputeTable(o cli.Output, ds []*pb.Dispute) error {
	var rows [][]string
	for _, d := range ds {
		rows = append(rows, []string{strconv.FormatUint(d.TradeId, 10), d.SlotStart.AsTime().Format("2006-01-02T15:04:05Z"),
			units.Bandwidth(d.BuyerBps).String(), strconv.FormatInt(d.BuyerSamples, 10), units.Bandwidth(d.SellerBps).String(),
			strconv.FormatInt(d.SellerSamples, 10), units.Bandwidth(d.UsedBps).String(), d.Policy})
	}
	return o.Table([]string{"TRADE", "SLOT", "BUYER", "BUYER_SAMPLES", "SELLER", "SELLER_SAMPLES", "BILLED", "POLICY"}, rows)
}

func useTable(o cli.Output, es []*pb.UseEvent) error {
	var rows [][]string
	for _, e := range es {
		kind := strings.TrimPrefix(strings.ToLower(e.Kind.String()), "use_kind_")
		rows = append(rows, []string{strconv.FormatUint(e.TradeId, 10), fmt.Sprintf("AS%d", e.BuyerAsn), fmt.Sprintf("AS%d", e.SellerAsn), kind,
			e.Start.AsTime().Format("2006-01-02T15:04:05Z"), e.End.AsTime().Format("2006-01-02T15:04:05Z"),
			units.Bandwidth(e.CapacityBps).String(), units.Bandwidth(e.PeakBps).String(), units.Bandwidth(e.MinBps).String()})
	}
	return o.Table([]string{"TRADE", "BUYER", "SELLER", "USE", "FROM", "TO", "CAPACITY", "PEAK", "LOW"}, rows)
}
