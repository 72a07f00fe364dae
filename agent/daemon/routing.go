package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/speaker"
	"github.com/bwxchange/bwx/shared/clock"
)

// Routing applies the routes the member bought: the speaker learns them
// from the route server, the FIB installs them, and the neighbor watch
// pulls a route whose seller's router stops answering on the LAN.
type Routing struct {
	cfg Config
	log *slog.Logger
	asn uint32
	sp  *speaker.Speaker
	fib *fib.FIB

	mu       sync.Mutex
	desired  []speaker.Route
	synced   bool      // the first Sync was made
	lastSync time.Time // of the last successful Sync
	result   fib.Result
	syncErr  error
	refused  map[string]bool     // refusals already logged
	inUse    map[netip.Addr]bool // next hops of the desired routes
	nbrState map[netip.Addr]string
	down     map[netip.Addr]bool // marked down from neighbor state
	resync   chan struct{}
	// prefs is the access manager's choice per destination (Prefer);
	// prefLens the prefix lengths in it, longest first.
	prefs    map[netip.Prefix]preference
	prefLens []int
}

// preference is the seller whose next hops a destination's traded route
// keeps; seller 0 (the default path) keeps none.
type preference struct {
	seller uint32
	hops   []netip.Addr
}

// NewRouting prepares the speaker and the FIB for member asn; Run starts
// them.
func NewRouting(cfg Config, asn uint32, log *slog.Logger) (*Routing, error) {
	if err := cfg.validateRouting(); err != nil {
		return nil, err
	}
	if !cfg.Routing() {
		return nil, errors.New("no bgp.route_servers configured")
	}
	rs, _ := parseAddrs("bgp.route_servers", cfg.BGP.RouteServers)
	local, _ := parseAddrs("bgp.local_addresses", cfg.BGP.LocalAddresses)
	rid, _ := cfg.BGP.routerID()
	table, _ := cfg.FIB.TableID()
	routers, _ := parseMemberRouters(&cfg.BGP)
	var routerLocal netip.Addr
	if s := cfg.BGP.MemberRouter.LocalAddress; s != "" {
		routerLocal, _ = netip.ParseAddr(s)
	}
	sp, err := speaker.New(speaker.Config{
		ASN:            asn,
		RouterID:       rid,
		RouteServerASN: cfg.BGP.RouteServerASN,
		RouteServers:   rs,
		LocalAddresses: local,
		Port:           cfg.BGP.Port,
		HoldTime:       cfg.BGP.HoldTime,
		RestartTime:    cfg.BGP.GracefulRestartTime,
		ConnectRetry:   cfg.BGP.ConnectRetry,

		MemberRouters:       routers,
		MemberRouterPort:    cfg.BGP.MemberRouter.Port,
		MemberRouterLocal:   routerLocal,
		MemberRouterAddPath: cfg.BGP.MemberRouter.AddPath,

		Log: log.With("component", "speaker"),
	})
	if err != nil {
		return nil, err
	}
	f, err := fib.New(fib.Config{
		Table:      table,
		Interface:  cfg.FIB.Interface,
		KeepOnStop: cfg.FIB.KeepRoutesOnStop,
		Log:        log.With("component", "fib"),
	})
	if err != nil {
		return nil, fmt.Errorf("fib: %w", err)
	}
	return &Routing{
		cfg: cfg, log: log, asn: asn, sp: sp, fib: f,
		refused:  map[string]bool{},
		inUse:    map[netip.Addr]bool{},
		nbrState: map[netip.Addr]string{},
		down:     map[netip.Addr]bool{},
		resync:   make(chan struct{}, 1),
		prefs:    map[netip.Prefix]preference{},
	}, nil
}

