package wire

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/federation"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// Server serves this exchange's published book to its peers.
type Server struct {
	pb.UnimplementedFederationServiceServer
	Publisher *federation.Publisher
	Trust     *federation.Trust
	Heartbeat time.Duration
	Log       *slog.Logger

	mu      sync.Mutex
	streams map[string]context.CancelFunc // one stream per peer: a new one ends the old
}

// authenticate names the peer exchange of a call (the TLS handshake
// already refused everyone else; this is the same check, kept in one place).
func (s *Server) authenticate(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "a peer exchange's certificate is required")
	}
	name, err := s.Trust.PeerName(&ti.State)
	if err != nil {
		return "", status.Error(codes.PermissionDenied, err.Error())
	}
	return name, nil
}

// StreamBook implements pb.FederationServiceServer.
func (s *Server) StreamBook(_ *pb.StreamBookRequest, st pb.FederationService_StreamBookServer) error {
	name, err := s.authenticate(st.Context())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(st.Context())
	defer cancel()
	s.mu.Lock()
	if s.streams == nil {
		s.streams = map[string]context.CancelFunc{}
	}
	if old := s.streams[name]; old != nil {
		old()
	}
	s.streams[name] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		// Only this stream's entry: a newer one may have replaced it.
		if s.streams[name] != nil && ctx.Err() == nil {
			delete(s.streams, name)
		}
		s.mu.Unlock()
	}()

	sub := s.Publisher.Subscribe()
	defer sub.Close()
	log := s.Log.With("peer", name)
	log.Info("federation peer subscribed", "offers", len(sub.Snapshot), "seq", sub.Seq)
	for i := 0; i < len(sub.Snapshot); i += federation.MaxItemsPerUpdate {
		m := &pb.BookUpdate{Kind: pb.BookUpdate_SNAPSHOT, Epoch: sub.Epoch, Seq: sub.Seq}
		for _, o := range sub.Snapshot[i:min(i+federation.MaxItemsPerUpdate, len(sub.Snapshot))] {
			m.Offers = append(m.Offers, OfferToProto(o))
		}
		if err := st.Send(m); err != nil {
			return err
		}
	}
	if err := st.Send(&pb.BookUpdate{Kind: pb.BookUpdate_SNAPSHOT_END, Epoch: sub.Epoch, Seq: sub.Seq}); err != nil {
		return err
	}
	seq := sub.Seq
	beat := time.NewTicker(s.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			if st.Context().Err() == nil {
				return status.Error(codes.Aborted, "a newer stream of this peer replaced this one")
			}
			return ctx.Err()
		case ch, ok := <-sub.Changes:
			if !ok {
				log.Warn("federation peer fell behind: dropped, it takes a snapshot again")
				return status.Error(codes.ResourceExhausted, "fell behind the book's changes: subscribe again")
			}
			m := &pb.BookUpdate{Kind: pb.BookUpdate_CHANGE, Epoch: sub.Epoch, Seq: ch.Seq}
			for _, o := range ch.Upserts {
				m.Offers = append(m.Offers, OfferToProto(o))
			}
			for _, id := range ch.Removed {
				m.Removed = append(m.Removed, uint64(id))
			}
			if err := st.Send(m); err != nil {
				return err
			}
			seq = ch.Seq
		case <-beat.C:
			if err := st.Send(&pb.BookUpdate{Kind: pb.BookUpdate_HEARTBEAT, Epoch: sub.Epoch, Seq: seq}); err != nil {
				return err
			}
		}
	}
}
