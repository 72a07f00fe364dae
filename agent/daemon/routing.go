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
	"github.com/bwxchange/bwx/agent/routecheck"
	"github.com/bwxchange/bwx/agent/speaker"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// Routing applies the routes the member bought: the speaker learns them
// from the route server, the checker keeps only the paths of the member's
// own active trades (routecheck: the trades come from the arbiter's event
// stream and trade list), the FIB installs them, and the neighbor watch
// pulls a route whose seller's router stops answering on the LAN.
type Routing struct {
	cfg   Config
	log   *slog.Logger
	asn   uint32
	sp    *speaker.Speaker
	fib   *fib.FIB
	check *routecheck.Checker

	mu       sync.Mutex
	desired  []speaker.Route
	rejected []routecheck.Verdict // the learned paths not installed (pending or refused)
	synced   bool                 // the first Sync was made
	lastSync time.Time            // of the last successful Sync
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
	grace := cfg.BGP.TradeGrace
	if grace == 0 {
		grace = -1 // none
	}
	check := routecheck.New(routecheck.Config{ASN: asn, Grace: grace, Log: log.With("component", "routecheck")})
	return &Routing{
		cfg: cfg, log: log, asn: asn, sp: sp, fib: f, check: check,
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

	// The first Sync waits for the route server's End-of-RIB and for the
	// arbiter's trade list (without it every learned path is pending), or
	// for the graceful restart time.
	initial := time.NewTimer(r.cfg.BGP.GracefulRestartTime)
	defer initial.Stop()
	recheck := time.NewTimer(time.Hour)
	recheck.Stop()
	defer recheck.Stop()
	ready := r.sp.Ready()
	eor := false
	sync := func() {
		recheck.Stop()
		if at := r.sync(); !at.IsZero() {
			recheck.Reset(max(clock.Until(at), 0) + 10*time.Millisecond)
		}
	}
	first := func() {
		if !r.isSynced() && eor && r.check.Loaded() {
			sync()
		}
	}
	for {
		select {
		case <-ctx.Done():
			r.log.Info("routing stopping", "keep_routes_on_stop", r.cfg.FIB.KeepRoutesOnStop)
			if !r.cfg.FIB.KeepRoutesOnStop {
				r.forgetNeighbors()
			}
			return nil
		case <-ready:
			ready, eor = nil, true
			r.log.Info("route server sent all its routes (End-of-RIB)")
			first()
		case <-initial.C:
			if !r.isSynced() {
				r.log.Warn("applying what was learned before the route server's End-of-RIB and the arbiter's trade list came",
					"graceful_restart_time", r.cfg.BGP.GracefulRestartTime.String(), "end_of_rib", eor, "trade_list", r.check.Loaded())
				sync()
			}
		case <-r.sp.Updates():
			if r.isSynced() {
				sync()
			}
		case <-r.resync:
			if r.isSynced() {
				sync()
			} else {
				first()
			}
		case <-recheck.C:
			if r.isSynced() {
				sync()
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

// SetTrades gives the checker the arbiter's full list of the member's
// trades (at each connection of the event stream: the stream resumes after
// the last event seen, so trades made before that come from the list).
func (r *Routing) SetTrades(ts []*pb.Trade) {
	out := make([]routecheck.Trade, 0, len(ts))
	for _, t := range ts {
		out = append(out, r.tradeFromProto(t))
	}
	r.check.SetTrades(out)
	r.kick()
}

// TradeEvent gives the checker a trade event: a trade made (or started),
// ended or cancelled.
func (r *Routing) TradeEvent(ev *pb.TradeEvent) {
	t := ev.GetTrade()
	if t == nil || ev.Use != nil {
		return
	}
	switch ev.Type {
	case pb.TradeEventType_TRADE_EVENT_TYPE_CREATED, pb.TradeEventType_TRADE_EVENT_TYPE_STARTED:
		if !r.check.AddTrade(r.tradeFromProto(t)) {
			return
		}
	case pb.TradeEventType_TRADE_EVENT_TYPE_ENDED, pb.TradeEventType_TRADE_EVENT_TYPE_CANCELLED:
		at := clock.Now()
		if ev.Time != nil {
			at = ev.Time.AsTime()
		}
		if !r.check.EndTrade(t.Id, at) {
			return
		}
	default:
		return
	}
	r.kick()
}

// tradeFromProto reads a trade as the checker needs it; unreadable
// prefixes and addresses are left out (and logged): they justify nothing.
func (r *Routing) tradeFromProto(t *pb.Trade) routecheck.Trade {
	out := routecheck.Trade{ID: t.GetId(), BuyerASN: t.GetBuyerAsn(),
		Start: t.GetDeliveryStart().AsTime(), End: t.GetDeliveryEnd().AsTime(),
		Cancelled: t.GetStatus() == pb.TradeStatus_TRADE_STATUS_CANCELLED}
	for _, s := range t.GetPrefixes() {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			r.log.Warn("trade with an unreadable prefix: it justifies no route", "trade", t.GetId(), "prefix", s)
			continue
		}
		out.Prefixes = append(out.Prefixes, p)
	}
	for _, s := range t.GetSellerNextHops() {
		a, err := netip.ParseAddr(s)
		if err != nil {
			r.log.Warn("trade with an unreadable seller next hop: it justifies no route", "trade", t.GetId(), "next_hop", s)
			continue
		}
		out.NextHops = append(out.NextHops, a)
	}
	return out
}

// checked keeps the learned paths the checker accepts; the others are
// returned (pending or refused).
func (r *Routing) checked(routes []speaker.Route) ([]speaker.Route, []routecheck.Verdict, time.Time) {
	var paths []routecheck.Path
	for _, rt := range routes {
		for _, nh := range rt.NextHops {
			paths = append(paths, routecheck.Path{Prefix: rt.Prefix, NextHop: nh.Addr, Trades: nh.Trades})
		}
	}
	rep := r.check.Check(paths)
	out := make([]speaker.Route, 0, len(routes))
	var rejected []routecheck.Verdict
	i := 0
	for _, rt := range routes {
		kept := speaker.Route{Prefix: rt.Prefix}
		for _, nh := range rt.NextHops {
			if v := rep.Verdicts[i]; v.State == routecheck.Accepted {
				kept.NextHops = append(kept.NextHops, nh)
			} else {
				rejected = append(rejected, v)
			}
			i++
		}
		if len(kept.NextHops) > 0 {
			out = append(out, kept)
		}
	}
	return out, rejected, rep.Recheck
}

// sync hands the speaker's routes that the checker accepts to the FIB, as
// the manager prefers them. It returns when the checker's verdicts may
// change by themselves (zero: not before new input).
func (r *Routing) sync() time.Time {
	learned := r.sp.Routes()
	routes, rejected, recheck := r.checked(learned)
	if len(r.cfg.BGP.MemberRouter.Addresses) > 0 {
		// The member's own routers get the checked paths too (every
		// seller, whatever the manager prefers for the kernel).
		allowed := map[netip.Addr][]netip.Prefix{}
		for _, rt := range routes {
			for _, nh := range rt.NextHops {
				allowed[nh.Addr] = append(allowed[nh.Addr], rt.Prefix)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := r.sp.SetReannounced(ctx, allowed); err != nil {
			r.log.Error("cannot update what the member's routers get", "error", err)
		}
		cancel()
	}
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
	r.rejected = rejected
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
	return recheck
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
	// Learned are the traded routes the route server sent, as it sent
	// them; Rejected the paths among them that are not installed because
	// no active trade of ours justifies them (pending: within the grace
	// period or before the trade list came; refused: counted and logged).
	Learned  []speaker.Route   `json:"learned"`
	Rejected []StatusRejection `json:"rejected"`
	Checks   routecheck.Stats  `json:"checks"`
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

// StatusRejection is a learned path that is not installed.
type StatusRejection struct {
	Prefix  netip.Prefix `json:"prefix"`
	NextHop netip.Addr   `json:"next_hop,omitzero"`
	State   string       `json:"state"` // pending, refused
	Reason  string       `json:"reason"`
	Detail  string       `json:"detail"`
	// Trades are the trade IDs the route server named for the path.
	Trades []uint64 `json:"trades,omitempty"`
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
	st := Status{ASN: r.asn, Sessions: r.sp.Sessions(), Routers: r.sp.RouterSessions(), BGP: r.sp.Stats(), Learned: r.sp.Routes(),
		Checks: r.check.Stats(), FIB: r.fib.Stats(), Iface: r.cfg.FIB.Interface}
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
	st.Rejected = []StatusRejection{}
	for _, v := range r.rejected {
		st.Rejected = append(st.Rejected, StatusRejection{Prefix: v.Prefix, NextHop: v.NextHop, State: v.State.String(),
			Reason: string(v.Reason), Detail: v.Detail, Trades: v.Trades})
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
