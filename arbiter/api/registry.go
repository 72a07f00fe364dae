package api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
)

// RegistryServer serves the trade route registry.
type RegistryServer struct {
	pb.UnimplementedRegistryServiceServer
	Registry *registry.Registry
	CA       *pki.CA
	// Changed is told after members or prefixes change, so matching sees
	// the new registry at once.
	Changed func(context.Context) error
	// Log receives revocations, suspensions and removals (nil: not
	// logged).
	Log *slog.Logger
	// Book cancels a suspended or removed member's orders and ends a
	// removed member's trades (nil: SuspendMember and RemoveMember are
	// unavailable).
	Book MemberBook
}

// MemberBook is what suspending and removing a member asks of the order
// book (book.Book).
type MemberBook interface {
	CancelMember(ctx context.Context, asn uint32) ([]book.Order, error)
	EndMemberTrades(ctx context.Context, asn uint32, reason string) ([]book.Trade, error)
}

func (s *RegistryServer) changed(ctx context.Context) {
	if s.Changed != nil {
		s.Changed(ctx)
	}
}

// sign issues the member certificate for a CSR and describes it for the
// registry's certificate table.
func (s *RegistryServer) sign(csr []byte, asn uint32) (certPEM []byte, rec registry.Certificate, err error) {
	id := pki.MemberIdentity(asn)
	certPEM, err = s.CA.SignCSR(csr, id, 0)
	if err != nil {
		return nil, rec, invalidArg("csr", "%v", err)
	}
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, rec, err
	}
	return certPEM, registry.Certificate{Serial: pki.Serial(c), Identity: id.URI().String(), NotAfter: c.NotAfter}, nil
}

func (s *RegistryServer) AddMember(ctx context.Context, r *pb.AddMemberRequest) (*pb.AddMemberResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	routers, err := parseAddrs("router_addresses", r.RouterAddresses)
	if err != nil {
		return nil, err
	}
	m := registry.Member{ASN: r.Asn, Name: r.Name, Routers: routers}
	if r.Port != nil {
		m.Port = registry.Port{Name: r.Port.Name, CapacityBps: r.Port.CapacityBps}
	}
	var certPEM []byte
	var issue func() (registry.Certificate, error)
	if len(r.Csr) > 0 {
		issue = func() (registry.Certificate, error) {
			var rec registry.Certificate
			var err error
			certPEM, rec, err = s.sign(r.Csr, r.Asn)
			return rec, err
		}
	}
	m, err = s.Registry.AddMember(ctx, m, issue)
	if err != nil {
		return nil, toStatus(err)
	}
	s.changed(ctx)
	resp := &pb.AddMemberResponse{Member: memberToProto(m)}
	if certPEM != nil {
		resp.CertificatePem, resp.CaPem = certPEM, s.CA.CertPEM()
	}
	return resp, nil
}

func (s *RegistryServer) GetMember(ctx context.Context, r *pb.GetMemberRequest) (*pb.Member, error) {
	asn, err := scope(ctx, r.Asn)
	if err != nil {
		return nil, err
	}
	if asn == 0 {
		return nil, invalidArg("asn", "is required")
	}
	m, err := s.Registry.Member(ctx, asn)
	if err != nil {
		return nil, toStatus(err)
	}
	return memberToProto(m), nil
}

func (s *RegistryServer) ListMembers(ctx context.Context, r *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "members", r.PageSize, r.PageToken)
	if err != nil {
		return nil, err
	}
	ms, err := s.Registry.Members(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListMembersResponse{}
	if ms, out.NextPageToken, err = cutAt(pg, ms, func(m registry.Member) string { return idKey(int64(m.ASN)) }); err != nil {
		return nil, err
	}
	for _, m := range ms {
		out.Members = append(out.Members, memberToProto(m))
	}
	return out, nil
}

func (s *RegistryServer) IssueCertificate(ctx context.Context, r *pb.IssueCertificateRequest) (*pb.IssueCertificateResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if len(r.Csr) == 0 {
		return nil, invalidArg("csr", "is required")
	}
	if m, err := s.Registry.Member(ctx, r.Asn); err != nil {
		return nil, toStatus(err)
	} else if m.Status == registry.Removed {
		return nil, toStatus(fmt.Errorf("member AS%d %w", r.Asn, registry.ErrRemoved))
	}
	certPEM, rec, err := s.sign(r.Csr, r.Asn)
	if err != nil {
		return nil, err
	}
	if err := s.Registry.RecordCertificate(ctx, r.Asn, rec); err != nil {
		return nil, toStatus(err)
	}
	return &pb.IssueCertificateResponse{CertificatePem: certPEM, CaPem: s.CA.CertPEM()}, nil
}

