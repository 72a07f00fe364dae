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

// memberBundle makes a CA whose server certificate names ips, and a
// member's bundle from it.
func memberBundle(t *testing.T, ips []string) (*pki.CA, *pki.Bundle) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), "test", ips)
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
	return ca, b
}

// serveTLS serves a on lis with ca's server certificate until the test
// ends, and returns its address.
func serveTLS(t *testing.T, ca *pki.CA, lis net.Listener, a *arbiter) string {
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(ca.ServerCertificate(), ca.Pool()))))
	pb.RegisterTradingServiceServer(s, a)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// A one-off command's connection to a pair whose first arbiter is down
// reaches the second, checking the second's certificate against its own
// address (the first's, 192.0.2.99, is not on it: a name taken from the
// first address would fail).
func TestDialTLSAnyReachesTheSecondArbiter(t *testing.T) {
	lis, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ca, b := memberBundle(t, []string{"::1"})
	serveTLS(t, ca, lis, &arbiter{name: "b"})
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
	ca, b := memberBundle(t, nil)
	serve := func(a *arbiter) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return serveTLS(t, ca, lis, a)
	}
	matcher := serve(&arbiter{name: "b"})
	follower := serve(&arbiter{name: "a", matcher: matcher})
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
