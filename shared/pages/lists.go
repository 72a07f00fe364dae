package pages

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// List reads a List call to its end (or its first limit items; 0: all):
// each page asked with req's filters and the page token before it. req
// must have the page_token and page_size fields every List request has.
func List[Q proto.Message, R Paged, T any](ctx context.Context, call func(context.Context, Q, ...grpc.CallOption) (R, error),
	req Q, items func(R) []T, limit int) ([]T, error) {
	return Collect(ctx, func(ctx context.Context, token string, size int32) (R, error) {
		q := proto.Clone(req).(Q)
		m := q.ProtoReflect()
		fs := m.Descriptor().Fields()
		m.Set(fs.ByName("page_token"), protoreflect.ValueOfString(token))
		if size > 0 {
			m.Set(fs.ByName("page_size"), protoreflect.ValueOfInt32(size))
		}
		return call(ctx, q)
	}, items, limit)
}

// Orders reads ListOrders to its end (or limit orders; 0: all).
func Orders(ctx context.Context, c pb.TradingServiceClient, r *pb.ListOrdersRequest, limit int) ([]*pb.Order, error) {
	return List(ctx, c.ListOrders, r, (*pb.ListOrdersResponse).GetOrders, limit)
}

// Trades reads ListTrades to its end (or limit trades; 0: all).
func Trades(ctx context.Context, c pb.TradingServiceClient, r *pb.ListTradesRequest, limit int) ([]*pb.Trade, error) {
	return List(ctx, c.ListTrades, r, (*pb.ListTradesResponse).GetTrades, limit)
}
