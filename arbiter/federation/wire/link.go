package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/bwxchange/bwx/arbiter/federation"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// Link keeps this exchange's view of one peer: it subscribes to the
// peer's book, applies what comes, and on a gap, a silence or a broken
// connection marks the peer down and subscribes again (a fresh snapshot)
// after a backoff.
type Link struct {
	Peer federation.PeerConfig
	View *federation.View
	// TLS is the dialing side's configuration (Trust.ClientTLS).
	TLS credentials.TransportCredentials
	// Idle is how long the peer may be silent (three heartbeats).
	Idle time.Duration
	// MinBackoff and MaxBackoff bound the wait before subscribing again.
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
}

// Run keeps the link until ctx ends.
func (l *Link) Run(ctx context.Context) {
	conn, err := grpc.NewClient("passthrough:///"+l.Peer.Address, grpc.WithTransportCredentials(l.TLS),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(federation.MaxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		l.View.Lost(l.Peer.Name, err)
		return
	}
	defer conn.Close()
	client := pb.NewFederationServiceClient(conn)
	wait := l.MinBackoff
	for ctx.Err() == nil {
		l.View.Connecting(l.Peer.Name)
		start := clock.Now()
		err := l.session(ctx, client)
		if ctx.Err() != nil {
			return
		}
		l.View.Lost(l.Peer.Name, err)
		if clock.Since(start) > l.MaxBackoff {
			wait = l.MinBackoff // it was up a while: this is a new trouble
		}
		// Jitter keeps peers that lost each other at once from retrying in step.
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		wait = min(wait*2, l.MaxBackoff)
	}
}

// session is one subscription, from the snapshot until it fails.
func (l *Link) session(ctx context.Context, client pb.FederationServiceClient) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(l.Idle, func() { cancel(fmt.Errorf("nothing heard from the peer for %v", l.Idle)) })
	defer idle.Stop()
	st, err := client.StreamBook(ctx, &pb.StreamBookRequest{})
	if err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return c
			}
			return err
		}
		idle.Reset(l.Idle)
		u := updateFromProto(m)
		// Every message counts, so a flood of empty ones is bounded too.
		if err := l.View.Wait(ctx, l.Peer.Name, max(1, len(u.Offers)+len(u.Removed)+len(u.Invalid))); err != nil {
			return err
		}
		if err := l.View.Apply(l.Peer.Name, u); err != nil {
			return err
		}
	}
}
