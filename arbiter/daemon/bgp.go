package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/delivery"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/arbiter/store"
)

// bgpSide is the route server wired to the registry and the book.
type bgpSide struct {
	cfg     BGPConfig
	log     *slog.Logger
	rs      *routeserver.Server
	reg     *registry.Registry
	checker *registry.PrefixChecker
	routes  *registry.AnnouncedSync
	loop    *delivery.Loop
	book    *book.Book
	record  *delivery.Record

	wake   chan struct{}
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu       sync.Mutex
	members  map[uint32]routeserver.Member // as given to the route server
	policies routeserver.Policies
	skipped  map[int64]string  // trades not delivered, and why (logged once)
	refused  map[uint32]string // members the route server refused, and why (logged once)
	active   int
}

// startBGP starts the route server, adds the registry's members and
// starts delivering the book's active trades. The book must call
// b.loop.Notify with its events (see newBGPSide).
func newBGPSide(cfg BGPConfig, log *slog.Logger, db *store.DB, reg *registry.Registry, runIn func(func() error) error) (*bgpSide, error) {
	ctx := context.Background()
	b := &bgpSide{cfg: cfg, log: log.With("component", "routeserver"), reg: reg, wake: make(chan struct{}, 1), record: delivery.NewRecord(db),
		members: map[uint32]routeserver.Member{}, skipped: map[int64]string{}, refused: map[uint32]string{}}
	var err error
	if b.checker, err = registry.NewPrefixChecker(ctx, db, irr.Policy{MaxLen4: cfg.IRRMaxLength4, MaxLen6: cfg.IRRMaxLength6}); err != nil {
		return nil, fmt.Errorf("bgp: load the registry, IRR and RPKI data: %w", err)
	}
	// The table shows what the sessions give; none are up yet.
	if err := reg.ClearAnnounced(ctx); err != nil {
		return nil, fmt.Errorf("bgp: reset announced routes: %w", err)
	}
	rid, _ := netip.ParseAddr(cfg.RouterID)
	b.rs, err = routeserver.New(routeserver.Config{
		ASN: cfg.ASN, RouterID: rid, ListenAddrs: cfg.Listen, ListenPort: int32(cfg.Port),
		Log: b.log, Checker: routeserver.ImportPolicy{Registry: b.checker, RequireIRR: cfg.RequireIRR},
		HoldTime: cfg.HoldTime, GracefulRestartTime: cfg.GracefulRestartTime, Passive: cfg.Passive, RunIn: runIn,
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	b.routes = registry.NewAnnouncedSync(reg, b.log, 0)
	b.rs.OnRoute(b.onRoute)
	b.rs.OnDelivery(b.onDelivery)
	if err := b.syncMembers(ctx); err != nil {
		b.routes.Close()
		return nil, err
	}
	if err := b.loadPolicies(ctx); err != nil {
		b.routes.Close()
		return nil, err
	}
	if err := b.rs.Start(ctx); err != nil {
		b.routes.Close()
		return nil, fmt.Errorf("bgp: %w", err)
	}
	return b, nil
}

// run starts the delivery loop over bk and the registry watcher.
func (b *bgpSide) run(bk *book.Book, loop *delivery.Loop) {
	b.book, b.loop = bk, loop
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.done.Add(2)
	go func() {
		defer b.done.Done()
		loop.Run(ctx)
	}()
	go func() {
		defer b.done.Done()
		b.watchRegistry(ctx)
	}()
}

// stop stops delivering, then the route server, then writes the last
// announced-route changes. With graceful, the sessions are left to close
// with the process: no NOTIFICATION, so members that help with graceful
// restart keep the trades until the arbiter is back (GoBGP's own stop sends
// CEASE, an RFC 8538 Hard Reset that makes them drop the trades at once).
// The caller must then exit soon.
func (b *bgpSide) stop(graceful bool) {
	if b.cancel != nil {
		b.cancel()
		b.done.Wait()
	}
	if graceful {
		// What members were delivered goes on while the arbiter is away
		// (they keep the routes): the open intervals stay open.
		b.rs.OnRoute(nil)
		b.rs.OnDelivery(nil)
	} else {
		b.rs.Stop()
		b.rs.OnDelivery(nil)
	}
	b.routes.Close()
}

// RegistryChanged is the registry service's Changed hook: members,
// routers or prefixes changed.
func (b *bgpSide) RegistryChanged() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// watchRegistry applies registry changes: at once when told, and every
// RecheckInterval when another process changed the data.
func (b *bgpSide) watchRegistry(ctx context.Context) {
	tick := time.NewTicker(b.cfg.RecheckInterval)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
			err = b.refresh(ctx, true)
		case <-tick.C:
			err = b.refresh(ctx, false)
		}
		if err != nil && ctx.Err() == nil {
			b.log.Error("apply registry changes", "error", err)
		}
	}
}

