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
package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/bwxchange/bwx/shared/bgplog"
	"github.com/bwxchange/bwx/shared/clock"
)

// Large community function numbers of the route server's scheme.
const (
	lcDeliverTo = 1
	lcTrade     = 2
)

// Defaults for zero Config values.
const (
	DefaultPort         = 179
	DefaultHoldTime     = 90 * time.Second
	DefaultRestartTime  = 120 * time.Second
	DefaultConnectRetry = 5 * time.Second
)

// Config configures a Speaker.
type Config struct {
	// ASN is the member's AS number (from its certificate).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr
	// RouteServerASN is the route server's AS number.
	RouteServerASN uint32
	// RouteServers are the route server's addresses; one session each
	// (an IPv4 address carries ipv4-unicast, an IPv6 one ipv6-unicast).
	RouteServers []netip.Addr
	// LocalAddresses, optional, are the source addresses of the
	// sessions: the first of each family is used for that family.
	LocalAddresses []netip.Addr
	// Port is the route server's TCP port (default 179).
	Port uint16
	// HoldTime is the BGP hold time offered (default 90 s).
	HoldTime time.Duration
	// RestartTime is the graceful restart time offered, and the longest
	// the speaker keeps a departed route server's routes (default 120 s).
	RestartTime time.Duration
	// ConnectRetry is the delay between connection attempts (default 5 s).
	ConnectRetry time.Duration
	// MemberRouters, optional, are the member's own routers: the speaker
	// re-announces the traded routes to each over iBGP (our ASN, IPv4 and
	// IPv6 on every session), unchanged: next hop the seller's router,
	// NO_EXPORT and the large communities kept; only the paths
	// SetReannounced lets through (the agent's checked ones), never a
	// default route. Nothing else is sent, and nothing is taken from them.
	MemberRouters []netip.Addr
	// MemberRouterPort is their BGP port (default 179).
	MemberRouterPort uint16
	// MemberRouterLocal, optional, is the source address of those sessions.
	MemberRouterLocal netip.Addr
	// MemberRouterAddPath offers ADD-PATH send to them: every seller of a
	// prefix, not only GoBGP's best path.
	MemberRouterAddPath bool
	// Log receives the speaker's and GoBGP's messages; nil discards.
	Log *slog.Logger
}

func (c *Config) check() error {
	switch {
	case c.ASN == 0 || c.ASN == 23456:
		return fmt.Errorf("speaker: own ASN %d is not a usable AS number", c.ASN)
	case c.RouteServerASN == 0 || c.RouteServerASN == 23456:
		return fmt.Errorf("speaker: route server ASN %d is not a usable AS number", c.RouteServerASN)
	case c.RouteServerASN == c.ASN:
		return fmt.Errorf("speaker: route server ASN %d is our own (sessions must be eBGP)", c.ASN)
	case !c.RouterID.Is4() || c.RouterID.IsUnspecified():
		return fmt.Errorf("speaker: router ID %v: want a non-zero IPv4 address", c.RouterID)
	case len(c.RouteServers) == 0:
		return errors.New("speaker: no route server address")
	case c.HoldTime != 0 && (c.HoldTime < 3*time.Second || c.HoldTime > 65535*time.Second):
		return fmt.Errorf("speaker: hold time %v: want 3s to 65535s", c.HoldTime)
	case c.RestartTime < 0 || c.RestartTime > 4095*time.Second || c.RestartTime%time.Second != 0:
		return fmt.Errorf("speaker: restart time %v: want whole seconds up to 4095s", c.RestartTime)
	case c.ConnectRetry < 0 || c.ConnectRetry%time.Second != 0:
		return fmt.Errorf("speaker: connect retry %v: want whole seconds", c.ConnectRetry)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range c.RouteServers {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("speaker: route server address %v: %w", a, err)
		}
		if seen[a] {
			return fmt.Errorf("speaker: route server address %v listed twice", a)
		}
		seen[a] = true
	}
	for _, a := range c.LocalAddresses {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("speaker: local address %v: %w", a, err)
		}
	}
	for _, a := range c.MemberRouters {
		// Loopback is fine here: the member's router may run on this host.
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("speaker: member router %v: %w", a, err)
		}
		if seen[a] {
			return fmt.Errorf("speaker: member router %v is also a route server or listed twice", a)
		}
		seen[a] = true
	}
	if c.MemberRouterLocal.IsValid() {
		if err := checkAddr(c.MemberRouterLocal); err != nil {
			return fmt.Errorf("speaker: member router local address %v: %w", c.MemberRouterLocal, err)
		}
	}
	return nil
}

