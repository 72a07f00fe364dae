package probe

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/netx"
)

// Measurement is the path quality toward one destination prefix through
// one seller, from one round. Units as in the proto: microseconds and
// parts per million.
type Measurement struct {
	Seller string
	ASN    uint32
	Prefix netip.Prefix
	// Targets are the probed addresses, sorted.
	Targets []netip.Addr
	// At is when the round started (UTC).
	At time.Time
	// Sent and Received count echo requests and their timely replies.
	Sent, Received int32
	// LatencyUs is the mean RTT of the replies; MinUs and MaxUs bound it.
	LatencyUs, MinUs, MaxUs int64
	// JitterUs is the mean absolute difference between the RTTs of
	// consecutive answered probes of the same target (RFC 3550's D(i-1,i),
	// averaged plainly rather than with its 1/16 running filter: a round is
	// a handful of probes). 0 with fewer than two replies per target.
	JitterUs int64
	// LossPPM is the share of requests without a timely reply.
	LossPPM int32
	// IPHops estimates the hop count from the replies' TTL / hop limit:
	// initial value (the smallest of 64, 128, 255 at or above the TTL seen)
	// minus the TTL, plus one; the median over replies. It measures the
	// reply's path, which need not be the request's. 0: no reply.
	IPHops int32
	// ASHops is the AS path length given with the targets (0: unknown).
	ASHops int32
}

// hopsFromTTL estimates hops from a received TTL (see Measurement.IPHops).
func hopsFromTTL(ttl uint8) int32 {
	for _, init := range []int{64, 128, 255} {
		if int(ttl) <= init {
			return int32(init-int(ttl)) + 1
		}
	}
	return 0
}

type pathKey struct {
	seller string
	prefix netip.Prefix
}

// summarize folds a round's per-probe results into per-path Measurements.
func summarize(r *round, count int) []Measurement {
	type acc struct {
		m          Measurement
		sum        int64
		jitSum     int64
		jitN       int64
		hops       []int32
		haveTarget map[netip.Addr]bool
	}
	paths := map[pathKey]*acc{}
	var order []pathKey
	for i, t := range r.targets {
		k := pathKey{t.Seller, t.Prefix}
		a := paths[k]
		if a == nil {
			a = &acc{m: Measurement{Seller: t.Seller, ASN: t.ASN, Prefix: t.Prefix, At: r.start.UTC(), ASHops: t.ASHops, MinUs: -1}, haveTarget: map[netip.Addr]bool{}}
			paths[k] = a
			order = append(order, k)
		}
		if !a.haveTarget[t.Addr] {
			a.haveTarget[t.Addr] = true
			a.m.Targets = append(a.m.Targets, t.Addr)
		}
		a.m.ASHops = max(a.m.ASHops, t.ASHops)
		a.m.Sent += r.sent[i]
		prev := time.Duration(-1)
		for n := 0; n < count; n++ {
			rtt := r.rtts[i][n]
			if rtt < 0 {
				continue
			}
			us := rtt.Microseconds()
			a.m.Received++
			a.sum += us
			if a.m.MinUs < 0 || us < a.m.MinUs {
				a.m.MinUs = us
			}
			a.m.MaxUs = max(a.m.MaxUs, us)
			if prev >= 0 {
				d := (rtt - prev).Microseconds()
				a.jitSum += max(d, -d)
				a.jitN++
			}
			prev = rtt
			if h := hopsFromTTL(r.ttls[i][n]); h > 0 && r.ttls[i][n] > 0 {
				a.hops = append(a.hops, h)
			}
		}
	}
	out := make([]Measurement, 0, len(order))
	for _, k := range order {
		a := paths[k]
		m := a.m
		if m.Received > 0 {
			m.LatencyUs = a.sum / int64(m.Received)
		} else {
			m.MinUs = 0
		}
		if a.jitN > 0 {
			m.JitterUs = a.jitSum / a.jitN
		}
		if m.Sent > 0 {
			m.LossPPM = int32(int64(m.Sent-m.Received) * 1_000_000 / int64(m.Sent))
		}
		if len(a.hops) > 0 {
			slices.Sort(a.hops)
			m.IPHops = a.hops[len(a.hops)/2]
		}
		slices.SortFunc(m.Targets, netip.Addr.Compare)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Measurement) int {
		return cmp.Or(cmp.Compare(a.Seller, b.Seller), netx.ComparePrefix(a.Prefix, b.Prefix))
	})
	return out
}
