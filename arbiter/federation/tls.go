package federation

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/shared/pki"
)

// Trust is whom the federation admits: each configured peer exchange by
// its own CA and the name in its certificate, and nobody else. A member
// certificate, a peer's CA vouching for another exchange's name, or an
// exchange that is not configured is refused, on both sides of a link.
type Trust struct {
	self string
	cas  map[string]*x509.CertPool
	now  func() time.Time
}

// NewTrust trusts cas[name] for the exchange name only. self is this
// exchange's name (never admitted as a peer).
func NewTrust(self string, cas map[string]*x509.CertPool, now func() time.Time) *Trust {
	return &Trust{self: self, cas: cas, now: now}
}

// Verify checks a peer's certificate chain (leaf first) for use and
// returns the exchange it proves; want, if set, is the only exchange
// acceptable (the one dialed).
func (t *Trust) Verify(raw [][]byte, use x509.ExtKeyUsage, want string) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("federation: no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return "", fmt.Errorf("federation: certificate %d: %w", i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	id, err := pki.IdentityFromCert(leaf)
	if err != nil {
		return "", fmt.Errorf("federation: %w", err)
	}
	if !id.IsExchange() {
		return "", fmt.Errorf("federation: certificate of %s: only a peer exchange may connect", id)
	}
	if id.Name == t.self || t.cas[id.Name] == nil {
		return "", fmt.Errorf("federation: %s is not a configured peer exchange", id)
	}
	if want != "" && id.Name != want {
		return "", fmt.Errorf("federation: dialed exchange %s, certificate names %s", want, id)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.cas[id.Name], Intermediates: inter, CurrentTime: t.now(),
		KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
		return "", fmt.Errorf("federation: certificate of %s does not chain to that exchange's CA: %w", id, err)
	}
	return id.Name, nil
}

// ServerTLS is the federation listener's TLS: this exchange's certificate,
// and a client certificate Verify admits.
func (t *Trust) ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The chain is checked against the CA of the name it carries,
		// which one pool of every peer's CAs could not do.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := t.Verify(raw, x509.ExtKeyUsageClientAuth, "")
			return err
		},
		Time: t.now,
	}
}

// ClientTLS is the TLS for dialing peer: this side's certificate, and the
// peer's checked by Verify (its CA, its name; the address is not relied on).
func (t *Trust) ClientTLS(cert tls.Certificate, peer string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // Verify below checks the chain against the peer's CA only
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := t.Verify(raw, x509.ExtKeyUsageServerAuth, peer)
			return err
		},
		Time: t.now,
	}
}

// PeerName is the exchange on a connection ServerTLS accepted.
func (t *Trust) PeerName(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "", errors.New("federation: no client certificate")
	}
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return t.Verify(raw, x509.ExtKeyUsageClientAuth, "")
}
