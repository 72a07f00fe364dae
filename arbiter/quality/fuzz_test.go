package quality

import (
	"bytes"
	"math"
	"net/netip"
	"testing"
	"time"
)

// FuzzAtlasJSON: any bytes as RIPE Atlas ping results. Every measurement
// ParseAtlas makes passes the checks a report must pass (Validate, at its
// own time: no negative latency, loss within 0..100 %, the target inside
// the prefix), with the probe's member and a whole-number loss of what
// was sent; a result is either measured, skipped with a reason or stops
// the import.
func FuzzAtlasJSON(f *testing.F) {
	f.Add([]byte(atlasArray))
	f.Add([]byte(atlasLines))
	f.Add([]byte(`{"type":"ping","dst_addr":"198.51.100.1","prb_id":1001,"timestamp":1,"sent":1,"rcvd":1,"avg":1e300}`))
	src := AtlasSource{
		Via: func(probe int64, af int) (uint32, bool) { return uint32(probe%1000) + 64500, probe > 0 },
		Prefix: func(a netip.Addr) (netip.Prefix, bool) {
			bits := 24
			if a.Is6() {
				bits = 48
			}
			p, err := a.Prefix(bits)
			return p, err == nil && !a.IsUnspecified()
		},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseAtlas(bytes.NewReader(in), src)
		if err != nil {
			return
		}
		skipped := 0
		for _, n := range got.Skipped {
			skipped += n
		}
		if got.Results != len(got.Measurements)+skipped {
			t.Fatalf("%d results, %d measurements, %d skipped", got.Results, len(got.Measurements), skipped)
		}
		for i, m := range got.Measurements {
			if err := m.Validate(i, m.At); err != nil {
				t.Fatalf("measurement %+v does not validate: %v", m, err)
			}
			if m.ViaASN < 64500 || m.ProbesSent <= 0 || m.At.Location() != time.UTC {
				t.Fatalf("measurement %+v", m)
			}
			if m.LatencyUs > math.MaxInt64/2 || m.JitterUs > math.MaxInt64/2 {
				t.Fatalf("measurement %+v: latency or jitter beyond any real path", m)
			}
		}
	})
}
