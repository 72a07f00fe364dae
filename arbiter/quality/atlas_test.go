package quality

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// Results in the shapes Atlas publishes (firmware 5000 and 1), by hand.
const atlasArray = `[
 {"fw":5080,"af":4,"dst_addr":"198.51.100.7","from":"192.0.2.200","prb_id":1001,"msm_id":5001,"timestamp":1764115200,
  "type":"ping","proto":"ICMP","sent":3,"rcvd":3,"avg":20.5,"min":19.0,"max":22.0,
  "result":[{"rtt":19.0,"ttl":56},{"rtt":22.0,"ttl":56},{"rtt":20.5,"ttl":56}]},
 {"fw":5080,"af":6,"dst_addr":"2001:db8:100::1","prb_id":1001,"msm_id":5002,"timestamp":1764115260,
  "type":"ping","sent":4,"rcvd":2,"avg":30.0,"result":[{"x":"*"},{"rtt":29.0,"ttl":60},{"x":"*"},{"rtt":31.0,"ttl":60}]},
 {"fw":5080,"af":4,"dst_addr":"198.51.100.9","prb_id":1001,"msm_id":5003,"timestamp":1764115320,
  "type":"ping","sent":3,"rcvd":0,"avg":-1,"result":[{"x":"*"},{"x":"*"},{"x":"*"}]},
 {"fw":5080,"af":4,"dst_addr":"203.0.113.1","prb_id":1001,"msm_id":5004,"timestamp":1764115380,"type":"ping","sent":3,"rcvd":3,"avg":5},
 {"fw":5080,"af":4,"dst_addr":"198.51.100.10","prb_id":9999,"msm_id":5005,"timestamp":1764115380,"type":"ping","sent":3,"rcvd":3,"avg":5},
 {"fw":5080,"af":4,"dst_addr":"198.51.100.10","prb_id":1001,"msm_id":5006,"timestamp":1764115380,"type":"traceroute"}
]`

// Firmware 1 names the destination "addr" and has no per-reply results;
// the dumps hold one result per line.
const atlasLines = `{"addr":"198.51.100.7","avg":20.126,"dup":0,"from":"192.0.2.201","fw":1,"max":20.3,"min":19.937,"msm_id":1000047,"prb_id":165,"rcvd":3,"sent":3,"size":56,"timestamp":1332938930}
{"fw":5080,"af":4,"dst_addr":"198.51.100.8","prb_id":165,"msm_id":1000048,"timestamp":1332938990,"type":"ping","sent":2,"rcvd":2,"avg":10,"result":[{"rtt":9.0,"ttl":250},{"rtt":11.0,"ttl":250}]}
`

func atlasSource() AtlasSource {
	probes := map[int64][2]uint32{1001: {64501, 64501}, 165: {64502, 0}}
	registered := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")}
	return AtlasSource{
		Via: ProbeVia(probes),
		Prefix: func(a netip.Addr) (netip.Prefix, bool) {
			for _, p := range registered {
				if p.Contains(a) {
					return p, true
				}
			}
			return netip.Prefix{}, false
		},
	}
}

