package registry

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/invalid"
)

const Gbps = 1_000_000_000

// now has sub-microsecond digits on purpose: the store keeps microseconds.
var now = time.Date(2026, 11, 3, 10, 20, 30, 123456789, time.UTC)

func openRegistry(t *testing.T) (*Registry, *store.DB) {
	t.Helper()
	db := storetest.Open(t)
	r := New(db)
	r.now = func() time.Time { return now }
	return r, db
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func validMember(asn uint32, routers ...string) Member {
	if len(routers) == 0 {
		routers = []string{"192.0.2.1", "2001:db8::1"}
	}
	return Member{ASN: asn, Name: "example-net", Port: Port{Name: "swp1", CapacityBps: 10 * Gbps}, Routers: addrs(routers...)}
}

func count(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var ie *invalid.Error
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want *invalid.Error on %q", err, err, field)
	}
	if ie.Field != field {
		t.Fatalf("invalid.Error field = %q (%v), want %q", ie.Field, err, field)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Fatalf("Error() = %q, want it to start with the field %q", err.Error(), field)
	}
}

func TestMemberValidate(t *testing.T) {
	long := strings.Repeat("n", 129)
	cases := []struct {
		name   string
		edit   func(*Member)
		field  string // "" means valid
		reason string // substring of the message, optional
	}{
		{"valid", func(*Member) {}, "", ""},
		{"asn 23455 is fine", func(m *Member) { m.ASN = 23455 }, "", ""},
		{"asn 4294967294 is fine", func(m *Member) { m.ASN = 4294967294 }, "", ""},
		{"name of 128 characters is fine", func(m *Member) { m.Name = long[:128] }, "", ""},
		{"asn 0", func(m *Member) { m.ASN = 0 }, "asn", "reserved"},
		{"asn 23456 (AS_TRANS)", func(m *Member) { m.ASN = 23456 }, "asn", "reserved"},
		{"asn 4294967295", func(m *Member) { m.ASN = 4294967295 }, "asn", "reserved"},
		{"empty name", func(m *Member) { m.Name = "" }, "name", ""},
		{"blank name", func(m *Member) { m.Name = " \t " }, "name", ""},
		{"name too long", func(m *Member) { m.Name = long }, "name", "128"},
		{"empty port name", func(m *Member) { m.Port.Name = "" }, "port.name", ""},
		{"blank port name", func(m *Member) { m.Port.Name = "  " }, "port.name", ""},
		{"zero capacity", func(m *Member) { m.Port.CapacityBps = 0 }, "port.capacity_bps", ""},
		{"negative capacity", func(m *Member) { m.Port.CapacityBps = -1 }, "port.capacity_bps", "-1"},
		{"no routers", func(m *Member) { m.Routers = nil }, "router_addresses", ""},
		{"empty router list", func(m *Member) { m.Routers = []netip.Addr{} }, "router_addresses", ""},
		{"duplicate router", func(m *Member) { m.Routers = addrs("192.0.2.1", "2001:db8::1", "192.0.2.1") }, "router_addresses[2]", "twice"},
		{"duplicate IPv6 router", func(m *Member) { m.Routers = addrs("2001:db8::1", "2001:db8:0::1") }, "router_addresses[1]", "twice"},
		{"zero address", func(m *Member) { m.Routers = []netip.Addr{{}} }, "router_addresses[0]", ""},
		{"IPv4 loopback", func(m *Member) { m.Routers = addrs("192.0.2.1", "127.0.0.1") }, "router_addresses[1]", "unicast"},
		{"IPv6 loopback", func(m *Member) { m.Routers = addrs("::1") }, "router_addresses[0]", "unicast"},
		{"IPv4 multicast", func(m *Member) { m.Routers = addrs("192.0.2.1", "224.0.0.5") }, "router_addresses[1]", "unicast"},
		{"IPv6 multicast", func(m *Member) { m.Routers = addrs("ff02::5") }, "router_addresses[0]", "unicast"},
		{"IPv4 unspecified", func(m *Member) { m.Routers = addrs("0.0.0.0") }, "router_addresses[0]", "unicast"},
		{"IPv6 unspecified", func(m *Member) { m.Routers = addrs("2001:db8::1", "::") }, "router_addresses[1]", "unicast"},
		{"IPv4-mapped IPv6", func(m *Member) { m.Routers = addrs("192.0.2.1", "::ffff:192.0.2.2") }, "router_addresses[1]", "dotted"},
		// The mapped form of an address already listed is refused as mapped,
		// not let through as a different address.
		{"IPv4-mapped duplicate", func(m *Member) { m.Routers = addrs("192.0.2.1", "::ffff:192.0.2.1") }, "router_addresses[1]", ""},
		{"IPv4-mapped loopback", func(m *Member) { m.Routers = addrs("::ffff:127.0.0.1") }, "router_addresses[0]", ""},
		{"zoned IPv6", func(m *Member) { m.Routers = addrs("fe80::1", "fe80::1%eth0") }, "router_addresses[1]", "zone"},
		// The first problem wins: ASN before name before port before routers.
		{"several problems", func(m *Member) { m.ASN, m.Name, m.Routers = 0, "", nil }, "asn", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := validMember(64500)
			c.edit(&m)
			err := m.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			wantInvalid(t, err, c.field)
			if c.reason != "" && !strings.Contains(err.Error(), c.reason) {
				t.Errorf("Validate() = %q, want it to mention %q", err, c.reason)
			}
		})
	}
}

