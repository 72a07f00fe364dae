package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/units"
)

// money prints micro-units as currency units with all 6 decimals.
func money(m int64) string {
	sign, u := "", uint64(m)
	if m < 0 {
		sign, u = "-", uint64(-m)
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/units.MicrosPerUnit, u%units.MicrosPerUnit)
}

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
			csv := g.out.Format == "csv"
			if csv {
				g.out.Format = "table" // the shared --output check knows table and json
			}
			conn, cx, done, err := g.connect()
			if err != nil {
				return err
			}
			defer done()
			uc := pb.NewUsageServiceClient(conn)
			periods := []string{period}
			if period == "" {
				list, err := uc.ListInvoices(cx, &pb.ListInvoicesRequest{})
				if err != nil {
					return err
				}
				if !csv && !g.out.JSON() {
					return invoiceSummary(g.out, list.Invoices)
				}
				periods = periods[:0]
				for _, inv := range list.Invoices {
					periods = append(periods, inv.Period)
				}
			}
			var docs []*pb.GetInvoiceResponse
			for _, p := range periods {
				d, err := uc.GetInvoice(cx, &pb.GetInvoiceRequest{Period: p})
				if err != nil {
					return err
				}
				docs = append(docs, d)
			}
			switch {
			case csv:
				return writeCSVs(g.out.W, docs)
			case g.out.JSON():
				return writeJSONs(g.out.W, docs, period != "")
			}
			return invoiceLines(g.out, docs[0].Invoice)
		},
	}
	c.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (default: every settled period)")
	return c
}

func creditCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "credit",
		Short: "this member's exposure against its credit limit (at the limit, new buys are refused)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, cx, done, err := g.connect()
			if err != nil {
				return err
			}
			defer done()
			resp, err := pb.NewUsageServiceClient(conn).GetCredit(cx, &pb.GetCreditRequest{})
			if err != nil {
				return err
			}
			if g.out.JSON() {
				return cli.Protos(g.out, resp.Credits)
			}
			var rows [][]string
			for _, c := range resp.Credits {
				limit := "none"
				if c.Limited {
					limit = money(c.LimitMicros)
				}
				state := map[pb.CreditState]string{pb.CreditState_CREDIT_STATE_OK: "ok", pb.CreditState_CREDIT_STATE_WARNING: "warning",
					pb.CreditState_CREDIT_STATE_STOPPED: "stopped (no new buys)"}[c.State]
				rows = append(rows, []string{fmt.Sprintf("AS%d", c.MemberAsn), limit, money(c.UnpaidMicros), money(c.AccruedMicros), money(c.ExposureMicros), state})
			}
			return g.out.Table([]string{"MEMBER", "LIMIT", "UNPAID", "ACCRUED", "EXPOSURE", "STATE"}, rows)
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
		rows = append(rows, []string{inv.Period, strconv.Itoa(len(inv.Lines)), money(inv.PaidMicros), money(inv.ReceivedMicros),
			money(inv.FeesMicros), money(inv.TotalMicros)})
	}
	return o.Table([]string{"PERIOD", "LINES", "PAID", "RECEIVED", "FEES", "NET"}, rows)
}

func invoiceLines(o cli.Output, inv *pb.Invoice) error {
	var rows [][]string
	for _, l := range inv.Lines {
		rows = append(rows, []string{strconv.FormatUint(l.TradeId, 10), l.Side, fmt.Sprintf("AS%d", l.CounterpartyAsn),
			units.Bandwidth(l.CapacityBps).String(), units.Bandwidth(l.P95Bps).String(), fmt.Sprintf("%d/%s", l.DisputedSlots, l.Figure),
			money(l.CommittedMicros), money(l.OverageMicros), money(l.SlaCreditMicros), money(l.FeeMicros), money(l.AmountMicros)})
	}
	fmt.Fprintf(o.W, "invoice %s\n", inv.Id)
	if err := o.Table([]string{"TRADE", "SIDE", "WITH", "CAPACITY", "P95", "DISPUTED", "COMMITTED", "OVERAGE", "SLA_CREDIT", "FEE", "NET"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(o.W, "paid %s  received %s  fees %s  net %s (positive: the exchange owes you)\n",
		money(inv.PaidMicros), money(inv.ReceivedMicros), money(inv.FeesMicros), money(inv.TotalMicros))
	return nil
}

// writeJSONs prints the invoice documents as the arbiter stores them: one
// object for one period, an array for every period.
func writeJSONs(w io.Writer, docs []*pb.GetInvoiceResponse, one bool) error {
	if one && len(docs) == 1 {
		_, err := io.WriteString(w, docs[0].DocumentJson)
		return err
	}
	raw := make([]json.RawMessage, 0, len(docs))
	for _, d := range docs {
		raw = append(raw, json.RawMessage(d.DocumentJson))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(raw)
}

// writeCSVs prints the invoices' CSV documents under one header row.
func writeCSVs(w io.Writer, docs []*pb.GetInvoiceResponse) error {
	for i, d := range docs {
		b := []byte(d.DocumentCsv)
		if i > 0 {
			if j := bytes.IndexByte(b, '\n'); j >= 0 {
				b = b[j+1:]
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
