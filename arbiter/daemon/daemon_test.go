package daemon_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

type exchange struct {
	t    *testing.T
	cfg  daemon.Config
	arb  *daemon.Arbiter
	dir  string
	opts []daemon.Option
	log  *slog.Logger
}

func startExchange(t *testing.T) *exchange {
	t.Helper()
	return startExchangeOpts(t)
}

func startExchangeOpts(t *testing.T, opts ...daemon.Option) *exchange {
	t.Helper()
	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x := &exchange{t: t, cfg: cfg, dir: dir, opts: opts}
	x.start()
	t.Cleanup(func() { x.arb.Close() })
	return x
}

func (x *exchange) start() {
	x.t.Helper()
	log := x.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := daemon.Start(x.cfg, log, x.opts...)
	if err != nil {
		x.t.Fatal(err)
	}
	x.arb = a
	x.cfg.GRPC.Listen = a.Addr.String() // keep the port across restarts
}

func (x *exchange) operator() *grpc.ClientConn {
	x.t.Helper()
	c, err := rpc.DialUnix(x.cfg.Operator.Socket)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { c.Close() })
	return c
}

// member registers a member and returns a connection with its certificate.
func (x *exchange) member(asn uint32, routers ...string) *grpc.ClientConn {
	x.t.Helper()
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "x")
	resp, err := pb.NewRegistryServiceClient(x.operator()).AddMember(context.Background(), &pb.AddMemberRequest{
		Asn: asn, Name: "net", Port: &pb.Port{Name: "swp", CapacityBps: 10e9}, RouterAddresses: routers, Csr: csr})
	if err != nil {
		x.t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalKeyPEM(key)
	path := filepath.Join(x.dir, "member.pem")
	os.Remove(path)
	if err := pki.WriteBundle(path, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
		x.t.Fatal(err)
	}
	return x.dialBundle(path)
}

// caBundle writes a certificate bundle for id made from the CA's files
// (as an operator bundle is), to file name.pem, and returns its path.
func (x *exchange) caBundle(id pki.Identity, name string) string {
	x.t.Helper()
	ca, err := pki.LoadCA(x.cfg.CADir())
	if err != nil {
		x.t.Fatal(err)
	}
	path := filepath.Join(x.dir, name+".pem")
	if err := pki.IssueBundle(ca, id, path); err != nil {
		x.t.Fatal(err)
	}
	return path
}

func (x *exchange) dialBundle(path string) *grpc.ClientConn {
	x.t.Helper()
	b, err := pki.LoadBundle(path)
	if err != nil {
		x.t.Fatal(err)
	}
	c, err := rpc.DialTLS(x.arb.Addr.String(), "", b)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { c.Close() })
	return c
}

func (x *exchange) addPrefix(asn uint32, p string) {
	x.t.Helper()
	_, err := pb.NewRegistryServiceClient(x.operator()).AddPrefix(context.Background(), &pb.AddPrefixRequest{
		Prefix: &pb.Prefix{Prefix: p, MemberAsn: asn, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}})
	if err != nil {
		x.t.Fatal(err)
	}
}

func order(side pb.Side, prefix string, capacity, price int64, days int) *pb.OrderSpec {
	now := clock.Now().UTC()
	s := &pb.OrderSpec{Side: side, Destination: &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: prefix}},
		Protocol: pb.Protocol_PROTOCOL_IPV4, CapacityBps: capacity, MinBlockBps: capacity, PriceMicros: price,
		TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY, DeliveryStart: timestamppb.New(now),
		DeliveryEnd: timestamppb.New(now.Add(time.Duration(days) * 24 * time.Hour)), OrderType: pb.OrderType_ORDER_TYPE_LIMIT}
	if strings.Contains(prefix, ":") {
		s.Protocol = pb.Protocol_PROTOCOL_IPV6
	}
	if side == pb.Side_SIDE_BUY {
		s.Ranking = pb.Ranking_RANKING_PRICE
	}
	return s
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
}