func TestParsePrefix(t *testing.T) {
	cases := []struct {
		in      string
		want    string // canonical prefix, "" for an error
		mention string // substring of the error
	}{
		{"198.51.100.0/24", "198.51.100.0/24", ""},
		{" 198.51.100.0/24\n", "198.51.100.0/24", ""},
		{"0.0.0.0/0", "0.0.0.0/0", ""},
		{"192.0.2.1/32", "192.0.2.1/32", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"2001:db8:100::/48", "2001:db8:100::/48", ""},
		{"198.51.100.1/24", "", "did you mean 198.51.100.0/24?"},
		{"2001:db8::1/32", "", "did you mean 2001:db8::/32?"},
		{"::ffff:198.51.100.0/120", "", "dotted"},
		{"garbage", "", "not a CIDR prefix"},
		{"198.51.100.0", "", "not a CIDR prefix"},
		{"198.51.100.0/33", "", "not a CIDR prefix"},
		{"", "", "not a CIDR prefix"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			p, err := ParsePrefix("some.field", c.in)
			if c.want != "" {
				if err != nil || p.String() != c.want {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", c.in, p, err, c.want)
				}
				return
			}
			wantInvalid(t, err, "some.field")
			if p.IsValid() {
				t.Errorf("ParsePrefix(%q) returned the prefix %v along with an error", c.in, p)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("ParsePrefix(%q) = %q, want it to mention %q", c.in, err, c.mention)
			}
		})
	}
}

func TestAddMemberRoundTrip(t *testing.T) {
	r, _ := openRegistry(t)
	ctx := context.Background()
	// Added out of ASN order: Members sorts.
	second, err := r.AddMember(ctx, validMember(64502, "192.0.2.2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.AddMember(ctx, validMember(64501, "2001:db8::1", "192.0.2.1", "2001:db8::2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == 0 || first.Port.ID == 0 || first.ID == second.ID {
		t.Fatalf("AddMember ids: first %+v second %+v", first, second)
	}
	if !first.Created.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("Created = %v, want the registry clock at the stored precision %v", first.Created, now)
	}

	got, err := r.Member(ctx, 64501)
	if err != nil {
		t.Fatal(err)
	}
	want := first
	want.Created = now.Truncate(time.Microsecond) // the stored precision
	checkMember(t, got, want)

	all, err := r.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("Members() = %d members, want 2", len(all))
	}
	checkMember(t, all[0], want)
	want2 := second
	want2.Created = want.Created
	checkMember(t, all[1], want2)

	if _, err := r.Member(ctx, 64999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Member(unknown) err = %v, want ErrNotFound", err)
	}
}

