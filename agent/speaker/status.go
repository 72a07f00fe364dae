package speaker

import (
	"net/netip"
	"strconv"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/bwxchange/bwx/shared/clock"
)

// Session is the state of one session to the route server.
type Session struct {
	Address netip.Addr `json:"address"`
	State   string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Since   time.Time  `json:"since"`
	// Restarting: the session went down gracefully; its routes are kept
	// (stale) until StaleUntil.
	Restarting bool      `json:"restarting,omitempty"`
	StaleUntil time.Time `json:"stale_until,omitzero"`
	// Paths are the paths held from it; Traded those that are ours;
	// Ignored the others (not for us, or without a trade ID).
	Paths   int `json:"paths"`
	Traded  int `json:"traded"`
	Ignored int `json:"ignored"`
}

// Stats are counters since New.
type Stats struct {
	Updates uint64 `json:"updates"` // path announcements and withdrawals received
	Ignored uint64 `json:"ignored"` // announcements that were not our traded routes
}

// Sessions returns the sessions to the route server.
func (s *Speaker) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock.Now()
	out := make([]Session, 0, len(s.sessions))
	idx := map[netip.Addr]int{}
	for _, a := range s.cfg.RouteServers {
		ss := s.sessions[a]
		x := Session{Address: a, State: stateName(ss.state), Since: ss.since}
		if now.Before(ss.staleUntil) {
			x.Restarting, x.StaleUntil = true, ss.staleUntil.UTC()
		}
		idx[a] = len(out)
		out = append(out, x)
	}
	for k, h := range s.paths {
		x := &out[idx[k.peer]]
		x.Paths++
		if h.trades != nil {
			x.Traded++
		} else {
			x.Ignored++
		}
	}
	return out
}

func stateName(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_UNKNOWN:
		return "unknown"
	case api.PeerState_IDLE:
		return "idle"
	case api.PeerState_CONNECT:
		return "connect"
	case api.PeerState_ACTIVE:
		return "active"
	case api.PeerState_OPENSENT:
		return "opensent"
	case api.PeerState_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_ESTABLISHED:
		return "established"
	}
	return strconv.Itoa(int(st))
}

// RouterSessions returns the sessions to the member's routers.
func (s *Speaker) RouterSessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.routers))
	for _, a := range s.cfg.MemberRouters {
		r := s.routers[a]
		out = append(out, Session{Address: a, State: stateName(r.state), Since: r.since})
	}
	return out
}

// Stats returns the counters since New.
func (s *Speaker) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
