package registry

import (
	"context"
	"net/netip"
	"testing"

	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

// An ASN's id is read once; an ASN that is not a member is 0 until it joins.
func TestIDs(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	ids := NewIDs(db)
	if id, err := ids.ID(ctx, 64500); err != nil || id != 0 {
		t.Fatalf("unknown ASN: %d, %v; want 0", id, err)
	}
	m, err := New(db).AddMember(ctx, Member{ASN: 64500, Name: "net", Port: Port{Name: "swp", CapacityBps: 1e9},
		Routers: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := ids.ID(ctx, 64500); err != nil || id != m.ID {
		t.Fatalf("after joining: %d, %v; want %d", id, err, m.ID)
	}
	db.Close() // from now on only the cache can answer
	if id, err := ids.ID(ctx, 64500); err != nil || id != m.ID {
		t.Fatalf("cached: %d, %v; want %d", id, err, m.ID)
	}
}
