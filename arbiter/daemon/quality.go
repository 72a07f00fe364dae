package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/config"
)

// QualityConfig is the `quality:` section: how the arbiter schedules the
// agents' probes (route analysis, claims 5 and 10) and how fresh a
// measurement must be to count in matching.
type QualityConfig struct {
	// Revalidate is how old a path's latest measurement may get before
	// the vantage's agent is asked to measure it again (claim 10).
	Revalidate time.Duration `yaml:"revalidate"`
	// Retry is how long a task handed out waits for its result before it
	// is handed out again.
	Retry time.Duration `yaml:"retry"`
	// MaxPerRound bounds the tasks one agent gets per round.
	MaxPerRound int `yaml:"max_per_round"`
	// PollInterval is how often an agent's open task stream is re-planned
	// (registry changes re-plan at once).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Freshness is how old a measurement may be and still count as the
	// path's quality; a member's report of an older one is refused.
	Freshness time.Duration `yaml:"freshness"`
	// ReportRate and ReportBurst limit each member's measurement reports:
	// ReportRate rows a second, at most ReportBurst at once (a token
	// bucket per member).
	ReportRate  float64 `yaml:"report_rate"`
	ReportBurst int     `yaml:"report_burst"`
}

// DefaultQualityConfig: revalidate hourly, results expected within 10
// minutes, 200 tasks per round, re-plan every 30 s, 2 h freshness, 20 rows
// a second per member with bursts of 20000.
func DefaultQualityConfig() QualityConfig {
	return QualityConfig{Revalidate: time.Hour, Retry: 10 * time.Minute, MaxPerRound: 200, PollInterval: 30 * time.Second, Freshness: 2 * time.Hour,
		ReportRate: quality.DefaultReportRate, ReportBurst: quality.DefaultReportBurst}
}

func (q *QualityConfig) validate() error {
	switch {
	case q.Revalidate < time.Second:
		return config.Errorf("quality.revalidate", "want at least 1s, got %v", q.Revalidate)
	case q.Retry < time.Second:
		return config.Errorf("quality.retry", "want at least 1s, got %v", q.Retry)
	case q.MaxPerRound < 1 || q.MaxPerRound > 100000:
		return config.Errorf("quality.max_per_round", "want 1 to 100000, got %d", q.MaxPerRound)
	case q.PollInterval < 100*time.Millisecond || q.PollInterval > time.Hour:
		return config.Errorf("quality.poll_interval", "want 100ms to 1h, got %v", q.PollInterval)
	case q.Freshness < q.Revalidate:
		return config.Errorf("quality.freshness", "%v is shorter than quality.revalidate (%v): paths would go stale between validations", q.Freshness, q.Revalidate)
	case !(q.ReportRate >= 0.1 && q.ReportRate <= 1e6):
		return config.Errorf("quality.report_rate", "want 0.1 to 1000000 rows a second, got %v", q.ReportRate)
	case q.ReportBurst < 1000 || q.ReportBurst > 10_000_000:
		return config.Errorf("quality.report_burst", "want 1000 to 10000000 rows (an agent sends up to 500 a report), got %d", q.ReportBurst)
	}
	return nil
}

// newMatrix is the quality matrix with the config's reporting window and
// allowance.
func newMatrix(q QualityConfig, db *store.DB) *quality.Matrix {
	m := quality.New(db, nil)
	m.Window = q.Freshness
	m.Bought = book.BoughtTrades
	m.Limit(q.ReportRate, q.ReportBurst)
	return m
}

// newScheduler plans probe tasks from the registry's sellers and the
// matrix's latest measurements.
func newScheduler(q QualityConfig, reg *registry.Registry, m *quality.Matrix) *quality.Scheduler {
	return &quality.Scheduler{Revalidate: q.Revalidate, Retry: q.Retry, MaxPerRound: q.MaxPerRound,
		Sellers: func(ctx context.Context) ([]quality.Seller, error) { return registrySellers(ctx, reg) },
		Latest:  m.Latest}
}

// registrySellers lists the members with a router on the LAN and
// registered prefixes: every path the agents can measure through.
func registrySellers(ctx context.Context, reg *registry.Registry) ([]quality.Seller, error) {
	ms, err := reg.Members(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := reg.Prefixes(ctx, 0)
	if err != nil {
		return nil, err
	}
	byASN := map[uint32][]netip.Prefix{}
	for _, p := range ps {
		byASN[p.MemberASN] = append(byASN[p.MemberASN], p.Prefix)
	}
	var out []quality.Seller
	for _, m := range ms {
		s := quality.Seller{ASN: m.ASN, Prefixes: byASN[m.ASN]}
		// Network distance: the AS path the member's router announces for
		// the prefix, as the route server accepted it (shortest if several).
		routes, err := reg.Announced(ctx, m.ASN)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if !r.Accepted || len(r.ASPath) == 0 {
				continue
			}
			if s.ASHops == nil {
				s.ASHops = map[netip.Prefix]int32{}
			}
			if h, ok := s.ASHops[r.Prefix]; !ok || int32(len(r.ASPath)) < h {
				s.ASHops[r.Prefix] = int32(len(r.ASPath))
			}
		}
		for _, r := range m.Routers {
			if r.Is4() && !s.NextHop4.IsValid() {
				s.NextHop4 = r
			} else if r.Is6() && !s.NextHop6.IsValid() {
				s.NextHop6 = r
			}
		}
		if len(s.Prefixes) > 0 && (s.NextHop4.IsValid() || s.NextHop6.IsValid()) {
			out = append(out, s)
		}
	}
	return out, nil
}

// wakeProbes makes a registry change also re-plan the open probe task
// streams at once: a new member's prefixes are probed by every other agent
// right away (route analysis, claim 5).
func wakeProbes(changed func(context.Context) error, s *quality.Scheduler) func(context.Context) error {
	return func(ctx context.Context) error {
		defer s.Wake()
		return changed(ctx)
	}
}
