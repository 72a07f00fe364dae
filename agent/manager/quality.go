package manager

import (
	"net/netip"
	"slices"
	"time"
)

type pathKey struct {
	seller uint32
	prefix netip.Prefix
}

// paths keeps the recent probe rounds of each (seller, prefix).
type paths struct {
	rounds int
	m      map[pathKey][]PathSample // sorted by At, at most rounds
}

func newPaths(rounds int) *paths { return &paths{rounds: rounds, m: map[pathKey][]PathSample{}} }

// add keeps s unless it is a round already seen; it returns whether s is new.
func (ps *paths) add(s PathSample) bool {
	k := pathKey{s.Seller, s.Prefix.Masked()}
	rs := ps.m[k]
	i, found := slices.BinarySearchFunc(rs, s.At, func(r PathSample, t time.Time) int { return r.At.Compare(t) })
	if found {
		return false
	}
	rs = slices.Insert(rs, i, s)
	if len(rs) > ps.rounds {
		rs = slices.Delete(rs, 0, len(rs)-ps.rounds)
	}
	ps.m[k] = rs
	return true
}

// smoothed is the median latency and jitter and the pooled loss of the
// kept rounds of a path, if its newest round is at most maxAge old at now.
func (ps *paths) smoothed(seller uint32, p netip.Prefix, now time.Time, maxAge time.Duration) (Quality, bool) {
	rs := ps.m[pathKey{seller, p.Masked()}]
	if len(rs) == 0 || now.Sub(rs[len(rs)-1].At) > maxAge {
		return Quality{}, false
	}
	var lat, jit []int64
	var sent, recv int64
	for _, r := range rs {
		sent += int64(r.Sent)
		recv += int64(r.Received)
		if r.Received > 0 {
			lat = append(lat, r.LatencyUs)
			jit = append(jit, r.JitterUs)
		}
	}
	q := Quality{LatencyUs: median(lat), JitterUs: median(jit)}
	if sent > 0 {
		q.LossPPM = int32((sent - recv) * 1_000_000 / sent)
	}
	if len(lat) == 0 {
		// Nothing came back: as bad as it gets.
		q.LossPPM = 1_000_000
		q.LatencyUs = 1<<63 - 1
	}
	return q, true
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// roundQuality is one round's quality (nothing back: total loss).
func roundQuality(r PathSample) Quality {
	q := Quality{LatencyUs: r.LatencyUs, JitterUs: r.JitterUs, LossPPM: r.LossPPM}
	if r.Sent > 0 && r.Received == 0 {
		q = Quality{LatencyUs: 1<<63 - 1, JitterUs: 1<<63 - 1, LossPPM: 1_000_000}
	}
	return q
}
