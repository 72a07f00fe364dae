package manager

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/pathscore"
)

// day simulates 24 h of 5-minute rounds toward an IPv4 and an IPv6
// destination: the default path at 30 ms, seller A jittering between 23
// and 27 ms (the 5 ms threshold right in the middle of its gain), B
// between 18 and 32 ms, both offering 2-hour terms. It returns the
// changes (buys, switches, cancels) with their times, and the renewals.
func day(t *testing.T, p Policy, seed uint64) (changes []time.Time, renewals int) {
	changes, renewals, _ = lossyDay(t, p, seed, false)
	return changes, renewals
}

// lossyDay is day, with each path's rounds losing 0 to 3 of their 100
// probes at random when lossy (noise: no path is lossier than another). It
// also returns the decisions that moved traffic.
func lossyDay(t *testing.T, p Policy, seed uint64, lossy bool) (changes []time.Time, renewals int, moves []Decision) {
	m := newManager(t, p)
	rng := rand.New(rand.NewPCG(seed, 1))
	lossRng := rand.New(rand.NewPCG(seed, 2)) // the latency noise stays the clean day's
	k := newMarket()
	dests := []netip.Prefix{pfx4, pfx6}
	for i, d := range dests {
		k.offers = append(k.offers, offer(uint64(10*i+1), asA, d, 2*unit, 10000*mbps), offer(uint64(10*i+2), asB, d, 2*unit, 10000*mbps))
	}
	for r := range 288 {
		now := t0.Add(time.Duration(r) * 5 * time.Minute)
		for _, d := range dests {
			demand(m, d, 40*mbps+rng.Int64N(5*mbps), 1, now)
			if r == 0 {
				demand(m, d, 40*mbps, 12, now)
			}
			loss := func() int32 {
				if !lossy {
					return 0
				}
				return int32(lossRng.IntN(4)) * 10_000
			}
			probe(m, DefaultPath, d, now, 29+rng.Int64N(3), loss())
			probe(m, asA, d, now, 23+rng.Int64N(5), loss())
			probe(m, asB, d, now, 18+rng.Int64N(15), loss())
		}
		ds := m.Step(k.inputs(now))
		k.apply(ds)
		for _, d := range ds {
			if d.Kind.changes() {
				changes = append(changes, d.At)
			}
			if d.Kind == KindBuy || d.Kind == KindSwitch {
				moves = append(moves, d)
			}
			if d.Kind == KindRenew {
				renewals++
			}
		}
	}
	return changes, renewals, moves
}

func maxPerHour(ts []time.Time) int {
	most := 0
	for i := range ts {
		n := 0
		for _, u := range ts[i:] {
			if u.Sub(ts[i]) < time.Hour {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// noisyPolicy buys by performance for 2-hour terms, with 50 % hysteresis,
// 6-hour hold-downs and at most 2 changes an hour.
func noisyPolicy() Policy {
	p := testPolicy()
	p.Quality.Rounds = 3
	p.Buy.Ranking = ByPerformance
	p.Buy.Term = 2 * time.Hour
	p.Buy.RenewBefore = 30 * time.Minute
	p.Stability = StabilityPolicy{Hysteresis: 50, RebuyHoldDown: 6 * time.Hour, SwitchHoldDown: 6 * time.Hour, MaxChangesPerHour: 2}
	return p
}

// checkBounds checks a noisy day's changes against the stability bounds.
// Per destination: the first buy, a switch at most every 6 h, a rebuy at
// most every 6 h after a lapse; at most perHour an hour.
func checkBounds(t *testing.T, seed uint64, changes []time.Time, perHour int) {
	t.Helper()
	limit := 2 * (1 + 24/6)
	if len(changes) > limit || maxPerHour(changes) > perHour {
		t.Errorf("seed %d: %d changes (at most %d), %d in one hour (cap %d)", seed, len(changes), limit, maxPerHour(changes), perHour)
	}
}

func TestNoisyDayDoesNotFlap(t *testing.T) {
	p := noisyPolicy()
	// Without hysteresis, hold-downs and a real cap the same noise makes
	// the manager flap: the test could fail.
	loose := p
	loose.Stability = StabilityPolicy{MaxChangesPerHour: 1000}
	// The changes each seed's day made before the path score (latency
	// first, every difference counted, medians): comparing only
	// significant differences must not make more.
	before := []int{5, 5, 4, 4, 6}
	for seed := range uint64(5) {
		changes, renewals := day(t, p, seed)
		if len(changes) > before[seed] {
			t.Errorf("seed %d: %d changes, %d before the path score", seed, len(changes), before[seed])
		}
		checkBounds(t, seed, changes, p.Stability.MaxChangesPerHour)
		if len(changes) == 0 || renewals == 0 {
			t.Errorf("seed %d: %d changes, %d renewals: the simulation bought nothing", seed, len(changes), renewals)
		}
		flaps, _ := day(t, loose, seed)
		if len(flaps) <= 2*len(changes) {
			t.Errorf("seed %d: without stability %d changes, with %d: the noise is not noisy enough to test", seed, len(flaps), len(changes))
		}
		t.Logf("seed %d: %d changes and %d renewals with stability, %d without", seed, len(changes), renewals, len(flaps))
	}
}

// Random probe loss on every path (0 to 3 % a round, the same for all) on
// the noisy day: the stability bounds hold, and no move goes to a path
// significantly lossier than the one it leaves. (It may make a change or
// two more than the clean day: over a day of comparisons, noise this size
// now and then gives 8 of 300 lost against none of 300, beyond the 95 %
// intervals, and that counts as a real difference; hysteresis and the
// hold-downs bound what such rare false differences can do.)
func TestNoisyLossAddsNoChanges(t *testing.T) {
	p := noisyPolicy()
	for seed := range uint64(5) {
		clean, _ := day(t, p, seed)
		changes, renewals, moves := lossyDay(t, p, seed, true)
		checkBounds(t, seed, changes, p.Stability.MaxChangesPerHour)
		for _, d := range moves {
			if d.Current != nil && pathscore.Worse(pathscore.Loss, d.Chosen.figures(), d.Current.figures()) {
				t.Errorf("seed %d: moved to a significantly lossier path: %s", seed, d)
			}
		}
		t.Logf("seed %d: %d changes and %d renewals with random loss, %d without", seed, len(changes), renewals, len(clean))
	}
}
