package routeserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/bwxchange/bwx/shared/bgplog"
	"github.com/bwxchange/bwx/shared/bgpwatch"
)

// Config configures a Server.
type Config struct {
	// ASN is the route server's AS number (four-octet ASNs are fine).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr
	// ListenAddrs are the addresses to accept BGP connections on; empty
	// means all ("0.0.0.0" and "::").
	ListenAddrs []string
	// ListenPort is the TCP port; 0 means 179 and -1 no listener.
	ListenPort int32
	// Log receives the route server's and GoBGP's messages; nil discards.
	Log *slog.Logger
	// Checker decides which announced routes are accepted. Required.
	Checker Checker
	// HoldTime is the BGP hold time offered to members; 0 means 90 s.
	// The keepalive interval is a third of it.
	HoldTime time.Duration
	// GracefulRestartTime is the restart time (RFC 4724) offered to
	// members: a member router or agent that helps keeps the routes it has
	// from the route server, marked stale, for this long after the route
	// server goes away, and drops them when it does not come back in time.
	// 0 means 120 s; at most 4095 s (the capability's 12 bits).
	GracefulRestartTime time.Duration
	// Passive makes the route server only accept sessions, never dial:
	// members' routers open them.
	Passive bool
	// RunIn, if set, runs GoBGP's event loop: it must call fn on the
	// calling goroutine and return when fn does. Listening sockets are
	// created on that goroutine, so a RunIn that locks the goroutine to a
	// thread inside a network namespace (labnet's Host.Do) makes the
	// route server listen in that namespace. Outgoing connections are made
	// from other goroutines: combine it with Passive.
	RunIn func(fn func() error) error
	// FlapLimit sessions drops within FlapWindow make the route server
	// hold the session down for FlapDamp (ReasonFlapping), on top of
	// GoBGP's 5 s idle hold after each drop. 0 means the defaults
	// (DefaultFlapLimit, DefaultFlapWindow, DefaultFlapDamp).
	FlapLimit  int
	FlapWindow time.Duration
	FlapDamp   time.Duration
}

// Checker decides whether a member may announce a route; the arbiter's
// implementation consults the registry, IRR route objects and RPKI. It is
// called for every route learned and again by Recheck, without the route
// server's locks held, possibly concurrently.
type Checker interface {
	// Check reports whether memberASN may announce prefix with origin AS
	// originASN (the last AS of the AS_PATH). reason says why not (or,
	// when ok, may say why, e.g. "rpki valid"); it is shown to operators
	// and counted, so keep it short and of few distinct values.
	Check(memberASN uint32, prefix netip.Prefix, originASN uint32) (ok bool, reason string)
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(memberASN uint32, prefix netip.Prefix, originASN uint32) (bool, string)

// Check calls f.
func (f CheckerFunc) Check(memberASN uint32, prefix netip.Prefix, originASN uint32) (bool, string) {
	return f(memberASN, prefix, originASN)
}

// ErrStopped is returned by calls on a Server that was stopped.
var ErrStopped = errors.New("routeserver: stopped")

// ErrNotStarted is returned by calls that need a started Server.
var ErrNotStarted = errors.New("routeserver: not started")

// Server is the route server. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	bgp  *server.BgpServer
	hook exitHook

	// life guards every call into GoBGP: readers hold it shared and check
	// state; Stop takes it exclusively, so nothing calls GoBGP once its
	// event loop is gone (the call would block forever).
	life  sync.RWMutex
	state int // lifeNew, lifeStarted, lifeStopped

	serveDone   chan struct{}
	watchCancel context.CancelFunc

	mu       sync.Mutex // everything below up to syncMu
	members  map[uint32]*member
	nbrs     map[netip.Addr]*neighbor
	trades   map[uint64]Trade
	keys     map[pathKey]map[uint64]bool // trade IDs per path key
	buyersOf map[route]map[uint32]bool   // buyers with a path key per route
	rejudge  map[uint64]bool             // trades whose delivery may have changed
	dirty    map[pathKey]bool
	onRoute  func(RouteEvent)
	closed   map[closeKey]uint64 // session closes by member and reason
	closes   *closeLog

	hookMu sync.Mutex // serialises onRoute calls

	syncMu    sync.Mutex // serialises reconcile; owns the fields below
	announced map[pathKey]*announcedPath
	delivery  map[uint64]map[netip.Addr]Delivery // by trade and buyer session, as last reported
	lastID    uint32

	deliveryMu sync.Mutex // serialises onDelivery calls, in order
	onDelivery func([]DeliveryChange)
}

const (
	lifeNew = iota
	lifeStarted
	lifeStopped
)

