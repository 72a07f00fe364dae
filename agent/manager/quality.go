package manager

import (
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/pathscore"
)

type pathKey struct {
	seller uint32
	prefix netip.Prefix
}

// keptRounds bounds the probe rounds kept per path beyond what the policy
// smooths over: enough to reach quality.min_probes with small rounds.
const keptRounds = 100

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

// smoothed pools the newest `rounds` rounds of a path, and older ones
// (still within maxAge) while they hold fewer than minProbes echo
// requests, if its newest round is at most maxAge old at now.
func (ps *paths) smoothed(seller uint32, p netip.Prefix, now time.Time, maxAge time.Duration, rounds int, minProbes int64) (Quality, bool) {
	rs := ps.m[pathKey{seller, p.Masked()}]
	if len(rs) == 0 || now.Sub(rs[len(rs)-1].At) > maxAge {
		return Quality{}, false
	}
	i := max(0, len(rs)-rounds)
	var sent int64
	for _, r := range rs[i:] {
		sent += int64(r.Sent)
	}
	for i > 0 && sent < minProbes && now.Sub(rs[i-1].At) <= maxAge {
		i--
		sent += int64(rs[i].Sent)
	}
	return pool(rs[i:]), true
}

// pool is the quality of rounds taken together: the loss over every echo
// request sent (with its dispersion between rounds); the latency and jitter means of the rounds that had
// replies, weighted by replies, with their standard errors (between the
// rounds, plus within them from each round's jitter; one round: its
// jitter over the square root of its replies).
func pool(rs []PathSample) Quality {
	var sent, recv int64
	var lat, jit, lat2, jit2, within float64
	n := 0
	for _, r := range rs {
		sent += int64(r.Sent)
		recv += int64(r.Received)
	}
	q := Quality{Probes: sent, Rounds: len(rs)}
	if sent > 0 {
		q.LossPPM = int32((sent - recv) * 1_000_000 / sent)
	}
	ns, ks := make([]int64, len(rs)), make([]int64, len(rs))
	for i, r := range rs {
		ns[i], ks[i] = int64(r.Sent), int64(max(0, r.Sent-r.Received))
	}
	if d := pathscore.Dispersion(ns, ks); d > 1 {
		q.LossDispersion = math.Round(d*100) / 100
	}
	var replies float64
	for _, r := range rs {
		if r.Received <= 0 {
			continue
		}
		w := float64(r.Received)
		replies += w
		lat += w * float64(r.LatencyUs)
		jit += w * float64(r.JitterUs)
		within += w * float64(r.JitterUs) * float64(r.JitterUs)
		n++
	}
	if n == 0 {
		// Nothing came back: as bad as it gets.
		q.LossPPM = 1_000_000
		q.LatencyUs = 1<<63 - 1
		return q
	}
	lat, jit = lat/replies, jit/replies
	for _, r := range rs {
		if r.Received > 0 {
			lat2 += (float64(r.LatencyUs) - lat) * (float64(r.LatencyUs) - lat)
			jit2 += (float64(r.JitterUs) - jit) * (float64(r.JitterUs) - jit)
		}
	}
	q.LatencyUs, q.JitterUs = int64(math.Round(lat)), int64(math.Round(jit))
	seWithin := within / replies / replies
	if n == 1 {
		q.LatencyErrUs = int64(math.Round(math.Sqrt(seWithin)))
		q.JitterErrUs = q.JitterUs // one round says nothing of its jitter's spread
		return q
	}
	q.LatencyErrUs = int64(math.Round(math.Sqrt(lat2/float64(n-1)/float64(n) + seWithin)))
	q.JitterErrUs = int64(math.Round(math.Sqrt(jit2 / float64(n-1) / float64(n))))
	return q
}

// roundQuality is one round's quality (nothing back: total loss).
func roundQuality(r PathSample) Quality {
	q := Quality{LatencyUs: r.LatencyUs, JitterUs: r.JitterUs, LossPPM: r.LossPPM, Probes: int64(r.Sent), Rounds: 1}
	if r.Sent > 0 && r.Received == 0 {
		q = Quality{LatencyUs: 1<<63 - 1, JitterUs: 1<<63 - 1, LossPPM: 1_000_000, Probes: int64(r.Sent), Rounds: 1}
	}
	return q
}

// figures is q as the path score reads it.
func (q Quality) figures() pathscore.Figures {
	return pathscore.Figures{LatencyUs: q.LatencyUs, JitterUs: q.JitterUs, LossPPM: q.LossPPM, Probes: q.Probes,
		LatencyErrUs: q.LatencyErrUs, JitterErrUs: q.JitterErrUs, LossDispersion: q.LossDispersion}
}

// beyond tells whether q is significantly beyond l: some figure's 95 %
// interval lies wholly above its limit. A figure merely above its limit
// by less than its uncertainty is not (no decision on noise).
func (l Limits) beyond(q Quality) bool {
	return q.figures().Beyond(l.MaxLatencyUs, l.MaxJitterUs, l.MaxLossPPM)
}