// Run starts the speaker, the FIB's repair watch and the neighbor watch,
// applies every change of the traded routes until ctx is done, and then
// stops: the sessions close and the routes are removed, or kept with
// fib.keep_routes_on_stop.
//
// The first Sync waits until the route server has sent all its routes
// (End-of-RIB on every session) or the graceful restart time has passed,
// so routes a previous run left (keep_routes_on_stop) stay in place until
// BGP confirms or drops them: a restart leaves no gap.
func (r *Routing) Run(ctx context.Context) error {
	defer r.fib.Close()
	if err := r.sp.Start(ctx); err != nil {
		r.sp.Stop()
		return err
	}
	defer r.sp.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := r.fib.Watch(wctx); err != nil {
			r.log.Error("fib: cannot watch the routing table; routes others delete are not repaired", "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := r.watchNeighbors(wctx); err != nil {
			r.log.Error("cannot watch neighbor entries; a seller's router that stops answering is not noticed", "error", err)
		}
	}()

	initial := time.NewTimer(r.cfg.BGP.GracefulRestartTime)
	defer initial.Stop()
	ready := r.sp.Ready()
	for {
		select {
		case <-ctx.Done():
			r.log.Info("routing stopping", "keep_routes_on_stop", r.cfg.FIB.KeepRoutesOnStop)
			if !r.cfg.FIB.KeepRoutesOnStop {
				r.forgetNeighbors()
			}
			return nil
		case <-ready:
			ready = nil
			r.log.Info("route server sent all its routes (End-of-RIB)")
			r.sync()
		case <-initial.C:
			if !r.isSynced() {
				r.log.Warn("no End-of-RIB from the route server within the graceful restart time; applying what was learned")
				r.sync()
			}
		case <-r.sp.Updates():
			if ready == nil || r.isSynced() {
				r.sync()
			}
		case <-r.resync:
			if r.isSynced() {
				r.sync()
			}
		}
	}
}

func (r *Routing) isSynced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced
}

// Prefer makes the traded route toward p (and toward prefixes inside it)
// keep only seller's next hops, hops being that seller's routers on the
// LAN: the access manager's choice when several sellers deliver p. Seller
// 0 (the default path) installs no traded route for p, so traffic takes
// the member's own path. If the preferred seller delivers no route for p
// the others are kept: a route the member bought is better than none.
func (r *Routing) Prefer(p netip.Prefix, seller uint32, hops []netip.Addr) {
	p = p.Masked()
	r.mu.Lock()
	r.prefs[p] = preference{seller: seller, hops: slices.Clone(hops)}
	if !slices.Contains(r.prefLens, p.Bits()) {
		r.prefLens = append(r.prefLens, p.Bits())
		slices.SortFunc(r.prefLens, func(a, b int) int { return b - a })
	}
	r.mu.Unlock()
	r.log.Info("traded route preference", "prefix", p.String(), "seller", seller)
	r.kick()
}

// preferred applies the preferences to one learned route.
func (r *Routing) preferred(rt speaker.Route) (fib.Route, bool) {
	fr := fib.Route{Prefix: rt.Prefix}
	r.mu.Lock()
	var pref preference
	found := false
	// The most specific preference covering the route: one map lookup per
	// prefix length in use, whatever the number of preferences.
	for _, bits := range r.prefLens {
		if bits > rt.Prefix.Bits() {
			continue
		}
		if p, err := rt.Prefix.Addr().Prefix(bits); err == nil {
			if pref, found = r.prefs[p]; found {
				break
			}
		}
	}
	r.mu.Unlock()
	if found && pref.seller == 0 {
		return fr, false
	}
	for _, nh := range rt.NextHops {
		if !found || slices.Contains(pref.hops, nh.Addr) {
			fr.NextHops = append(fr.NextHops, nh.Addr)
		}
	}
	if len(fr.NextHops) == 0 {
		for _, nh := range rt.NextHops {
			fr.NextHops = append(fr.NextHops, nh.Addr)
		}
	}
	return fr, true
}

// sync hands the speaker's routes to the FIB, as the manager prefers them.
func (r *Routing) sync() {
	routes := r.sp.Routes()
	want := make([]fib.Route, 0, len(routes))
	inUse := map[netip.Addr]bool{}
	for _, rt := range routes {
		fr, ok := r.preferred(rt)
		if !ok {
			continue
		}
		for _, a := range fr.NextHops {
			inUse[a] = true
		}
		want = append(want, fr)
	}
	res, err := r.fib.Sync(want)
	r.mu.Lock()
	r.desired, r.synced, r.result, r.syncErr = routes, true, res, err
	r.inUse = inUse
	if err == nil {
		r.lastSync = clock.Now().UTC()
	}
	var newRefusals []fib.Refusal
	seen := map[string]bool{}
	for _, f := range res.Refused {
		k := f.String()
		seen[k] = true
		if !r.refused[k] {
			newRefusals = append(newRefusals, f)
		}
	}
	r.refused = seen
	r.mu.Unlock()
	for _, f := range newRefusals {
		r.log.Warn("traded route refused", "prefix", f.Prefix, "next_hop", f.NextHop, "reason", string(f.Reason), "detail", f.Detail)
	}
	if err != nil {
		r.log.Error("fib sync", "error", err)
	}
	if n := res.Changes(); n > 0 {
		r.log.Info("traded routes applied", "added", len(res.Added), "changed", len(res.Changed), "removed", len(res.Removed), "routes", len(want))
	}
	r.ensureNeighbors(inUse)
}