func TestIdentityIsTheCertificate(t *testing.T) {
	x := startExchange(t)
	seller := x.member(64501, "192.0.2.1")
	buyer := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	ctx := context.Background()

	// No client certificate: the TLS handshake itself fails.
	b, _ := pki.LoadBundle(filepath.Join(x.dir, "member.pem"))
	noCert := pki.ClientTLS(b, "127.0.0.1")
	noCert.Certificates = nil
	c, _ := grpc.NewClient("passthrough:///"+x.arb.Addr.String(), grpc.WithTransportCredentials(credentials.NewTLS(noCert)))
	defer c.Close()
	_, err := pb.NewTradingServiceClient(c).ListOrders(ctx, &pb.ListOrdersRequest{})
	wantCode(t, "call without a client certificate", err, codes.Unavailable)

	// A certificate from another CA is refused as well.
	other, err := pki.InitCA(filepath.Join(x.dir, "other-ca"), "rogue", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	rogue := filepath.Join(x.dir, "rogue.pem")
	if err := pki.IssueBundle(other, pki.MemberIdentity(64501), rogue); err != nil {
		t.Fatal(err)
	}
	rb, _ := pki.LoadBundle(rogue)
	cfg := pki.ClientTLS(rb, "127.0.0.1")
	cfg.RootCAs = b.CAs // trust the real server, present the rogue client cert
	rc, _ := grpc.NewClient("passthrough:///"+x.arb.Addr.String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	defer rc.Close()
	_, err = pb.NewTradingServiceClient(rc).ListOrders(ctx, &pb.ListOrdersRequest{})
	wantCode(t, "call with a certificate from another CA", err, codes.Unavailable)
	// And the handshake failure is the server's doing, seen with plain TLS.
	if conn, err := tls.Dial("tcp", x.arb.Addr.String(), cfg); err == nil {
		_, rerr := conn.Read(make([]byte, 1))
		conn.Close()
		if rerr == nil {
			t.Fatal("server accepted a rogue client certificate")
		}
	}

	// Member A cannot read, cancel or modify member B's orders or trades.
	sell, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, "198.51.100.0/24", 1e9, 100, 60)})
	if err != nil {
		t.Fatal(err)
	}
	bt := pb.NewTradingServiceClient(buyer)
	_, err = bt.GetOrder(ctx, &pb.GetOrderRequest{OrderId: sell.Order.Id})
	wantCode(t, "buyer reads seller's order", err, codes.NotFound)
	_, err = bt.CancelOrder(ctx, &pb.CancelOrderRequest{OrderId: sell.Order.Id})
	wantCode(t, "buyer cancels seller's order", err, codes.NotFound)
	_, err = bt.ModifyOrder(ctx, &pb.ModifyOrderRequest{OrderId: sell.Order.Id, PriceMicros: ptr(int64(1))})
	wantCode(t, "buyer modifies seller's order", err, codes.NotFound)
	_, err = bt.ListOrders(ctx, &pb.ListOrdersRequest{MemberAsn: 64501})
	wantCode(t, "buyer lists seller's orders", err, codes.PermissionDenied)
	_, err = bt.ListTrades(ctx, &pb.ListTradesRequest{MemberAsn: 64501})
	wantCode(t, "buyer lists seller's trades", err, codes.PermissionDenied)
	// A member cannot act as the operator.
	_, err = pb.NewRegistryServiceClient(buyer).AddPrefix(ctx, &pb.AddPrefixRequest{Prefix: &pb.Prefix{Prefix: "203.0.113.0/24", MemberAsn: 64510, RouteType: 1}})
	wantCode(t, "member adds a prefix", err, codes.PermissionDenied)
	// The member's own order is there, untouched.
	o, err := pb.NewTradingServiceClient(seller).GetOrder(ctx, &pb.GetOrderRequest{OrderId: sell.Order.Id})
	if err != nil || o.Status != pb.OrderStatus_ORDER_STATUS_OPEN || o.Spec.PriceMicros != 100 {
		t.Fatalf("seller's order after the attempts: %v %v", o, err)
	}
	// Trades are visible to both parties and nobody else.
	third := x.member(64520, "192.0.2.20")
	if _, err := bt.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 200, 30)}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*grpc.ClientConn{"buyer": buyer, "seller": seller} {
		ts, err := pb.NewTradingServiceClient(c).ListTrades(ctx, &pb.ListTradesRequest{})
		if err != nil || len(ts.Trades) != 1 {
			t.Fatalf("%s sees trades %v, %v", name, ts, err)
		}
	}
	ts, err := pb.NewTradingServiceClient(third).ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil || len(ts.Trades) != 0 {
		t.Fatalf("third member sees %v, %v", ts, err)
	}
}

