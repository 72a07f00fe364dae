package federation

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

type exchange struct {
	ca   *pki.CA
	cert tls.Certificate
}

func newExchange(t *testing.T, caName, certName string) exchange {
	t.Helper()
	ca, err := pki.InitCA(t.TempDir(), caName, nil)
	if err != nil {
		t.Fatal(err)
	}
	return exchange{ca, issue(t, ca, certName)}
}

func issue(t *testing.T, ca *pki.CA, name string) tls.Certificate {
	t.Helper()
	c, k, err := ca.IssueExchange(name, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func memberCert(t *testing.T, ca *pki.CA) tls.Certificate {
	t.Helper()
	path := t.TempDir() + "/m.pem"
	if err := pki.IssueBundle(ca, pki.MemberIdentity(64500), path); err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	return b.Certificate
}

// The attacker's cases first: only a configured exchange, by its own CA
// and its own name, gets in, on either side of a link.
func TestTrustAdmitsOnlyConfiguredPeers(t *testing.T) {
	a, b, c := newExchange(t, "ix-a CA", "ix-a"), newExchange(t, "ix-b CA", "ix-b"), newExchange(t, "ix-c CA", "ix-c")
	stranger := newExchange(t, "ix-z CA", "ix-z")
	// B federates with A and C.
	trustB := NewTrust("ix-b", map[string]*x509.CertPool{"ix-a": a.ca.Pool(), "ix-c": c.ca.Pool()}, clock.Now)
	raw := func(cert tls.Certificate) [][]byte { return cert.Certificate }
	if name, err := trustB.Verify(raw(a.cert), x509.ExtKeyUsageClientAuth, ""); err != nil || name != "ix-a" {
		t.Fatalf("A's own certificate: %q %v", name, err)
	}
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want string
		use  x509.ExtKeyUsage
		dial string
	}{
		{"a member certificate of A's CA", memberCert(t, a.ca), "only a peer exchange", x509.ExtKeyUsageClientAuth, ""},
		{"C's CA vouching for the name ix-a", issue(t, c.ca, "ix-a"), "does not chain to that exchange's CA", x509.ExtKeyUsageClientAuth, ""},
		{"an exchange that is not configured", stranger.cert, "not a configured peer", x509.ExtKeyUsageClientAuth, ""},
		{"the stranger's CA naming itself ix-c", issue(t, stranger.ca, "ix-c"), "does not chain", x509.ExtKeyUsageClientAuth, ""},
		{"B's own name", issue(t, a.ca, "ix-b"), "not a configured peer", x509.ExtKeyUsageClientAuth, ""},
		{"C answering where A was dialed", c.cert, "dialed exchange ix-a", x509.ExtKeyUsageServerAuth, "ix-a"},
		{"B's own member certificate", memberCert(t, b.ca), "only a peer exchange", x509.ExtKeyUsageClientAuth, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, err := trustB.Verify(raw(tc.cert), tc.use, tc.dial)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("admitted as %q (err %v), want a refusal naming %q", name, err, tc.want)
			}
		})
	}
	// An expired certificate (by the trust's clock) is refused.
	late := NewTrust("ix-b", map[string]*x509.CertPool{"ix-a": a.ca.Pool()}, func() time.Time { return clock.Now().Add(20 * 365 * 24 * time.Hour) })
	if _, err := late.Verify(raw(a.cert), x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("an expired certificate was admitted")
	}
}
