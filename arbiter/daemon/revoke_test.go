package daemon_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/daemon"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// A member whose key leaked: the operator revokes its certificate and the
// next call on the very same connection is refused, at the API and the
// dashboard, with no restart; a new bundle works; the old one stays out.
func TestRevokedCertificateRefusedAtOnce(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	leaked := x.member(64501, "192.0.2.1")
	path := filepath.Join(x.dir, "member.pem")
	b, err := pki.LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	serial := pki.Serial(b.Certificate.Leaf)
	oldPath := filepath.Join(x.dir, "leaked.pem")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(oldPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewTradingServiceClient(leaked).ListOrders(ctx, &pb.ListOrdersRequest{}); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	op := pb.NewRegistryServiceClient(x.operator())
	certs, err := op.ListCertificates(ctx, &pb.ListCertificatesRequest{MemberAsn: 64501})
	if err != nil || len(certs.Certificates) != 1 || certs.Certificates[0].Serial != serial || certs.Certificates[0].Revoked != nil ||
		!certs.Certificates[0].NotAfter.AsTime().Equal(b.Certificate.Leaf.NotAfter) {
		t.Fatalf("certificates: %v %v, want the one valid serial %s", err, certs, serial)
	}
	// A member may not revoke, nor list.
	_, err = pb.NewRegistryServiceClient(leaked).RevokeCertificate(ctx, &pb.RevokeCertificateRequest{Serial: serial})
	wantCode(t, "member revokes", err, codes.PermissionDenied)
	_, err = op.RevokeCertificate(ctx, &pb.RevokeCertificateRequest{Serial: "not-hex"})
	wantCode(t, "bad serial", err, codes.InvalidArgument)

	got, err := op.RevokeCertificate(ctx, &pb.RevokeCertificateRequest{Serial: strings.ToUpper(serial)})
	if err != nil || got.Serial != serial || got.Revoked == nil || got.MemberAsn != 64501 {
		t.Fatalf("revoke: %v %v", err, got)
	}
	_, err = pb.NewTradingServiceClient(leaked).ListOrders(ctx, &pb.ListOrdersRequest{})
	wantCode(t, "the same connection after revocation", err, codes.Unauthenticated)
	if !strings.Contains(status.Convert(err).Message(), "revoked") {
		t.Errorf("refusal %q does not say revoked", status.Convert(err).Message())
	}
	_, err = pb.NewTradingServiceClient(x.dialBundle(oldPath)).ListOrders(ctx, &pb.ListOrdersRequest{})
	wantCode(t, "a new connection with the revoked bundle", err, codes.Unauthenticated)

	// The member gets a new bundle; it works, the old one stays refused.
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "x")
	resp, err := op.IssueCertificate(ctx, &pb.IssueCertificateRequest{Asn: 64501, Csr: csr})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalKeyPEM(key)
	newPath := filepath.Join(x.dir, "new.pem")
	if err := pki.WriteBundle(newPath, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewTradingServiceClient(x.dialBundle(newPath)).ListOrders(ctx, &pb.ListOrdersRequest{}); err != nil {
		t.Fatalf("new bundle: %v", err)
	}
	certs, _ = op.ListCertificates(ctx, &pb.ListCertificatesRequest{MemberAsn: 64501})
	if len(certs.Certificates) != 2 {
		t.Errorf("certificates after reissue: %v", certs)
	}

	// An operator bundle made from the CA's files can be revoked too.
	opPath := x.caBundle(pki.OperatorIdentity("alice"), "alice")
	remote := pb.NewRegistryServiceClient(x.dialBundle(opPath))
	if _, err := remote.ListMembers(ctx, &pb.ListMembersRequest{}); err != nil {
		t.Fatalf("operator bundle: %v", err)
	}
	ob, _ := pki.LoadBundle(opPath)
	if _, err := op.RevokeCertificate(ctx, &pb.RevokeCertificateRequest{Serial: pki.Serial(ob.Certificate.Leaf)}); err != nil {
		t.Fatal(err)
	}
	_, err = remote.ListMembers(ctx, &pb.ListMembersRequest{})
	wantCode(t, "revoked operator bundle", err, codes.Unauthenticated)
}

// The dashboard refuses a revoked certificate too.
func TestDashboardRefusesRevokedCertificate(t *testing.T) {
	x := startExchangeWith(t, func(c *daemon.Config) { c.Dashboard.Listen = "127.0.0.1:0" })
	ctx := context.Background()
	x.member(64510, "192.0.2.10")
	b, err := pki.LoadBundle(filepath.Join(x.dir, "member.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{b.Certificate}, RootCAs: b.CAs, ServerName: "127.0.0.1", Time: clock.Now}}}
	get := func() int {
		t.Helper()
		resp, err := c.Get("https://" + x.arb.DashboardAddr.String() + "/trades")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("before revocation: HTTP %d", code)
	}
	if _, err := pb.NewRegistryServiceClient(x.operator()).RevokeCertificate(ctx, &pb.RevokeCertificateRequest{Serial: pki.Serial(b.Certificate.Leaf)}); err != nil {
		t.Fatal(err)
	}
	if code := get(); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("after revocation: HTTP %d, want refused", code)
	}
}
