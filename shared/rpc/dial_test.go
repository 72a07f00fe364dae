package rpc_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

// A one-off command's connection to a pair whose first arbiter is down
// reaches the second, checking the second's certificate against its own
// address (the first's, 192.0.2.99, is not on it: a name taken from the
// first address would fail).
func TestDialTLSAnyReachesTheSecondArbiter(t *testing.T) {
	lis, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), "test", []string{"::1"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "m.pem")
	if err := pki.IssueBundle(ca, pki.MemberIdentity(64501), p); err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(p)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(ca.ServerCertificate(), ca.Pool()))))
	pb.RegisterTradingServiceServer(s, &arbiter{name: "b"})
	go s.Serve(lis)
	defer s.Stop()
	downAddr := "192.0.2.99:7443" // TEST-NET-1: nobody answers

	for _, c := range []struct {
		serverName string
		ok         bool
	}{{"", true}, {"arbiter.invalid", false}} {
		conn, err := rpc.DialTLSAny([]string{downAddr, lis.Addr().String()}, c.serverName, b)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := pb.NewTradingServiceClient(conn).PlaceOrder(ctx, &pb.PlaceOrderRequest{ClientOrderId: "o1"})
		cancel()
		conn.Close()
		if c.ok && (err != nil || r.Order.ClientOrderId != "o1@b") {
			t.Errorf("server name %q: %v %v", c.serverName, r, err)
		}
		if !c.ok && err == nil {
			t.Errorf("server name %q: a certificate without that name accepted", c.serverName)
		}
	}
}

// A one-off command's call refused by a follower naming the matcher is
// answered by the matcher.
func TestDialTLSAnyFollowsTheMatcher(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "m.pem")
	if err := pki.IssueBundle(ca, pki.MemberIdentity(64501), p); err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(p)
	if err != nil {
		t.Fatal(err)
	}
	serveTLS := func(a *arbiter) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(ca.ServerCertificate(), ca.Pool()))))
		pb.RegisterTradingServiceServer(s, a)
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		return lis.Addr().String()
	}
	matcher := serveTLS(&arbiter{name: "b"})
	follower := serveTLS(&arbiter{name: "a", matcher: matcher})
	conn, err := rpc.DialTLSAny([]string{follower}, "", b)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := pb.NewTradingServiceClient(conn).PlaceOrder(ctx, &pb.PlaceOrderRequest{ClientOrderId: "o1"})
	if err != nil || r.Order.ClientOrderId != "o1@b" {
		t.Fatalf("%v %v, want o1@b", r, err)
	}
}
