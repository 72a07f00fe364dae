package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

// BenchmarkPlaceOrderGRPC: 200 member clients, each with its own
// certificate and connection, place IOC buys through the arbiter's TLS
// listener against a book of resting sells; every order is durable before
// its reply. Reports orders/s and the p50/p99 PlaceOrder latency.
func BenchmarkPlaceOrderGRPC(b *testing.B) {
	const clients = 200
	dir := b.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen, cfg.Metrics.Listen = "127.0.0.1:0", ""
	cfg.Operator.Socket = filepath.Join(dir, "op.sock")
	if _, err := pki.InitCA(cfg.CADir(), "bench", []string{"127.0.0.1"}); err != nil {
		b.Fatal(err)
	}
	arb, err := daemon.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer arb.Close()
	op, _ := rpc.DialUnix(cfg.Operator.Socket)
	defer op.Close()
	reg := pb.NewRegistryServiceClient(op)
	ctx := context.Background()
	member := func(asn uint32, i int) *grpc.ClientConn {
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(key, "b")
		resp, err := reg.AddMember(ctx, &pb.AddMemberRequest{Asn: asn, Name: "m", Port: &pb.Port{Name: "p", CapacityBps: 1 << 60},
			RouterAddresses: []string{fmt.Sprintf("10.%d.%d.1", i>>8, i&255)}, Csr: csr})
		if err != nil {
			b.Fatal(err)
		}
		keyPEM, _ := pki.MarshalKeyPEM(key)
		path := filepath.Join(dir, fmt.Sprintf("m%d.pem", asn))
		if err := pki.WriteBundle(path, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
			b.Fatal(err)
		}
		bundle, _ := pki.LoadBundle(path)
		c, err := rpc.DialTLS(arb.Addr.String(), "", bundle)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	start := clock.Now().UTC().Add(24 * time.Hour).Truncate(time.Hour)
	spec := func(side pb.Side, prefix string, price int64, typ pb.OrderType) *pb.OrderSpec {
		s := &pb.OrderSpec{Side: side, Destination: &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: prefix}},
			Protocol: pb.Protocol_PROTOCOL_IPV4, CapacityBps: 1e9, MinBlockBps: 1e8, PriceMicros: price,
			TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY, DeliveryStart: timestamppb.New(start),
			DeliveryEnd: timestamppb.New(start.Add(30 * 24 * time.Hour)), OrderType: typ}
		if side == pb.Side_SIDE_BUY {
			s.Ranking = pb.Ranking_RANKING_PRICE
		}
		return s
	}
	// Ten sellers, 100 /24s each, 5,000 resting sells with ample capacity.
	for s := 0; s < 10; s++ {
		asn := uint32(64600 + s)
		c := member(asn, 1000+s)
		tc := pb.NewTradingServiceClient(c)
		for k := 0; k < 100; k++ {
			p := fmt.Sprintf("100.%d.%d.0/24", s, k)
			if _, err := reg.AddPrefix(ctx, &pb.AddPrefixRequest{Prefix: &pb.Prefix{Prefix: p, MemberAsn: asn, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}}); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				sp := spec(pb.Side_SIDE_SELL, p, int64(100+i*10), pb.OrderType_ORDER_TYPE_LIMIT)
				sp.CapacityBps, sp.DeliveryEnd = 1<<45, timestamppb.New(start.AddDate(1, 0, 0))
				if _, err := tc.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: sp}); err != nil {
					b.Fatal(err)
				}
			}
		}
		c.Close()
	}
	conns := make([]pb.TradingServiceClient, clients)
	for i := range conns {
		c := member(uint32(65000+i), i)
		defer c.Close()
		conns[i] = pb.NewTradingServiceClient(c)
		if _, err := conns[i].ListOrders(ctx, &pb.ListOrdersRequest{}); err != nil { // connect
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
		next int
	)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var mine []time.Duration
			for k := 0; ; k++ {
				mu.Lock()
				if next >= b.N {
					lats = append(lats, mine...)
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()
				p := fmt.Sprintf("100.%d.%d.0/24", (i+k)%10, (i*7+k)%100)
				t0 := clock.Now()
				if _, err := conns[i].PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: spec(pb.Side_SIDE_BUY, p, 150, pb.OrderType_ORDER_TYPE_IOC)}); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, clock.Since(t0))
			}
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(len(lats))/b.Elapsed().Seconds(), "orders/s")
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	}
}