// refresh reloads the checker if the registered prefixes or the IRR/RPKI
// imports changed, then members, policies, verdicts and trades. told is
// true when the registry service reported a change.
func (b *bgpSide) refresh(ctx context.Context, told bool) error {
	changed, err := b.checker.ReloadIfChanged(ctx)
	if err != nil {
		return err
	}
	// Members may be added by another process too; syncing is cheap.
	errs := []error{b.syncMembers(ctx)}
	if changed {
		reg, irrN, roas := b.checker.Sizes()
		b.log.Info("registry data changed: re-checking received routes", "registered", reg, "irr_objects", irrN, "roas", roas, "told", told)
		errs = append(errs, b.loadPolicies(ctx), b.rs.Recheck(ctx, 0))
		b.loop.Resync()
	}
	return errors.Join(errs...)
}

// syncMembers adds, changes and removes route server members to match the
// registry.
func (b *bgpSide) syncMembers(ctx context.Context) error {
	ms, err := b.reg.Members(ctx)
	if err != nil {
		return fmt.Errorf("bgp: list members: %w", err)
	}
	want := map[uint32]routeserver.Member{}
	for _, m := range ms {
		o := b.cfg.member(m.ASN)
		want[m.ASN] = routeserver.Member{ASN: m.ASN, Addresses: slices.Clone(m.Routers),
			MaxPrefixes: *o.MaxPrefixes, Password: o.Password, AddPathReceive: *o.AddPath}
	}
	b.mu.Lock()
	have := maps.Clone(b.members)
	b.mu.Unlock()
	var errs []error
	changed := false
	for asn := range have {
		if _, ok := want[asn]; !ok {
			// Out of the trade conversion first, so no SetActive names it.
			b.mu.Lock()
			delete(b.members, asn)
			b.mu.Unlock()
			if err := b.rs.RemoveMember(ctx, asn); err != nil {
				errs = append(errs, err)
			}
			b.log.Info("member removed from the route server", "asn", asn)
			changed = true
		}
	}
	for _, asn := range slices.Sorted(maps.Keys(want)) {
		m := want[asn]
		if h, ok := have[asn]; ok && sameMember(h, m) {
			continue
		}
		if err := b.rs.AddMember(ctx, m); err != nil {
			// One bad member (an address GoBGP refuses, a password the
			// kernel cannot use) must not keep the others out. It is
			// retried on every refresh but reported once per cause.
			b.mu.Lock()
			if b.refused[asn] != err.Error() {
				b.refused[asn] = err.Error()
				errs = append(errs, err)
			}
			b.mu.Unlock()
			continue
		}
		b.mu.Lock()
		b.members[asn] = m
		delete(b.refused, asn)
		b.mu.Unlock()
		b.log.Info("member configured on the route server", "asn", asn, "routers", fmt.Sprint(m.Addresses),
			"max_prefixes", m.MaxPrefixes, "add_path", m.AddPathReceive, "md5", m.Password != "")
		changed = true
	}
	if changed && b.loop != nil {
		b.loop.Resync()
	}
	return errors.Join(errs...)
}

func sameMember(a, b routeserver.Member) bool {
	return a.ASN == b.ASN && slices.Equal(a.Addresses, b.Addresses) && a.MaxPrefixes == b.MaxPrefixes &&
		a.Password == b.Password && a.AddPathReceive == b.AddPathReceive
}

// loadPolicies indexes the registered prefixes' routing policies by seller.
func (b *bgpSide) loadPolicies(ctx context.Context) error {
	ps, err := b.reg.Prefixes(ctx, 0)
	if err != nil {
		return fmt.Errorf("bgp: load prefix policies: %w", err)
	}
	pol := routeserver.NewPolicies(ps)
	b.mu.Lock()
	b.policies = pol
	b.mu.Unlock()
	return nil
}

