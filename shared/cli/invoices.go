package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// GetInvoices asks for each invoice of reqs in turn.
func GetInvoices(cx context.Context, uc pb.UsageServiceClient, reqs []*pb.GetInvoiceRequest) ([]*pb.GetInvoiceResponse, error) {
	var docs []*pb.GetInvoiceResponse
	for _, r := range reqs {
		d, err := uc.GetInvoice(cx, r)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// PrintInvoices prints invoice documents as CSV (csv: -o csv, see
// Output.CSV), as JSON (one as for InvoicesJSON), or with table.
func PrintInvoices(o Output, csv, one bool, docs []*pb.GetInvoiceResponse, table func(Output, []*pb.GetInvoiceResponse) error) error {
	switch {
	case csv:
		return InvoicesCSV(o.W, docs)
	case o.JSON():
		return InvoicesJSON(o.W, docs, one)
	}
	return table(o, docs)
}

// InvoicesJSON prints invoice documents as the arbiter stores them: a
// single one as its object (when one says a single one was asked for),
// otherwise an array.
func InvoicesJSON(w io.Writer, docs []*pb.GetInvoiceResponse, one bool) error {
	if one && len(docs) == 1 {
		_, err := io.WriteString(w, docs[0].DocumentJson)
		return err
	}
	raw := make([]json.RawMessage, 0, len(docs))
	for _, d := range docs {
		raw = append(raw, json.RawMessage(d.DocumentJson))
	}
	return Output{W: w}.Value(raw)
}

// InvoicesCSV prints the invoices' CSV documents under one header row.
func InvoicesCSV(w io.Writer, docs []*pb.GetInvoiceResponse) error {
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
