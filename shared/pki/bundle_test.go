package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwxchange/bwx/shared/clock"
)

func TestIssueLoadBundle(t *testing.T) {
	ca := newTestCA(t)
	for _, id := range []Identity{MemberIdentity(64500), OperatorIdentity("alice")} {
		t.Run(id.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bundle.pem")
			if err := IssueBundle(ca, id, p); err != nil {
				t.Fatalf("IssueBundle: %v", err)
			}
			if m := fileMode(t, p); m != 0o600 {
				t.Errorf("bundle mode %v, want 0600", m)
			}
			data, _ := os.ReadFile(p)
			var types []string
			for rest := data; ; {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				types = append(types, b.Type)
			}
			if strings.Join(types, ",") != "CERTIFICATE,PRIVATE KEY,CERTIFICATE" {
				t.Errorf("bundle blocks %v", types)
			}
			b, err := LoadBundle(p)
			if err != nil {
				t.Fatalf("LoadBundle: %v", err)
			}
			if b.Identity != id {
				t.Errorf("Identity = %+v, want %+v", b.Identity, id)
			}
			if b.Certificate.Leaf == nil || len(b.Certificate.Certificate) != 1 || b.Certificate.PrivateKey == nil {
				t.Errorf("incomplete tls.Certificate: %+v", b.Certificate)
			}
			if _, err := b.Certificate.Leaf.Verify(verifyClient(b)); err != nil {
				t.Errorf("leaf does not verify against bundle CAs: %v", err)
			}
		})
	}
	if err := IssueBundle(ca, MemberIdentity(0), filepath.Join(t.TempDir(), "x.pem")); err == nil {
		t.Error("IssueBundle with ASN 0 succeeded")
	}
}

func TestBundleBlockOrderIrrelevant(t *testing.T) {
	ca := newTestCA(t)
	p := filepath.Join(t.TempDir(), "b.pem")
	if err := IssueBundle(ca, MemberIdentity(7), p); err != nil {
		t.Fatal(err)
	}
	cert, key, caPEM := splitBundle(t, p)
	q := filepath.Join(t.TempDir(), "reordered.pem")
	if err := os.WriteFile(q, bytes.Join([][]byte{caPEM, key, cert}, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := LoadBundle(q); err != nil || b.Identity != MemberIdentity(7) {
		t.Errorf("LoadBundle(reordered) = %v, %v", b, err)
	}
}

// splitBundle returns the PEM encodings of the leaf, key and CA blocks of
// a bundle written by IssueBundle.
func splitBundle(t *testing.T, path string) (cert, key, ca []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var parts [][]byte
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		parts = append(parts, pem.EncodeToMemory(b))
	}
	if len(parts) != 3 {
		t.Fatalf("bundle has %d blocks", len(parts))
	}
	return parts[0], parts[1], parts[2]
}

func TestMalformedBundles(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	dir := t.TempDir()

	good := filepath.Join(dir, "good.pem")
	if err := IssueBundle(ca, MemberIdentity(64500), good); err != nil {
		t.Fatal(err)
	}
	cert, key, caPEM := splitBundle(t, good)

	foreign := filepath.Join(dir, "foreign.pem")
	if err := IssueBundle(other, MemberIdentity(64500), foreign); err != nil {
		t.Fatal(err)
	}
	foreignCert, foreignKey, foreignCA := splitBundle(t, foreign)

	serverCert, _ := os.ReadFile(filepath.Join(ca.Dir(), ServerCertFile))
	serverKey, _ := os.ReadFile(filepath.Join(ca.Dir(), ServerKeyFile))
	rsaLike := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	brokenCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})
	brokenKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")})

	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty file", nil, "no PEM blocks"},
		{"garbage", []byte("hello world\n"), "no PEM data"},
		{"trailing garbage", join(cert, key, caPEM, []byte("junk")), "non-PEM data"},
		{"only cert", cert, "no private key"},
		{"no key", join(cert, caPEM), "no private key"},
		{"no leaf", join(key, caPEM), "no leaf"},
		{"no CA", join(cert, key), "no CA certificate"},
		{"wrong key", join(cert, foreignKey, caPEM), "does not match"},
		{"two keys", join(cert, key, key, caPEM), "more than one private key"},
		{"two leaves", join(cert, foreignCert, key, caPEM), "more than one leaf"},
		{"wrong CA", join(cert, key, foreignCA), "not issued by the bundled CA"},
		{"unknown block", join(cert, key, caPEM, rsaLike), `unexpected type "RSA PRIVATE KEY"`},
		{"broken cert", join(brokenCert, key, caPEM), "invalid certificate"},
		{"broken key", join(cert, brokenKey, caPEM), "invalid private key"},
		{"leaf without identity", join(serverCert, serverKey, caPEM), "no bwx:// URI SAN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".pem")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadBundle(p)
			if err == nil {
				t.Fatal("LoadBundle succeeded")
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q: want file name %q and %q", err, p, tt.wantErr)
			}
			// WriteBundle validates too and must not create the file.
			q := p + ".written"
			if err := WriteBundle(q, tt.data, nil, nil); err == nil {
				t.Error("WriteBundle accepted malformed content")
			}
			if _, err := os.Stat(q); err == nil {
				t.Error("WriteBundle created a file for malformed content")
			}
		})
	}

	if _, err := LoadBundle(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("LoadBundle(missing) = %v", err)
	}
}

func TestWriteBundleReplacesAtomically(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "b.pem")
	if err := IssueBundle(ca, MemberIdentity(1), p); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := IssueBundle(ca, MemberIdentity(2), p); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBundle(p)
	if err != nil || b.Identity != MemberIdentity(2) {
		t.Fatalf("LoadBundle = %v, %v", b, err)
	}
	if m := fileMode(t, p); m != 0o600 {
		t.Errorf("mode %v after rewrite, want 0600", m)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in dir, temp files left behind", len(entries))
	}
}

func verifyClient(b *Bundle) x509.VerifyOptions {
	return x509.VerifyOptions{CurrentTime: clock.Now(), Roots: b.CAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