func TestParseAtlasArray(t *testing.T) {
	got, err := ParseAtlas(strings.NewReader(atlasArray), atlasSource())
	if err != nil {
		t.Fatal(err)
	}
	if got.Results != 6 || len(got.Measurements) != 3 {
		t.Fatalf("results %d measurements %d, want 6 and 3 (skipped %v)", got.Results, len(got.Measurements), got.Skipped)
	}
	want := map[string]int{"destination not in a registered prefix": 1, "probe's network unknown": 1, "not a ping result": 1}
	for r, n := range want {
		if got.Skipped[r] != n {
			t.Errorf("skipped %q = %d, want %d (all %v)", r, got.Skipped[r], n, got.Skipped)
		}
	}
	m := got.Measurements[0]
	if m.ViaASN != 64501 || m.Prefix.String() != "198.51.100.0/24" || m.Target.String() != "198.51.100.7" {
		t.Errorf("first: via %d prefix %v target %v", m.ViaASN, m.Prefix, m.Target)
	}
	// RTTs 19, 22, 20.5 ms: mean |diff| = (3 + 1.5) / 2 = 2.25 ms.
	if m.LatencyUs != 20500 || m.JitterUs != 2250 || m.LossPPM != 0 || m.IPHops != 8 || m.ProbesSent != 3 {
		t.Errorf("first: %+v", m)
	}
	if !m.At.Equal(time.Unix(1764115200, 0)) || m.At.Location() != time.UTC || m.IdempotencyKey != "atlas:5001:1001:1764115200" {
		t.Errorf("first: at %v key %q", m.At, m.IdempotencyKey)
	}
	v6 := got.Measurements[1]
	if v6.Prefix.String() != "2001:db8:100::/48" || v6.LossPPM != 500_000 || v6.JitterUs != 2000 || v6.IPHops != 4 {
		t.Errorf("IPv6: %+v", v6)
	}
	dead := got.Measurements[2]
	if dead.LossPPM != 1_000_000 || dead.LatencyUs != 0 {
		t.Errorf("all lost: %+v", dead)
	}
	for i, m := range got.Measurements {
		if err := m.Validate(i, clock.Now()); err != nil {
			t.Errorf("measurement %d does not validate: %v", i, err)
		}
	}
}

func TestParseAtlasLines(t *testing.T) {
	got, err := ParseAtlas(strings.NewReader(atlasLines), atlasSource())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Measurements) != 2 {
		t.Fatalf("measurements %d, want 2 (skipped %v)", len(got.Measurements), got.Skipped)
	}
	if m := got.Measurements[0]; m.LatencyUs != 20126 || m.ViaASN != 64502 || m.Target.String() != "198.51.100.7" {
		t.Errorf("firmware 1: %+v", m)
	}
	if m := got.Measurements[1]; m.IPHops != 5 || m.JitterUs != 2000 {
		t.Errorf("ttl 250 from 255: %+v", m)
	}
}

func TestParseAtlasErrors(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "  \n", "empty input"},
		{"broken record", `[{"dst_addr":"198.51.100.7","sent":3,"timestamp":1}, {"dst_addr": ]`, "result 2"},
		{"bad address", `{"dst_addr":"not-an-ip","sent":3,"timestamp":1}`, `dst_addr "not-an-ip"`},
		{"rcvd above sent", `{"dst_addr":"198.51.100.7","sent":3,"rcvd":4,"timestamp":1}`, "rcvd 4"},
		{"no time", `{"dst_addr":"198.51.100.7","sent":3,"rcvd":3}`, "timestamp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAtlas(strings.NewReader(c.in), atlasSource())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestAtlasProbes(t *testing.T) {
	probes, err := AtlasProbes(strings.NewReader(`{"objects":[{"id":1,"asn_v4":64501,"asn_v6":null},{"id":2,"asn_v4":null,"asn_v6":64502}]}`))
	if err != nil {
		t.Fatal(err)
	}
	via := ProbeVia(probes)
	if asn, ok := via(1, 4); !ok || asn != 64501 {
		t.Errorf("probe 1 v4: %d %v", asn, ok)
	}
	if _, ok := via(1, 6); ok {
		t.Error("probe 1 has no IPv6 ASN")
	}
	if asn, ok := via(2, 6); !ok || asn != 64502 {
		t.Errorf("probe 2 v6: %d %v", asn, ok)
	}
	if _, err := AtlasProbes(strings.NewReader(`{"objects":[]}`)); err == nil {
		t.Error("an empty archive must be an error")
	}
}

func TestJitter(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{5}, 0}, {[]float64{1, 3}, 2}, {[]float64{1, 3, 1, 3}, 2}, {[]float64{10, 10, 10}, 0}} {
		if got := Jitter(c.in); got != c.want {
			t.Errorf("Jitter(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
