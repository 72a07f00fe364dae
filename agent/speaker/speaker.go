// Package speaker is the agent's BGP side: an embedded GoBGP (v3) that
// peers with the exchange's route server and learns the routes this member
// bought.
//
// The route server delivers each trade to its buyer as a path whose
// NEXT_HOP is the seller's router on the exchange LAN, with NO_EXPORT and
// two kinds of large community:
//
//	<route server ASN>:1:<buyer ASN>   the path is for this buyer
//	<route server ASN>:2:<trade ID>    the trade(s) it serves
//
// A path is a traded route of ours only if it carries <RS>:1:<our ASN> and
// at least one <RS>:2:<ID>; anything else is ignored and counted
// (Stats.Ignored, Session.Ignored). Sessions negotiate ADD-PATH receive, so
// several sellers of one prefix all arrive, each as its own next hop.
//
// Graceful restart (RFC 4724, receiving side, with RFC 8538's notification
// flag): when the route server goes away without a Hard Reset (arbiter
// crash or restart), its routes stay, marked stale, until it sends them
// again or Config.RestartTime after the outage began. Unlike plain RFC 4724
// a stale route also outlives the route server's End-of-RIB until then:
// after an arbiter restart a trade comes back only once the seller's
// session is up again, which may be after the End-of-RIB to us. So a trade
// that ended during the outage goes at most RestartTime late.
//
// The speaker only reports: Routes is the desired set (prefix -> next hops
// with their trade IDs) and Updates signals each change. Installing them is
// the FIB's job. Optionally it re-announces the traded paths, unchanged
// (next hop, NO_EXPORT, communities), to the member's own routers over iBGP
// (Config.MemberRouters): those the caller lets through (SetReannounced,
// the agent's route check), never a default route.
//
// GoBGP v3 keeps route selection options in package variables every
// BgpServer writes on start: run one speaker (or other GoBGP) per process.
//
// speaker.go holds the Speaker and its sessions' lifecycle; config.go the
// Config; routes.go how received paths become Routes; restart.go the
// graceful-restart staleness; policy.go what goes on to the member's
// routers; status.go the session views and counters.
package speaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/bwxchange/bwx/shared/bgplog"
	"github.com/bwxchange/bwx/shared/bgpwatch"
	"github.com/bwxchange/bwx/shared/clock"
)

// Large community function numbers of the route server's scheme.
const (
	lcDeliverTo = 1
	lcTrade     = 2
)

// pathKey identifies a received path: session, prefix, ADD-PATH ID.
type pathKey struct {
	peer   netip.Addr
	prefix netip.Prefix
	id     uint32
}

type held struct {
	nextHop netip.Addr
	trades  []uint64 // nil: not ours (ignored)
	stale   bool
}

type session struct {
	addr        netip.Addr
	state       api.PeerState_SessionState
	since       time.Time
	established bool
	// staleUntil is RestartTime after the session last went down: its
	// stale paths count until then, and are dropped then.
	staleUntil time.Time
	// outage: staleUntil was set for the current outage (cleared when the
	// session is established again).
	outage bool
	eor    bool // End-of-RIB received at least once
}

// Speaker is the BGP speaker. Its methods are safe for concurrent use.
type Speaker struct {
	cfg Config
	log *slog.Logger
	bgp *server.BgpServer

	mu       sync.Mutex
	paths    map[pathKey]*held
	sessions map[netip.Addr]*session
	routers  map[netip.Addr]*session // member routers, by address
	stats    Stats
	started  bool
	stopped  bool
	timers   []*time.Timer

	// reMu serializes SetReannounced; reannounced is what it let
	// through: next hop -> prefixes, sorted.
	reMu        sync.Mutex
	reannounced map[netip.Addr][]netip.Prefix

	updates     chan struct{}
	ready       chan struct{} // closed when a session of each family sent End-of-RIB
	watchCancel context.CancelFunc
}