// New checks cfg and makes a Server; Start starts it.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = 90 * time.Second
	}
	if cfg.FlapLimit == 0 {
		cfg.FlapLimit = DefaultFlapLimit
	}
	if cfg.FlapWindow == 0 {
		cfg.FlapWindow = DefaultFlapWindow
	}
	if cfg.FlapDamp == 0 {
		cfg.FlapDamp = DefaultFlapDamp
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Log,
		members:   map[uint32]*member{},
		nbrs:      map[netip.Addr]*neighbor{},
		trades:    map[uint64]Trade{},
		keys:      map[pathKey]map[uint64]bool{},
		buyersOf:  map[route]map[uint32]bool{},
		delivery:  map[uint64]map[netip.Addr]Delivery{},
		rejudge:   map[uint64]bool{},
		dirty:     map[pathKey]bool{},
		announced: map[pathKey]*announcedPath{},
		closed:    map[closeKey]uint64{},
		closes:    &closeLog{Logger: bgplog.New(cfg.Log.With("component", "gobgp")), reason: map[netip.Addr]string{}},
	}
	s.bgp = server.NewBgpServer(
		server.LoggerOption(s.closes),
		server.TimingHookOption(&s.hook),
	)
	return s, nil
}

func (c *Config) check() error {
	switch {
	case c.ASN == 0 || c.ASN == asTrans:
		return fmt.Errorf("routeserver: ASN %d is not a usable AS number", c.ASN)
	case !c.RouterID.Is4() || c.RouterID.IsUnspecified():
		return fmt.Errorf("routeserver: router ID %v: want a non-zero IPv4 address", c.RouterID)
	case c.ListenPort < -1 || c.ListenPort > 65535:
		return fmt.Errorf("routeserver: listen port %d out of range (0 means 179, -1 no listener)", c.ListenPort)
	case c.Checker == nil:
		return errors.New("routeserver: no Checker: every announced route must be checked")
	case c.HoldTime != 0 && (c.HoldTime < 3*time.Second || c.HoldTime > 65535*time.Second):
		return fmt.Errorf("routeserver: hold time %v: want 3s to 65535s (or 0 for 90s)", c.HoldTime)
	case c.FlapLimit < 0 || c.FlapWindow < 0 || c.FlapDamp < 0:
		return fmt.Errorf("routeserver: flap limit %d, window %v, damping %v: want none negative (0 for the defaults)", c.FlapLimit, c.FlapWindow, c.FlapDamp)
	case c.GracefulRestartTime < 0 || c.GracefulRestartTime > 4095*time.Second || c.GracefulRestartTime%time.Second != 0:
		return fmt.Errorf("routeserver: graceful restart time %v: want whole seconds up to 4095s (or 0 for 120s)", c.GracefulRestartTime)
	}
	for _, a := range c.ListenAddrs {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("routeserver: listen address %q: %v", a, err)
		}
	}
	return nil
}

const asTrans = 23456

// Start starts GoBGP: its event loop, the listeners, the import and
// export policies and the event watch, then the members and trades
// registered before. ctx only bounds the start itself.
func (s *Server) Start(ctx context.Context) error {
	if err := s.startLocked(ctx); err != nil {
		return err
	}
	return s.reconcile(ctx)
}

func (s *Server) startLocked(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	switch s.state {
	case lifeStarted:
		return errors.New("routeserver: already started")
	case lifeStopped:
		return ErrStopped
	}
	// A busy port is found here, before GoBGP starts: a StartBgp that fails
	// on its listener leaves GoBGP's event loop in a state whose stop can
	// hang (seen under load with v3.37.0). Only a port taken between this
	// check and StartBgp still reaches that path.
	if err := s.checkListen(); err != nil {
		s.state = lifeStopped
		return err
	}
	s.serveDone = make(chan struct{})
	running := make(chan struct{})
	var runErr error
	go func() {
		defer close(s.serveDone)
		serve := func() error {
			close(running)
			s.bgp.Serve() // never returns; stopBGP ends the goroutine
			return nil
		}
		if s.cfg.RunIn == nil {
			serve()
			return
		}
		runErr = s.cfg.RunIn(serve)
	}()
	select {
	case <-running:
	case <-s.serveDone:
		s.state = lifeStopped
		return fmt.Errorf("routeserver: the BGP event loop did not start: RunIn: %v", runErr)
	}
	fail := func(err error) error {
		s.stopBGP()
		s.state = lifeStopped
		return err
	}
	if err := s.start(ctx); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	ms := make([]*member, 0, len(s.members))
	for _, m := range s.members {
		ms = append(ms, m)
	}
	for k := range s.keys {
		s.dirty[k] = true
	}
	s.mu.Unlock()
	for _, m := range ms {
		if err := s.addMemberBGP(ctx, m); err != nil {
			return fail(err)
		}
	}
	s.state = lifeStarted
	return nil
}

// listenAddrs are the addresses and port GoBGP will listen on.
func (s *Server) listenAddrs() ([]string, int32) {
	addrs := s.cfg.ListenAddrs
	if len(addrs) == 0 {
		addrs = []string{"0.0.0.0", "::"}
	}
	port := s.cfg.ListenPort
	if port == 0 {
		port = 179
	}
	return addrs, port
}