func ptr[T any](v T) *T { return &v }

// nextTradeEvent skips order events to the next trade event.
func nextTradeEvent(t *testing.T, name string, s pb.TradingService_StreamTradeEventsClient) *pb.TradeEvent {
	t.Helper()
	for {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("%s stream: %v", name, err)
		}
		if ev.Trade != nil {
			return ev
		}
		if ev.Order == nil || ev.Order.MemberAsn == 0 {
			t.Fatalf("%s: event with neither trade nor order: %v", name, ev)
		}
	}
}

func TestBadInputIsRefusedAndNothingStored(t *testing.T) {
	x := startExchange(t)
	seller := x.member(64501, "192.0.2.1")
	x.addPrefix(64501, "198.51.100.0/24")
	tc := pb.NewTradingServiceClient(seller)
	ctx := context.Background()
	cases := map[string]func(*pb.OrderSpec){
		"spec.capacity_bps":       func(s *pb.OrderSpec) { s.CapacityBps = -1 },
		"spec.side":               func(s *pb.OrderSpec) { s.Side = 0 },
		"spec.destination.prefix": func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_Prefix{Prefix: "not-a-prefix"} },
		"spec.delivery_end":       func(s *pb.OrderSpec) { s.DeliveryEnd = s.DeliveryStart },
		"spec.destination":        func(s *pb.OrderSpec) { s.Destination.Kind = &pb.Destination_Prefix{Prefix: "203.0.113.0/24"} },
		"spec.ranking":            func(s *pb.OrderSpec) { s.Ranking = pb.Ranking_RANKING_PRICE },
		"spec.delivery_start": func(s *pb.OrderSpec) {
			s.DeliveryStart = timestamppb.New(s.DeliveryStart.AsTime().AddDate(0, -1, 0))
		},
	}
	for field, mod := range cases {
		s := order(pb.Side_SIDE_SELL, "198.51.100.0/24", 1e9, 100, 60)
		mod(s)
		_, err := tc.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: s})
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), field+":") {
			t.Errorf("bad %s: got %v", field, err)
			continue
		}
		var named string
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
				named = br.FieldViolations[0].Field
			}
		}
		if named != field {
			t.Errorf("bad %s: BadRequest detail names %q", field, named)
		}
	}
	os, err := tc.ListOrders(ctx, &pb.ListOrdersRequest{})
	if err != nil || len(os.Orders) != 0 {
		t.Fatalf("refused orders were stored: %v %v", os, err)
	}
	// A bad member registration leaves no member behind.
	reg := pb.NewRegistryServiceClient(x.operator())
	_, err = reg.AddMember(ctx, &pb.AddMemberRequest{Asn: 64999, Name: "x", Port: &pb.Port{Name: "p", CapacityBps: 1}, RouterAddresses: []string{"192.0.2.1"}})
	wantCode(t, "member with a router address another member has", err, codes.AlreadyExists)
	_, err = reg.AddMember(ctx, &pb.AddMemberRequest{Asn: 64998, Name: "x", Port: &pb.Port{Name: "p", CapacityBps: 1}, RouterAddresses: []string{"192.0.2.50"}, Csr: []byte("junk")})
	wantCode(t, "member with a junk CSR", err, codes.InvalidArgument)
	ms, _ := reg.ListMembers(ctx, &pb.ListMembersRequest{})
	if len(ms.Members) != 1 {
		t.Fatalf("failed registrations left members behind: %v", ms.Members)
	}
}

func TestWalkingSkeletonSurvivesRestart(t *testing.T) { walkingSkeleton(t, startExchange(t)) }

