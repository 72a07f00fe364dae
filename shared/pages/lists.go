package pages

import (
	"context"

	"google.golang.org/protobuf/proto"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// The List calls that clients read whole, each page asked with the same
// request's filters.

// Orders reads ListOrders to its end (or limit orders; 0: all).
func Orders(ctx context.Context, c pb.TradingServiceClient, r *pb.ListOrdersRequest, limit int) ([]*pb.Order, error) {
	return Collect(ctx, func(ctx context.Context, token string, size int32) (*pb.ListOrdersResponse, error) {
		q := proto.CloneOf(r)
		q.PageToken, q.PageSize = token, size
		return c.ListOrders(ctx, q)
	}, (*pb.ListOrdersResponse).GetOrders, limit)
}

// Trades reads ListTrades to its end (or limit trades; 0: all).
func Trades(ctx context.Context, c pb.TradingServiceClient, r *pb.ListTradesRequest, limit int) ([]*pb.Trade, error) {
	return Collect(ctx, func(ctx context.Context, token string, size int32) (*pb.ListTradesResponse, error) {
		q := proto.CloneOf(r)
		q.PageToken, q.PageSize = token, size
		return c.ListTrades(ctx, q)
	}, (*pb.ListTradesResponse).GetTrades, limit)
}
