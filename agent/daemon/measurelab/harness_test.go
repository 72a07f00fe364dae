package measurelab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/daemon"
	arbiter "github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

const (
	buyerASN = 64501
	s1ASN    = 64511
	s2ASN    = 64512
)

// exchange is an in-process arbiter on loopback (its API is all the agent
// needs from it; the agent's own parts run in the lab's namespaces).
type exchange struct {
	t   *testing.T
	cfg arbiter.Config
	arb *arbiter.Arbiter
	dir string
	mu  sync.Mutex
}

func startArbiter(t *testing.T, q func(*arbiter.QualityConfig)) *exchange {
	t.Helper()
	dir := t.TempDir()
	cfg := arbiter.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	if q != nil {
		q(&cfg.Quality)
	}
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x := &exchange{t: t, cfg: cfg, dir: dir}
	x.start()
	t.Cleanup(x.stop)
	return x
}

func (x *exchange) start() {
	x.t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	a, err := arbiter.Start(x.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		x.t.Fatal(err)
	}
	x.arb = a
	x.cfg.GRPC.Listen = a.Addr.String() // the same port after a restart
}

func (x *exchange) stop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.arb != nil {
		x.arb.Close()
		x.arb = nil
	}
}

func (x *exchange) operator() pb.RegistryServiceClient {
	x.t.Helper()
	c, err := rpc.DialUnix(x.cfg.Operator.Socket)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { c.Close() })
	return pb.NewRegistryServiceClient(c)
}

// member registers a member and returns its bundle path and a connection.
func (x *exchange) member(asn uint32, routers ...string) (string, *grpc.ClientConn) {
	x.t.Helper()
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "x")
	resp, err := x.operator().AddMember(context.Background(), &pb.AddMemberRequest{
		Asn: asn, Name: fmt.Sprintf("AS%d", asn), Port: &pb.Port{Name: fmt.Sprintf("swp%d", asn), CapacityBps: 10e9}, RouterAddresses: routers, Csr: csr})
	if err != nil {
		x.t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalKeyPEM(key)
	path := filepath.Join(x.dir, fmt.Sprintf("AS%d.pem", asn))
	if err := pki.WriteBundle(path, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
		x.t.Fatal(err)
	}
	b, err := pki.LoadBundle(path)
	if err != nil {
		x.t.Fatal(err)
	}
	c, err := rpc.DialTLS(x.cfg.GRPC.Listen, "", b)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { c.Close() })
	return path, c
}

func (x *exchange) addPrefix(asn uint32, p string) {
	x.t.Helper()
	_, err := x.operator().AddPrefix(context.Background(), &pb.AddPrefixRequest{
		Prefix: &pb.Prefix{Prefix: p, MemberAsn: asn, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}})
	if err != nil {
		x.t.Fatal(err)
	}
}

// db opens the arbiter's database beside the daemon (sqlite WAL: readers
// do not block it).
func (x *exchange) db() *store.DB {
	x.t.Helper()
	db, err := store.Open(x.cfg.StorePath())
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { db.Close() })
	return db
}

// trade makes seller sell and buyer buy prefix; it returns the trade ID.
func trade(t *testing.T, seller, buyer *grpc.ClientConn, prefix string) uint64 {
	t.Helper()
	ctx := context.Background()
	now := clock.Now().UTC()
	spec := func(side pb.Side) *pb.OrderSpec {
		s := &pb.OrderSpec{Side: side, Destination: &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: prefix}},
			Protocol: pb.Protocol_PROTOCOL_IPV4, CapacityBps: 1e9, MinBlockBps: 1e9, PriceMicros: 100,
			TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY, DeliveryStart: timestamppb.New(now.Add(-time.Minute)),
			DeliveryEnd: timestamppb.New(now.Add(24 * time.Hour)), OrderType: pb.OrderType_ORDER_TYPE_LIMIT}
		if strings.Contains(prefix, ":") {
			s.Protocol = pb.Protocol_PROTOCOL_IPV6
		}
		if side == pb.Side_SIDE_BUY {
			s.Ranking = pb.Ranking_RANKING_PRICE
		}
		return s
	}
	if _, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: spec(pb.Side_SIDE_SELL)}); err != nil {
		t.Fatal(err)
	}
	r, err := pb.NewTradingServiceClient(buyer).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: spec(pb.Side_SIDE_BUY)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Trades) != 1 {
		t.Fatalf("buy of %s made %d trades, want 1", prefix, len(r.Trades))
	}
	return r.Trades[0].Id
}

// agentConfig is a buyer agent's config with its state in a temp dir.
func agentConfig(t *testing.T, x *exchange, bundle string) daemon.Config {
	cfg := daemon.DefaultConfig()
	cfg.Arbiter.Address = x.cfg.GRPC.Listen
	cfg.Bundle = bundle
	cfg.StateDir = t.TempDir()
	return cfg
}

// runMeasure starts the agent's measuring side for member asn, its
// sockets and netlink in host h; it stops at the end of the test.
func runMeasure(t *testing.T, cfg daemon.Config, asn uint32, conn *grpc.ClientConn, h *labnet.Host, opt daemon.MeasureOptions) *daemon.Measure {
	t.Helper()
	opt.Do, opt.Handle, opt.Sysctl = h.Do, handleIn(t, h), h
	if opt.MinBackoff == 0 {
		opt.MinBackoff, opt.MaxBackoff = 100*time.Millisecond, 500*time.Millisecond
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	m, err := daemon.NewMeasure(cfg, asn, conn, log, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("measure: %v", err)
		}
	})
	return m
}

// handleIn returns a netlink handle inside h's namespace.
func handleIn(t testing.TB, h *labnet.Host) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(h.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

func ipcmd(t testing.TB, h *labnet.Host, args ...string) {
	t.Helper()
	out, err := h.Command(context.Background(), "ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: ip %s: %v: %s", h.Name, strings.Join(args, " "), err, out)
	}
}

func sysctl(t testing.TB, h *labnet.Host, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := h.SetSysctl(kv[i], kv[i+1]); err != nil {
			t.Fatalf("%s: sysctl %s=%s: %v", h.Name, kv[i], kv[i+1], err)
		}
	}
}

// macOf is the MAC of h's eth0.
func macOf(t testing.TB, h *labnet.Host) net.HardwareAddr {
	t.Helper()
	l, err := handleIn(t, h).LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := clock.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if clock.Now().After(deadline) {
			t.Fatalf("after %v: %s: %s", timeout, what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sender sends UDP datagrams of size bytes from h to dst at pps per second,
// exactly on average (it catches up to start+n/pps), until stop is closed;
// it returns how many it sent.
func sender(t *testing.T, h *labnet.Host, dst netip.Addr, pps, size int, stop <-chan struct{}) <-chan int {
	t.Helper()
	var c *net.UDPConn
	err := h.Do(func() (err error) {
		// Unconnected: ICMP errors are not reported on later writes, which
		// would otherwise skip a datagram.
		c, err = net.ListenUDP("udp", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan int, 1)
	go func() {
		defer c.Close()
		payload := make([]byte, size)
		to := netip.AddrPortFrom(dst, 9)
		start := time.Now() //bwx:wallclock: compared with the ticker's times
		sent := 0
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out <- sent
				return
			case now := <-tick.C:
				due := int(now.Sub(start).Seconds() * float64(pps))
				for ; sent < due; sent++ {
					c.WriteToUDPAddrPort(payload, to)
				}
			}
		}
	}()
	return out
}