func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("invalid address")
	case a.Is4In6():
		return errors.New("use plain IPv4, not IPv4-mapped IPv6")
	case a.Zone() != "" || a.IsLinkLocalUnicast():
		return errors.New("link-local addresses are not supported")
	case a.IsUnspecified() || a.IsMulticast():
		return errors.New("not a unicast address")
	}
	return nil
}

// NextHop is one way to a traded prefix: a seller's router.
type NextHop struct {
	Addr netip.Addr `json:"addr"`
	// Trades are the trade IDs the route server named for this path.
	Trades []uint64 `json:"trades"`
	// Stale: the route server is restarting and has not confirmed it yet.
	Stale bool `json:"stale,omitempty"`
}

// Route is a traded prefix and its next hops, sorted by address.
type Route struct {
	Prefix   netip.Prefix `json:"prefix"`
	NextHops []NextHop    `json:"next_hops"`
}

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
	ready       chan struct{} // closed when every session sent End-of-RIB
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
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = DefaultHoldTime
	}
	if cfg.RestartTime == 0 {
		cfg.RestartTime = DefaultRestartTime
	}
	if cfg.ConnectRetry == 0 {
		cfg.ConnectRetry = DefaultConnectRetry
	}
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

// Ready is closed once every session has sent End-of-RIB (the route
// server has sent all its routes): Routes is then complete. A route server
// without graceful restart sends no End-of-RIB; callers bound the wait.
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
	wctx, cancel := context.WithCancel(context.Background())
	s.watchCancel = cancel
	// POST_POLICY events come from GoBGP's one update path: announcements,
	// withdrawals, and the stale marking and dropping of graceful restart.
	err = s.bgp.WatchEvent(wctx, &api.WatchEventRequest{
		Peer: &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_POST_POLICY},
			{Type: api.WatchEventRequest_Table_Filter_EOR},
		}},
	}, s.onEvent)
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

// Policy names.
const (
	policyExport  = "bwx-export"
	policyImport  = "bwx-import"
	setRouters    = "bwx-member-routers"
	setOurTrades  = "bwx-our-trades"
	setDefault4   = "bwx-default-route-ipv4"
	setDefault6   = "bwx-default-route-ipv6"
	globalRIBName = "global"
)

