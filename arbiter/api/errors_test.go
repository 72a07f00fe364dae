package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/invalid"
)

// badRequestField returns the one field a status's BadRequest detail names.
func badRequestField(t *testing.T, st *status.Status) string {
	t.Helper()
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
				if v.Description == "" {
					t.Errorf("field violation %q has no description", v.Field)
				}
			}
		}
	}
	if len(fields) != 1 {
		t.Fatalf("status %v: BadRequest fields %v, want exactly one", st, fields)
	}
	return fields[0]
}

// wantField checks err is InvalidArgument about field, in the message and
// in the BadRequest detail.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("err = %v (%T), want a gRPC status", err, err)
	}
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v (%v), want InvalidArgument", st.Code(), err)
	}
	if !strings.HasPrefix(st.Message(), field+": ") {
		t.Errorf("message = %q, want it to start with %q", st.Message(), field+": ")
	}
	if got := badRequestField(t, st); got != field {
		t.Errorf("BadRequest field = %q, want %q", got, field)
	}
}

func TestToStatusInvalid(t *testing.T) {
	for _, c := range []struct {
		name  string
		err   error
		field string
	}{
		{"book", &invalid.Error{Field: "spec.capacity_bps", Msg: "must be positive, got 0"}, "spec.capacity_bps"},
		{"book wrapped", fmt.Errorf("placing: %w", &invalid.Error{Field: "spec.delivery_end", Msg: "in the past"}), "spec.delivery_end"},
		{"registry", &invalid.Error{Field: "router_addresses[1]", Msg: "listed twice"}, "router_addresses[1]"},
		{"registry wrapped", fmt.Errorf("x: %w", &invalid.Error{Field: "samples[3].trade_id", Msg: "not yours"}), "samples[3].trade_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := toStatus(c.err)
			wantField(t, err, c.field)
			var msg string
			if bad, ok := invalid.As(c.err); ok {
				msg = bad.Msg
			}
			if st, _ := status.FromError(err); st.Message() != c.field+": "+msg {
				t.Errorf("message = %q, want %q", st.Message(), c.field+": "+msg)
			}
		})
	}
}

func TestToStatusCodes(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		code codes.Code
	}{
		{"registry not found", fmt.Errorf("member AS64999: %w", registry.ErrNotFound), codes.NotFound},
		{"book not found", fmt.Errorf("order 7: %w", book.ErrNotFound), codes.NotFound},
		{"registry exists", fmt.Errorf("member AS64501: %w", registry.ErrExists), codes.AlreadyExists},
		{"book not open", fmt.Errorf("order 7: %w", book.ErrNotOpen), codes.FailedPrecondition},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), codes.Canceled},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"other", errors.New("database is locked"), codes.Internal},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := toStatus(c.err)
			st, ok := status.FromError(err)
			if !ok || st.Code() != c.code {
				t.Fatalf("toStatus(%v) = %v, want code %v", c.err, err, c.code)
			}
			if st.Message() != c.err.Error() {
				t.Errorf("message = %q, want the error text %q", st.Message(), c.err.Error())
			}
			if len(st.Details()) != 0 {
				t.Errorf("details = %v, want none", st.Details())
			}
		})
	}
}

func TestToStatusPassesStatusThrough(t *testing.T) {
	if toStatus(nil) != nil {
		t.Fatal("toStatus(nil) != nil")
	}
	in := status.Error(codes.PermissionDenied, "AS64501 may not read AS64502's records")
	if out := toStatus(in); out != in {
		t.Fatalf("toStatus(status error) = %v, want it unchanged", out)
	}
	// A field error already made is not turned into Internal.
	in = invalidArg("spec", "is required")
	if out := toStatus(in); out != in {
		t.Fatalf("toStatus(field error) = %v, want it unchanged", out)
	}
	wantField(t, in, "spec")
}
