package pki

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Bundle is a client's credentials: its certificate and key, the CA
// certificates it trusts, and the identity in its certificate.
type Bundle struct {
	Certificate tls.Certificate
	CAs         *x509.CertPool
	Identity    Identity
}

// WriteBundle atomically writes a bundle file (mode 0600) holding the leaf
// certificate, its PKCS#8 private key and the CA certificate, in that order.
// The content is validated as LoadBundle would before anything is written.
func WriteBundle(path string, certPEM, keyPEM, caPEM []byte) error {
	var buf bytes.Buffer
	for _, part := range [][]byte{certPEM, keyPEM, caPEM} {
		buf.Write(bytes.TrimSpace(part))
		buf.WriteByte('\n')
	}
	if _, err := parseBundle(path, buf.Bytes()); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes(), 0o600, false)
}

// LoadBundle reads a bundle file written by WriteBundle. It requires exactly
// one leaf (non-CA) certificate, exactly one private key matching it, and
// at least one CA certificate that issued the leaf. The leaf must carry a
// valid bwx:// identity. The order of the PEM blocks does not matter.
func LoadBundle(path string) (*Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: load bundle: %w", err)
	}
	return parseBundle(path, data)
}

// IssueBundle generates a key and CSR for id, signs it with ca (default
// validity) and writes the resulting bundle to path.
func IssueBundle(ca *CA, id Identity, path string) error {
	if ca == nil {
		return errors.New("pki: issue bundle: nil CA")
	}
	if err := id.Validate(); err != nil {
		return err
	}
	key, err := NewKey()
	if err != nil {
		return err
	}
	csr, err := NewCSR(key, id.String())
	if err != nil {
		return err
	}
	certPEM, err := ca.SignCSR(csr, id, 0)
	if err != nil {
		return err
	}
	keyPEM, err := MarshalKeyPEM(key)
	if err != nil {
		return err
	}
	return WriteBundle(path, certPEM, keyPEM, ca.CertPEM())
}

func parseBundle(path string, data []byte) (*Bundle, error) {
	bad := func(format string, args ...any) (*Bundle, error) {
		return nil, fmt.Errorf("pki: bundle %s: %s", path, fmt.Sprintf(format, args...))
	}
	var (
		leaf *x509.Certificate
		cas  []*x509.Certificate
		key  crypto.Signer
		n    int
	)
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		switch block.Type {
		case pemCertificate:
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return bad("PEM block %d: invalid certificate: %v", n, err)
			}
			if c.IsCA {
				cas = append(cas, c)
				continue
			}
			if leaf != nil {
				return bad("more than one leaf (non-CA) certificate")
			}
			leaf = c
		case pemPrivateKey, pemECKey:
			if key != nil {
				return bad("more than one private key")
			}
			k, err := parseKeyBlock(block)
			if err != nil {
				return bad("PEM block %d: invalid private key: %v", n, err)
			}
			key = k
		default:
			return bad("PEM block %d: unexpected type %q", n, block.Type)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		if n == 0 {
			return bad("no PEM data found")
		}
		return bad("unexpected non-PEM data after PEM block %d", n)
	}
	switch {
	case n == 0:
		return bad("empty (no PEM blocks)")
	case leaf == nil:
		return bad("no leaf (non-CA) certificate")
	case key == nil:
		return bad("no private key")
	case len(cas) == 0:
		return bad("no CA certificate")
	}
	if !keyMatches(leaf.PublicKey, key) {
		return bad("private key does not match the certificate %q", leaf.Subject.CommonName)
	}
	issued := false
	for _, ca := range cas {
		if leaf.CheckSignatureFrom(ca) == nil {
			issued = true
			break
		}
	}
	if !issued {
		return bad("certificate %q was not issued by the bundled CA certificate", leaf.Subject.CommonName)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return bad("%s", strings.TrimPrefix(err.Error(), "pki: "))
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return &Bundle{
		Certificate: tls.Certificate{
			Certificate: [][]byte{leaf.Raw},
			PrivateKey:  key,
			Leaf:        leaf,
		},
		CAs:      pool,
		Identity: id,
	}, nil
}
