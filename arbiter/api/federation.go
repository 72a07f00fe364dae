package api

import (
	"context"
	"net/netip"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/federation"
	"github.com/bwxchange/bwx/arbiter/federation/wire"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// FederationAdminServer is the operator's view of the federation.
type FederationAdminServer struct {
	pb.UnimplementedFederationAdminServiceServer
	// View is the peers' books; nil when this exchange does not federate.
	View *federation.View
}

func (s *FederationAdminServer) check(ctx context.Context) error {
	if err := requireOperator(ctx); err != nil {
		return err
	}
	if s.View == nil {
		return status.Error(codes.FailedPrecondition, "this exchange does not federate (no federation.name in the arbiter's config)")
	}
	return nil
}

// ListPeers implements pb.FederationAdminServiceServer.
func (s *FederationAdminServer) ListPeers(ctx context.Context, _ *pb.ListPeersRequest) (*pb.ListPeersResponse, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	resp := &pb.ListPeersResponse{}
	for _, p := range s.View.Peers() {
		fp := &pb.FederationPeer{Name: p.Name, Address: p.Address, State: string(p.State), Offers: int64(p.Offers), Resyncs: p.Resyncs,
			Rejected: p.Rejected, LastError: p.LastError, InterconnectBps: p.InterconnectBps, AddedLatencyUs: p.AddedLatency.Microseconds()}
		if !p.LastUpdate.IsZero() {
			fp.LastUpdate = timestamppb.New(p.LastUpdate)
		}
		resp.Peers = append(resp.Peers, fp)
	}
	return resp, nil
}

// ListRemoteOffers implements pb.FederationAdminServiceServer.
func (s *FederationAdminServer) ListRemoteOffers(ctx context.Context, req *pb.ListRemoteOffersRequest) (*pb.ListRemoteOffersResponse, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var prefix netip.Prefix
	if req.Prefix != "" {
		p, err := netip.ParsePrefix(req.Prefix)
		if err != nil {
			return nil, invalidArg("prefix", "%q is not a prefix", req.Prefix)
		}
		prefix = p.Masked()
	}
	if req.Exchange != "" && !slices.ContainsFunc(s.View.Peers(), func(p federation.PeerStatus) bool { return p.Name == req.Exchange }) {
		return nil, invalidArg("exchange", "%q is not a configured peer exchange", req.Exchange)
	}
	resp := &pb.ListRemoteOffersResponse{}
	for _, l := range s.View.Offers(req.Exchange, prefix) {
		resp.Offers = append(resp.Offers, &pb.ExchangeOffer{Exchange: l.Exchange, Offer: wire.OfferToProto(l.Offer), Usable: l.Usable})
	}
	return resp, nil
}
