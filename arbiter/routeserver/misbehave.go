package routeserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"

	"github.com/bwxchange/bwx/shared/clock"
)

// Limits on what a member's session may do (see the README's route-server
// section for the whole list, with GoBGP's own).
const (
	// MaxASPathLen is the longest AS_PATH accepted (ASNs, prepends
	// included): a longer one is rejected with ReasonASPathTooLong. A
	// trade's path carries the seller's AS_PATH to the buyer, so a huge
	// one would be passed on; 64 is what IXP route servers commonly use.
	MaxASPathLen = 64

	// Defaults of Config.FlapLimit, FlapWindow and FlapDamp.
	DefaultFlapLimit  = 4
	DefaultFlapWindow = 2 * time.Minute
	DefaultFlapDamp   = 5 * time.Minute
)

// ReasonASPathTooLong: the AS_PATH has more than MaxASPathLen ASNs.
var ReasonASPathTooLong = fmt.Sprintf("AS_PATH longer than %d", MaxASPathLen)

// ReasonMaxPrefix is the close reason of a session GoBGP shut down for
// announcing more than its max_prefixes. GoBGP's own "Peer Down" reason
// races with the member closing its end on the NOTIFICATION (then it says
// "read-failed"); the admin state it sets before sending is not racy.
const ReasonMaxPrefix = "notification-sent code 6(cease) subcode 1(maximum number of prefixes reached)"

// ReasonFlapping is the close reason of a session the route server shut
// down for flapping (Config.FlapLimit).
const ReasonFlapping = "dampened: flapping"

// SessionClose counts the times a member's sessions were closed, by
// reason: GoBGP's ("notification-sent hold timer expired",
// "write-failed", "notification-received cease", ...) or ours
// (ReasonFlapping).
type SessionClose struct {
	ASN    uint32
	Reason string
	Count  uint64
}

type closeKey struct {
	asn    uint32
	reason string
}

// closeLog passes GoBGP's messages on and keeps the reason of each
// "Peer Down" by neighbor: GoBGP's peer events do not carry it, and
// GoBGP logs it before it reports the state change.
type closeLog struct {
	gobgplog.Logger
	mu     sync.Mutex
	reason map[netip.Addr]string
}

func (l *closeLog) Info(msg string, f gobgplog.Fields) {
	if msg == "Peer Down" {
		key, _ := f["Key"].(string)
		reason, _ := f["Reason"].(string)
		if a, err := netip.ParseAddr(key); err == nil {
			l.mu.Lock()
			l.reason[a.Unmap()] = reason
			l.mu.Unlock()
		}
	}
	l.Logger.Info(msg, f)
}

// take returns and forgets the last down reason of a.
func (l *closeLog) take(a netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.reason[a]
	if !ok {
		return "unknown"
	}
	delete(l.reason, a)
	return r
}

// sessionClosed records and logs why n went down, and dampens it when it
// has flapped too often. s.mu is not held.
func (s *Server) sessionClosed(n *neighbor, st *api.PeerState) {
	reason := s.closes.take(n.addr)
	if st.GetAdminState() == api.PeerState_PFX_CT {
		reason = ReasonMaxPrefix
	}
	now := clock.Now()
	s.mu.Lock()
	s.closed[closeKey{n.asn, reason}]++
	limit, window := s.cfg.FlapLimit, s.cfg.FlapWindow
	n.downs = append(slices.DeleteFunc(n.downs, func(t time.Time) bool { return now.Sub(t) > window }), now)
	damp := len(n.downs) >= limit && s.nbrs[n.addr] == n
	if damp {
		n.downs = nil
		n.dampedUntil = now.Add(s.cfg.FlapDamp)
		s.closed[closeKey{n.asn, ReasonFlapping}]++
	}
	s.mu.Unlock()
	s.log.Warn("member session closed", "asn", n.asn, "neighbor", n.addr, "reason", reason,
		"state", st.SessionState.String(), "admin", st.AdminState.String())
	if damp {
		s.log.Warn("member session dampened: flapping", "asn", n.asn, "neighbor", n.addr,
			"downs", limit, "within", window, "for", s.cfg.FlapDamp)
		go s.dampen(n)
	}
}

// dampen keeps n's session administratively down for FlapDamp, then lets
// the router reconnect.
func (s *Server) dampen(n *neighbor) {
	err := s.setPeerEnabled(n, false, fmt.Sprintf("session flapping: held down for %v", s.cfg.FlapDamp))
	if err != nil {
		if !errors.Is(err, ErrStopped) {
			s.log.Error("dampen a flapping session", "neighbor", n.addr, "err", err)
		}
		return
	}
	time.AfterFunc(s.cfg.FlapDamp, func() {
		s.mu.Lock()
		live := s.nbrs[n.addr] == n && !n.dampedUntil.IsZero()
		n.dampedUntil = time.Time{}
		s.mu.Unlock()
		if !live {
			return // removed, replaced or reset meanwhile: enabled already
		}
		if err := s.setPeerEnabled(n, true, ""); err != nil && !errors.Is(err, ErrStopped) {
			s.log.Error("re-enable a dampened session", "neighbor", n.addr, "err", err)
			return
		}
		s.log.Info("member session no longer dampened", "asn", n.asn, "neighbor", n.addr)
	})
}

func (s *Server) setPeerEnabled(n *neighbor, on bool, why string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if on {
		return s.bgp.EnablePeer(ctx, &api.EnablePeerRequest{Address: n.addr.String()})
	}
	return s.bgp.DisablePeer(ctx, &api.DisablePeerRequest{Address: n.addr.String(), Communication: why})
}

// SessionsClosed counts the closes of every member's sessions since the
// start, by member and reason.
func (s *Server) SessionsClosed() []SessionClose {
	s.mu.Lock()
	out := make([]SessionClose, 0, len(s.closed))
	for k, c := range s.closed {
		out = append(out, SessionClose{ASN: k.asn, Reason: k.reason, Count: c})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionClose) int {
		if c := cmp.Compare(a.ASN, b.ASN); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
	return out
}
