// Package rpc dials the arbiter: over TCP with a member's or operator's
// certificate bundle, or over the local operator socket.
package rpc

import (
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/bwxchange/bwx/shared/pki"
)

var common = []grpc.DialOption{
	grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
		BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 30 * time.Second,
	}, MinConnectTimeout: 5 * time.Second}),
}

// DialTLS connects to addr (host:port) presenting the bundle's certificate.
// serverName is the name or address on the arbiter's certificate; empty
// means the host part of addr.
func DialTLS(addr, serverName string, b *pki.Bundle) (*grpc.ClientConn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("arbiter address %q: want host:port", addr)
	}
	if serverName == "" {
		serverName = host
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(b, serverName)))}, common...)
	return grpc.NewClient("passthrough:///"+addr, opts...)
}

// DialUnix connects to the operator socket at path.
func DialUnix(path string) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, common...)
	return grpc.NewClient("unix://"+path, opts...)
}
