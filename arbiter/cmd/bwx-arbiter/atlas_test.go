package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/clock"
)

// TestImportAtlas: ping results become third-party measurements of the
// probe's network toward the registered prefix holding the destination;
// unplaceable results are counted as skipped; a second import stores
// nothing twice; the flags are checked.
func TestImportAtlas(t *testing.T) {
	cfg, db, dir := lab(t)
	ctx := context.Background()
	reg := registry.New(db)
	for i, asn := range []uint32{64501, 64502} {
		m := registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: fmt.Sprint("swp", i), CapacityBps: 1e10},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)})}}
		if _, err := reg.AddMember(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"198.51.100.0/24", "2001:db8:100::/48"} {
		if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix(p), MemberASN: 64502, Type: registry.Customer}); err != nil {
			t.Fatal(err)
		}
	}
	ts := clock.Now().Add(-time.Hour).Unix()
	results := filepath.Join(dir, "results.json")
	writeFile(t, results, fmt.Appendf(nil, `[
 {"af":4,"dst_addr":"198.51.100.7","prb_id":1001,"msm_id":5001,"timestamp":%d,"type":"ping","sent":3,"rcvd":3,"avg":20.5,
  "result":[{"rtt":19.0,"ttl":56},{"rtt":22.0,"ttl":56},{"rtt":20.5,"ttl":56}]},
 {"af":6,"dst_addr":"2001:db8:100::1","prb_id":1001,"msm_id":5002,"timestamp":%d,"type":"ping","sent":4,"rcvd":2,"avg":30.0},
 {"af":4,"dst_addr":"203.0.113.1","prb_id":1001,"msm_id":5004,"timestamp":%d,"type":"ping","sent":3,"rcvd":3,"avg":5},
 {"af":4,"dst_addr":"198.51.100.10","prb_id":9999,"msm_id":5005,"timestamp":%d,"type":"ping","sent":3,"rcvd":3,"avg":5}
]`, ts, ts, ts, ts), false)
	probes := filepath.Join(dir, "probes.json")
	writeFile(t, probes, []byte(`{"objects":[{"id":1001,"asn_v4":64501,"asn_v6":64501}]}`), false)

	out, _, err := runImport(t, cfg, "-o", "json", "import", "atlas", "--probes", probes, results)
	if err != nil {
		t.Fatal(err)
	}
	var rep atlasReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Results != 4 || rep.Stored != 2 || rep.Duplicates != 0 || rep.Skipped["destination not in a registered prefix"] != 1 || rep.Skipped["probe's network unknown"] != 1 {
		t.Fatalf("report %+v", rep)
	}
	mx := quality.New(db, nil)
	c, err := mx.PathQuality(ctx, 0, 64501, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, clock.Now().Add(-2*time.Hour))
	if err != nil || c == nil || c.LatencyUs != 20_500 || c.Vantage != 0 {
		t.Fatalf("pooled quality via AS64501: %+v %v", c, err)
	}
	if c, _ := mx.PathQuality(ctx, 64502, 64501, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, clock.Now().Add(-2*time.Hour)); c == nil || c.Vantage != 0 {
		t.Fatalf("a member's view falls back to the pool: %+v", c)
	}
	out, _, err = runImport(t, cfg, "import", "atlas", "--via", "64501", results)
	// With --via the probe of unknown network counts too: one new.
	if err != nil || !strings.Contains(out, "1 measurements stored, 2 already stored, 1 skipped") ||
		!strings.Contains(out, "skipped: destination not in a registered prefix: 1") {
		t.Fatalf("second import (--via): %v: %s", err, out)
	}
	for _, args := range [][]string{
		{"import", "atlas", results},
		{"import", "atlas", "--via", "64501", "--probes", probes, results},
		{"import", "atlas", "--via", "64999", results},
	} {
		if _, _, err := runImport(t, cfg, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
