package api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

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
	// Log receives revocations (nil: not logged).
	Log *slog.Logger
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

func (s *RegistryServer) ListMembers(ctx context.Context, _ *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	ms, err := s.Registry.Members(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListMembersResponse{}
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
	if _, err := s.Registry.Member(ctx, r.Asn); err != nil {
		return nil, toStatus(err)
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
	ps, err := s.Registry.Prefixes(ctx, asn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListPrefixesResponse{}
	for _, p := range ps {
		out.Prefixes = append(out.Prefixes, prefixToProto(p))
	}
	return out, nil
}

func (s *RegistryServer) ListCertificates(ctx context.Context, r *pb.ListCertificatesRequest) (*pb.ListCertificatesResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	cs, err := s.Registry.Certificates(ctx, r.MemberAsn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListCertificatesResponse{}
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