func checkMember(t *testing.T, got, want Member) {
	t.Helper()
	if got.ID != want.ID || got.ASN != want.ASN || got.Name != want.Name || got.Port != want.Port || !got.Created.Equal(want.Created) {
		t.Errorf("member = %+v, want %+v", got, want)
	}
	if len(got.Routers) != len(want.Routers) {
		t.Fatalf("routers = %v, want %v", got.Routers, want.Routers)
	}
	for i := range got.Routers {
		if got.Routers[i] != want.Routers[i] {
			t.Errorf("routers = %v, want %v (same order)", got.Routers, want.Routers)
			break
		}
	}
}

func TestEmptyRegistry(t *testing.T) {
	r, _ := openRegistry(t)
	ctx := context.Background()
	if ms, err := r.Members(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("Members() on an empty registry = %v, %v", ms, err)
	}
	if ps, err := r.Prefixes(ctx, 0); err != nil || len(ps) != 0 {
		t.Fatalf("Prefixes(0) on an empty registry = %v, %v", ps, err)
	}
}

func TestAddMemberInvalidWritesNothing(t *testing.T) {
	r, db := openRegistry(t)
	calls := 0
	m := validMember(64501)
	m.Port.CapacityBps = 0
	_, err := r.AddMember(context.Background(), m, func() (Certificate, error) { calls++; return Certificate{}, nil })
	wantInvalid(t, err, "port.capacity_bps")
	if calls != 0 {
		t.Errorf("issue called %d times for an invalid member, want 0", calls)
	}
	if n := count(t, db, "members"); n != 0 {
		t.Errorf("%d members stored, want 0", n)
	}
}

