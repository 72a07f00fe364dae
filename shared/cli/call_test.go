package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// fakeTrading answers ListOrders with the orders asked for by member.
type fakeTrading struct {
	pb.TradingServiceClient // other methods are not used
}

func (fakeTrading) ListOrders(_ context.Context, r *pb.ListOrdersRequest, _ ...grpc.CallOption) (*pb.ListOrdersResponse, error) {
	return &pb.ListOrdersResponse{Orders: []*pb.Order{{Id: 1, MemberAsn: r.MemberAsn}}}, nil
}

// Call asks the method on the connection connect opened, then closes it;
// a failed connect is the command's error, and nothing is asked.
func TestCall(t *testing.T) {
	closed := 0
	connect := func() (*grpc.ClientConn, context.Context, func(), error) {
		return nil, context.Background(), func() { closed++ }, nil
	}
	client := func(grpc.ClientConnInterface) pb.TradingServiceClient { return fakeTrading{} }
	resp, err := Call(connect, client, pb.TradingServiceClient.ListOrders, &pb.ListOrdersRequest{MemberAsn: 64500})
	if err != nil || len(resp.GetOrders()) != 1 || resp.Orders[0].MemberAsn != 64500 || closed != 1 {
		t.Fatalf("Call: %v, %v, closed %d times", resp, err, closed)
	}
	refused := errors.New("operator socket: no such file")
	_, err = Call(func() (*grpc.ClientConn, context.Context, func(), error) { return nil, nil, nil, refused },
		func(grpc.ClientConnInterface) pb.TradingServiceClient {
			t.Fatal("asked without a connection")
			return nil
		},
		pb.TradingServiceClient.ListOrders, &pb.ListOrdersRequest{})
	if err != refused {
		t.Errorf("failed connect: %v, want %v", err, refused)
	}
}

// PrintList gives scripts a JSON array and people the table; Print gives
// scripts the message.
func TestPrint(t *testing.T) {
	orders := []*pb.Order{{Id: 7}}
	table := func(o Output, _ []*pb.Order) error { _, err := o.W.Write([]byte("table\n")); return err }
	for _, c := range []struct{ format, want string }{{"table", "table\n"}, {"json", "[\n  {\n    \"id\": \"7\"\n  }\n]\n"}} {
		var b bytes.Buffer
		if err := PrintList(Output{Format: c.format, W: &b}, orders, table); err != nil || b.String() != c.want {
			t.Errorf("PrintList -o %s: %q, %v; want %q", c.format, b.String(), err, c.want)
		}
	}
	var b bytes.Buffer
	err := Print(Output{Format: "json", W: &b}, orders[0], func(Output, *pb.Order) error { t.Error("table for -o json"); return nil })
	if err != nil || strings.TrimSpace(b.String()) != "{\n  \"id\": \"7\"\n}" {
		t.Errorf("Print -o json: %q, %v", b.String(), err)
	}
}