// checkListen binds and releases each listen address, in the namespace
// the event loop runs in.
func (s *Server) checkListen() error {
	addrs, port := s.listenAddrs()
	if port < 0 {
		return nil
	}
	check := func() error {
		for _, a := range addrs {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(int(port))))
			if err != nil {
				return fmt.Errorf("routeserver: start BGP (port %d on %v): %w", port, addrs, err)
			}
			l.Close()
		}
		return nil
	}
	if s.cfg.RunIn != nil {
		return s.cfg.RunIn(check)
	}
	return check()
}

func (s *Server) start(ctx context.Context) error {
	addrs, port := s.listenAddrs()
	err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             s.cfg.ASN,
		RouterId:        s.cfg.RouterID.String(),
		ListenPort:      port,
		ListenAddresses: addrs,
	}})
	if err != nil {
		return fmt.Errorf("routeserver: start BGP (port %d on %v): %w", port, addrs, err)
	}
	if err := s.installBasePolicy(ctx); err != nil {
		return err
	}
	// GoBGP calls onPeer and onPaths on its own goroutine, events in order.
	s.watchCancel, err = bgpwatch.Watch(s.bgp, []api.WatchEventRequest_Table_Filter_Type{api.WatchEventRequest_Table_Filter_ADJIN},
		bgpwatch.Handlers{Peer: s.onPeer, Paths: s.onPaths})
	if err != nil {
		return fmt.Errorf("routeserver: watch events: %w", err)
	}
	return nil
}

// Stop closes every session (CEASE), the listeners and GoBGP's event
// loop. Announced trades disappear from the buyers with the sessions.
// Stop is idempotent; the Server cannot be started again.
func (s *Server) Stop() {
	// Taking syncMu and life exclusively waits for calls into GoBGP in
	// flight; once stopped, no new ones start.
	s.syncMu.Lock()
	s.life.Lock()
	was := s.state
	s.state = lifeStopped
	s.life.Unlock()
	s.syncMu.Unlock()
	if was == lifeStarted {
		// Without locks: the event callbacks must be able to finish.
		s.stopBGP()
	}
}

// stopBGP stops GoBGP and ends its event loop, whose goroutine (and the
// thread RunIn may have put in a network namespace) GoBGP v3 would
// otherwise keep forever.
func (s *Server) stopBGP() {
	ctx := context.Background()
	// Close the sessions first and wait until GoBGP reports each
	// established one gone, which it does once the session's goroutines
	// have ended: StopBgp resets the global configuration those
	// goroutines read, without waiting for them (a data race in GoBGP v3).
	s.mu.Lock()
	var addrs []netip.Addr
	var gone []chan struct{}
	for a, n := range s.nbrs {
		addrs = append(addrs, a)
		if n.established() {
			n.gone = make(chan struct{})
			gone = append(gone, n.gone)
		}
	}
	s.mu.Unlock()
	for _, a := range addrs {
		s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()})
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
wait:
	for _, ch := range gone {
		select {
		case <-ch:
		case <-timeout.C:
			s.log.Warn("sessions still closing after 10s; stopping anyway")
			break wait
		}
	}
	if err := s.bgp.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		s.log.Warn("stop BGP", "err", err)
	}
	// The watch is the last caller into the event loop: cancelling it
	// makes the watch goroutine unregister (one management operation),
	// after which the timing hook ends the loop.
	if s.watchCancel != nil {
		s.hook.exitAfter(1)
		s.watchCancel()
	} else {
		s.hook.exitAfter(1)
		s.bgp.GetBgp(ctx, &api.GetBgpRequest{})
	}
	<-s.serveDone
}

// exitHook is GoBGP's timing hook: after exitAfter(n) it ends the event
// loop's goroutine once n more management operations are done.
type exitHook struct {
	armed atomic.Bool
	left  atomic.Int32
}

func (h *exitHook) exitAfter(n int32) {
	h.left.Store(n)
	h.armed.Store(true)
}

// Observe runs on GoBGP's event loop after every operation.
func (h *exitHook) Observe(op server.FSMOperation, _, _ time.Duration) {
	if op != server.FSMMgmtOp || !h.armed.Load() {
		return
	}
	if h.left.Add(-1) <= 0 {
		runtime.Goexit()
	}
}

// begin holds the life lock shared for a call into GoBGP; end releases
// it. It fails unless the server runs.
func (s *Server) begin() error {
	s.life.RLock()
	switch s.state {
	case lifeStarted:
		return nil
	case lifeNew:
		s.life.RUnlock()
		return ErrNotStarted
	default:
		s.life.RUnlock()
		return ErrStopped
	}
}

func (s *Server) end() { s.life.RUnlock() }