// The arbiter runs on PostgreSQL (store.driver: postgres, a DSN listing a
// host that is down before the server's): the walking skeleton over gRPC,
// across a restart.
func TestWalkingSkeletonOnPostgres(t *testing.T) {
	pg := storetest.PostgresConfig(t, false)
	x := startExchangeWith(t, func(c *daemon.Config) {
		dir := strings.TrimPrefix(strings.Fields(pg.DSN)[0], "host=")
		c.Store.Driver = "postgres"
		c.Store.DSN = strings.Replace(pg.DSN, "host="+dir, "host=/nonexistent-bwx-i-pg,"+dir, 1) + " target_session_attrs=read-write"
		c.Metrics.Listen = "127.0.0.1:0"
	})
	if _, err := os.Stat(x.cfg.StorePath()); err == nil {
		t.Fatalf("an arbiter on postgres wrote the sqlite file %s", x.cfg.StorePath())
	}
	walkingSkeleton(t, x)
	db, err := store.OpenConfig(pg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var trades int
	if err := db.QueryRow("SELECT count(*) FROM trades").Scan(&trades); err != nil || trades != 3 {
		t.Fatalf("trades in postgres: %d, %v; want 3", trades, err)
	}
}

func walkingSkeleton(t *testing.T, x *exchange) {
	seller := x.member(64501, "192.0.2.1", "2001:db8::1")
	buyer := x.member(64510, "192.0.2.10", "2001:db8::10")
	x.addPrefix(64501, "2001:db8:100::/48")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	events := map[string]pb.TradingService_StreamTradeEventsClient{}
	for name, c := range map[string]*grpc.ClientConn{"buyer": buyer, "seller": seller} {
		s, err := pb.NewTradingServiceClient(c).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		events[name] = s
	}
	sell := order(pb.Side_SIDE_SELL, "2001:db8:100::/48", 2e9, 300_000, 90)
	sell.MinBlockBps = 1e9
	if _, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: sell}); err != nil {
		t.Fatal(err)
	}
	resp, err := pb.NewTradingServiceClient(buyer).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "2001:db8:100::/48", 1e9, 400_000, 30)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Trades) != 1 {
		t.Fatalf("no trade: %v", resp)
	}
	tr := resp.Trades[0]
	if tr.PriceMicros != 300_000 || strings.Join(tr.SellerNextHops, ",") != "2001:db8::1" || tr.Status != pb.TradeStatus_TRADE_STATUS_ACTIVE {
		t.Errorf("trade = %v", tr)
	}
	for name, s := range events {
		ev := nextTradeEvent(t, name, s)
		if ev.Type != pb.TradeEventType_TRADE_EVENT_TYPE_CREATED || ev.Trade.Id != tr.Id {
			t.Errorf("%s got %v", name, ev)
		}
	}

	// The metrics endpoint counts the trade.
	r, err := http.Get("http://" + x.arb.MetricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(body), "bwx_arbiter_trades_total 1") {
		t.Errorf("metrics do not count the trade")
	}

	// Restart the arbiter: orders, the trade, capacities and events remain.
	x.arb.Close()
	x.start()
	// The 1G reserved before the restart still counts: of a 10G buy only
	// 9G fits the buyer's 10G port.
	more := order(pb.Side_SIDE_SELL, "2001:db8:100::/48", 10e9, 300_000, 90)
	more.MinBlockBps = 1e9
	if _, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: more}); err != nil {
		t.Fatal(err)
	}
	big := order(pb.Side_SIDE_BUY, "2001:db8:100::/48", 10e9, 400_000, 30)
	big.MinBlockBps = 1e9
	resp, err = pb.NewTradingServiceClient(buyer).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: big})
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, t := range resp.Trades {
		got += t.CapacityBps
	}
	if got != 9e9 {
		t.Fatalf("after restart a 10G buy traded %d bit/s, want 9G (1G of the port was reserved before)", got)
	}
	ts, err := pb.NewTradingServiceClient(buyer).ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil || len(ts.Trades) != 3 || ts.Trades[0].Id != tr.Id {
		t.Fatalf("after restart: trades %v %v", ts, err)
	}
	os, _ := pb.NewTradingServiceClient(seller).ListOrders(ctx, &pb.ListOrdersRequest{})
	if len(os.Orders) != 2 || os.Orders[0].FilledBps != 2e9 {
		t.Fatalf("seller's order after restart: %v", os)
	}
	s, err := pb.NewTradingServiceClient(seller).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextTradeEvent(t, "seller after restart", s); ev.Trade.Id != tr.Id {
		t.Fatalf("replayed event after restart: %v", ev)
	}

	// Health and reflection answer (grpcurl relies on both).
	h, err := healthpb.NewHealthClient(x.operator()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
}

