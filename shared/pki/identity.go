package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// URIScheme is the scheme of identity URI SANs.
const URIScheme = "bwx"

// Kind is the kind of principal a certificate identifies.
type Kind int

const (
	// KindMember is a member network, identified by its AS number.
	KindMember Kind = iota + 1
	// KindOperator is a human or automated operator of the exchange,
	// identified by name.
	KindOperator
	// KindExchange is another exchange's arbiter peering with this one
	// (federation), identified by the exchange's name. Only the federation
	// listener accepts it, and only from the CA configured for that name.
	KindExchange
)

// String returns "member", "operator" or "Kind(n)" for invalid kinds.
func (k Kind) String() string {
	switch k {
	case KindMember:
		return "member"
	case KindOperator:
		return "operator"
	case KindExchange:
		return "exchange"
	default:
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// MaxOperatorNameLen is the maximum length of an operator name.
const MaxOperatorNameLen = 64

// Identity is the principal a certificate was issued to.
type Identity struct {
	Kind Kind
	// ASN is the member's AS number (KindMember only, 1..4294967295).
	ASN uint32
	// Name is the operator name for KindOperator and the exchange name for
	// KindExchange ([a-z0-9._-]{1,64}).
	// For members it is an optional display name that is not part of the
	// URI and is therefore never recovered from a certificate.
	Name string
}

// MemberIdentity returns the identity of the member with the given ASN.
func MemberIdentity(asn uint32) Identity { return Identity{Kind: KindMember, ASN: asn} }

// OperatorIdentity returns the identity of the named operator.
func OperatorIdentity(name string) Identity { return Identity{Kind: KindOperator, Name: name} }

// ExchangeIdentity returns the identity of the named exchange's arbiter.
func ExchangeIdentity(name string) Identity { return Identity{Kind: KindExchange, Name: name} }

// Validate reports whether the identity can be encoded in a certificate.
func (id Identity) Validate() error {
	switch id.Kind {
	case KindMember:
		if id.ASN == 0 {
			return errors.New("pki: invalid member identity: ASN 0 is reserved")
		}
		return nil
	case KindOperator:
		if err := validOperatorName(id.Name); err != nil {
			return fmt.Errorf("pki: invalid operator identity: %w", err)
		}
		return nil
	case KindExchange:
		if err := ValidExchangeName(id.Name); err != nil {
			return fmt.Errorf("pki: invalid exchange identity: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("pki: invalid identity kind %d", int(id.Kind))
	}
}

func validOperatorName(name string) error { return validKindName("operator", name) }

// ValidExchangeName checks an exchange name as a certificate carries it
// (the same rule as operator names).
func ValidExchangeName(name string) error { return validKindName("exchange", name) }

func validKindName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s name", kind)
	}
	if len(name) > MaxOperatorNameLen {
		return fmt.Errorf("%s name %q longer than %d characters", kind, name, MaxOperatorNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%s name %q: invalid character %q (allowed: a-z 0-9 . _ -)", kind, name, c)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%s name %q not allowed", kind, name)
	}
	return nil
}

// URI returns the identity's URI SAN, bwx://member/<ASN> or
// bwx://operator/<name>. It does not validate the identity.
func (id Identity) URI() *url.URL {
	switch id.Kind {
	case KindMember:
		return &url.URL{Scheme: URIScheme, Host: "member", Path: "/" + strconv.FormatUint(uint64(id.ASN), 10)}
	case KindOperator:
		return &url.URL{Scheme: URIScheme, Host: "operator", Path: "/" + id.Name}
	case KindExchange:
		return &url.URL{Scheme: URIScheme, Host: "exchange", Path: "/" + id.Name}
	default:
		return &url.URL{Scheme: URIScheme, Host: "invalid"}
	}
}

// String returns a human readable form: "member AS64500" or "operator alice".
func (id Identity) String() string {
	switch id.Kind {
	case KindMember:
		return "member AS" + strconv.FormatUint(uint64(id.ASN), 10)
	case KindOperator:
		return "operator " + id.Name
	case KindExchange:
		return "exchange " + id.Name
	default:
		return "invalid identity (" + id.Kind.String() + ")"
	}
}

// IsMember reports whether id is a member identity.
func (id Identity) IsMember() bool { return id.Kind == KindMember }

// IsOperator reports whether id is an operator identity.
func (id Identity) IsOperator() bool { return id.Kind == KindOperator }

// IsExchange reports whether id is another exchange's identity.
func (id Identity) IsExchange() bool { return id.Kind == KindExchange }

// ParseIdentityURI parses and validates a bwx:// identity URI. Only the
// canonical form produced by Identity.URI is accepted.
func ParseIdentityURI(u *url.URL) (Identity, error) {
	if u == nil {
		return Identity{}, errors.New("pki: nil identity URI")
	}
	s := u.String()
	bad := func(format string, args ...any) (Identity, error) {
		return Identity{}, fmt.Errorf("pki: invalid identity URI %q: %s", s, fmt.Sprintf(format, args...))
	}
	if u.Scheme != URIScheme {
		return bad("scheme must be %q", URIScheme)
	}
	if u.Opaque != "" {
		return bad("want %s://<kind>/<id>", URIScheme)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" || u.Port() != "" {
		return bad("must not contain user info, port, query or fragment")
	}
	if u.RawPath != "" {
		return bad("must not contain escaped characters")
	}
	rest, ok := strings.CutPrefix(u.Path, "/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return bad("want exactly one path element")
	}
	switch u.Host {
	case "member":
		if rest[0] == '0' || strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return bad("ASN must be a decimal number without leading zeros")
		}
		asn, err := strconv.ParseUint(rest, 10, 32)
		if err != nil {
			return bad("ASN out of range 1..4294967295")
		}
		return MemberIdentity(uint32(asn)), nil
	case "operator":
		if err := validOperatorName(rest); err != nil {
			return bad("%v", err)
		}
		return OperatorIdentity(rest), nil
	case "exchange":
		if err := ValidExchangeName(rest); err != nil {
			return bad("%v", err)
		}
		return ExchangeIdentity(rest), nil
	default:
		return bad("kind must be \"member\", \"operator\" or \"exchange\"")
	}
}

// IdentityFromCert extracts the identity from c. The certificate must carry
// exactly one bwx:// URI SAN; URI SANs with other schemes are ignored.
//
// IdentityFromCert does not verify the certificate: use it on certificates
// from a verified chain (see PeerIdentity).
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, errors.New("pki: no certificate")
	}
	var found *url.URL
	for _, u := range c.URIs {
		if !strings.EqualFold(u.Scheme, URIScheme) {
			continue
		}
		if found != nil {
			return Identity{}, fmt.Errorf("pki: certificate %q has more than one %s:// URI SAN (%s, %s)",
				c.Subject.CommonName, URIScheme, found, u)
		}
		found = u
	}
	if found == nil {
		return Identity{}, fmt.Errorf("pki: certificate %q has no %s:// URI SAN", c.Subject.CommonName, URIScheme)
	}
	return ParseIdentityURI(found)
}

// PeerIdentity returns the identity of the verified peer certificate of a
// TLS connection (e.g. credentials.TLSInfo.State in gRPC). It fails if the
// peer presented no certificate or the chain was not verified.
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, errors.New("pki: peer has no verified certificate")
	}
	return IdentityFromCert(cs.VerifiedChains[0][0])
}

// Serial is how the exchange names a certificate: the hex of its serial
// number, as the registry records it and `bwx-arbiter member certs` shows it.
func Serial(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }
