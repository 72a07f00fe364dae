package main

import (
	"bytes"
	"strings"
	"testing"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
)

func TestInvoiceOutput(t *testing.T) {
	docs := []*pb.GetInvoiceResponse{
		{DocumentCsv: "asn,period,net_micros\n64510,2026-10,-5\n64510,2026-10,-5\n", DocumentJson: `{"period":"2026-10"}`},
		{DocumentCsv: "asn,period,net_micros\n64510,2026-11,7\n", DocumentJson: `{"period":"2026-11"}`},
	}
	var b bytes.Buffer
	if err := cli.InvoicesCSV(&b, docs); err != nil {
		t.Fatal(err)
	}
	if want := "asn,period,net_micros\n64510,2026-10,-5\n64510,2026-10,-5\n64510,2026-11,7\n"; b.String() != want {
		t.Errorf("CSV of two periods:\n%s\nwant one header:\n%s", b.String(), want)
	}
	b.Reset()
	cli.InvoicesJSON(&b, docs, false)
	if !strings.HasPrefix(b.String(), "[\n") || !strings.Contains(b.String(), `"2026-11"`) {
		t.Errorf("JSON of every period is not an array:\n%s", b.String())
	}
	b.Reset()
	o := cli.Output{Format: "table", W: &b}
	invoiceSummary(o, []*pb.Invoice{{Period: "2026-11", PaidMicros: 1_000_000, FeesMicros: 2500, TotalMicros: -1_002_500, Lines: []*pb.InvoiceLine{{}}}})
	if want := "PERIOD   LINES  PAID      RECEIVED  FEES      NET\n2026-11  1      1.000000  0.000000  0.002500  -1.002500\n"; b.String() != want {
		t.Errorf("summary:\n%q\nwant\n%q", b.String(), want)
	}
}