func TestOperatorSocketMode(t *testing.T) {
	x := startExchange(t)
	fi, err := os.Stat(x.cfg.Operator.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("operator socket mode %v, want 0600", fi.Mode().Perm())
	}
	// A second arbiter must not steal a live socket.
	cfg := x.cfg
	cfg.GRPC.Listen, cfg.Metrics.Listen = "127.0.0.1:0", ""
	if _, err := daemon.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "another arbiter") {
		t.Fatalf("second arbiter on the same socket: %v", err)
	}
	if c, err := net.Dial("unix", x.cfg.Operator.Socket); err != nil {
		t.Fatalf("first arbiter's socket is gone: %v", err)
	} else {
		c.Close()
	}
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"state_dir: /x\ngrpc:\n  listne: ':1'\n":                                                                    ":3: grpc.listne",
		"state_dir: /x\ngrpc:\n  listen: nope\n":                                                                    ":3: grpc.listen",
		"state_dir: /x\nlog:\n  level: loud\n":                                                                      ":3: log.level",
		"state_dir: relative\n":                                                                                     ":1: state_dir",
		"state_dir: /x\nmetrics:\n  listen: [1, 2]\n":                                                               ":3",
		"state_dir: /x\nbgp:\n  enabled: true\n":                                                                    "bgp.asn: required",
		"bgp:\n  enabled: true\n  asn: 65000\n  router_id: 2001:db8::1\n":                                           ":4: bgp.router_id",
		"bgp:\n  enabled: true\n  asn: 65000\n  router_id: 192.0.2.1\n  hold_time: 1s\n":                            ":5: bgp.hold_time",
		"bgp:\n  enabled: true\n  asn: 65000\n  router_id: 192.0.2.1\n  graceful_restart_time: 1h30m\n":             ":5: bgp.graceful_restart_time",
		"bgp:\n  hold_time: soon\n":                                                                                 ":2",
		"bgp:\n  enabled: true\n  asn: 65000\n  router_id: 192.0.2.1\n  listen: [192.0.2.1, nope]\n":                "bgp.listen[1]",
		"bgp:\n  enabled: true\n  asn: 65000\n  router_id: 192.0.2.1\n  members:\n  - asn: 64500\n  - asn: 64500\n": ":7: bgp.members[1].asn",
		"bgp:\n  members:\n  - asn: 64500\n    pasword: x\n":                                                        ":4: bgp.members[0].pasword",
		"state_dir: /x\nquality:\n  report_rate: 0\n":                                                               ":3: quality.report_rate",
		"state_dir: /x\nquality:\n  report_burst: 10\n":                                                             ":3: quality.report_burst",
		"state_dir: /x\ngrpc:\n  per_caller:\n    in_flight: 0\n":                                                   ":4: grpc.per_caller.in_flight",
		"state_dir: /x\ngrpc:\n  per_caller:\n    calls_per_second: 0.5\n":                                          ":4: grpc.per_caller.calls_per_second",
		"state_dir: /x\ngrpc:\n  per_caller:\n    streams: many\n":                                                  ":4",
		"federation:\n  listen: ':7444'\n":                                                                          ":1: federation.name",
		"federation:\n  name: IX A\n":                                                                               ":2: federation.name",
		"federation:\n  name: ix-a\n  listen: ':7444'\n  bundle: /b\n  peers:\n  - name: ix-b\n    address: h:1\n    ca: /c\n    interconnect_bps: 0\n":                        ":9: federation.peers[0].interconnect_bps",
		"federation:\n  name: ix-a\n  listen: ':7444'\n  bundle: /b\n  peers:\n  - name: ix-a\n":                                                                               ":6: federation.peers[0].name",
		"federation:\n  name: ix-a\n  listen: ':7444'\n  bundle: /b\n  peers:\n  - name: ix-b\n    address: nope\n    ca: /c\n    interconnect_bps: 1\n":                       ":7: federation.peers[0].address",
		"federation:\n  name: ix-a\n  listen: ':7444'\n  bundle: /b\n  peers:\n  - name: ix-b\n    address: h:1\n    ca: /c\n    interconnect_bps: 1\n    added_latency: 1h\n": ":10: federation.peers[0].added_latency",
		"federation:\n  name: ix-a\n  listen: ':7444'\n":                                "federation.bundle: required",
		"state_dir: /x\nstore:\n  driver: mysql\n":                                      ":3: store.driver",
		"state_dir: /x\nstore:\n  driver: postgres\n":                                   "store.dsn: required",
		"state_dir: /x\nstore:\n  driver: postgres\n  dsn: 'host=a,b port=x'\n":         ":4: store.dsn",
		"state_dir: /x\nstore:\n  driver: postgres\n  dsn: host=a\n  path: /x/bwx.db\n": ":5: store.path",
		"state_dir: /x\nstore:\n  dsn: host=a\n":                                        ":3: store.dsn",
	}
	for body, want := range cases {
		p := filepath.Join(dir, "a.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		cfg, err := daemon.LoadConfig(p)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want it to contain %q", body, err, want)
		}
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	cfg, err := daemon.LoadConfig("../../packaging/etc/arbiter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, daemon.DefaultConfig()) {
		t.Errorf("packaging/etc/arbiter.yaml says it shows the defaults but differs: %+v", cfg)
	}
}