func (s *RegistryServer) AddPrefix(ctx context.Context, r *pb.AddPrefixRequest) (*pb.Prefix, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if r.Prefix == nil {
		return nil, invalidArg("prefix", "is required")
	}
	p, err := registry.ParsePrefix("prefix.prefix", r.Prefix.Prefix)
	if err != nil {
		return nil, toStatus(err)
	}
	if r.Prefix.MemberAsn == 0 {
		return nil, invalidArg("prefix.member_asn", "is required")
	}
	got, err := s.Registry.AddPrefix(ctx, registry.Prefix{Prefix: p, MemberASN: r.Prefix.MemberAsn,
		Type: registry.RouteType(r.Prefix.RouteType), OriginASN: r.Prefix.OriginAsn,
		AllowedBuyers: r.Prefix.AllowedBuyers, Prepends: int(r.Prefix.Prepends), AllowExport: r.Prefix.AllowExport})
	if err != nil {
		return nil, toStatus(err)
	}
	s.changed(ctx)
	return prefixToProto(got), nil
}

func prefixToProto(p registry.Prefix) *pb.Prefix {
	return &pb.Prefix{Prefix: p.Prefix.String(), MemberAsn: p.MemberASN, RouteType: pb.RouteType(p.Type), OriginAsn: p.OriginASN,
		AllowedBuyers: p.AllowedBuyers, Prepends: int32(p.Prepends), AllowExport: p.AllowExport}
}

func (s *RegistryServer) RemovePrefix(ctx context.Context, r *pb.RemovePrefixRequest) (*pb.RemovePrefixResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	p, err := registry.ParsePrefix("prefix", r.Prefix)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.Registry.RemovePrefix(ctx, r.MemberAsn, p); err != nil {
		return nil, toStatus(err)
	}
	s.changed(ctx)
	return &pb.RemovePrefixResponse{}, nil
}

func (s *RegistryServer) ListPrefixes(ctx context.Context, r *pb.ListPrefixesRequest) (*pb.ListPrefixesResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "prefixes", r.PageSize, r.PageToken, asn)
	if err != nil {
		return nil, err
	}
	ps, err := s.Registry.Prefixes(ctx, asn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListPrefixesResponse{}
	if ps, out.NextPageToken, err = cutAt(pg, ps, func(p registry.Prefix) string { return fmt.Sprint(p.MemberASN, " ", p.Prefix) }); err != nil {
		return nil, err
	}
	for _, p := range ps {
		out.Prefixes = append(out.Prefixes, prefixToProto(p))
	}
	return out, nil
}

