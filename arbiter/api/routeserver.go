package api

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// RouteServer is what the route server service reads from the running
// route server (*routeserver.Server).
type RouteServer interface {
	Sessions(ctx context.Context) ([]routeserver.Session, error)
	Sent(ctx context.Context, asn uint32) ([]routeserver.SentRoute, error)
	ResetMember(ctx context.Context, asn uint32) error
}

// RouteServerServer serves the operator's and members' view of the route
// server. RS is nil when the route server is not enabled: the calls then
// say so.
type RouteServerServer struct {
	pb.UnimplementedRouteServerServiceServer
	RS       RouteServer
	Registry *registry.Registry
	Now      func() time.Time
	// Reread has the route server read the registry data again and
	// re-check received routes (asynchronously).
	Reread func()
}

func (s *RouteServerServer) enabled() error {
	if s.RS == nil {
		return status.Error(codes.FailedPrecondition, "the route server is not enabled on this arbiter (bgp.enabled in arbiter.yaml)")
	}
	return nil
}

func (s *RouteServerServer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return clock.Now()
}

func (s *RouteServerServer) ListSessions(ctx context.Context, r *pb.ListSessionsRequest) (*pb.ListSessionsResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	if err := s.enabled(); err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "sessions", r.PageSize, r.PageToken, asn)
	if err != nil {
		return nil, err
	}
	ss, err := s.RS.Sessions(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "route server: %v", err)
	}
	now := s.now()
	out := &pb.ListSessionsResponse{}
	for _, x := range ss {
		if asn != 0 && x.ASN != asn {
			continue
		}
		out.Sessions = append(out.Sessions, &pb.BgpSession{Asn: x.ASN, Neighbor: x.Address.String(), State: x.State,
			Since: ts(now.Add(-x.Uptime)), Received: int64(x.Received), Accepted: int64(x.Accepted), Sent: int64(x.Sent)})
	}
	out.Sessions, out.NextPageToken, err = cutAt(pg, out.Sessions, func(x *pb.BgpSession) string { return fmt.Sprint(x.Asn, " ", x.Neighbor) })
	return out, err
}

func (s *RouteServerServer) ListReceivedRoutes(ctx context.Context, r *pb.ListReceivedRoutesRequest) (*pb.ListReceivedRoutesResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	if err := s.enabled(); err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "received routes", r.PageSize, r.PageToken, asn)
	if err != nil {
		return nil, err
	}
	rs, err := s.Registry.Announced(ctx, asn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListReceivedRoutesResponse{}
	for _, a := range rs {
		nh := ""
		if a.NextHop.IsValid() {
			nh = a.NextHop.String()
		}
		out.Routes = append(out.Routes, &pb.ReceivedRoute{MemberAsn: a.MemberASN, Neighbor: a.Neighbor.String(), Prefix: a.Prefix.String(),
			NextHop: nh, AsPath: a.ASPath, OriginAsn: a.OriginASN, Accepted: a.Accepted, Reason: a.Reason, Since: ts(a.Since)})
	}
	out.Routes, out.NextPageToken, err = cutAt(pg, out.Routes, func(x *pb.ReceivedRoute) string {
		return fmt.Sprint(x.MemberAsn, " ", x.Neighbor, " ", x.Prefix, " ", x.NextHop, " ", x.AsPath)
	})
	return out, err
}

func (s *RouteServerServer) ListSentRoutes(ctx context.Context, r *pb.ListSentRoutesRequest) (*pb.ListSentRoutesResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	if asn == 0 {
		return nil, invalidArg("member_asn", "is required")
	}
	if err := s.enabled(); err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "sent routes", r.PageSize, r.PageToken, asn)
	if err != nil {
		return nil, err
	}
	rs, err := s.RS.Sent(ctx, asn)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "route server: %v", err)
	}
	out := &pb.ListSentRoutesResponse{}
	for _, x := range rs {
		out.Routes = append(out.Routes, &pb.SentRoute{Neighbor: x.Neighbor.String(), Prefix: x.Prefix.String(), NextHop: x.NextHop.String(),
			AsPath: x.ASPath, Origin: x.Origin, Communities: x.Communities, LargeCommunities: x.LargeCommunities, PathId: x.PathID})
	}
	out.Routes, out.NextPageToken, err = cutAt(pg, out.Routes, func(x *pb.SentRoute) string {
		return fmt.Sprint(x.Neighbor, " ", x.Prefix, " ", x.PathId, " ", x.NextHop, " ", x.AsPath)
	})
	return out, err
}

// Recheck asks the route server to read the registry, IRR and RPKI data
// again now (operator only).
func (s *RouteServerServer) Recheck(ctx context.Context, _ *pb.RecheckRequest) (*pb.RecheckResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if err := s.enabled(); err != nil {
		return nil, err
	}
	if s.Reread != nil {
		s.Reread()
	}
	return &pb.RecheckResponse{}, nil
}

func (s *RouteServerServer) ResetSessions(ctx context.Context, r *pb.ResetSessionsRequest) (*pb.ResetSessionsResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if r.MemberAsn == 0 {
		return nil, invalidArg("member_asn", "is required")
	}
	if err := s.enabled(); err != nil {
		return nil, err
	}
	if err := s.RS.ResetMember(ctx, r.MemberAsn); err != nil {
		return nil, status.Errorf(codes.NotFound, "%v", err)
	}
	return &pb.ResetSessionsResponse{}, nil
}