func TestReflectionListsServices(t *testing.T) {
	x := startExchange(t)
	s, err := reflectionpb.NewServerReflectionClient(x.operator()).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.Name)
	}
	for _, want := range []string{"bwx.v1.RegistryService", "bwx.v1.TradingService", "bwx.v1.QualityService", "bwx.v1.UsageService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestOperatorCertificate(t *testing.T) {
	x := startExchange(t)
	member := x.member(64501, "192.0.2.1")
	op := x.caBundle(pki.OperatorIdentity("alice"), "alice")
	ctx := context.Background()
	ms, err := pb.NewRegistryServiceClient(x.dialBundle(op)).ListMembers(ctx, &pb.ListMembersRequest{})
	if err != nil || len(ms.Members) != 1 {
		t.Fatalf("operator over TLS: %v %v", ms, err)
	}
	_, err = pb.NewRegistryServiceClient(member).ListMembers(ctx, &pb.ListMembersRequest{})
	wantCode(t, "member lists members", err, codes.PermissionDenied)
	// The operator manages the book but does not trade.
	_, err = pb.NewTradingServiceClient(x.dialBundle(op)).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 1, 1)})
	wantCode(t, "operator places an order", err, codes.PermissionDenied)
	// A certificate for a member that is not registered is refused.
	ghost := x.caBundle(pki.MemberIdentity(65000), "ghost")
	_, err = pb.NewTradingServiceClient(x.dialBundle(ghost)).ListOrders(ctx, &pb.ListOrdersRequest{})
	wantCode(t, "unregistered member's certificate", err, codes.PermissionDenied)
}

