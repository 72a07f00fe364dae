// Package registry is the trade route registry (claims 1a, 22): members,
// their switch ports, router addresses on the exchange LAN and the prefixes
// they registered, each with its route type.
//
// It owns the members, certificates, ports, routers, prefixes and
// announced_routes tables: each one's SQL is in the file named for it
// (members_sql.go, ...), and the other domain packages call the exported
// functions there (GetMember, MemberPorts, Routers, MemberPrefixes, ...)
// with their own transaction where they have one. The import log
// (registry_imports) is in registry/importlog, below irr and rpki.
package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/invalid"
)

// RouteType is the kind of a registered route (claim 4).
type RouteType int

const (
	Customer RouteType = 1
	Peer     RouteType = 2
	Transit  RouteType = 3
	Specific RouteType = 4
)

var routeTypeNames = map[RouteType]string{Customer: "customer", Peer: "peer", Transit: "transit", Specific: "specific"}

func (t RouteType) String() string {
	if s, ok := routeTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("RouteType(%d)", int(t))
}

// Valid reports whether t is one of the four types.
func (t RouteType) Valid() bool { _, ok := routeTypeNames[t]; return ok }

// ParseRouteType accepts the lower-case names.
func ParseRouteType(s string) (RouteType, error) {
	for t, n := range routeTypeNames {
		if strings.EqualFold(s, n) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("route type %q: want customer, peer, transit or specific", s)
}

// Member is one network trading on the exchange.
type Member struct {
	ID      int64
	ASN     uint32
	Name    string
	Port    Port
	Routers []netip.Addr
	Created time.Time
	// Status is active, suspended or removed (see MemberStatus);
	// StatusReason is the operator's reason and StatusSince when it last
	// changed (zero: active since it joined).
	Status       MemberStatus
	StatusReason string
	StatusSince  time.Time
}

// Port is the member's port on the trading switch.
type Port struct {
	ID          int64
	Name        string
	CapacityBps int64
}

// Prefix is a route a member registered, with its routing policy.
type Prefix struct {
	Prefix    netip.Prefix
	MemberASN uint32
	Type      RouteType
	OriginASN uint32

	// AllowedBuyers are the members that may buy the prefix; empty means
	// every member.
	AllowedBuyers []uint32
	// Prepends is how many times the seller's ASN is prepended to the path
	// delivered to a buyer (0 to MaxPrepends).
	Prepends int
	// AllowExport drops NO_EXPORT from the delivered path, so buyers may
	// pass the route on (say, to their customers); the zero value, NO_EXPORT
	// on, is the safe default.
	AllowExport bool
}

// MaxPrepends bounds Prefix.Prepends.
const MaxPrepends = 10

// AllowsBuyer reports whether buyer may buy p: the allow list is empty or names
// it. The order book calls it to refuse a buyer the seller excluded.
func (p *Prefix) AllowsBuyer(buyer uint32) bool {
	return len(p.AllowedBuyers) == 0 || slices.Contains(p.AllowedBuyers, buyer)
}

// validatePolicy checks the routing policy fields.
func (p *Prefix) validatePolicy() error {
	if p.Prepends < 0 || p.Prepends > MaxPrepends {
		return invalid.New("prepends", "must be 0 to %d, got %d", MaxPrepends, p.Prepends)
	}
	seen := map[uint32]bool{}
	for i, a := range p.AllowedBuyers {
		f := fmt.Sprintf("allowed_buyers[%d]", i)
		switch {
		case a == 0 || a == 23456 || a == 4294967295:
			return invalid.New(f, "%d is reserved and cannot be a member ASN", a)
		case a == p.MemberASN:
			return invalid.New(f, "AS%d is the prefix's own member", a)
		case seen[a]:
			return invalid.New(f, "AS%d is listed twice", a)
		}
		seen[a] = true
	}
	return nil
}

func formatASNs(as []uint32) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = strconv.FormatUint(uint64(a), 10)
	}
	return strings.Join(s, " ")
}