// installPolicy lets only our traded paths out, and only to the member's
// routers; nothing is taken from those routers. GoBGP v3 has policy only on
// "global" for plain peers; in the export direction a neighbor set matches
// the receiving peer, in the import direction the sending one.
func (s *Speaker) installPolicy(ctx context.Context) error {
	var routers []string
	for _, a := range s.cfg.MemberRouters {
		routers = append(routers, netip.PrefixFrom(a, a.BitLen()).String())
	}
	var stmts []*api.Statement
	if len(routers) > 0 {
		sets := []*api.DefinedSet{
			{DefinedType: api.DefinedType_NEIGHBOR, Name: setRouters, List: routers},
			{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: setOurTrades, List: []string{fmt.Sprintf("^%d:%d:%d$", s.cfg.RouteServerASN, lcDeliverTo, s.cfg.ASN)}},
		}
		for _, d := range sets {
			if err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: d}); err != nil {
				return fmt.Errorf("speaker: defined set %s: %w", d.Name, err)
			}
		}
		// A default route is never handed on, whatever the route server
		// says (the agent's route check refuses it for the kernel too).
		for _, d := range []struct{ set, pfx string }{{setDefault4, "0.0.0.0/0"}, {setDefault6, "::/0"}} {
			err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
				DefinedType: api.DefinedType_PREFIX, Name: d.set,
				Prefixes: []*api.Prefix{{IpPrefix: d.pfx, MaskLengthMin: 0, MaskLengthMax: 0}},
			}})
			if err != nil {
				return fmt.Errorf("speaker: defined set %s: %w", d.set, err)
			}
			stmts = append(stmts, &api.Statement{
				Name:       policyExport + "-" + d.set,
				Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: d.set}},
				Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
			})
		}
		// The paths let through are added by SetReannounced: a statement
		// per seller's router.
		err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policyImport, Statements: []*api.Statement{{
			Name:       policyImport + "-routers",
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: setRouters}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
		}}}})
		if err != nil {
			return fmt.Errorf("speaker: import policy: %w", err)
		}
		err = s.bgp.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: globalRIBName, Direction: api.PolicyDirection_IMPORT,
			Policies: []*api.Policy{{Name: policyImport}}, DefaultAction: api.RouteAction_ACCEPT,
		}})
		if err != nil {
			return fmt.Errorf("speaker: assign import policy: %w", err)
		}
	}
	if len(stmts) > 0 {
		if err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policyExport, Statements: stmts}}); err != nil {
			return fmt.Errorf("speaker: export policy: %w", err)
		}
	}
	a := &api.PolicyAssignment{Name: globalRIBName, Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_REJECT}
	if len(stmts) > 0 {
		a.Policies = []*api.Policy{{Name: policyExport}}
	}
	if err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
		return fmt.Errorf("speaker: export policy: %w", err)
	}
	return nil
}

// nhStatement lets through to the member's routers the traded paths via
// next hop nh for the prefixes in its set.
func nhStatement(nh netip.Addr) *api.Statement {
	return &api.Statement{
		Name: policyExport + "-via-" + nh.String(),
		Conditions: &api.Conditions{
			NeighborSet:       &api.MatchSet{Type: api.MatchSet_ANY, Name: setRouters},
			LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: setOurTrades},
			PrefixSet:         &api.MatchSet{Type: api.MatchSet_ANY, Name: nhSetName(nh)},
			NextHopInList:     []string{netip.PrefixFrom(nh, nh.BitLen()).String()},
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}
}

func nhSetName(nh netip.Addr) string { return "bwx-via-" + nh.String() }

func prefixSet(name string, ps []netip.Prefix) *api.DefinedSet {
	d := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name}
	for _, p := range ps {
		d.Prefixes = append(d.Prefixes, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
	}
	return d
}

