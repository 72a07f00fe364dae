package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// File names inside a CA directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// Default validity periods.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// clockSkew is subtracted from NotBefore so that freshly issued certificates
// are accepted by peers whose clocks are slightly behind.
const clockSkew = 5 * time.Minute

// defaultServerHosts are always added to the server certificate.
var defaultServerHosts = []string{"127.0.0.1", "::1", "localhost"}

// CA is a certificate authority loaded from (or created in) a directory.
type CA struct {
	dir     string
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	server  tls.Certificate
}

// InitCA creates a new CA named name in dir, together with the arbiter's
// server certificate valid for serverHosts (IP addresses or DNS names;
// 127.0.0.1, ::1 and localhost are always included).
//
// dir is created with mode 0700 if missing. InitCA refuses to run if
// dir/ca.key already exists. Files are written atomically: ca.key and
// server.key with mode 0600, ca.crt and server.crt with mode 0644.
func InitCA(dir, name string, serverHosts []string) (*CA, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("pki: init CA: empty CA name")
	}
	ips, dnsNames, err := splitHosts(serverHosts)
	if err != nil {
		return nil, fmt.Errorf("pki: init CA: %w", err)
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	if _, err := os.Lstat(keyPath); err == nil {
		return nil, fmt.Errorf("pki: init CA: refusing to overwrite existing CA key %s", keyPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pki: init CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: init CA: %w", err)
	}

	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: init CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: init CA: %w", err)
	}
	keyPEM, err := MarshalKeyPEM(key)
	if err != nil {
		return nil, err
	}
	ca := &CA{
		dir:     dir,
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		key:     key,
	}
	serverCertPEM, serverKeyPEM, err := ca.issueServer(ips, dnsNames, LeafValidity)
	if err != nil {
		return nil, err
	}
	server, err := tls.X509KeyPair(serverCertPEM, serverKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: init CA: %w", err)
	}
	ca.server = server

	// The key is written first and without clobbering: it claims the
	// directory, so a concurrent InitCA cannot mix its files with ours.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("pki: init CA: refusing to overwrite existing CA key %s", keyPath)
		}
		return nil, fmt.Errorf("pki: init CA: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{CACertFile, ca.certPEM, 0o644},
		{ServerKeyFile, serverKeyPEM, 0o600},
		{ServerCertFile, serverCertPEM, 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.perm, false); err != nil {
			return nil, fmt.Errorf("pki: init CA: %w", err)
		}
	}
	return ca, nil
}

// LoadCA loads a CA created by InitCA from dir. It checks that the CA key
// matches the CA certificate and that the server certificate was issued by
// the CA.
func LoadCA(dir string) (*CA, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("pki: load CA: %w", err)
		}
		return b, nil
	}
	certPEM, err := read(CACertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(CAKeyFile)
	if err != nil {
		return nil, err
	}
	serverCertPEM, err := read(ServerCertFile)
	if err != nil {
		return nil, err
	}
	serverKeyPEM, err := read(ServerKeyFile)
	if err != nil {
		return nil, err
	}

	caCertPath := filepath.Join(dir, CACertFile)
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != pemCertificate {
		return nil, fmt.Errorf("pki: load CA: %s: no CERTIFICATE PEM block", caCertPath)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("pki: load CA: %s: unexpected data after the certificate", caCertPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %s: %w", caCertPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: load CA: %s: not a CA certificate", caCertPath)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if !keyMatches(cert.PublicKey, key) {
		return nil, fmt.Errorf("pki: load CA: %s does not match %s", filepath.Join(dir, CAKeyFile), caCertPath)
	}
	server, err := tls.X509KeyPair(serverCertPEM, serverKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %s/%s: %w", filepath.Join(dir, ServerCertFile), ServerKeyFile, err)
	}
	if err := server.Leaf.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("pki: load CA: %s was not issued by this CA: %w", filepath.Join(dir, ServerCertFile), err)
	}
	return &CA{
		dir:     dir,
		cert:    cert,
		certPEM: pem.EncodeToMemory(block),
		key:     key,
		server:  server,
	}, nil
}

// Dir returns the directory the CA was loaded from.
func (ca *CA) Dir() string { return ca.dir }

// Certificate returns the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the PEM-encoded CA certificate.
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// Pool returns a new certificate pool containing only the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ServerCertificate returns the arbiter's server certificate and key.
func (ca *CA) ServerCertificate() tls.Certificate { return ca.server }

