package registry

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPrefixPolicy(t *testing.T) {
	r, db := openRegistry(t)
	ctx := context.Background()
	for _, asn := range []uint32{64501, 64502, 64503} {
		if _, err := r.AddMember(ctx, validMember(asn, fmt.Sprintf("192.0.2.%d", asn-64500)), nil); err != nil {
			t.Fatal(err)
		}
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	got, err := r.AddPrefix(ctx, Prefix{Prefix: p, MemberASN: 64501, Type: Customer, AllowedBuyers: []uint32{64503, 64502}, Prepends: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.AllowedBuyers, []uint32{64502, 64503}) {
		t.Errorf("allow list %v, want it sorted", got.AllowedBuyers)
	}
	if _, err := r.AddPrefix(ctx, Prefix{Prefix: netip.MustParsePrefix("2001:db8:100::/48"), MemberASN: 64501, Type: Customer}); err != nil {
		t.Fatal(err)
	}
	ps, err := r.Prefixes(ctx, 64501)
	if err != nil {
		t.Fatal(err)
	}
	want := []Prefix{
		{Prefix: p, MemberASN: 64501, Type: Customer, OriginASN: 64501, AllowedBuyers: []uint32{64502, 64503}, Prepends: 3},
		{Prefix: netip.MustParsePrefix("2001:db8:100::/48"), MemberASN: 64501, Type: Customer, OriginASN: 64501},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("stored %+v\nwant %+v", ps, want)
	}
	for buyer, ok := range map[uint32]bool{64502: true, 64503: true, 64504: false} {
		if ps[0].AllowsBuyer(buyer) != ok {
			t.Errorf("allow list: AllowsBuyer(%d) = %v", buyer, !ok)
		}
	}
	if !ps[1].AllowsBuyer(64504) {
		t.Error("empty allow list refuses a buyer")
	}

	before := count(t, db, "prefixes")
	for _, tc := range []struct {
		p     Prefix
		field string
	}{
		{Prefix{Prepends: MaxPrepends + 1}, "prepends"},
		{Prefix{Prepends: -1}, "prepends"},
		{Prefix{AllowedBuyers: []uint32{64502, 64502}}, "allowed_buyers[1]"},
		{Prefix{AllowedBuyers: []uint32{64501}}, "allowed_buyers[0]"},
		{Prefix{AllowedBuyers: []uint32{0}}, "allowed_buyers[0]"},
		{Prefix{AllowedBuyers: []uint32{64502, 64999}}, "allowed_buyers[1]"}, // not a member
	} {
		tc.p.Prefix, tc.p.MemberASN, tc.p.Type = netip.MustParsePrefix("203.0.113.0/24"), 64501, Customer
		_, err := r.AddPrefix(ctx, tc.p)
		wantInvalid(t, err, tc.field)
	}
	if n := count(t, db, "prefixes"); n != before {
		t.Errorf("refused prefixes were stored: %d rows, want %d", n, before)
	}
}

func announced(asn uint32, nbr, prefix string, ok bool, reason string) AnnouncedRoute {
	return AnnouncedRoute{MemberASN: asn, Neighbor: netip.MustParseAddr(nbr), Prefix: netip.MustParsePrefix(prefix),
		NextHop: netip.MustParseAddr(nbr), ASPath: []uint32{asn, 64510}, OriginASN: 64510, Accepted: ok, Reason: reason,
		Since: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)}
}

func TestAnnouncedRoutes(t *testing.T) {
	r, _ := openRegistry(t)
	ctx := context.Background()
	a := announced(64501, "192.0.2.1", "198.51.100.0/24", true, "")
	b := announced(64501, "2001:db8::1", "2001:db8:100::/48", false, "RPKI invalid")
	c := announced(64502, "192.0.2.2", "203.0.113.0/24", false, "not registered")
	if err := r.UpdateAnnounced(ctx, []AnnouncedRoute{c, b, a}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := r.Announced(ctx, 64501)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []AnnouncedRoute{a, b}) {
		t.Fatalf("Announced(64501) = %+v", got)
	}
	// A new verdict replaces the row; a withdrawal deletes it.
	b.Accepted, b.Reason = true, ""
	if err := r.UpdateAnnounced(ctx, []AnnouncedRoute{b}, []AnnouncedKey{a.Key()}); err != nil {
		t.Fatal(err)
	}
	if got, _ = r.Announced(ctx, 0); !reflect.DeepEqual(got, []AnnouncedRoute{b, c}) {
		t.Fatalf("after update: %+v", got)
	}
	if err := r.ClearAnnounced(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ = r.Announced(ctx, 0); len(got) != 0 {
		t.Fatalf("after clear: %+v", got)
	}

	// More rows than one statement takes.
	var many []AnnouncedRoute
	for i := range 1200 {
		many = append(many, announced(64501, "192.0.2.1", fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), true, ""))
	}
	if err := r.UpdateAnnounced(ctx, many, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ = r.Announced(ctx, 64501); len(got) != 1200 {
		t.Fatalf("%d rows, want 1200", len(got))
	}
}

func TestAnnouncedSyncCoalescesAndFlushes(t *testing.T) {
	r, _ := openRegistry(t)
	ctx := context.Background()
	s := NewAnnouncedSync(r, nil, 10*time.Millisecond)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				a := announced(64501, "192.0.2.1", fmt.Sprintf("10.%d.%d.0/24", w, i), false, "first")
				s.Put(a)
				a.Accepted, a.Reason = true, ""
				s.Put(a) // the later version wins
				if i%2 == 1 {
					s.Delete(a.Key())
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := r.Announced(ctx, 64501)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 500 {
		t.Fatalf("%d routes, want 500 (half were withdrawn)", len(got))
	}
	for _, a := range got {
		if !a.Accepted || a.Reason != "" || a.Prefix.Addr().As4()[2]%2 != 0 {
			t.Fatalf("stale or withdrawn route kept: %+v", a)
		}
	}
	// Close writes what is pending.
	s.Delete(got[0].Key())
	s.Close()
	if again, _ := r.Announced(ctx, 64501); len(again) != 499 {
		t.Errorf("after Close: %d routes, want 499", len(again))
	}
}
