package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// PEM block types used by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"    // PKCS#8
	pemECKey       = "EC PRIVATE KEY" // SEC 1, accepted on input only
	pemCSR         = "CERTIFICATE REQUEST"
)

// NewKey generates a new ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	return k, nil
}

// MarshalKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	if key == nil {
		return nil, errors.New("pki: marshal key: nil key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseKeyPEM decodes an ECDSA private key from the first PEM block of data.
// Both PKCS#8 ("PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY") are accepted.
func ParseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("pki: parse key: no PEM data found")
	}
	k, err := parseKeyBlock(block)
	if err != nil {
		return nil, fmt.Errorf("pki: parse key: %w", err)
	}
	return k, nil
}

func parseKeyBlock(block *pem.Block) (*ecdsa.PrivateKey, error) {
	switch block.Type {
	case pemPrivateKey:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T (want ECDSA)", k)
		}
		return ek, nil
	case pemECKey:
		return x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q (want %q)", block.Type, pemPrivateKey)
	}
}

// NewCSR creates a DER-encoded certificate signing request for key. The
// common name is informational only: the CA ignores the CSR's subject and
// SANs and sets the identity itself (see CA.SignCSR).
func NewCSR(key *ecdsa.PrivateKey, commonName string) ([]byte, error) {
	if key == nil {
		return nil, errors.New("pki: create CSR: nil key")
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CSR: %w", err)
	}
	return der, nil
}

// randomSerial returns a random, positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// checkPublicKey rejects key types and sizes we do not want to certify.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return nil
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key too small (%d bits, need at least 2048)", k.N.BitLen())
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
}

// keyMatches reports whether priv is the private half of pub.
func keyMatches(pub crypto.PublicKey, priv crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	p, ok := priv.Public().(equaler)
	return ok && p.Equal(pub)
}
