package api

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
)

// fakeRS stands in for the running route server.
type fakeRS struct{ reset []uint32 }

func (f *fakeRS) Sessions(context.Context) ([]routeserver.Session, error) {
	return []routeserver.Session{
		{ASN: 64501, Address: netip.MustParseAddr("192.0.2.11"), State: "Established", Uptime: time.Minute, Received: 3, Accepted: 2},
		{ASN: 64502, Address: netip.MustParseAddr("2001:db8::12"), State: "Idle (max prefix)"},
	}, nil
}

func (f *fakeRS) Sent(_ context.Context, asn uint32) ([]routeserver.SentRoute, error) {
	return []routeserver.SentRoute{{Neighbor: netip.MustParseAddr("192.0.2.12"), Prefix: netip.MustParsePrefix("198.51.100.0/24"),
		NextHop: netip.MustParseAddr("192.0.2.11"), ASPath: []uint32{65000, 64501}, Origin: "i",
		Communities: []string{"65535:65281"}, LargeCommunities: []string{"65000:1:64502", "65000:2:7"}}}, nil
}

func (f *fakeRS) ResetMember(_ context.Context, asn uint32) error {
	if asn != 64501 {
		return errors.New("routeserver: AS64999 is not a member")
	}
	f.reset = append(f.reset, asn)
	return nil
}

func as(id pki.Identity) context.Context {
	return context.WithValue(context.Background(), callerKey{}, Caller{id})
}

func TestRouteServerServiceAuthorization(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "bwx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := registry.New(db)
	since := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	err = reg.UpdateAnnounced(context.Background(), []registry.AnnouncedRoute{
		{MemberASN: 64501, Neighbor: netip.MustParseAddr("192.0.2.11"), Prefix: netip.MustParsePrefix("198.51.100.0/24"), ASPath: []uint32{64501}, OriginASN: 64501, Accepted: true, Since: since},
		{MemberASN: 64502, Neighbor: netip.MustParseAddr("192.0.2.12"), Prefix: netip.MustParsePrefix("203.0.113.0/24"), ASPath: []uint32{64502}, OriginASN: 64502, Reason: "not registered", Since: since},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := &fakeRS{}
	s := &RouteServerServer{RS: rs, Registry: reg}
	op, m1 := as(pki.OperatorIdentity("local")), as(pki.MemberIdentity(64501))
	code := func(what string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}

	all, err := s.ListReceivedRoutes(op, &pb.ListReceivedRoutesRequest{})
	if err != nil || len(all.Routes) != 2 {
		t.Fatalf("operator sees every member's routes: %v %v", all, err)
	}
	own, err := s.ListReceivedRoutes(m1, &pb.ListReceivedRoutesRequest{})
	if err != nil || len(own.Routes) != 1 || own.Routes[0].MemberAsn != 64501 {
		t.Fatalf("member's own routes: %v %v", own, err)
	}
	_, err = s.ListReceivedRoutes(m1, &pb.ListReceivedRoutesRequest{MemberAsn: 64502})
	code("member reads another's routes", err, codes.PermissionDenied)

	ss, err := s.ListSessions(m1, &pb.ListSessionsRequest{})
	if err != nil || len(ss.Sessions) != 1 || ss.Sessions[0].Asn != 64501 || ss.Sessions[0].Accepted != 2 {
		t.Fatalf("member's sessions: %v %v", ss, err)
	}
	if ss, _ = s.ListSessions(op, &pb.ListSessionsRequest{}); len(ss.Sessions) != 2 || ss.Sessions[1].State != "Idle (max prefix)" {
		t.Fatalf("operator's sessions: %v", ss)
	}

	_, err = s.ListSentRoutes(op, &pb.ListSentRoutesRequest{})
	code("operator without member_asn", err, codes.InvalidArgument)
	sent, err := s.ListSentRoutes(m1, &pb.ListSentRoutesRequest{})
	if err != nil || len(sent.Routes) != 1 || len(sent.Routes[0].LargeCommunities) != 2 {
		t.Fatalf("sent: %v %v", sent, err)
	}

	_, err = s.ResetSessions(m1, &pb.ResetSessionsRequest{MemberAsn: 64501})
	code("member resets", err, codes.PermissionDenied)
	_, err = s.ResetSessions(op, &pb.ResetSessionsRequest{MemberAsn: 64999})
	code("reset an unknown member", err, codes.NotFound)
	if _, err := s.ResetSessions(op, &pb.ResetSessionsRequest{MemberAsn: 64501}); err != nil || len(rs.reset) != 1 {
		t.Fatalf("operator reset: %v %v", rs.reset, err)
	}

	off := &RouteServerServer{Registry: reg}
	_, err = off.ListSessions(op, &pb.ListSessionsRequest{})
	code("route server disabled", err, codes.FailedPrecondition)
}