func TestAddMemberDuplicateASN(t *testing.T) {
	r, db := openRegistry(t)
	ctx := context.Background()
	if _, err := r.AddMember(ctx, validMember(64501, "192.0.2.1"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := r.AddMember(ctx, validMember(64501, "192.0.2.2"), nil)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second AS64501: err = %v, want ErrExists", err)
	}
	for table, want := range map[string]int{"members": 1, "ports": 1, "routers": 1} {
		if n := count(t, db, table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
}

func TestAddMemberRouterTakenRollsBack(t *testing.T) {
	r, db := openRegistry(t)
	ctx := context.Background()
	if _, err := r.AddMember(ctx, validMember(64501, "192.0.2.1", "2001:db8::1"), nil); err != nil {
		t.Fatal(err)
	}
	// The taken address comes second, after a fresh one was inserted.
	_, err := r.AddMember(ctx, validMember(64502, "192.0.2.2", "2001:db8::1"), nil)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("router owned by AS64501: err = %v, want ErrExists", err)
	}
	if !strings.Contains(err.Error(), "2001:db8::1") {
		t.Errorf("err = %q, want it to name the address", err)
	}
	for table, want := range map[string]int{"members": 1, "ports": 1, "routers": 2} {
		if n := count(t, db, table); n != want {
			t.Errorf("%s: %d rows, want %d (nothing of AS64502)", table, n, want)
		}
	}
	if _, err := r.Member(ctx, 64502); !errors.Is(err, ErrNotFound) {
		t.Errorf("Member(64502) err = %v, want ErrNotFound", err)
	}
	// The address is free for the second member once it drops it.
	if _, err := r.AddMember(ctx, validMember(64502, "192.0.2.2"), nil); err != nil {
		t.Errorf("AS64502 with its own address only: %v", err)
	}
}

func TestAddMemberIssueFailureRollsBack(t *testing.T) {
	r, db := openRegistry(t)
	ctx := context.Background()
	boom := errors.New("CA unavailable")
	calls := 0
	_, err := r.AddMember(ctx, validMember(64501), func() (Certificate, error) { calls++; return Certificate{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("AddMember err = %v, want the issue error", err)
	}
	if calls != 1 {
		t.Errorf("issue called %d times, want 1", calls)
	}
	for _, table := range []string{"members", "ports", "routers", "certificates"} {
		if n := count(t, db, table); n != 0 {
			t.Errorf("%s: %d rows after a failed issue, want 0", table, n)
		}
	}
	if _, err := r.Member(ctx, 64501); !errors.Is(err, ErrNotFound) {
		t.Errorf("Member after rollback: err = %v, want ErrNotFound", err)
	}

	// The same member with a working issuer is stored with its certificate.
	notAfter := now.Add(365 * 24 * time.Hour)
	m, err := r.AddMember(ctx, validMember(64501), func() (Certificate, error) {
		return Certificate{Serial: "0a1b", Identity: "spiffe://bwx/member/64501", NotAfter: notAfter}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var memberID, notAfterUs int64
	var identity string
	if err := db.QueryRowContext(ctx, "SELECT member_id, identity, not_after_us FROM certificates WHERE serial = '0a1b'").
		Scan(&memberID, &identity, &notAfterUs); err != nil {
		t.Fatal(err)
	}
	if memberID != m.ID || identity != "spiffe://bwx/member/64501" || !store.Time(notAfterUs).Equal(notAfter.Truncate(time.Microsecond)) {
		t.Errorf("certificate row = member %d %q %v; want member %d", memberID, identity, store.Time(notAfterUs), m.ID)
	}
}

func TestRecordCertificateUnknownMember(t *testing.T) {
	r, db := openRegistry(t)
	err := r.RecordCertificate(context.Background(), 64501, Certificate{Serial: "01", Identity: "x", NotAfter: now})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if n := count(t, db, "certificates"); n != 0 {
		t.Errorf("%d certificates stored, want 0", n)
	}
}

func TestPrefixes(t *testing.T) {
	r, _ := openRegistry(t)
	ctx := context.Background()
	for _, m := range []Member{validMember(64501, "192.0.2.1"), validMember(64502, "192.0.2.2")} {
		if _, err := r.AddMember(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	pfx := netip.MustParsePrefix

	// Origin defaults to the member's ASN.
	got, err := r.AddPrefix(ctx, Prefix{Prefix: pfx("198.51.100.0/24"), MemberASN: 64501, Type: Customer})
	if err != nil {
		t.Fatal(err)
	}
	if got.OriginASN != 64501 {
		t.Errorf("default origin = %d, want the member ASN 64501", got.OriginASN)
	}
	// An explicit origin is kept.
	if got, err := r.AddPrefix(ctx, Prefix{Prefix: pfx("2001:db8:100::/48"), MemberASN: 64501, Type: Transit, OriginASN: 65010}); err != nil || got.OriginASN != 65010 {
		t.Fatalf("explicit origin: %+v %v", got, err)
	}
	// The same prefix may be registered by another member.
	if _, err := r.AddPrefix(ctx, Prefix{Prefix: pfx("198.51.100.0/24"), MemberASN: 64502, Type: Peer}); err != nil {
		t.Fatalf("same prefix, other member: %v", err)
	}

	for _, c := range []struct {
		name  string
		p     Prefix
		field string
		is    error
	}{
		{"route type 0", Prefix{Prefix: pfx("203.0.113.0/24"), MemberASN: 64501}, "route_type", nil},
		{"route type 5", Prefix{Prefix: pfx("203.0.113.0/24"), MemberASN: 64501, Type: 5}, "route_type", nil},
		{"missing prefix", Prefix{MemberASN: 64501, Type: Customer}, "prefix", nil},
		{"unknown member", Prefix{Prefix: pfx("203.0.113.0/24"), MemberASN: 64999, Type: Customer}, "", ErrNotFound},
		{"duplicate", Prefix{Prefix: pfx("198.51.100.0/24"), MemberASN: 64501, Type: Peer}, "", ErrExists},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.AddPrefix(ctx, c.p)
			if c.field != "" {
				wantInvalid(t, err, c.field)
			} else if !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want %v", err, c.is)
			}
		})
	}

	all, err := r.Prefixes(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Prefix{
		{Prefix: pfx("198.51.100.0/24"), MemberASN: 64501, Type: Customer, OriginASN: 64501},
		{Prefix: pfx("2001:db8:100::/48"), MemberASN: 64501, Type: Transit, OriginASN: 65010},
		{Prefix: pfx("198.51.100.0/24"), MemberASN: 64502, Type: Peer, OriginASN: 64502},
	}
	if !equalPrefixes(all, want) {
		t.Fatalf("Prefixes(0) = %+v, want %+v", all, want)
	}
	one, err := r.Prefixes(ctx, 64502)
	if err != nil || !equalPrefixes(one, want[2:]) {
		t.Fatalf("Prefixes(64502) = %+v, %v; want %+v", one, err, want[2:])
	}
	if none, err := r.Prefixes(ctx, 64999); err != nil || len(none) != 0 {
		t.Fatalf("Prefixes(unknown) = %+v, %v; want none", none, err)
	}

	// Removal: unknown prefix, another member's prefix, then the real one twice.
	if err := r.RemovePrefix(ctx, 64501, pfx("203.0.113.0/24")); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove unregistered prefix: err = %v, want ErrNotFound", err)
	}
	if err := r.RemovePrefix(ctx, 64999, pfx("198.51.100.0/24")); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove for unknown member: err = %v, want ErrNotFound", err)
	}
	if err := r.RemovePrefix(ctx, 64502, pfx("2001:db8:100::/48")); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove another member's prefix: err = %v, want ErrNotFound", err)
	}
	if err := r.RemovePrefix(ctx, 64501, pfx("198.51.100.0/24")); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := r.RemovePrefix(ctx, 64501, pfx("198.51.100.0/24")); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove twice: err = %v, want ErrNotFound", err)
	}
	all, _ = r.Prefixes(ctx, 0)
	if !equalPrefixes(all, want[1:]) {
		t.Fatalf("after removal Prefixes(0) = %+v, want %+v (AS64502's copy untouched)", all, want[1:])
	}
}

func equalPrefixes(a, b []Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestRouteTypeNames(t *testing.T) {
	for _, rt := range []RouteType{Customer, Peer, Transit, Specific} {
		got, err := ParseRouteType(strings.ToUpper(rt.String()))
		if err != nil || got != rt || !rt.Valid() {
			t.Errorf("ParseRouteType(%q) = %v, %v", strings.ToUpper(rt.String()), got, err)
		}
	}
	if _, err := ParseRouteType("upstream"); err == nil {
		t.Error("ParseRouteType(upstream) succeeded")
	}
	if RouteType(0).Valid() || RouteType(5).Valid() {
		t.Error("route types 0 and 5 are valid")
	}
}

// A 4-byte ASN above 2^31 lists its own prefixes and routes: "asn 0 means
// all" compares the ASN as a 64-bit integer on both engines (PostgreSQL
// would type a bare parameter compared with 0 as a 32-bit one).
func TestFourByteASNFilters(t *testing.T) {
	r, _ := openRegistry(t)
	ctx := context.Background()
	const asn = 4200000000
	if _, err := r.AddMember(ctx, validMember(asn, "192.0.2.1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddPrefix(ctx, Prefix{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MemberASN: asn, Type: Customer}); err != nil {
		t.Fatal(err)
	}
	ps, err := r.Prefixes(ctx, asn)
	if err != nil || len(ps) != 1 || ps[0].OriginASN != asn {
		t.Fatalf("prefixes of AS%d: %v %v", asn, ps, err)
	}
	if _, err := r.Announced(ctx, asn); err != nil {
		t.Fatalf("announced routes of AS%d: %v", asn, err)
	}
}