// New checks cfg and makes a Speaker; Start starts it.
func New(cfg Config) (*Speaker, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Port = cmp.Or(cfg.Port, DefaultPort)
	cfg.HoldTime = cmp.Or(cfg.HoldTime, DefaultHoldTime)
	cfg.RestartTime = cmp.Or(cfg.RestartTime, DefaultRestartTime)
	cfg.ConnectRetry = cmp.Or(cfg.ConnectRetry, DefaultConnectRetry)
	cfg.RouteServers = slices.Clone(cfg.RouteServers)
	cfg.MemberRouters = slices.Clone(cfg.MemberRouters)
	s := &Speaker{
		cfg:      cfg,
		log:      cfg.Log,
		paths:    map[pathKey]*held{},
		sessions: map[netip.Addr]*session{},
		routers:  map[netip.Addr]*session{},
		updates:  make(chan struct{}, 1),

		reannounced: map[netip.Addr][]netip.Prefix{},
		ready:       make(chan struct{}),
	}
	for _, a := range cfg.RouteServers {
		s.sessions[a] = &session{addr: a, state: api.PeerState_IDLE, since: clock.Now().UTC()}
	}
	for _, a := range cfg.MemberRouters {
		s.routers[a] = &session{addr: a, state: api.PeerState_IDLE, since: clock.Now().UTC()}
	}
	s.bgp = server.NewBgpServer(server.LoggerOption(bgplog.New(cfg.Log.With("component", "gobgp"))))
	return s, nil
}

// Ready is closed once, in each address family, a session has sent
// End-of-RIB (a route server has sent all its routes): Routes is then
// complete. A route server without graceful restart sends no End-of-RIB;
// callers bound the wait.
func (s *Speaker) Ready() <-chan struct{} { return s.ready }

// Updates receives a value after every change of Routes (changes may be
// coalesced: read Routes after each).
func (s *Speaker) Updates() <-chan struct{} { return s.updates }

func (s *Speaker) notify() {
	select {
	case s.updates <- struct{}{}:
	default:
	}
}

var (
	family4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	family6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// Start starts GoBGP, the event watch and the sessions (the speaker
// dials the route server; it does not listen).
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.stopped {
		s.mu.Unlock()
		return errors.New("speaker: already started")
	}
	s.started = true
	s.mu.Unlock()
	go s.bgp.Serve()
	err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: -1,
	}})
	if err != nil {
		return fmt.Errorf("speaker: start GoBGP: %w", err)
	}
	// POST_POLICY events come from GoBGP's one update path: announcements,
	// withdrawals, and the stale marking and dropping of graceful restart.
	s.watchCancel, err = bgpwatch.Watch(s.bgp, []api.WatchEventRequest_Table_Filter_Type{
		api.WatchEventRequest_Table_Filter_POST_POLICY, api.WatchEventRequest_Table_Filter_EOR,
	}, bgpwatch.Handlers{Peer: s.onPeer, Paths: s.onPaths})
	if err != nil {
		return fmt.Errorf("speaker: watch: %w", err)
	}
	if err := s.installPolicy(ctx); err != nil {
		return err
	}
	for _, a := range s.cfg.RouteServers {
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConfig(a)}); err != nil {
			return fmt.Errorf("speaker: session to %v: %w", a, err)
		}
	}
	for _, a := range s.cfg.MemberRouters {
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: s.routerConfig(a)}); err != nil {
			return fmt.Errorf("speaker: session to member router %v: %w", a, err)
		}
	}
	s.log.Info("BGP speaker started", "asn", s.cfg.ASN, "route_servers", s.cfg.RouteServers, "route_server_asn", s.cfg.RouteServerASN)
	return nil
}

