package settle

import (
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// UseRule defines sustained overuse and underuse of a trade (claim 16):
// use above OverPercent of the capacity, or below UnderPercent, for at
// least MinDuration of consecutive slots. A slot with no figure
// breaks a run.
type UseRule struct {
	OverPercent  int64         `yaml:"over_percent"`
	UnderPercent int64         `yaml:"under_percent"`
	MinDuration  time.Duration `yaml:"min_duration"`
}

// Validate names the first bad field; slot is the settlement's.
func (r UseRule) Validate(slot time.Duration) error {
	switch {
	case r.OverPercent < 1 || r.OverPercent > 1000:
		return invalid.New("use.over_percent", "must be 1..1000, got %d", r.OverPercent)
	case r.UnderPercent < 0 || r.UnderPercent >= r.OverPercent:
		return invalid.New("use.under_percent", "must be 0..over_percent-1, got %d", r.UnderPercent)
	case r.MinDuration < slot:
		return invalid.New("use.min_duration", "must be at least %s (settle.slot), got %s", slot, r.MinDuration)
	}
	return nil
}

// UseKind says which way a trade's use left its capacity.
type UseKind int

const (
	Overuse  UseKind = 1
	Underuse UseKind = 2
)

func (k UseKind) String() string {
	if k == Overuse {
		return "overuse"
	}
	return "underuse"
}

// Point is the billed figure of one slot: use against capacity over time.
type Point struct {
	Start    time.Time
	End      time.Time
	Bps      int64
	Disputed bool
}

// UseOverTime is a trade's billed use per slot in [from, to), chosen as
// billing under cfg chooses it.
func UseOverTime(samples []Sample, from, to time.Time, policy Policy, cfg Config) []Point {
	var ps []Point
	e := cfg.Errors()
	for _, s := range Slots(samples, cfg.Slot, from, to) {
		if c, ok := Choose(s, policy, e); ok {
			ps = append(ps, Point{Start: s.Start, End: s.Start.Add(cfg.Slot), Bps: c.Bps, Disputed: c.Disputed})
		}
	}
	return ps
}

// UseEvent is a sustained overuse or underuse of a trade, [Start, End).
type UseEvent struct {
	TradeID     int64
	Kind        UseKind
	Start, End  time.Time
	CapacityBps int64
	PeakBps     int64 // highest slot in the run
	MinBps      int64 // lowest slot in the run
}

// Events finds the runs in points (sorted by time) that last at least
// MinDuration. A run still going at the last point is reported up to its
// end, so a caller that feeds growing series sees it again, longer: key
// notifications on (TradeID, Kind, Start).
func (r UseRule) Events(tradeID, capacityBps int64, points []Point) []UseEvent {
	over := capacityBps * r.OverPercent / 100
	under := capacityBps * r.UnderPercent / 100
	kind := func(bps int64) UseKind {
		switch {
		case bps > over:
			return Overuse
		case bps < under:
			return Underuse
		}
		return 0
	}
	var evs []UseEvent
	var cur *UseEvent
	flush := func() {
		if cur != nil && cur.End.Sub(cur.Start) >= r.MinDuration {
			evs = append(evs, *cur)
		}
		cur = nil
	}
	for _, p := range points {
		k := kind(p.Bps)
		if cur != nil && (k != cur.Kind || !p.Start.Equal(cur.End)) {
			flush()
		}
		if k == 0 {
			continue
		}
		if cur == nil {
			cur = &UseEvent{TradeID: tradeID, Kind: k, Start: p.Start, CapacityBps: capacityBps, PeakBps: p.Bps, MinBps: p.Bps}
		}
		cur.End = p.End
		cur.PeakBps, cur.MinBps = max(cur.PeakBps, p.Bps), min(cur.MinBps, p.Bps)
	}
	flush()
	return evs
}