func (s *RegistryServer) ListCertificates(ctx context.Context, r *pb.ListCertificatesRequest) (*pb.ListCertificatesResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "certificates", r.PageSize, r.PageToken, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	cs, err := s.Registry.Certificates(ctx, r.MemberAsn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListCertificatesResponse{}
	if cs, out.NextPageToken, err = cutAt(pg, cs, func(c registry.Certificate) string { return c.Serial }); err != nil {
		return nil, err
	}
	for _, c := range cs {
		out.Certificates = append(out.Certificates, certToProto(c))
	}
	return out, nil
}

func (s *RegistryServer) RevokeCertificate(ctx context.Context, r *pb.RevokeCertificateRequest) (*pb.CertificateInfo, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	c, err := s.Registry.RevokeCertificate(ctx, strings.ToLower(r.Serial))
	if err != nil {
		return nil, toStatus(err)
	}
	if s.Log != nil {
		s.Log.Warn("certificate revoked", "serial", c.Serial, "identity", c.Identity, "member", c.MemberASN, "by", callerFrom(ctx).String())
	}
	return certToProto(c), nil
}

func certToProto(c registry.Certificate) *pb.CertificateInfo {
	out := &pb.CertificateInfo{Serial: c.Serial, Identity: c.Identity, MemberAsn: c.MemberASN, Created: timestamppb.New(c.Created)}
	if !c.NotAfter.IsZero() {
		out.NotAfter = timestamppb.New(c.NotAfter)
	}
	if !c.Revoked.IsZero() {
		out.Revoked = timestamppb.New(c.Revoked)
	}
	return out
}

// SuspendMember suspends a member: from the moment the registry records it
// the book refuses the member's orders and its resting orders cannot
// trade; then they are cancelled (each cancellation reaches its event
// stream and the route server). Its trades run on. Calling it again
// cancels what may still rest (after a failure half-way) and changes
// nothing else.
func (s *RegistryServer) SuspendMember(ctx context.Context, r *pb.SuspendMemberRequest) (*pb.MemberStatusChange, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if err := s.needBook(r.Asn); err != nil {
		return nil, err
	}
	m, err := s.Registry.Suspend(ctx, r.Asn, r.Reason)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.MemberStatusChange{Member: memberToProto(m)}
	if m.Status == registry.Suspended { // not removed meanwhile
		if err := s.cancelOrders(ctx, m.ASN, out); err != nil {
			return nil, err
		}
	}
	s.logStatus(ctx, m, out)
	return out, nil
}

// ResumeMember lifts a suspension: the member may order again (its
// cancelled orders stay cancelled). A removed member cannot be resumed.
func (s *RegistryServer) ResumeMember(ctx context.Context, r *pb.ResumeMemberRequest) (*pb.MemberStatusChange, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if r.Asn == 0 {
		return nil, invalidArg("asn", "is required")
	}
	m, err := s.Registry.Resume(ctx, r.Asn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.MemberStatusChange{Member: memberToProto(m)}
	s.logStatus(ctx, m, out)
	return out, nil
}

// RemoveMember makes a member leave, in this order: the registry marks it
// removed and revokes every certificate of it (one transaction: from then
// on every call of it is refused and it cannot trade); the book cancels
// its resting orders; then its trades end now (settlement bills them up to
// this moment; the route server withdraws them; both parties' event
// streams see them end). Each step is idempotent: if one fails, calling
// again finishes the removal.
func (s *RegistryServer) RemoveMember(ctx context.Context, r *pb.RemoveMemberRequest) (*pb.MemberStatusChange, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if err := s.needBook(r.Asn); err != nil {
		return nil, err
	}
	m, serials, err := s.Registry.Remove(ctx, r.Asn, r.Reason)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.MemberStatusChange{Member: memberToProto(m), RevokedSerials: serials}
	if err := s.cancelOrders(ctx, m.ASN, out); err != nil {
		return nil, err
	}
	reason := fmt.Sprintf("member AS%d removed", m.ASN)
	if m.StatusReason != "" {
		reason += ": " + m.StatusReason
	}
	ended, err := s.Book.EndMemberTrades(ctx, m.ASN, reason)
	if err != nil {
		return nil, toStatus(fmt.Errorf("AS%d is removed and its orders cancelled, but ending its trades failed (run the removal again): %w", m.ASN, err))
	}
	for _, t := range ended {
		out.EndedTradeIds = append(out.EndedTradeIds, uint64(t.ID))
	}
	s.logStatus(ctx, m, out)
	// The route server drops nothing by itself for a removed member; its
	// routes stop with its trades. Matching sees the registry as before.
	return out, nil
}

func (s *RegistryServer) needBook(asn uint32) error {
	if asn == 0 {
		return invalidArg("asn", "is required")
	}
	if s.Book == nil {
		return status.Error(codes.Unimplemented, "this server has no order book")
	}
	return nil
}

func (s *RegistryServer) cancelOrders(ctx context.Context, asn uint32, out *pb.MemberStatusChange) error {
	os, err := s.Book.CancelMember(ctx, asn)
	if err != nil {
		return toStatus(fmt.Errorf("AS%d's status is recorded, but cancelling its orders failed (run the command again): %w", asn, err))
	}
	for _, o := range os {
		out.CancelledOrderIds = append(out.CancelledOrderIds, uint64(o.ID))
	}
	return nil
}

func (s *RegistryServer) logStatus(ctx context.Context, m registry.Member, c *pb.MemberStatusChange) {
	if s.Log != nil {
		s.Log.Warn("member status", "member", m.ASN, "status", m.Status.String(), "reason", m.StatusReason,
			"cancelled_orders", len(c.CancelledOrderIds), "ended_trades", len(c.EndedTradeIds), "revoked_certificates", len(c.RevokedSerials),
			"by", callerFrom(ctx).String())
	}
}
