// Package cli holds what the bwx commands (bwx-arbiter, bwx-agent) share:
// the call and print of a command that asks the arbiter (Dial, Call or
// Calls, then Print or PrintList: JSON for scripts, a table for people),
// the tables and commands both CLIs show (orders, trades, credit,
// invoices, a trade's usage), and error messages a person can act on
// (Explain).
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Output is how a command prints: "table" for people, "json" for scripts.
type Output struct {
	Format string
	W      io.Writer
}

// Check validates the --output flag.
func (o Output) Check() error {
	if o.Format != "table" && o.Format != "json" {
		return fmt.Errorf("--output %q: want table or json", o.Format)
	}
	return nil
}

// CSV takes -o csv, which only the invoice commands know, out of the way
// of Check (table and json): it reports whether CSV was asked for.
func (o *Output) CSV() bool {
	if o.Format == "csv" {
		o.Format = "table"
		return true
	}
	return false
}

// JSON reports whether the output is for scripts.
func (o Output) JSON() bool { return o.Format == "json" }

var marshal = protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: true}

// Proto prints one message as JSON.
func (o Output) Proto(m proto.Message) error {
	b, err := marshal.Marshal(m)
	if err != nil {
		return err
	}
	var v any
	json.Unmarshal(b, &v)
	return o.Value(v)
}

// Protos prints a list of messages as one JSON array.
func Protos[T proto.Message](o Output, ms []T) error {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := marshal.Marshal(m)
		if err != nil {
			return err
		}
		out = append(out, b)
	}
	return o.Value(out)
}

// Value prints v, a Go value rather than a message, as indented JSON.
func (o Output) Value(v any) error {
	enc := json.NewEncoder(o.W)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table prints rows under a header, aligned.
func (o Output) Table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(o.W, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Explain turns an error from the arbiter into one line for a person.
func Explain(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return "invalid: " + st.Message()
	case codes.Unavailable:
		return "cannot reach the arbiter: " + st.Message()
	case codes.Unauthenticated:
		return "not authenticated: " + st.Message()
	case codes.PermissionDenied:
		return "not allowed: " + st.Message()
	case codes.NotFound:
		return "not found: " + st.Message()
	case codes.AlreadyExists:
		return "already exists: " + st.Message()
	case codes.FailedPrecondition:
		return "not possible now: " + st.Message()
	}
	return strings.ToLower(st.Code().String()) + ": " + st.Message()
}