// SetReannounced sets which traded paths go on to the member's routers:
// next hop -> prefixes, the paths the agent's route check accepted. Before
// the first call none do, and a default route never does. The export
// policy changes, and the routers' sessions are re-evaluated (a soft reset
// out), only when the set changed.
func (s *Speaker) SetReannounced(ctx context.Context, allowed map[netip.Addr][]netip.Prefix) error {
	if len(s.cfg.MemberRouters) == 0 {
		return nil
	}
	s.reMu.Lock()
	defer s.reMu.Unlock()
	want := make(map[netip.Addr][]netip.Prefix, len(allowed))
	for nh, ps := range allowed {
		var c []netip.Prefix
		for _, p := range ps {
			// A set holds one family; a default route never goes.
			if p.IsValid() && p.Bits() > 0 && p.Addr().Is4() == nh.Is4() {
				c = append(c, p.Masked())
			}
		}
		if len(c) == 0 || !nh.IsValid() {
			continue
		}
		slices.SortFunc(c, netip.Prefix.Compare)
		want[nh] = slices.Compact(c)
	}
	changed := false
	for nh, ps := range want {
		old, ok := s.reannounced[nh]
		if ok && slices.Equal(old, ps) {
			continue
		}
		// The set is changed in place (the statement holds it): new
		// prefixes first, then the old ones go, so it is never empty.
		var add, del []netip.Prefix
		for _, p := range ps {
			if _, found := slices.BinarySearchFunc(old, p, netip.Prefix.Compare); !found {
				add = append(add, p)
			}
		}
		for _, p := range old {
			if _, found := slices.BinarySearchFunc(ps, p, netip.Prefix.Compare); !found {
				del = append(del, p)
			}
		}
		if len(add) > 0 {
			if err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: prefixSet(nhSetName(nh), add)}); err != nil {
				return fmt.Errorf("speaker: re-announce set for %v: %w", nh, err)
			}
		}
		if len(del) > 0 {
			if err := s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: prefixSet(nhSetName(nh), del)}); err != nil {
				return fmt.Errorf("speaker: re-announce set for %v: %w", nh, err)
			}
		}
		if !ok {
			err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policyExport, Statements: []*api.Statement{nhStatement(nh)}}})
			if err != nil {
				return fmt.Errorf("speaker: re-announce via %v: %w", nh, err)
			}
		}
		s.reannounced[nh] = ps
		changed = true
	}
	for nh, old := range s.reannounced {
		if _, ok := want[nh]; ok {
			continue
		}
		err := s.bgp.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyExport, Statements: []*api.Statement{nhStatement(nh)}}})
		if err != nil {
			return fmt.Errorf("speaker: stop re-announcing via %v: %w", nh, err)
		}
		if err := s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: prefixSet(nhSetName(nh), old), All: true}); err != nil {
			return fmt.Errorf("speaker: re-announce set for %v: %w", nh, err)
		}
		delete(s.reannounced, nh)
		changed = true
	}
	if !changed {
		return nil
	}
	var errs []error
	for _, a := range s.cfg.MemberRouters {
		err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_OUT})
		if err != nil {
			errs = append(errs, fmt.Errorf("speaker: re-evaluate what member router %v gets: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

// routerConfig is an iBGP session to one of the member's routers.
func (s *Speaker) routerConfig(a netip.Addr) *api.Peer {
	hold := uint64(s.cfg.HoldTime / time.Second)
	port := s.cfg.MemberRouterPort
	if port == 0 {
		port = DefaultPort
	}
	tr := &api.Transport{RemotePort: uint32(port)}
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

func (s *Speaker) onEvent(ev *api.WatchEventResponse) {
	switch e := ev.Event.(type) {
	case *api.WatchEventResponse_Peer:
		s.onPeer(e.Peer)
	case *api.WatchEventResponse_Table:
		s.onPaths(e.Table.Paths)
	}
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

func (s *Speaker) onPaths(paths []*api.Path) {
	changed := false
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		if changed {
			s.notify()
		}
	}()
	if s.stopped {
		return
	}
	for _, p := range paths {
		peer, err := netip.ParseAddr(p.NeighborIp)
		if err != nil {
			continue
		}
		peer = peer.Unmap()
		ss := s.sessions[peer]
		if ss == nil {
			continue
		}
		if p.Nlri == nil && len(p.NlriBinary) == 0 {
			s.endOfRIB(ss)
			continue
		}
		k, h, err := s.parse(peer, p)
		if err != nil {
			s.log.Warn("unreadable path from the route server", "route_server", peer, "err", err)
			continue
		}
		s.stats.Updates++
		old := s.paths[k]
		if h == nil {
			// A stale path withdrawn (End-of-RIB after a restart, or
			// GoBGP's own restart timer) stays until our restart time
			// ends: after an arbiter restart a trade comes back only
			// once the seller's session is up again, which may be after
			// the route server's End-of-RIB to us.
			if old != nil && old.stale && clock.Now().Before(ss.staleUntil) {
				continue
			}
			if old != nil {
				delete(s.paths, k)
				changed = changed || old.trades != nil
			}
			continue
		}
		if h.stale {
			s.startOutage(ss)
		}
		if h.trades == nil {
			s.stats.Ignored++
			s.log.Debug("ignored a path that is not a trade of ours", "route_server", peer, "prefix", k.prefix, "next_hop", h.nextHop)
		}
		s.paths[k] = h
		if old == nil || old.trades != nil || h.trades != nil {
			changed = true
		}
	}
}

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

// endOfRIB records a session's End-of-RIB. s.mu is held.
func (s *Speaker) endOfRIB(ss *session) {
	if ss.eor {
		return
	}
	ss.eor = true
	s.log.Info("End-of-RIB from the route server", "route_server", ss.addr)
	for _, x := range s.sessions {
		if !x.eor {
			return
		}
	}
	close(s.ready)
}

// parse reads a path; h is nil for a withdrawal.
func (s *Speaker) parse(peer netip.Addr, p *api.Path) (pathKey, *held, error) {
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return pathKey{}, nil, err
	}
	pfx, err := netip.ParsePrefix(nlri.String())
	if err != nil {
		return pathKey{}, nil, fmt.Errorf("prefix %q: %w", nlri.String(), err)
	}
	k := pathKey{peer: peer, prefix: pfx.Masked(), id: p.Identifier}
	if p.IsWithdraw {
		return k, nil, nil
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return k, nil, err
	}
	h := &held{stale: p.Stale}
	var large []*bgp.LargeCommunity
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			h.nextHop, _ = netip.AddrFromSlice(a.Value)
		case *bgp.PathAttributeMpReachNLRI:
			h.nextHop, _ = netip.AddrFromSlice(a.Nexthop)
		case *bgp.PathAttributeLargeCommunities:
			large = a.Values
		}
	}
	h.nextHop = h.nextHop.Unmap()
	h.trades = TradeIDs(s.cfg.RouteServerASN, s.cfg.ASN, large)
	return k, h, nil
}

// TradeIDs returns the trade IDs of a path for buyer asn, or nil if the
// path is not a trade for it: it must carry <rs>:1:<asn> and at least one
// <rs>:2:<trade ID>.
func TradeIDs(rs, asn uint32, large []*bgp.LargeCommunity) []uint64 {
	forUs := false
	var ids []uint64
	for _, c := range large {
		if c == nil || c.ASN != rs {
			continue
		}
		switch c.LocalData1 {
		case lcDeliverTo:
			forUs = forUs || c.LocalData2 == asn
		case lcTrade:
			ids = append(ids, uint64(c.LocalData2))
		}
	}
	if !forUs || len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return slices.Compact(ids)
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

// Routes returns the traded routes learned now, sorted by prefix: the
// desired state of the FIB.
func (s *Speaker) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock.Now()
	type nhAcc struct {
		trades []uint64
		stale  bool
	}
	byPfx := map[netip.Prefix]map[netip.Addr]*nhAcc{}
	for k, h := range s.paths {
		if !s.usable(k, h, now) {
			continue
		}
		m := byPfx[k.prefix]
		if m == nil {
			m = map[netip.Addr]*nhAcc{}
			byPfx[k.prefix] = m
		}
		a := m[h.nextHop]
		if a == nil {
			a = &nhAcc{stale: true}
			m[h.nextHop] = a
		}
		a.trades = append(a.trades, h.trades...)
		a.stale = a.stale && h.stale
	}
	out := make([]Route, 0, len(byPfx))
	for p, m := range byPfx {
		r := Route{Prefix: p}
		for nh, a := range m {
			slices.Sort(a.trades)
			r.NextHops = append(r.NextHops, NextHop{Addr: nh, Trades: slices.Compact(a.trades), Stale: a.stale})
		}
		slices.SortFunc(r.NextHops, func(a, b NextHop) int { return a.Addr.Compare(b.Addr) })
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	return out
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
