package speaker

import (
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// startOutage starts the restart time of a session that went down, once
// per outage: GoBGP reports the paths it marks stale before the session's
// state change, and either may come first. s.mu is held.
func (s *Speaker) startOutage(ss *session) {
	if ss.outage {
		return
	}
	ss.outage = true
	ss.staleUntil = clock.Now().Add(s.cfg.RestartTime)
	addr := ss.addr
	s.timers = append(s.timers, time.AfterFunc(s.cfg.RestartTime+10*time.Millisecond, func() { s.expire(addr) }))
}

// expire drops the stale paths of a session whose restart time is over.
func (s *Speaker) expire(peer netip.Addr) {
	s.mu.Lock()
	ss := s.sessions[peer]
	if ss == nil || s.stopped || clock.Now().Before(ss.staleUntil) {
		s.mu.Unlock()
		return
	}
	n := 0
	for k, h := range s.paths {
		if k.peer == peer && h.stale {
			delete(s.paths, k)
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("graceful restart time over: the route server's stale routes are dropped", "route_server", peer, "paths", n)
	}
	s.notify()
}

// endOfRIB records a session's End-of-RIB; Ready closes once a session
// of each address family has sent one. Every route server of a pair
// announces all the active trades, so one route server's End-of-RIB in a
// family is all of that family's routes: an agent that starts while one
// arbiter is down need not wait the graceful restart time for it. s.mu is
// held.
func (s *Speaker) endOfRIB(ss *session) {
	if ss.eor {
		return
	}
	ss.eor = true
	s.log.Info("End-of-RIB from the route server", "route_server", ss.addr)
	select {
	case <-s.ready:
		return
	default:
	}
	done := map[bool]bool{} // by Is4
	for _, x := range s.sessions {
		done[x.addr.Is4()] = done[x.addr.Is4()] || x.eor
	}
	for _, ok := range done {
		if !ok {
			return
		}
	}
	close(s.ready)
}

// usable tells whether a held path counts now: stale paths of a session
// that has been down longer than RestartTime do not. s.mu is held.
func (s *Speaker) usable(k pathKey, h *held, now time.Time) bool {
	if h.trades == nil || !h.nextHop.IsValid() {
		return false
	}
	if !h.stale {
		return true
	}
	ss := s.sessions[k.peer]
	return ss != nil && now.Before(ss.staleUntil)
}
