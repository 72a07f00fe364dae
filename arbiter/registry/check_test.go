package registry

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
)

const checkIRR = `route: 192.0.2.0/24
origin: AS64500
source: RIPE

route: 198.51.100.0/22
origin: AS64500
source: RIPE

route6: 2001:db8::/32
origin: AS64500
source: RIPE

route: 203.0.113.0/24
origin: AS64501
source: RIPE
`

const checkROAs = `{"roas":[
	{"asn":"AS64500","prefix":"192.0.2.0/24","maxLength":24,"ta":"ripe"},
	{"asn":64500,"prefix":"2001:db8::/32","maxLength":48,"ta":"ripe"},
	{"asn":0,"prefix":"203.0.113.0/24","maxLength":24,"ta":"ripe"}]}`

func TestPrefixChecker(t *testing.T) {
	ctx := context.Background()
	r, db := openRegistry(t)
	if _, err := r.AddMember(ctx, validMember(64500), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddMember(ctx, validMember(64501, "192.0.2.2", "2001:db8::2"), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Prefix{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), MemberASN: 64500, Type: Customer},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MemberASN: 64500, Type: Customer},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/48"), MemberASN: 64500, Type: Transit, OriginASN: 64510},
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), MemberASN: 64501, Type: Customer},
	} {
		if _, err := r.AddPrefix(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := irr.Import(ctx, db, []irr.Input{{Name: "ripe.db", R: strings.NewReader(checkIRR)}}, irr.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rpki.Import(ctx, db, "vrps.json", strings.NewReader(checkROAs), rpki.ImportOptions{}); err != nil {
		t.Fatal(err)
	}

	c, err := NewPrefixChecker(ctx, db, irr.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if reg, objs, roas := c.Sizes(); reg != 4 || objs != 4 || roas != 3 {
		t.Fatalf("sizes %d %d %d, want 4 4 3", reg, objs, roas)
	}
	var _ Checker = c
	tests := []struct {
		member uint32
		prefix string
		origin uint32
		want   string
	}{
		{64500, "192.0.2.0/24", 64500, "192.0.2.0/24 from AS64500 origin AS64500: registered customer, IRR exact (RIPE), RPKI valid"},
		{64501, "192.0.2.0/24", 64500, "192.0.2.0/24 from AS64501 origin AS64500: not registered, IRR exact (RIPE), RPKI valid"},
		{64500, "192.0.2.0/24", 64999, "192.0.2.0/24 from AS64500 origin AS64999: registered customer with origin AS64500, no IRR route object, RPKI invalid"},
		{64500, "198.51.100.0/24", 64500, "198.51.100.0/24 from AS64500 origin AS64500: registered customer, IRR only less specific 198.51.100.0/22 (RIPE), RPKI not-found"},
		{64500, "2001:db8:1::/48", 64510, "2001:db8:1::/48 from AS64500 origin AS64510: registered transit, no IRR route object, RPKI invalid"},
		{64500, "2001:db8:1::/48", 64500, "2001:db8:1::/48 from AS64500 origin AS64500: registered transit with origin AS64510, IRR only less specific 2001:db8::/32 (RIPE), RPKI valid"},
		{64501, "203.0.113.0/24", 64501, "203.0.113.0/24 from AS64501 origin AS64501: registered customer, IRR exact (RIPE), RPKI invalid"},
	}
	for _, tt := range tests {
		v := c.Check(tt.member, netip.MustParsePrefix(tt.prefix), tt.origin)
		if v.String() != tt.want {
			t.Errorf("Check(AS%d, %s, AS%d)\n got %s\nwant %s", tt.member, tt.prefix, tt.origin, v, tt.want)
		}
	}
	v := c.Check(64500, netip.MustParsePrefix("198.51.100.0/24"), 64500)
	if v.IRR.Valid {
		t.Error("exact policy: a less specific route object made a /24 valid")
	}

	// With bgpq4 -R 24 style policy the same route is valid, a /25 is not.
	loose, err := NewPrefixChecker(ctx, db, irr.UpTo24And48)
	if err != nil {
		t.Fatal(err)
	}
	if !loose.Check(64500, netip.MustParsePrefix("198.51.100.0/24"), 64500).IRR.Valid ||
		loose.Check(64500, netip.MustParsePrefix("198.51.100.0/25"), 64500).IRR.Valid ||
		!loose.Check(64500, netip.MustParsePrefix("2001:db8:1::/48"), 64500).IRR.Valid ||
		loose.Check(64500, netip.MustParsePrefix("2001:db8:1::/49"), 64500).IRR.Valid {
		t.Error("UpTo24And48 policy does not accept exactly the more specifics up to /24 and /48")
	}

	// Nothing changed: no reload. A new prefix or import: reload, and the
	// checks see it.
	if changed, err := c.ReloadIfChanged(ctx); err != nil || changed {
		t.Fatalf("ReloadIfChanged = %v, %v with nothing changed", changed, err)
	}
	if _, err := r.AddPrefix(ctx, Prefix{Prefix: netip.MustParsePrefix("198.51.100.0/22"), MemberASN: 64500, Type: Peer}); err != nil {
		t.Fatal(err)
	}
	if changed, err := c.ReloadIfChanged(ctx); err != nil || !changed {
		t.Fatalf("ReloadIfChanged = %v, %v after AddPrefix", changed, err)
	}
	if v := c.Check(64500, netip.MustParsePrefix("198.51.100.0/22"), 64500); !v.Registered || v.Type != Peer {
		t.Fatalf("after reload: %v", v)
	}
	if _, err := rpki.Import(ctx, db, "vrps2.json", strings.NewReader(`{"roas":[{"asn":64500,"prefix":"198.51.100.0/22","maxLength":24},{"asn":1,"prefix":"10.0.0.0/8"},{"asn":2,"prefix":"10.0.0.0/9"}]}`), rpki.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if changed, err := c.ReloadIfChanged(ctx); err != nil || !changed {
		t.Fatalf("ReloadIfChanged = %v, %v after an ROA import", changed, err)
	}
	if v := c.Check(64500, netip.MustParsePrefix("198.51.100.0/24"), 64500); v.RPKI != rpki.Valid {
		t.Fatalf("after the ROA import: %v", v)
	}
	if v := c.Check(64500, netip.MustParsePrefix("192.0.2.0/24"), 64500); v.RPKI != rpki.NotFound {
		t.Fatalf("the old ROA set is still used: %v", v)
	}
}

// TestPrefixCheckerReloadWhileChecking is for -race: checks keep running
// on the old data while a reload swaps in the new.
func TestPrefixCheckerReloadWhileChecking(t *testing.T) {
	ctx := context.Background()
	_, db := openRegistry(t)
	if _, err := irr.Import(ctx, db, []irr.Input{{Name: "ripe.db", R: strings.NewReader(checkIRR)}}, irr.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := NewPrefixChecker(ctx, db, irr.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v := c.Check(64500, netip.MustParsePrefix("192.0.2.0/24"), 64500); v.IRR.Match != irr.Exact {
					t.Errorf("check during reload: %v", v)
					return
				}
			}
		}()
	}
	for range 20 {
		if err := c.Reload(ctx); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}