// RenewServerCertificate issues a new server certificate for serverHosts
// (127.0.0.1, ::1 and localhost are always included), replaces server.crt
// and server.key atomically, and returns it. validity <= 0 means
// LeafValidity.
func (ca *CA) RenewServerCertificate(serverHosts []string, validity time.Duration) (tls.Certificate, error) {
	ips, dnsNames, err := splitHosts(serverHosts)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: renew server certificate: %w", err)
	}
	certPEM, keyPEM, err := ca.issueServer(ips, dnsNames, validity)
	if err != nil {
		return tls.Certificate{}, err
	}
	server, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: renew server certificate: %w", err)
	}
	// Key first: a crash in between leaves a mismatched pair that LoadCA
	// reports, rather than an old key silently paired with a new cert.
	if err := writeFileAtomic(filepath.Join(ca.dir, ServerKeyFile), keyPEM, 0o600, false); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(filepath.Join(ca.dir, ServerCertFile), certPEM, 0o644, false); err != nil {
		return tls.Certificate{}, err
	}
	ca.server = server
	return server, nil
}

// SignCSR issues a client certificate for id. The CSR's signature is
// checked, but its subject and SANs are ignored: the certificate gets
// CN = id.String() and the single URI SAN id.URI(), with extended key usage
// ClientAuth. validity <= 0 means LeafValidity; the certificate never
// outlives the CA. csr may be DER or a PEM "CERTIFICATE REQUEST" block.
func (ca *CA) SignCSR(csr []byte, id Identity, validity time.Duration) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(csr); block != nil {
		if block.Type != pemCSR {
			return nil, fmt.Errorf("pki: sign CSR: unexpected PEM block %q (want %q)", block.Type, pemCSR)
		}
		csr = block.Bytes
	}
	req, err := x509.ParseCertificateRequest(csr)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CSR: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: sign CSR: bad CSR signature: %w", err)
	}
	if err := checkPublicKey(req.PublicKey); err != nil {
		return nil, fmt.Errorf("pki: sign CSR: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.String()},
		URIs:        []*url.URL{id.URI()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := ca.sign(tmpl, req.PublicKey, validity)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CSR for %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), nil
}

// sign fills in serial number, validity and basic constraints and signs
// tmpl with the CA key.
func (ca *CA) sign(tmpl *x509.Certificate, pub any, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		validity = LeafValidity
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := clock.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	if tmpl.NotBefore.Before(ca.cert.NotBefore) {
		tmpl.NotBefore = ca.cert.NotBefore
	}
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("CA certificate expired at %s", ca.cert.NotAfter.Format(time.RFC3339))
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
}

func (ca *CA) issueServer(ips []net.IP, dnsNames []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	cn := "bwx arbiter"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := ca.sign(tmpl, key.Public(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue server certificate: %w", err)
	}
	keyPEM, err = MarshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

// splitHosts validates hosts, adds the default loopback names and splits
// the result into IP addresses and DNS names, without duplicates. The
// first user-supplied DNS name, if any, comes first.
func splitHosts(hosts []string) ([]net.IP, []string, error) {
	var ips []net.IP
	var names []string
	seen := map[string]bool{}
	for _, h := range append(append([]string(nil), hosts...), defaultServerHosts...) {
		h = strings.TrimSpace(h)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if err := validDNSName(name); err != nil {
			return nil, nil, fmt.Errorf("server host %q: %w", h, err)
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return ips, names, nil
}

// validDNSName checks name (lower case, no trailing dot) is a plausible
// host name; a leading "*." wildcard label is allowed.
func validDNSName(name string) error {
	if name == "" {
		return errors.New("empty host name")
	}
	if len(name) > 253 {
		return errors.New("host name too long")
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 {
			return errors.New("not an IP address or valid DNS name")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("not an IP address or valid DNS name")
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return errors.New("not an IP address or valid DNS name")
			}
		}
	}
	return nil
}

// IssueExchange issues this exchange's federation certificate: the URI SAN
// bwx://exchange/<name>, server and client use (peers dial it and it dials
// them), and the host names or addresses peers reach it at (127.0.0.1, ::1
// and localhost always included). It returns the certificate and its new
// key in PEM; WriteBundle stores them with the CA certificate, which is
// what a peer configures as this exchange's CA.
func (ca *CA) IssueExchange(name string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	id := ExchangeIdentity(name)
	if err := id.Validate(); err != nil {
		return nil, nil, err
	}
	ips, dnsNames, err := splitHosts(hosts)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue exchange certificate: %w", err)
	}
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.String()},
		URIs:        []*url.URL{id.URI()},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := ca.sign(tmpl, key.Public(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue exchange certificate for %s: %w", name, err)
	}
	if keyPEM, err = MarshalKeyPEM(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}