// SetActive implements delivery.Target: the book's active trades become
// route server trades (routeserver.FromBook); one delivered in part or not
// at all is logged once.
func (b *bgpSide) SetActive(ctx context.Context, trades []book.Trade) error {
	b.mu.Lock()
	out := make([]routeserver.Trade, 0, len(trades))
	skipped := map[int64]string{}
	for _, t := range trades {
		rt, why := routeserver.FromBook(t, b.members, b.policies)
		if why != "" {
			skipped[t.ID] = why
		}
		if rt != nil {
			out = append(out, *rt)
		}
	}
	for id, why := range skipped {
		if b.skipped[id] != why {
			b.log.Warn("trade not fully delivered", "trade", id, "reason", why)
		}
	}
	b.skipped = skipped
	b.active = len(out)
	b.mu.Unlock()
	return b.rs.SetActive(ctx, out)
}

// onRoute records what members announce (claim 22) without waiting for the
// database.
func (b *bgpSide) onRoute(e routeserver.RouteEvent) {
	k := registry.AnnouncedKey{Neighbor: e.Neighbor, Prefix: e.Prefix}
	if e.Withdrawn {
		b.routes.Delete(k)
		return
	}
	b.routes.Put(registry.AnnouncedRoute{MemberASN: e.ASN, Neighbor: e.Neighbor, Prefix: e.Prefix, NextHop: e.NextHop,
		ASPath: e.ASPath, OriginASN: e.OriginAS, Accepted: e.Accepted, Reason: e.Reason, Since: e.Since})
}

// onDelivery writes the route server's delivery changes to the delivery
// record, which billing follows.
func (b *bgpSide) onDelivery(cs []routeserver.DeliveryChange) {
	out := make([]delivery.Change, len(cs))
	for i, c := range cs {
		cause := delivery.CauseSeller
		if c.Cause == routeserver.CauseBuyer {
			cause = delivery.CauseBuyer
		}
		if c.Delivered || c.Ended {
			cause = ""
		}
		out[i] = delivery.Change{TradeID: int64(c.TradeID), Session: c.Session, At: c.At, Delivered: c.Delivered,
			Reason: c.Reason, Cause: cause, Ended: c.Ended}
		if !c.Delivered && !c.Ended {
			b.log.Info("trade not delivered", "trade", c.TradeID, "buyer", c.BuyerASN, "session", c.Session, "reason", c.Reason, "cause", c.Cause)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.record.Apply(ctx, out); err != nil {
		b.log.Error("cannot write the delivery record", "changes", len(out), "error", err)
	}
}

// tradeSource lists the trades that may still need delivering.
type tradeSource struct{ bk *book.Book }

func (s *tradeSource) Trades(ctx context.Context, now time.Time) ([]book.Trade, error) {
	return s.bk.Unended(ctx, now)
}

// collector exports the route server's state at scrape time.
type collector struct{ b *bgpSide }

var (
	descSessions = prometheus.NewDesc("bwx_arbiter_bgp_sessions", "Member BGP sessions by state (established or down).", []string{"state"}, nil)
	descRoutes   = prometheus.NewDesc("bwx_arbiter_bgp_received_routes", "Routes members announce now, accepted or rejected, by reason.", []string{"result", "reason"}, nil)
	descPaths    = prometheus.NewDesc("bwx_arbiter_bgp_trade_paths", "Paths the route server announces for trades now.", nil, nil)
	descTrades   = prometheus.NewDesc("bwx_arbiter_bgp_active_trades", "Active trades handed to the route server.", nil, nil)
	descClosed   = prometheus.NewDesc("bwx_arbiter_bgp_session_closed_total", "Member BGP sessions that went down since start, by member and reason (GoBGP's, or dampened for flapping).", []string{"member", "reason"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessions
	ch <- descRoutes
	ch <- descPaths
	ch <- descTrades
	ch <- descClosed
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	up, down := c.b.rs.SessionCounts()
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(up), "established")
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(down), "down")
	accepted, reasons := 0, map[string]int{}
	for _, m := range c.b.rs.Members() {
		st := c.b.rs.Stats(m.ASN)
		accepted += st.Accepted
		for r, n := range st.Reasons {
			reasons[r] += n
		}
	}
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(accepted), "accepted", "")
	for r, n := range reasons {
		ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(n), "rejected", r)
	}
	ch <- prometheus.MustNewConstMetric(descPaths, prometheus.GaugeValue, float64(len(c.b.rs.Announced())))
	c.b.mu.Lock()
	n := c.b.active
	c.b.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descTrades, prometheus.GaugeValue, float64(n))
	for _, c := range c.b.rs.SessionsClosed() {
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(c.Count), strconv.FormatUint(uint64(c.ASN), 10), c.Reason)
	}
}
