package capture

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// benchSet is a table of 1,000,000 prefixes (70 % IPv4 /16-/24, most of
// them /24 as in a full view; 30 % IPv6 /29-/48) and 4096 frames toward
// them (70 % IPv4; 90 % inside some prefix, 10 % anywhere), replayed from
// memory.
var benchSet = sync.OnceValues(func() (*Table, [][]byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 1_000_000
	ps := make([]netip.Prefix, 0, n)
	for len(ps) < n {
		var p netip.Prefix
		if rng.IntN(10) < 7 {
			bits := 24
			if rng.IntN(10) < 4 {
				bits = 16 + rng.IntN(9)
			}
			var a [4]byte
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			p = netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
		} else {
			var a [16]byte
			a[0], a[1] = 0x20, byte(rng.IntN(16))
			for i := 2; i < 8; i++ {
				a[i] = byte(rng.Uint32())
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), 29+rng.IntN(20)).Masked()
		}
		ps = append(ps, p)
	}
	t, err := NewTable(ps)
	if err != nil {
		panic(err)
	}
	var frames [][]byte
	tb := &testing.B{} // only for the helper's signature; it does not fail here
	for range 4096 {
		var dst netip.Addr
		if rng.IntN(10) < 9 {
			// A host inside a random prefix of the right family.
			for {
				p := ps[rng.IntN(len(ps))]
				if p.Addr().Is4() != (rng.IntN(10) < 7) {
					continue
				}
				b := p.Addr().AsSlice()
				for i := p.Bits() / 8; i < len(b); i++ {
					b[i] |= byte(rng.Uint32()) & (0xff >> max(0, p.Bits()-8*i))
				}
				dst, _ = netip.AddrFromSlice(b)
				break
			}
		} else if rng.IntN(10) < 7 {
			dst = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		} else {
			var a [16]byte
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			dst = netip.AddrFrom16(a)
		}
		f := frame(tb, frameOpts{dst: dst.String(), mac: macA, payload: 1000})
		frames = append(frames, f[:min(len(f), DefaultSnapLen)])
	}
	return t, frames
})

func report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// BenchmarkDecode is the baseline: decoding alone.
func BenchmarkDecode(b *testing.B) {
	_, frames := benchSet()
	d := NewDecoder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Decode(frames[i&4095])
	}
	report(b)
}

// BenchmarkDecodeLookup1M is decoding plus longest-prefix match in a
// 1,000,000-prefix table.
func BenchmarkDecodeLookup1M(b *testing.B) {
	t, frames := benchSet()
	d := NewDecoder()
	b.ReportAllocs()
	b.ResetTimer()
	matched := 0
	for i := 0; i < b.N; i++ {
		if c, _, _ := d.classify(frames[i&4095], t); c == Matched {
			matched++
		}
	}
	report(b)
	b.ReportMetric(float64(matched)/float64(b.N), "matched/op")
}

// BenchmarkCount1M is the whole per-frame path of a reader: decode, lookup
// and accounting into the interval's figures.
func BenchmarkCount1M(b *testing.B) {
	t, frames := benchSet()
	m, err := NewMeter(MeterConfig{Interval: time.Minute, Since: base})
	if err != nil {
		b.Fatal(err)
	}
	m.SetTable(t)
	s := m.NewShard()
	ts := base.Add(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Count(frames[i&4095], ts, 1054)
	}
	report(b)
}