func (s *Speaker) peerConfig(a netip.Addr) *api.Peer {
	fam := family4
	if a.Is6() {
		fam = family6
	}
	hold := uint64(s.cfg.HoldTime / time.Second)
	tr := &api.Transport{RemotePort: uint32(s.cfg.Port)}
	for _, l := range s.cfg.LocalAddresses {
		if l.Is4() == a.Is4() {
			tr.LocalAddress = l.String()
			break
		}
	}
	return &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: a.String(),
			PeerAsn:         s.cfg.RouteServerASN,
			Description:     "bwx route server",
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          hold,
			KeepaliveInterval: max(hold/3, 1),
			ConnectRetry:      uint64(s.cfg.ConnectRetry / time.Second),
		}},
		Transport: tr,
		// Receiving side only: we announce nothing to the route server.
		GracefulRestart: &api.GracefulRestart{
			Enabled:             true,
			HelperOnly:          true,
			RestartTime:         uint32(s.cfg.RestartTime / time.Second),
			NotificationEnabled: true,
		},
		AfiSafis: []*api.AfiSafi{{
			Config:   &api.AfiSafiConfig{Family: fam, Enabled: true},
			AddPaths: &api.AddPaths{Config: &api.AddPathsConfig{Receive: true}},
		}},
	}
}

// routerConfig is an iBGP session to one of the member's routers.
func (s *Speaker) routerConfig(a netip.Addr) *api.Peer {
	hold := uint64(s.cfg.HoldTime / time.Second)
	tr := &api.Transport{RemotePort: uint32(cmp.Or(s.cfg.MemberRouterPort, DefaultPort))}
	if s.cfg.MemberRouterLocal.IsValid() {
		tr.LocalAddress = s.cfg.MemberRouterLocal.String()
	}
	var afis []*api.AfiSafi
	for _, fam := range []*api.Family{family4, family6} {
		afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
		if s.cfg.MemberRouterAddPath {
			afi.AddPaths = &api.AddPaths{Config: &api.AddPathsConfig{SendMax: 255}}
		}
		afis = append(afis, afi)
	}
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: a.String(), PeerAsn: s.cfg.ASN, Description: "member router"},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: uint64(s.cfg.ConnectRetry / time.Second),
		}},
		Transport: tr,
		AfiSafis:  afis,
	}
}

// Stop closes the sessions (CEASE) and stops GoBGP. Routes is empty
// afterwards.
func (s *Speaker) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	started := s.started
	for _, t := range s.timers {
		t.Stop()
	}
	s.mu.Unlock()
	if !started {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Sessions first: StopBgp resets the global config while session
	// goroutines may still read it.
	for _, a := range append(slices.Clone(s.cfg.RouteServers), s.cfg.MemberRouters...) {
		s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()})
	}
	if s.watchCancel != nil {
		s.watchCancel()
	}
	s.bgp.StopBgp(ctx, &api.StopBgpRequest{})
	s.mu.Lock()
	clear(s.paths)
	s.mu.Unlock()
	s.notify()
}

func (s *Speaker) onPeer(pe *api.WatchEventResponse_PeerEvent) {
	if pe.Peer == nil || pe.Peer.State == nil || pe.Type == api.WatchEventResponse_PeerEvent_END_OF_INIT {
		return
	}
	st := pe.Peer.State
	addr, err := netip.ParseAddr(st.NeighborAddress)
	if err != nil {
		return
	}
	addr = addr.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.routers[addr]; r != nil {
		if r.state != st.SessionState {
			r.since = clock.Now().UTC()
		}
		r.state = st.SessionState
		up := st.SessionState == api.PeerState_ESTABLISHED
		if up != r.established {
			s.log.Info("member router session", "router", addr, "established", up)
		}
		r.established = up
		return
	}
	ss := s.sessions[addr]
	if ss == nil || s.stopped {
		return
	}
	if ss.state != st.SessionState {
		ss.since = clock.Now().UTC()
	}
	ss.state = st.SessionState
	up := st.SessionState == api.PeerState_ESTABLISHED
	switch {
	case up && !ss.established:
		ss.outage = false
		s.log.Info("route server session up", "route_server", addr)
	case !up && ss.established:
		s.startOutage(ss)
		s.log.Warn("route server session down; its routes stay (stale) for the graceful restart time", "route_server", addr, "state", st.SessionState.String(), "restart_time", s.cfg.RestartTime.String())
	}
	ss.established = up
	s.notify()
}