func parseASNs(s string) ([]uint32, error) {
	var out []uint32
	for _, f := range strings.Fields(s) {
		a, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("stored ASN list %q: %w", s, err)
		}
		out = append(out, uint32(a))
	}
	return out, nil
}

// ErrNotFound is returned for an unknown member or prefix.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a member, router address or prefix is taken.
var ErrExists = errors.New("already exists")

// Validate checks a new member before anything is written.
func (m *Member) Validate() error {
	if m.ASN == 0 || m.ASN == 23456 || m.ASN == 4294967295 {
		return invalid.New("asn", "%d is reserved and cannot be a member ASN", m.ASN)
	}
	if strings.TrimSpace(m.Name) == "" {
		return invalid.New("name", "must not be empty")
	}
	if len(m.Name) > 128 {
		return invalid.New("name", "longer than 128 characters")
	}
	if strings.TrimSpace(m.Port.Name) == "" {
		return invalid.New("port.name", "must not be empty")
	}
	if m.Port.CapacityBps <= 0 {
		return invalid.New("port.capacity_bps", "must be positive, got %d", m.Port.CapacityBps)
	}
	if len(m.Routers) == 0 {
		return invalid.New("router_addresses", "at least one router address on the exchange LAN is needed")
	}
	seen := map[netip.Addr]bool{}
	for i, a := range m.Routers {
		f := fmt.Sprintf("router_addresses[%d]", i)
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return invalid.New(f, "%v is not a usable unicast router address", a)
		}
		if a.Is4In6() {
			return invalid.New(f, "%v: write IPv4 addresses in dotted form", a)
		}
		if a.Zone() != "" {
			return invalid.New(f, "%v: a router address on the exchange LAN takes no zone", a)
		}
		if seen[a] {
			return invalid.New(f, "%v is listed twice", a)
		}
		seen[a] = true
	}
	return nil
}

// ParsePrefix parses and checks a CIDR prefix; it must be in canonical form
// (no host bits), as a BGP table would show it.
func ParsePrefix(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, invalid.New(field, "%q is not a CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, invalid.New(field, "%q: write IPv4 prefixes in dotted form", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, invalid.New(field, "%q has host bits set; did you mean %v?", s, p.Masked())
	}
	return p, nil
}

// Registry reads and writes the registry tables.
type Registry struct {
	db       *store.DB
	now      func() time.Time
	ids      *IDs
	revoked  revocations
	standing standings
}

// New returns a registry over db.
func New(db *store.DB) *Registry { return &Registry{db: db, now: clock.Now, ids: NewIDs(db)} }

// MemberID is asn's member id, 0 if asn is not a member; after the first
// call for a member it costs no store read.
func (r *Registry) MemberID(ctx context.Context, asn uint32) (int64, error) {
	return r.ids.ID(ctx, asn)
}

// AddMember validates and stores a member with its port and routers; with
// a non-nil issue func the member's certificate is signed inside the same
// transaction, so a member is never stored without the certificate it asked
// for, nor a certificate recorded for a member that does not exist.
func (r *Registry) AddMember(ctx context.Context, m Member, issue func() (Certificate, error)) (Member, error) {
	if err := m.Validate(); err != nil {
		return Member{}, err
	}
	m.Created = r.now().UTC().Truncate(time.Microsecond) // the stored precision
	m.Status, m.StatusReason, m.StatusSince = Active, "", time.Time{}
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if m.ID, err = insertMember(ctx, tx, m); err != nil {
			if isUnique(err) {
				return fmt.Errorf("member AS%d: %w", m.ASN, ErrExists)
			}
			return err
		}
		if m.Port.ID, err = insertPort(ctx, tx, m.ID, m.Port); err != nil {
			return err
		}
		for _, a := range m.Routers {
			if err := insertRouter(ctx, tx, m.ID, a); err != nil {
				if isUnique(err) {
					return fmt.Errorf("router address %v: %w (another member has it)", a, ErrExists)
				}
				return err
			}
		}
		if issue != nil {
			c, err := issue()
			if err != nil {
				return err
			}
			return recordCert(ctx, tx, m.ID, c, r.now())
		}
		return nil
	})
	if err != nil {
		return Member{}, err
	}
	return m, nil
}