func (r *Routing) kick() {
	select {
	case r.resync <- struct{}{}:
	default:
	}
}

// Status is what `bwx-agent status` shows.
type Status struct {
	ASN      uint32            `json:"asn"`
	Sessions []speaker.Session `json:"sessions"`
	// Routers are the sessions to the member's own routers (re-announce).
	Routers []speaker.Session `json:"member_routers"`
	BGP     speaker.Stats     `json:"bgp"`
	// Learned are the traded routes the route server sent (desired).
	Learned []speaker.Route `json:"learned"`
	// Installed are our routes in the kernel table.
	Installed []StatusRoute `json:"installed"`
	// Missing and Extra are the difference between desired and actual:
	// what a Sync would add (or replace) and remove now.
	Missing []StatusRoute    `json:"missing"`
	Extra   []StatusRoute    `json:"extra"`
	Refused []StatusRefusal  `json:"refused"`
	Down    []StatusNeighbor `json:"neighbors"`
	// Synced: the first Sync was made (before that, routes a previous run
	// left are kept as they are).
	Synced   bool      `json:"synced"`
	LastSync time.Time `json:"last_sync,omitzero"`
	SyncErr  string    `json:"sync_error,omitempty"`
	FIB      fib.Stats `json:"fib"`
	Table    int       `json:"table"`
	Iface    string    `json:"interface"`
	// Preferences are the access manager's path choices (seller 0: the
	// default path, no traded route).
	Preferences []StatusPreference `json:"preferences,omitempty"`
}

// StatusPreference is one destination's preferred seller.
type StatusPreference struct {
	Prefix netip.Prefix `json:"prefix"`
	Seller uint32       `json:"seller"`
}

// StatusRoute is a kernel route of ours.
type StatusRoute struct {
	Prefix   netip.Prefix `json:"prefix"`
	NextHops []netip.Addr `json:"next_hops"`
}

// StatusRefusal is a next hop or route the FIB would not install.
type StatusRefusal struct {
	Prefix  netip.Prefix `json:"prefix"`
	NextHop netip.Addr   `json:"next_hop,omitzero"`
	Reason  string       `json:"reason"`
	Detail  string       `json:"detail,omitempty"`
}

// StatusNeighbor is a seller's router in use and its neighbor entry.
type StatusNeighbor struct {
	Addr  netip.Addr `json:"addr"`
	State string     `json:"state"`
	Down  bool       `json:"down"`
}

func statusRoutes(rs []fib.Route) []StatusRoute {
	out := make([]StatusRoute, 0, len(rs))
	for _, r := range rs {
		out = append(out, StatusRoute{Prefix: r.Prefix, NextHops: r.NextHops})
	}
	return out
}

// Status reports sessions, learned and installed routes and their
// difference.
func (r *Routing) Status() (Status, error) {
	st := Status{ASN: r.asn, Sessions: r.sp.Sessions(), Routers: r.sp.RouterSessions(), BGP: r.sp.Stats(), Learned: r.sp.Routes(), FIB: r.fib.Stats(), Iface: r.cfg.FIB.Interface}
	st.Table, _ = r.cfg.FIB.TableID()
	actual, missing, extra, err := r.fib.State()
	if err != nil {
		return st, err
	}
	st.Installed, st.Missing, st.Extra = statusRoutes(actual), statusRoutes(missing), statusRoutes(extra)
	r.mu.Lock()
	defer r.mu.Unlock()
	st.Synced, st.LastSync = r.synced, r.lastSync
	if r.syncErr != nil {
		st.SyncErr = r.syncErr.Error()
	}
	st.Refused = []StatusRefusal{}
	for _, f := range r.result.Refused {
		st.Refused = append(st.Refused, StatusRefusal{Prefix: f.Prefix, NextHop: f.NextHop, Reason: string(f.Reason), Detail: f.Detail})
	}
	st.Down = []StatusNeighbor{}
	for a := range r.inUse {
		st.Down = append(st.Down, StatusNeighbor{Addr: a, State: r.nbrState[a], Down: r.down[a]})
	}
	slices.SortFunc(st.Down, func(a, b StatusNeighbor) int { return a.Addr.Compare(b.Addr) })
	for p, v := range r.prefs {
		st.Preferences = append(st.Preferences, StatusPreference{Prefix: p, Seller: v.seller})
	}
	slices.SortFunc(st.Preferences, func(a, b StatusPreference) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return st, nil
}
