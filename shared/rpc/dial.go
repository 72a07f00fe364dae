// Package rpc dials the arbiter: over TCP with a member's or operator's
// certificate bundle, or over the local operator socket. An arbiter pair
// is reached with DialTLSAny (a one-off command: the first that answers)
// or Failover (the agent daemon: calls and streams move between them).
package rpc

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

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
// means the host part of addr. extra options come after the common ones.
func DialTLS(addr, serverName string, b *pki.Bundle, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	serverName, err := certName(addr, serverName)
	if err != nil {
		return nil, err
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(b, serverName)))}, common...)
	return grpc.NewClient("passthrough:///"+addr, append(opts, extra...)...)
}

// DialTLSAny connects to the first of addrs that answers, in order
// (gRPC's pick_first over the list, trying the next after 250 ms): a
// one-off command's connection to an arbiter pair. Each arbiter's
// certificate is checked against serverName, or its address's host part.
//
// A call refused naming the matcher (MatcherKey) is retried there once.
func DialTLSAny(addrs []string, serverName string, b *pki.Bundle) (*grpc.ClientConn, error) {
	follow := grpc.WithUnaryInterceptor(followMatcher(func(addr string) (*grpc.ClientConn, error) {
		return DialTLS(addr, serverName, b)
	}))
	if len(addrs) == 1 {
		return DialTLS(addrs[0], serverName, b, follow)
	}
	var st resolver.State
	for _, a := range addrs {
		name, err := certName(a, serverName)
		if err != nil {
			return nil, err
		}
		ra := resolver.Address{Addr: a, ServerName: name}
		st.Addresses = append(st.Addresses, ra)
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{ra}})
	}
	r := manual.NewBuilderWithScheme("bwx-arbiters")
	r.InitialState(st)
	// An empty ServerName in the TLS config: each address's ServerName
	// (above) is the name checked.
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(b, ""))),
		grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{}}]}`), follow}, common...)
	return grpc.NewClient(r.Scheme()+":///arbiters", opts...)
}

// certName is the name checked on the certificate of the arbiter at addr
// (host:port): serverName, or when empty the host part of addr.
func certName(addr, serverName string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("arbiter address %q: want host:port", addr)
	}
	if serverName == "" {
		return host, nil
	}
	return serverName, nil
}

// DialUnix connects to the operator socket at path.
func DialUnix(path string) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, common...)
	return grpc.NewClient("unix://"+path, opts...)
}

// followMatcher retries a unary call refused naming the matcher
// (MatcherKey) at the matcher, once, on a connection dialed for it.
func followMatcher(dial func(addr string) (*grpc.ClientConn, error)) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var hdr, trl metadata.MD
		err := invoker(ctx, method, req, reply, cc, append(opts[:len(opts):len(opts)], grpc.Header(&hdr), grpc.Trailer(&trl))...)
		m := matcherOf(err, hdr, trl)
		if m == "" {
			return err
		}
		mc, derr := dial(m)
		if derr != nil {
			return err
		}
		defer mc.Close()
		return mc.Invoke(ctx, method, req, reply, opts...)
	}
}