// Certificate is what the registry records of a certificate it had signed
// (or revoked without having signed it: Identity is then empty).
type Certificate struct {
	Serial    string // hex of the serial number, as pki.Serial writes it
	Identity  string
	NotAfter  time.Time
	MemberASN uint32 // 0: an operator's
	Created   time.Time
	Revoked   time.Time // zero: valid
}

// RecordCertificate notes a certificate issued to an existing member.
func (r *Registry) RecordCertificate(ctx context.Context, asn uint32, c Certificate) error {
	return r.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := getMember(ctx, tx, asn)
		if err != nil {
			return err
		}
		if m.Status == Removed {
			// A new certificate would let the member back in.
			return fmt.Errorf("member AS%d %w", asn, ErrRemoved)
		}
		return recordCert(ctx, tx, m.ID, c, r.now())
	})
}

// Member returns the member with asn.
// Reads do not open a transaction: with immediate transactions that would
// take the write lock and queue every lookup behind the order book's
// commits.
func (r *Registry) Member(ctx context.Context, asn uint32) (Member, error) {
	return getMember(ctx, r.db, asn)
}

// Members lists all members by ASN.
func (r *Registry) Members(ctx context.Context) ([]Member, error) {
	asns, err := memberASNs(ctx, r.db)
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(asns))
	for _, a := range asns {
		m, err := getMember(ctx, r.db, a)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Querier is what both *sql.DB and *sql.Tx offer; domain packages pass
// their transaction so reads see their own writes.
type Querier = store.Querier

// AddPrefix registers a prefix for a member. The origin defaults to the
// member's ASN.
func (r *Registry) AddPrefix(ctx context.Context, p Prefix) (Prefix, error) {
	if !p.Prefix.IsValid() {
		return Prefix{}, invalid.New("prefix", "missing")
	}
	if !p.Type.Valid() {
		return Prefix{}, invalid.New("route_type", "must be customer, peer, transit or specific")
	}
	if p.OriginASN == 0 {
		p.OriginASN = p.MemberASN
	}
	if err := p.validatePolicy(); err != nil {
		return Prefix{}, err
	}
	p.AllowedBuyers = slices.Clone(p.AllowedBuyers)
	slices.Sort(p.AllowedBuyers)
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		m, err := getMember(ctx, tx, p.MemberASN)
		if err != nil {
			return err
		}
		for i, b := range p.AllowedBuyers {
			if _, err := getMember(ctx, tx, b); err != nil {
				return &invalid.Error{Field: fmt.Sprintf("allowed_buyers[%d]", i), Msg: err.Error()}
			}
		}
		err = insertPrefix(ctx, tx, m.ID, p)
		if isUnique(err) {
			return fmt.Errorf("prefix %v of AS%d: %w", p.Prefix, p.MemberASN, ErrExists)
		}
		return err
	})
	if err != nil {
		return Prefix{}, err
	}
	return p, nil
}

// RemovePrefix removes a registered prefix.
func (r *Registry) RemovePrefix(ctx context.Context, asn uint32, p netip.Prefix) error {
	return r.db.Tx(ctx, func(tx *sql.Tx) error {
		n, err := deletePrefix(ctx, tx, asn, p)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("prefix %v of AS%d: %w", p, asn, ErrNotFound)
		}
		return nil
	})
}

// Prefixes lists registered prefixes; asn 0 lists every member's.
func (r *Registry) Prefixes(ctx context.Context, asn uint32) ([]Prefix, error) {
	return MemberPrefixes(ctx, r.db, asn)
}

func isUnique(err error) bool { return store.IsUnique(err) }