// TestTimeInTheBookThroughTheDaemon: through the API, on the book's clock,
// a trade made from a buy that rested an hour starts at the match; a sell
// whose start arrives while a buy that started earlier rests trades with it
// by itself (the book is not left crossed), and both members hear of it.
func TestTimeInTheBookThroughTheDaemon(t *testing.T) {
	t0 := clock.Now().UTC().Truncate(time.Second)
	var at atomic.Pointer[time.Time]
	set := func(d time.Duration) { v := t0.Add(d); at.Store(&v) }
	set(0)
	x := startExchangeOpts(t, daemon.WithBookClock(func() time.Time { return *at.Load() }))
	seller := pb.NewTradingServiceClient(x.member(64501, "192.0.2.1"))
	buyer := pb.NewTradingServiceClient(x.member(64510, "192.0.2.10"))
	x.addPrefix(64501, "198.51.100.0/24")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := buyer.StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	at0 := func(side pb.Side, price int64, start time.Duration) *pb.OrderSpec {
		s := order(side, "198.51.100.0/24", 1e9, price, 10)
		s.DeliveryStart = timestamppb.New(t0.Add(start))
		s.DeliveryEnd = timestamppb.New(t0.Add(10 * 24 * time.Hour))
		return s
	}
	if _, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: at0(pb.Side_SIDE_BUY, 500_000, 0)}); err != nil {
		t.Fatal(err)
	}
	set(time.Hour)
	r, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: at0(pb.Side_SIDE_SELL, 400_000, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Trades) != 1 {
		t.Fatalf("a sell starting now did not meet the buy resting since an hour: %v", r.Trades)
	}
	tr := r.Trades[0]
	if !tr.DeliveryStart.AsTime().Equal(t0.Add(time.Hour)) || !tr.CreatedAt.AsTime().Equal(tr.DeliveryStart.AsTime()) {
		t.Fatalf("trade made at %v starts at %v; want it to start at the match", tr.CreatedAt.AsTime(), tr.DeliveryStart.AsTime())
	}
	if ev := nextTradeEvent(t, "buyer", events); ev.Trade.Id != tr.Id {
		t.Fatalf("buyer heard of trade %d, want %d", ev.Trade.Id, tr.Id)
	}

	// A sell that starts in two hours does not cover a buy starting now;
	// when its start arrives they trade without anyone placing an order.
	if _, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: at0(pb.Side_SIDE_BUY, 500_000, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r, err = seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: at0(pb.Side_SIDE_SELL, 400_000, 3*time.Hour)})
	if err != nil || len(r.Trades) != 0 {
		t.Fatalf("a later sell traded with an earlier buy: %v %v", r.GetTrades(), err)
	}
	set(3 * time.Hour)
	ev := nextTradeEvent(t, "buyer", events) // the book's expiry loop wakes it within a second
	if !ev.Trade.DeliveryStart.AsTime().Equal(t0.Add(3*time.Hour)) || ev.Trade.PriceMicros != 500_000 {
		t.Fatalf("woken trade %v; want it to start when the sell's start arrived, at the buy's price (it rested first)", ev.Trade)
	}
	open, err := buyer.ListOrders(ctx, &pb.ListOrdersRequest{OpenOnly: true})
	if err != nil || len(open.Orders) != 0 {
		t.Fatalf("orders left open: %v %v", open.GetOrders(), err)
	}
}

// The smaller attacks on the book, as a member would try them over gRPC:
// shrinking an order to a remainder below one block, and taking an offer
// in a capacity its blocks cannot make; each gets InvalidArgument naming
// capacity_bps.
func TestOrderEdgeCasesOverGRPC(t *testing.T) {
	x := startExchange(t)
	seller := pb.NewTradingServiceClient(x.member(64501, "192.0.2.1"))
	buyer := pb.NewTradingServiceClient(x.member(64510, "192.0.2.10"))
	x.addPrefix(64501, "198.51.100.0/24")
	ctx := context.Background()
	s := order(pb.Side_SIDE_SELL, "198.51.100.0/24", 4e9, 100, 60)
	s.MinBlockBps = 1e9
	sell, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	b := order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 200, 30)
	if r, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: b}); err != nil || len(r.Trades) != 1 {
		t.Fatalf("buy: %v %v", r, err)
	}
	_, err = seller.ModifyOrder(ctx, &pb.ModifyOrderRequest{OrderId: sell.Order.Id, CapacityBps: ptr(int64(1.5e9))})
	wantCode(t, "a remainder of half a block", err, codes.InvalidArgument)
	if !strings.Contains(status.Convert(err).Message(), "capacity_bps") {
		t.Errorf("the refusal does not name capacity_bps: %v", err)
	}
	take := order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1.5e9, 200, 30)
	take.MinBlockBps = 5e8
	_, err = buyer.TakeOffer(ctx, &pb.TakeOfferRequest{OfferOrderId: sell.Order.Id, Spec: take})
	wantCode(t, "taking 1.5G of an offer in 1G blocks", err, codes.InvalidArgument)
	if !strings.Contains(status.Convert(err).Message(), "whole number of blocks") {
		t.Errorf("the refusal does not say why: %v", err)
	}
	// Each refusal is counted with the member that asked.
	r, err := http.Get("http://" + x.arb.MetricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	for _, want := range []string{`bwx_arbiter_grpc_refusals_total{caller="member AS64501",code="InvalidArgument"} 1`,
		`bwx_arbiter_grpc_refusals_total{caller="member AS64510",code="InvalidArgument"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
