package cli

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/bwxchange/bwx/shared/pages"
)

// CallTimeout is how long a command waits for the arbiter's answer.
const CallTimeout = 30 * time.Second

// Connect opens a CLI's connection to the arbiter: the connection, the
// call's context and what ends both. Connecting sets the CLI's output
// writer and checks its format, so print only after it.
type Connect func() (*grpc.ClientConn, context.Context, func(), error)

// Dial is a Connect: the connection dial opens, and a context that ends
// after timeout.
func Dial(dial func() (*grpc.ClientConn, error), timeout time.Duration) (*grpc.ClientConn, context.Context, func(), error) {
	conn, err := dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return conn, ctx, func() { cancel(); conn.Close() }, nil
}

// Calls connects, runs calls on the connection (they print what they
// got) and closes it: for a command that makes several calls.
func Calls(connect Connect, calls func(context.Context, *grpc.ClientConn) error) error {
	conn, cx, done, err := connect()
	if err != nil {
		return err
	}
	defer done()
	return calls(cx, conn)
}

// Call is a command's one call to the arbiter: connect, ask req of the
// client's method (a method expression such as
// pb.TradingServiceClient.ListOrders) and close.
func Call[C, Q, R any](connect Connect, client func(grpc.ClientConnInterface) C,
	method func(C, context.Context, Q, ...grpc.CallOption) (R, error), req Q) (R, error) {
	var resp R
	err := Calls(connect, func(cx context.Context, conn *grpc.ClientConn) (err error) {
		resp, err = method(client(conn), cx, req)
		return err
	})
	return resp, err
}

// Print prints an answer as JSON for scripts, or with table for people.
func Print[M proto.Message](o Output, m M, table func(Output, M) error) error {
	if o.JSON() {
		return o.Proto(m)
	}
	return table(o, m)
}

// PrintList prints a list as one JSON array for scripts, or with table for
// people.
func PrintList[M proto.Message](o Output, ms []M, table func(Output, []M) error) error {
	if o.JSON() {
		return Protos(o, ms)
	}
	return table(o, ms)
}

// CallList is a command's List call read to its end (or limit items; 0:
// all), a page at a time (pages.List).
func CallList[C any, Q proto.Message, R pages.Paged, T any](connect Connect, client func(grpc.ClientConnInterface) C,
	method func(C, context.Context, Q, ...grpc.CallOption) (R, error), req Q, items func(R) []T, limit int) ([]T, error) {
	var out []T
	err := Calls(connect, func(cx context.Context, conn *grpc.ClientConn) (err error) {
		c := client(conn)
		out, err = pages.List(cx, func(ctx context.Context, q Q, opts ...grpc.CallOption) (R, error) { return method(c, ctx, q, opts...) }, req, items, limit)
		return err
	})
	return out, err
}
