package cli

import (
	"bytes"
	"encoding/json"
	"io"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

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
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(raw)
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
