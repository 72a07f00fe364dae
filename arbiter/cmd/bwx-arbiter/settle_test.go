package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixture is a settled month of two members: AS64510 buys 1G from AS64501
// at 0.10 with 0.5G of 95th-percentile overage, 17 minutes of SLA breach
// and 4 minutes of breach on the buyer's word alone (disputed).
func fixture() []*pb.GetInvoiceResponse {
	nov := settle.Month(2026, time.November)
	bill := settle.TradeBill{
		Trade: settle.Trade{ID: 7, BuyerASN: 64510, SellerASN: 64501, CapacityBps: 1e9, PriceMicros: 100_000, Start: nov.Start, End: nov.End},
		From:  nov.Start, To: nov.End, Slots: 8640, DisputedSlots: 2, P95Bps: 1.5e9, OverageBps: 0.5e9, BreachedMicros: 17 * 60e6, DisputedBreachMicros: 4 * 60e6,
		Committed: 100_000_000, Overage: 75_000_000, Credit: 39_352, Gross: 174_960_648, BuyerFee: 437_402, SellerFee: 437_402,
	}
	invs, _ := settle.Invoices(nov, []settle.TradeBill{bill})
	var out []*pb.GetInvoiceResponse
	for _, inv := range invs {
		var j, c bytes.Buffer
		inv.WriteJSON(&j)
		inv.WriteCSV(&c)
		out = append(out, &pb.GetInvoiceResponse{Invoice: protoInvoice(inv), DocumentJson: j.String(), DocumentCsv: c.String()})
	}
	return out
}

// protoInvoice is what the API sends for inv (arbiter/api's conversion,
// restated for the fields the commands print).
func protoInvoice(inv settle.Invoice) *pb.Invoice {
	out := &pb.Invoice{Id: fmt.Sprintf("AS%d-%s", inv.ASN, inv.Period), MemberAsn: inv.ASN, PeriodStart: timestamppb.New(inv.Start), PeriodEnd: timestamppb.New(inv.End),
		TotalMicros: inv.Net, Period: inv.Period, PaidMicros: inv.Paid, ReceivedMicros: inv.Received, FeesMicros: inv.Fees}
	for _, l := range inv.Lines {
		out.Lines = append(out.Lines, &pb.InvoiceLine{TradeId: uint64(l.TradeID), AmountMicros: l.Net, Side: l.Side, CounterpartyAsn: l.CounterpartyASN,
			CapacityBps: l.CapacityBps, PriceMicros: l.PriceMicros, Slots: int32(l.Slots), P95Bps: l.P95Bps, OverageBps: l.OverageBps,
			UndeliveredSeconds: l.UndeliveredSeconds, BreachedSeconds: l.BreachedSeconds, DisputedBreachSeconds: l.DisputedBreachSeconds, Figure: l.Figure, DisputedSlots: int32(l.DisputedSlots), CommittedMicros: l.Committed,
			OverageMicros: l.Overage, SlaCreditMicros: l.Credit, FeeMicros: l.Fee})
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestSettleOutputGolden(t *testing.T) {
	docs := fixture()
	ex := &pb.ExchangeStatement{Period: "2026-11", Members: 2, Trades: 1, GrossMicros: 174_960_648, FeeIncomeMicros: 874_804,
		MemberNetMicros: -874_804, BalanceMicros: 0}
	var b bytes.Buffer
	o := cli.Output{Format: "table", W: &b}
	step := func(title string, f func() error) {
		b.WriteString("## " + title + "\n")
		if err := f(); err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		b.WriteString("\n")
	}
	var invs []*pb.Invoice
	for _, d := range docs {
		invs = append(invs, d.Invoice)
	}
	step("settle run", func() error {
		return printRun(o, &pb.RunSettlementResponse{RunId: 1, Period: "2026-11", Policy: "buyer", Entries: 9, Invoices: invs, Exchange: ex,
			UseEvents: []*pb.UseEvent{{TradeId: 7, Kind: pb.UseKind_USE_KIND_OVERUSE, BuyerAsn: 64510, SellerAsn: 64501,
				Start: timestamppb.New(time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)), End: timestamppb.New(time.Date(2026, 11, 3, 12, 5, 0, 0, time.UTC)),
				CapacityBps: 1e9, PeakBps: 1.6e9, MinBps: 1.2e9}}})
	})
	step("settle invoices --period 2026-11", func() error { return invoiceSummary(o, "2026-11", docs) })
	step("settle invoices --member 64510 --period 2026-11", func() error { return invoiceTable(o, docs[1].Invoice) })
	step("settle invoices --period 2026-11 -o csv", func() error { return cli.InvoicesCSV(&b, docs) })
	step("settle invoices --member 64501 --period 2026-11 -o json", func() error { return cli.InvoicesJSON(&b, docs[:1], true) })
	step("settle statement --period 2026-11", func() error { return statementTable(o, ex) })
	step("credit show", func() error {
		return cli.CreditTable(o, []*pb.Credit{
			{MemberAsn: 64501},
			{MemberAsn: 64510, Limited: true, LimitMicros: 5_000_000_000, UnpaidMicros: 175_398_050, AccruedMicros: 83_333_333, ExposureMicros: 258_731_383},
			{MemberAsn: 64520, Limited: true, LimitMicros: 100_000_000, UnpaidMicros: 175_437_500, ExposureMicros: 175_437_500, State: pb.CreditState_CREDIT_STATE_STOPPED},
		})
	})
	step("settle disputes --member 64510 --period 2026-11", func() error {
		return disputeTable(o, []*pb.Dispute{{TradeId: 7, SlotStart: timestamppb.New(time.Date(2026, 11, 3, 10, 25, 0, 0, time.UTC)),
			BuyerBps: 500e6, BuyerSamples: 10_000, SellerBps: 900e6, SellerSamples: 9_000, UsedBps: 500e6, Policy: "buyer"}})
	})
	step("settle usage 7", func() error {
		at := func(i int) *timestamppb.Timestamp {
			return timestamppb.New(time.Date(2026, 11, 3, 10, 20, 0, 0, time.UTC).Add(time.Duration(i) * settle.SlotLength))
		}
		return cli.UsageTable(o, &pb.GetTradeUsageResponse{TradeId: 7, SlotSeconds: 300, Slots: []*pb.UsageSlot{
			{Start: at(0), BuyerBps: 812_300_000, BuyerSamples: 10_021, BuyerReported: true, SellerBps: 815_000_000, SellerSamples: 9_980, SellerReported: true, BilledBps: 812_300_000},
			{Start: at(1), BuyerBps: 500e6, BuyerSamples: 10_000, BuyerReported: true, SellerBps: 900e6, SellerSamples: 9_000, SellerReported: true, BilledBps: 500e6, Disputed: true},
			{Start: at(2), BuyerBps: 1.25e9, BuyerSamples: 12_000, BuyerReported: true, BilledBps: 1.25e9, OneSided: true},
			{Start: at(3), SellerBps: 300e6, SellerSamples: 3_000, SellerReported: true, BilledBps: 302_345_678, OneSided: true},
		}})
	})
	golden(t, "settle.golden", b.Bytes())
}
