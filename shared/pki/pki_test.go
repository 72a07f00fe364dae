package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := InitCA(filepath.Join(t.TempDir(), "ca"), "bwx test CA", []string{"arbiter.example.net", "192.0.2.10", "2001:db8::1"})
	if err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	return ca
}

func parseCertPEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a CERTIFICATE PEM block: %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitLoadCA(t *testing.T) {
	ca := newTestCA(t)
	dir := ca.Dir()

	if got := fileMode(t, dir); got != 0o700 {
		t.Errorf("CA dir mode = %v, want 0700", got)
	}
	for name, want := range map[string]fs.FileMode{
		CACertFile: 0o644, CAKeyFile: 0o600, ServerCertFile: 0o644, ServerKeyFile: 0o600,
	} {
		if got := fileMode(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("CA dir has %d entries, want 4 (leftover temp files?)", len(entries))
	}

	c := ca.Certificate()
	if !c.IsCA || c.Subject.CommonName != "bwx test CA" {
		t.Errorf("CA cert IsCA=%v CN=%q", c.IsCA, c.Subject.CommonName)
	}
	if d := clock.Until(c.NotAfter); d < CAValidity-time.Hour || d > CAValidity+time.Hour {
		t.Errorf("CA validity %v, want ~%v", d, CAValidity)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("CA serial %v not a random 128-bit number", c.SerialNumber)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key type %T", c.PublicKey)
	}

	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !loaded.Certificate().Equal(c) {
		t.Error("loaded CA certificate differs")
	}
	if !bytes.Equal(loaded.CertPEM(), ca.CertPEM()) {
		t.Error("loaded CA PEM differs")
	}
	if !bytes.Equal(loaded.ServerCertificate().Certificate[0], ca.ServerCertificate().Certificate[0]) {
		t.Error("loaded server certificate differs")
	}

	// The server certificate verifies for every requested and default host.
	srv := loaded.ServerCertificate().Leaf
	if srv == nil {
		t.Fatal("server certificate has no Leaf")
	}
	for _, h := range []string{"arbiter.example.net", "192.0.2.10", "2001:db8::1", "127.0.0.1", "::1", "localhost"} {
		_, err := srv.Verify(x509.VerifyOptions{CurrentTime: clock.Now(), DNSName: h, Roots: loaded.Pool()})
		if err != nil {
			t.Errorf("server cert does not verify for %q: %v", h, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{CurrentTime: clock.Now(), DNSName: "other.example.net", Roots: loaded.Pool()}); err == nil {
		t.Error("server cert verifies for an unrelated host name")
	}
	if len(srv.IPAddresses) != 4 || len(srv.DNSNames) != 2 {
		t.Errorf("server SANs: IPs %v DNS %v", srv.IPAddresses, srv.DNSNames)
	}
	if !slices.Equal(srv.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("server ExtKeyUsage = %v", srv.ExtKeyUsage)
	}

	// Signing with a loaded CA yields certificates the original pool accepts.
	key, _ := NewKey()
	csr, _ := NewCSR(key, "x")
	certPEM, err := loaded.SignCSR(csr, MemberIdentity(64500), 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCertPEM(t, certPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{CurrentTime: clock.Now(), Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify: %v", err)
	}
}

func TestInitCADefaultsOnly(t *testing.T) {
	ca, err := InitCA(filepath.Join(t.TempDir(), "a", "b"), "ca", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := ca.ServerCertificate().Leaf
	if !slices.Equal(srv.DNSNames, []string{"localhost"}) || len(srv.IPAddresses) != 2 {
		t.Errorf("server SANs: IPs %v DNS %v", srv.IPAddresses, srv.DNSNames)
	}
}

func TestInitCARefusesReinit(t *testing.T) {
	ca := newTestCA(t)
	before, _ := os.ReadFile(filepath.Join(ca.Dir(), CAKeyFile))
	_, err := InitCA(ca.Dir(), "again", nil)
	if err == nil {
		t.Fatal("second InitCA succeeded")
	}
	if !strings.Contains(err.Error(), filepath.Join(ca.Dir(), CAKeyFile)) {
		t.Errorf("error %q does not name the key file", err)
	}
	after, _ := os.ReadFile(filepath.Join(ca.Dir(), CAKeyFile))
	if !bytes.Equal(before, after) {
		t.Error("CA key was modified")
	}
	if _, err := LoadCA(ca.Dir()); err != nil {
		t.Errorf("LoadCA after refused re-init: %v", err)
	}
}

func TestInitCABadInput(t *testing.T) {
	dir := t.TempDir()
	for _, hosts := range [][]string{{""}, {"bad host"}, {"a/b"}, {"-a.example"}, {"a..b"}, {"http://x"}} {
		if _, err := InitCA(filepath.Join(dir, "x"), "ca", hosts); err == nil {
			t.Errorf("InitCA with hosts %q succeeded", hosts)
		}
	}
	if _, err := InitCA(filepath.Join(dir, "y"), " ", nil); err == nil {
		t.Error("InitCA with empty name succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "x", CAKeyFile)); err == nil {
		t.Error("failed InitCA left a key behind")
	}
}

func TestLoadCAErrors(t *testing.T) {
	ca := newTestCA(t)
	if _, err := LoadCA(t.TempDir()); err == nil || !strings.Contains(err.Error(), CACertFile) {
		t.Errorf("LoadCA(empty dir) = %v, want error naming %s", err, CACertFile)
	}
	// Key of another CA.
	other := newTestCA(t)
	otherKey, _ := os.ReadFile(filepath.Join(other.Dir(), CAKeyFile))
	if err := os.WriteFile(filepath.Join(ca.Dir(), CAKeyFile), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(ca.Dir()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("LoadCA with foreign key = %v", err)
	}
}

func TestRenewServerCertificate(t *testing.T) {
	ca := newTestCA(t)
	old := ca.ServerCertificate().Leaf
	cert, err := ca.RenewServerCertificate([]string{"new.example.net"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Error("serial not changed")
	}
	loaded, err := LoadCA(ca.Dir())
	if err != nil {
		t.Fatal(err)
	}
	got := loaded.ServerCertificate().Leaf
	if !slices.Contains(got.DNSNames, "new.example.net") || slices.Contains(got.DNSNames, "arbiter.example.net") {
		t.Errorf("renewed DNS names %v", got.DNSNames)
	}
	if d := clock.Until(got.NotAfter); d > 25*time.Hour {
		t.Errorf("validity %v, want ~24h", d)
	}
}

func TestSignCSR(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		id     Identity
		wantCN string
		uri    string
	}{
		{MemberIdentity(64500), "member AS64500", "bwx://member/64500"},
		{MemberIdentity(4294967295), "member AS4294967295", "bwx://member/4294967295"},
		{OperatorIdentity("alice"), "operator alice", "bwx://operator/alice"},
	}
	for _, tt := range tests {
		t.Run(tt.wantCN, func(t *testing.T) {
			key, err := NewKey()
			if err != nil {
				t.Fatal(err)
			}
			// The CSR asks for something else entirely; it must be ignored.
			evil, _ := url.Parse("bwx://operator/root")
			csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
				Subject:  pkix.Name{CommonName: "operator root"},
				URIs:     []*url.URL{evil},
				DNSNames: []string{"arbiter.example.net"},
			}, key)
			if err != nil {
				t.Fatal(err)
			}
			certPEM, err := ca.SignCSR(csrDER, tt.id, 0)
			if err != nil {
				t.Fatalf("SignCSR: %v", err)
			}
			c := parseCertPEM(t, certPEM)
			if c.Subject.CommonName != tt.wantCN {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tt.wantCN)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != tt.uri {
				t.Errorf("URIs = %v, want [%s]", c.URIs, tt.uri)
			}
			if len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 || len(c.EmailAddresses) != 0 {
				t.Errorf("unexpected SANs: %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses)
			}
			if c.IsCA || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("IsCA=%v ExtKeyUsage=%v", c.IsCA, c.ExtKeyUsage)
			}
			if !keyMatches(c.PublicKey, key) {
				t.Error("certificate is not for the CSR's key")
			}
			if d := clock.Until(c.NotAfter); d < LeafValidity-time.Hour || d > LeafValidity+time.Hour {
				t.Errorf("validity %v, want ~%v", d, LeafValidity)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", c.SerialNumber)
			}
			got, err := IdentityFromCert(c)
			if err != nil {
				t.Fatalf("IdentityFromCert: %v", err)
			}
			if got != tt.id {
				t.Errorf("IdentityFromCert = %+v, want %+v", got, tt.id)
			}
			if _, err := c.Verify(x509.VerifyOptions{CurrentTime: clock.Now(), Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("Verify: %v", err)
			}
			// A client certificate must not be usable as a server certificate.
			if _, err := c.Verify(x509.VerifyOptions{CurrentTime: clock.Now(), Roots: ca.Pool()}); err == nil {
				t.Error("client certificate verifies for server auth")
			}
		})
	}
}

func TestSignCSRValidityAndPEM(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewKey()
	csr, _ := NewCSR(key, "whatever")
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})
	certPEM, err := ca.SignCSR(csrPEM, MemberIdentity(65000), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := clock.Until(parseCertPEM(t, certPEM).NotAfter); d > time.Hour {
		t.Errorf("validity %v, want <= 1h", d)
	}
	// Never outlives the CA.
	certPEM, err = ca.SignCSR(csr, MemberIdentity(65000), 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if na := parseCertPEM(t, certPEM).NotAfter; na.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf NotAfter %v after CA NotAfter %v", na, ca.Certificate().NotAfter)
	}
}

func TestSignCSRRejects(t *testing.T) {
	ca := newTestCA(t)
	key, _ := NewKey()
	csr, _ := NewCSR(key, "x")

	tampered := bytes.Clone(csr)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	if _, err := ca.SignCSR(tampered, MemberIdentity(1), 0); err == nil {
		t.Error("SignCSR accepted a CSR with a bad signature")
	}
	if _, err := ca.SignCSR([]byte("garbage"), MemberIdentity(1), 0); err == nil {
		t.Error("SignCSR accepted garbage")
	}
	if _, err := ca.SignCSR(ca.CertPEM(), MemberIdentity(1), 0); err == nil {
		t.Error("SignCSR accepted a certificate PEM")
	}
	for _, id := range []Identity{{}, MemberIdentity(0), OperatorIdentity("Bad Name")} {
		if _, err := ca.SignCSR(csr, id, 0); err == nil {
			t.Errorf("SignCSR accepted invalid identity %+v", id)
		}
	}
}

func TestForeignCARejected(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	key, _ := NewKey()
	csr, _ := NewCSR(key, "x")
	certPEM, err := other.SignCSR(csr, MemberIdentity(64500), 0)
	if err != nil {
		t.Fatal(err)
	}
	c := parseCertPEM(t, certPEM)
	_, err = c.Verify(x509.VerifyOptions{CurrentTime: clock.Now(), Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Verify against other CA pool: err = %v, want UnknownAuthorityError", err)
	}
}

func TestIdentityFromCertErrors(t *testing.T) {
	ca := newTestCA(t)
	u1, _ := url.Parse("bwx://member/1")
	u2, _ := url.Parse("bwx://member/2")
	spiffe, _ := url.Parse("spiffe://example.org/x")
	bad, _ := url.Parse("bwx://member/0")
	tests := []struct {
		name    string
		uris    []*url.URL
		want    Identity
		wantErr string
	}{
		{"none", nil, Identity{}, "no bwx:// URI SAN"},
		{"other scheme only", []*url.URL{spiffe}, Identity{}, "no bwx:// URI SAN"},
		{"two", []*url.URL{u1, u2}, Identity{}, "more than one"},
		{"invalid", []*url.URL{bad}, Identity{}, "invalid identity URI"},
		{"one plus other scheme", []*url.URL{spiffe, u1}, MemberIdentity(1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, _ := NewKey()
			der, err := ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: tt.name}, URIs: tt.uris}, key.Public(), 0)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := x509.ParseCertificate(der)
			id, err := IdentityFromCert(c)
			if tt.wantErr == "" {
				if err != nil || id != tt.want {
					t.Errorf("IdentityFromCert = %+v, %v; want %+v", id, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("IdentityFromCert error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := IdentityFromCert(nil); err == nil {
		t.Error("IdentityFromCert(nil) succeeded")
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if key.Curve != elliptic.P256() {
		t.Errorf("curve %v", key.Curve.Params().Name)
	}
	b, err := MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("not PKCS#8 PEM: %q", b[:40])
	}
	got, err := ParseKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Error("key round trip mismatch")
	}
	if _, err := ParseKeyPEM([]byte("nope")); err == nil {
		t.Error("ParseKeyPEM(garbage) succeeded")
	}
}

func TestWriteFileAtomicNoClobber(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := writeFileAtomic(p, []byte("one"), 0o600, true); err != nil {
		t.Fatal(err)
	}
	err := writeFileAtomic(p, []byte("two"), 0o600, true)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second no-clobber write: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Errorf("content %q", b)
	}
	if err := writeFileAtomic(p, []byte("three"), 0o640, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "three" {
		t.Errorf("content %q", b)
	}
	if m := fileMode(t, p); m != 0o640 {
		t.Errorf("mode %v", m)
	}
	if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
		t.Errorf("%d entries, temp files left behind", len(entries))
	}
}

// handshake runs a TLS handshake over an in-memory connection and returns
// the server's connection state and both errors.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv := tls.Server(c1, serverCfg)
	cli := tls.Client(c2, clientCfg)
	cliErr := make(chan error, 1)
	go func() {
		err := cli.Handshake()
		if err == nil {
			// In TLS 1.3 the client learns about a rejected certificate
			// only when it reads the server's alert.
			cli.SetReadDeadline(time.Now().Add(5 * time.Second)) //bwx:wallclock: a socket deadline
			_, err = cli.Read(make([]byte, 1))
		}
		cliErr <- err
	}()
	srvErr := srv.Handshake()
	if srvErr == nil {
		srv.Write([]byte{1})
	} else {
		c1.Close()
	}
	return srv.ConnectionState(), srvErr, <-cliErr
}

func TestTLSHandshake(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	memberPath := filepath.Join(dir, "member.pem")
	if err := IssueBundle(ca, MemberIdentity(64500), memberPath); err != nil {
		t.Fatal(err)
	}
	member, err := LoadBundle(memberPath)
	if err != nil {
		t.Fatal(err)
	}
	serverCfg := ServerTLS(ca.ServerCertificate(), ca.Pool())
	if serverCfg.MinVersion != tls.VersionTLS13 || serverCfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server config: %+v", serverCfg)
	}

	t.Run("member accepted", func(t *testing.T) {
		cfg := ClientTLS(member, "localhost")
		if cfg.MinVersion != tls.VersionTLS13 {
			t.Errorf("client MinVersion %x", cfg.MinVersion)
		}
		st, srvErr, cliErr := handshake(t, serverCfg, cfg)
		if srvErr != nil || cliErr != nil {
			t.Fatalf("handshake: server %v, client %v", srvErr, cliErr)
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("version %x", st.Version)
		}
		id, err := PeerIdentity(&st)
		if err != nil || id != MemberIdentity(64500) {
			t.Errorf("PeerIdentity = %+v, %v", id, err)
		}
	})

	t.Run("wrong server name", func(t *testing.T) {
		_, _, cliErr := handshake(t, serverCfg, ClientTLS(member, "evil.example.net"))
		if cliErr == nil {
			t.Error("client accepted server certificate for the wrong name")
		}
	})

	t.Run("foreign CA client rejected", func(t *testing.T) {
		other := newTestCA(t)
		p := filepath.Join(dir, "foreign.pem")
		if err := IssueBundle(other, MemberIdentity(64500), p); err != nil {
			t.Fatal(err)
		}
		foreign, err := LoadBundle(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg := ClientTLS(foreign, "localhost")
		cfg.RootCAs = ca.Pool() // trust the server, present the foreign cert
		_, srvErr, cliErr := handshake(t, serverCfg, cfg)
		if srvErr == nil || cliErr == nil {
			t.Errorf("handshake with foreign client cert: server %v, client %v", srvErr, cliErr)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		cfg := ClientTLS(member, "localhost")
		cfg.Certificates = nil
		_, srvErr, _ := handshake(t, serverCfg, cfg)
		if srvErr == nil {
			t.Error("server accepted a client without certificate")
		}
	})

	t.Run("server cert is not a client cert", func(t *testing.T) {
		cfg := ClientTLS(member, "localhost")
		cfg.Certificates = []tls.Certificate{ca.ServerCertificate()}
		_, srvErr, _ := handshake(t, serverCfg, cfg)
		if srvErr == nil {
			t.Error("server accepted its own server certificate as a client certificate")
		}
	})

	t.Run("TLS 1.2 refused", func(t *testing.T) {
		cfg := ClientTLS(member, "localhost")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		_, srvErr, _ := handshake(t, serverCfg, cfg)
		if srvErr == nil {
			t.Error("server accepted TLS 1.2")
		}
	})
}

func TestPeerIdentityUnverified(t *testing.T) {
	if _, err := PeerIdentity(nil); err == nil {
		t.Error("PeerIdentity(nil) succeeded")
	}
	if _, err := PeerIdentity(&tls.ConnectionState{}); err == nil {
		t.Error("PeerIdentity without verified chains succeeded")
	}
}
