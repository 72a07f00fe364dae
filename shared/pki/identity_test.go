package pki

import (
	"net/url"
	"strings"
	"testing"
)

func TestIdentityURIRoundTrip(t *testing.T) {
	tests := []struct {
		id      Identity
		uri     string
		str     string
		wantErr bool
	}{
		{id: MemberIdentity(64500), uri: "bwx://member/64500", str: "member AS64500"},
		{id: MemberIdentity(1), uri: "bwx://member/1", str: "member AS1"},
		{id: MemberIdentity(4294967295), uri: "bwx://member/4294967295", str: "member AS4294967295"},
		{id: OperatorIdentity("alice"), uri: "bwx://operator/alice", str: "operator alice"},
		{id: OperatorIdentity("ops-bot_2.x"), uri: "bwx://operator/ops-bot_2.x", str: "operator ops-bot_2.x"},
		{id: OperatorIdentity(strings.Repeat("a", 64)), uri: "bwx://operator/" + strings.Repeat("a", 64), str: "operator " + strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			if err := tt.id.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.id.URI().String(); got != tt.uri {
				t.Errorf("URI() = %q, want %q", got, tt.uri)
			}
			if got := tt.id.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			u, err := url.Parse(tt.uri)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseIdentityURI(u)
			if err != nil {
				t.Fatalf("ParseIdentityURI(%q): %v", tt.uri, err)
			}
			if got != tt.id {
				t.Errorf("ParseIdentityURI(%q) = %+v, want %+v", tt.uri, got, tt.id)
			}
		})
	}
}

func TestMemberDisplayNameNotInURI(t *testing.T) {
	id := Identity{Kind: KindMember, ASN: 64500, Name: "Example Net"}
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := id.URI().String(); got != "bwx://member/64500" {
		t.Errorf("URI() = %q", got)
	}
}

func TestInvalidIdentities(t *testing.T) {
	tests := []struct {
		name string
		id   Identity
	}{
		{"zero value", Identity{}},
		{"ASN 0", MemberIdentity(0)},
		{"empty operator", OperatorIdentity("")},
		{"upper case", OperatorIdentity("Alice")},
		{"slash", OperatorIdentity("a/b")},
		{"space", OperatorIdentity("a b")},
		{"too long", OperatorIdentity(strings.Repeat("a", 65))},
		{"dot", OperatorIdentity(".")},
		{"dot dot", OperatorIdentity("..")},
		{"non-ascii", OperatorIdentity("alicé")},
		{"bad kind", Identity{Kind: 7, Name: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.id.Validate(); err == nil {
				t.Errorf("Validate(%+v) succeeded, want error", tt.id)
			}
		})
	}
}

func TestBadIdentityURIs(t *testing.T) {
	tests := []string{
		"https://member/64500",
		"bwx:member/64500",
		"bwx://member/0",
		"bwx://member/064500",
		"bwx://member/-1",
		"bwx://member/+1",
		"bwx://member/4294967296",
		"bwx://member/99999999999999999999",
		"bwx://member/AS64500",
		"bwx://member/",
		"bwx://member",
		"bwx://member/1/2",
		"bwx://member/1/",
		"bwx://member/1?x=1",
		"bwx://member/1?",
		"bwx://member/1#frag",
		"bwx://user@member/1",
		"bwx://member:443/1",
		"bwx://Member/1",
		"bwx://members/1",
		"bwx://operator/",
		"bwx://operator/Alice",
		"bwx://operator/a%20b",
		"bwx://operator/%61lice",
		"bwx://operator/..",
		"bwx://operator/" + strings.Repeat("a", 65),
		"bwx://admin/alice",
		"bwx:///alice",
	}
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			u, err := url.Parse(s)
			if err != nil {
				return // unparsable is rejected too
			}
			id, err := ParseIdentityURI(u)
			if err == nil {
				t.Fatalf("ParseIdentityURI(%q) = %+v, want error", s, id)
			}
			if !strings.Contains(err.Error(), "invalid identity URI") {
				t.Errorf("error %q does not explain the problem", err)
			}
		})
	}
	if _, err := ParseIdentityURI(nil); err == nil {
		t.Error("ParseIdentityURI(nil) succeeded")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindMember: "member", KindOperator: "operator", 0: "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// An exchange's identity (federation) round-trips through its URI and a
// certificate, and is neither a member nor an operator.
func TestExchangeIdentity(t *testing.T) {
	id := ExchangeIdentity("ix-a")
	got, err := ParseIdentityURI(id.URI())
	if err != nil || got != id || id.URI().String() != "bwx://exchange/ix-a" || !got.IsExchange() || got.IsMember() || got.IsOperator() {
		t.Fatalf("round trip of %v: %v %v", id.URI(), got, err)
	}
	for _, bad := range []string{"bwx://exchange/", "bwx://exchange/IX-A", "bwx://exchange/a/b", "bwx://exchange/..", "bwx://exchange/" + strings.Repeat("x", 65)} {
		u, _ := url.Parse(bad)
		if _, err := ParseIdentityURI(u); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	ca, err := InitCA(t.TempDir(), "ix-a CA", nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueExchange("ix-a", []string{"fed.ix-a.example", "192.0.2.7"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/f.pem"
	if err := WriteBundle(path, certPEM, keyPEM, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBundle(path)
	if err != nil || b.Identity != id {
		t.Fatalf("bundle: %v %v", b, err)
	}
	leaf := b.Certificate.Leaf
	if len(leaf.ExtKeyUsage) != 2 || leaf.VerifyHostname("fed.ix-a.example") != nil || leaf.VerifyHostname("192.0.2.7") != nil {
		t.Fatalf("usage %v, names %v %v", leaf.ExtKeyUsage, leaf.DNSNames, leaf.IPAddresses)
	}
	if _, _, err := ca.IssueExchange("IX A", nil, 0); err == nil {
		t.Fatal("an invalid exchange name was issued")
	}
}
