// Package fib installs the routes the member bought into the kernel
// through netlink, and keeps them there.
//
// The agent hands Sync the whole desired state; Sync compares it with the
// routes of our own protocol number (DefaultProtocol, named "bwx" by
// packaging/iproute2/rt_protos.d/bwx.conf) in our table and adds what is
// missing, replaces what changed in place and deletes what is no longer
// wanted. The first Sync reads the table; a Sync after one that went as
// asked plans against what that one left, so its cost follows the changes,
// not the table; Watch reads the table again before every repair and
// resync. Routes of any other protocol are never deleted or replaced, even
// for the same prefix: ours use their own metric (DefaultMetric), so they
// sit beside an operator's or a routing daemon's route for the same prefix,
// and if another route holds exactly our prefix and metric, ours is refused
// (ReasonConflict) rather than written over it. The kernel picks the lowest
// metric: 10 is below FRR's (20) and BIRD's (32) routes, so a bought prefix
// wins over the same prefix learned by the member's BGP daemon, while an
// IPv4 route added by hand (metric 0) still wins over ours (an IPv6 one,
// metric 1024, does not). One window remains: a hand `ip route replace`
// of exactly our key between Sync's dump and its replace of that route
// (milliseconds) would be overwritten; the kernel has no compare-and-swap.
//
// A change of next hops never leaves a prefix without a route: IPv4 routes
// are replaced in place (one swap in the kernel); IPv6 routes point to
// next-hop groups of their own, whose members are replaced in place, since
// a replace of a plain IPv6 route fails lookups under way (nexthop.go says
// why, what it costs, and what is left).
//
// Next hops must be on-link on the exchange interface (in a subnet of its
// addresses, and not with a FAILED neighbor entry); others are refused with
// the reason in the Result. A route keeps its usable next hops; one with
// none is not installed, so traffic takes the member's normal path. A new
// FIB adopts what a previous run left: the first Sync compares it like any
// other state. Watch repairs what others delete or change.
//
// ip route show proto bwx [table T] lists exactly our routes; ip nexthop
// show protocol bwx, our IPv6 routes' next-hop objects.
package fib

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// DefaultProtocol is our route protocol number (rtm_protocol). FRR
	// takes 186-198 (198 is its SR-TE) and counts upward, BIRD 12, Open/R
	// 99; 239 collides with nothing known.
	DefaultProtocol = 239
	// DefaultTable is the main table.
	DefaultTable = unix.RT_TABLE_MAIN
	// DefaultMetric is the priority of our routes (see the package doc).
	DefaultMetric = 10
	// DefaultResyncInterval is how often Watch reconciles even without a
	// route event: the kernel sends no event for IPv4 routes it flushes
	// when the interface goes down, nor for neighbor entries that recover.
	DefaultResyncInterval = 30 * time.Second
)

// ErrClosed is returned by a FIB after Close.
var ErrClosed = errors.New("fib: closed")

// Config configures a FIB. Zero values mean the defaults.
type Config struct {
	// Table is the routing table (default main, 254). The local table
	// (255) is refused.
	Table int
	// Protocol is our rtm_protocol (default DefaultProtocol). It must be
	// above 4 (static): 0-4 belong to the kernel and to routes added by
	// hand.
	Protocol int
	// Metric is the priority of our routes (default DefaultMetric).
	Metric int
	// Interface is the exchange interface: every next hop must be on-link
	// there, and routes leave through it.
	Interface string
	// KeepOnStop leaves our routes in place on Close (a restart adopts
	// them); otherwise Close removes them all.
	KeepOnStop bool
	// ResyncInterval is Watch's periodic reconciliation (default
	// DefaultResyncInterval).
	ResyncInterval time.Duration
	// Log receives what changed and what was refused; nil discards.
	Log *slog.Logger
}

// Option adjusts New.
type Option func(*options)

type options struct {
	ns        netns.NsHandle
	plainIPv6 bool
}

// withPlainIPv6 makes IPv6 routes plain, as on a kernel without next-hop
// objects (for tests).
func withPlainIPv6() Option {
	return func(o *options) { o.plainIPv6 = true }
}

// WithNetns makes the FIB work in network namespace ns instead of the
// caller's. New duplicates the handle; the caller keeps and closes ns.
func WithNetns(ns netns.NsHandle) Option {
	return func(o *options) { o.ns = ns }
}

// FIB owns the routes of one protocol number in one table. Its methods are
// safe for concurrent use.
type FIB struct {
	cfg Config
	log *slog.Logger
	ns  netns.NsHandle  // ours (duplicated), or netns.None()
	h   *netlink.Handle // links and addresses (strict checking)
	hn  *netlink.Handle // neighbors (lenient: see env)
	w   *writer         // route changes and route dumps (strict checking)
	nh6 bool            // IPv6 routes use next-hop groups (nexthop.go)
	ids *idAlloc        // next-hop object ids

	mu          sync.Mutex
	closed      bool
	desired     []dest    // nil until the first Sync
	invalid     []Refusal // the bad routes of the last Sync's input
	down        map[netip.Addr]bool
	lastRefused map[refusalKey]bool

	// What the kernel holds of ours, as the last Sync left it (valid if
	// known): the next Sync plans against it instead of dumping the table
	// and every next-hop object again, which cost more than the changes
	// themselves (a dump of 500,000 routes takes about as long as 50,000
	// replaces). Anything unexpected (a failed or refused request) drops
	// it, and Watch drops it before every repair and resync, since those
	// mean that someone else changed the table.
	cur   []kroute
	curNH *nhState
	known bool

	snap atomic.Pointer[snapshot] // for Watch's event filter
	done chan struct{}            // closed by Close

	stats struct {
		syncs, repairs, installs, replaces, removals, refusals, errors atomic.Uint64
	}
}

// snapshot is what Watch compares route and next-hop events with.
type snapshot struct {
	want    []kroute // sorted
	desired []dest   // sorted
	objs    []uint32 // our next-hop objects in use, sorted
}

func (s *snapshot) wanted(p netip.Prefix) (kroute, bool) {
	i, ok := slices.BinarySearchFunc(s.want, p, func(k kroute, p netip.Prefix) int { return comparePrefix(k.prefix, p) })
	if !ok {
		return kroute{}, false
	}
	return s.want[i], true
}

func (s *snapshot) isDesired(p netip.Prefix) bool {
	_, ok := slices.BinarySearchFunc(s.desired, p, func(d dest, p netip.Prefix) int { return comparePrefix(d.prefix, p) })
	return ok
}

type refusalKey struct {
	prefix  netip.Prefix
	nextHop netip.Addr
	reason  Reason
}

// New opens netlink sockets (in the namespace of WithNetns, if given) and
// checks cfg. It changes nothing in the kernel: the first Sync does.
func New(cfg Config, opts ...Option) (*FIB, error) {
	o := options{ns: netns.None()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	f := &FIB{
		cfg:         cfg,
		log:         cfg.Log,
		ns:          netns.None(),
		down:        make(map[netip.Addr]bool),
		lastRefused: make(map[refusalKey]bool),
		done:        make(chan struct{}),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	ok := false
	defer func() {
		if !ok {
			f.release()
		}
	}()
	if o.ns.IsOpen() {
		fd, err := unix.FcntlInt(uintptr(o.ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fib: duplicate netns handle: %w", err)
		}
		f.ns = netns.NsHandle(fd)
	}
	var err error
	if f.ns.IsOpen() {
		f.h, err = netlink.NewHandleAt(f.ns, unix.NETLINK_ROUTE)
	} else {
		f.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("fib: netlink: %w", err)
	}
	if f.ns.IsOpen() {
		f.hn, err = netlink.NewHandleAt(f.ns, unix.NETLINK_ROUTE)
	} else {
		f.hn, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("fib: netlink: %w", err)
	}
	// Strict checking lets the kernel filter address dumps by interface.
	if err := f.h.SetStrictCheck(true); err != nil {
		return nil, fmt.Errorf("fib: netlink strict check: %w", err)
	}
	for _, h := range []*netlink.Handle{f.h, f.hn} {
		if err := h.SetSocketTimeout(30 * time.Second); err != nil {
			return nil, fmt.Errorf("fib: netlink: %w", err)
		}
	}
	if _, err := f.h.LinkByName(cfg.Interface); err != nil {
		return nil, fmt.Errorf("fib: exchange interface %q: %w", cfg.Interface, err)
	}
	f.w, err = openWriter(f.ns, uint32(cfg.Table), uint8(cfg.Protocol))
	if err != nil {
		return nil, fmt.Errorf("fib: %w", err)
	}
	f.ids = newIDAlloc(uint8(cfg.Protocol))
	f.nh6 = !o.plainIPv6
	if f.nh6 {
		switch _, err := f.w.listNexthops(); {
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
			f.nh6 = false
			f.log.Warn("fib: the kernel has no next-hop objects (Linux < 5.3): IPv6 next-hop changes replace routes, which may fail lookups for a moment", "err", err)
		case err != nil:
			return nil, fmt.Errorf("fib: list next-hop objects: %w", err)
		}
	}
	f.snap.Store(&snapshot{})
	ok = true
	return f, nil
}

func (c *Config) fill() error {
	if c.Table == 0 {
		c.Table = DefaultTable
	}
	if c.Protocol == 0 {
		c.Protocol = DefaultProtocol
	}
	if c.Metric == 0 {
		c.Metric = DefaultMetric
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	switch {
	case c.Table < 0 || int64(c.Table) > 1<<32-1:
		return fmt.Errorf("fib: table %d out of range 1-4294967295", c.Table)
	case c.Table == unix.RT_TABLE_LOCAL:
		return fmt.Errorf("fib: table %d is the kernel's local table", c.Table)
	case c.Protocol <= unix.RTPROT_STATIC || c.Protocol > 255:
		return fmt.Errorf("fib: protocol %d: want 5-255 (0-4 are the kernel's and hand-added routes')", c.Protocol)
	case c.Metric < 0 || int64(c.Metric) > 1<<32-1:
		return fmt.Errorf("fib: metric %d out of range 1-4294967295", c.Metric)
	case c.Interface == "":
		return errors.New("fib: no exchange interface")
	case c.ResyncInterval < 0:
		return fmt.Errorf("fib: negative resync interval %v", c.ResyncInterval)
	}
	return nil
}

func (f *FIB) release() {
	if f.w != nil {
		f.w.close()
	}
	if f.h != nil {
		f.h.Close()
	}
	if f.hn != nil {
		f.hn.Close()
	}
	if f.ns.IsOpen() {
		f.ns.Close()
	}
}

// Sync makes our routes in the table equal desired: it adds missing
// routes, replaces changed ones in place and deletes ours that are not
// desired. desired is the whole state, not a change. A bad route (an
// invalid or unmasked prefix, a next hop of the other family, a prefix
// listed twice...) is refused on its own (ReasonInvalid) and treated as
// not desired; the others are applied, and removals go ahead. Refused next
// hops and routes are in the Result, not errors; the error joins kernel
// failures.
func (f *FIB) Sync(desired []Route) (Result, error) {
	want, invalid := validate(desired, f.cfg.Interface)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Result{}, ErrClosed
	}
	f.desired, f.invalid = want, invalid
	return f.syncLocked("sync")
}

// SetNextHopDown marks a next hop down (or up again) and reconciles: a
// route keeps its next hops that are up; one whose every next hop is down
// is removed, so traffic takes the member's normal path, and comes back
// when one is up. Before the first Sync it only records the mark.
func (f *FIB) SetNextHopDown(addr netip.Addr, down bool) (Result, error) {
	addr = addr.WithZone("")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Result{}, ErrClosed
	}
	if f.down[addr] == down {
		return Result{}, nil
	}
	if down {
		f.down[addr] = true
	} else {
		delete(f.down, addr)
	}
	f.log.Info("fib: next hop marked", "next_hop", addr, "down", down)
	if f.desired == nil {
		return Result{}, nil
	}
	return f.syncLocked("next-hop")
}

// Actual returns our routes in the table, as the kernel has them.
func (f *FIB) Actual() ([]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	actual, _, err := f.listOurs()
	if err != nil {
		return nil, err
	}
	out := make([]Route, len(actual))
	for i, kr := range actual {
		out[i] = kr.route()
	}
	sortRoutes(out)
	return out, nil
}

// Diff tells what a Sync would change now, without changing it: missing
// are routes to add or the new versions of routes to replace; extra are
// ours to delete or the current versions of routes to replace. Refused
// next hops and routes are not missing. Before the first Sync every route
// of ours is extra.
func (f *FIB) Diff() (missing, extra []Route, err error) {
	_, missing, extra, err = f.State()
	return missing, extra, err
}

// State is Actual and Diff from one read of the kernel table, for status
// and metrics (a big table is read once, and the lock a next-hop change
// waits for is held once).
func (f *FIB) State() (actual, missing, extra []Route, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, nil, ErrClosed
	}
	e, err := f.env()
	if err != nil {
		return nil, nil, nil, err
	}
	cur, _, err := f.listOurs()
	if err != nil {
		return nil, nil, nil, err
	}
	actual = make([]Route, len(cur))
	for i, kr := range cur {
		actual[i] = kr.route()
	}
	sortRoutes(actual)
	p := makePlan(f.desired, cur, e)
	for _, r := range p.add {
		missing = append(missing, r.route())
	}
	for i, r := range p.replace {
		missing = append(missing, r.route())
		extra = append(extra, p.old[i].route())
	}
	for _, r := range p.del {
		extra = append(extra, r.route())
	}
	sortRoutes(missing)
	sortRoutes(extra)
	return actual, missing, extra, nil
}

// Stats returns the counters since New.
func (f *FIB) Stats() Stats {
	s := &f.stats
	return Stats{
		Syncs: s.syncs.Load(), Repairs: s.repairs.Load(), Installs: s.installs.Load(),
		Replaces: s.replaces.Load(), Removals: s.removals.Load(), Refusals: s.refusals.Load(),
		Errors: s.errors.Load(),
	}
}

// Close removes all routes of our protocol from the table, unless
// KeepOnStop, stops Watch and releases the sockets. Routes of other
// protocols are not touched.
func (f *FIB) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	close(f.done)
	defer f.release()
	if f.cfg.KeepOnStop {
		f.log.Info("fib: closing, routes kept", "table", f.cfg.Table, "protocol", f.cfg.Protocol)
		return nil
	}
	actual, nhs, err := f.listOurs()
	if err != nil {
		return fmt.Errorf("fib: close: %w", err)
	}
	ops := make([]op, len(actual))
	for i, kr := range actual {
		ops[i] = op{kind: opDelete, r: kr}
	}
	// The next-hop objects after the routes: deleting an object in use
	// would delete its routes without a protocol check.
	ops = nhs.collect(ops, nil, nil, nil)
	errs, _ := f.w.run(ops)
	var failed []error
	removed := 0
	for i, err := range errs[:len(actual)] {
		if err != nil && !errors.Is(err, unix.ESRCH) {
			failed = append(failed, Failure{Route: actual[i].route(), Op: "delete", Err: err})
			continue
		}
		removed++
	}
	for i, err := range errs[len(actual):] {
		if err != nil && !errors.Is(err, unix.ENOENT) {
			failed = append(failed, fmt.Errorf("fib: delete next-hop object %d: %w", ops[len(actual)+i].nh.id, err))
		}
	}
	f.stats.removals.Add(uint64(removed))
	f.stats.errors.Add(uint64(len(failed)))
	f.log.Info("fib: closing, routes removed", "removed", removed, "next_hop_objects", len(ops)-len(actual), "failed", len(failed))
	return errors.Join(failed...)
}

// planLocked reads the interface, our routes and the next-hop objects
// (from the kernel unless the last Sync left them known), and plans.
func (f *FIB) planLocked() (plan, *nhState, error) {
	e, err := f.env()
	if err != nil {
		return plan{}, nil, err
	}
	if !f.known {
		if f.cur, f.curNH, err = f.listOurs(); err != nil {
			return plan{}, nil, err
		}
		f.known = true
	}
	return makePlan(f.desired, f.cur, e), f.curNH, nil
}

// syncLocked reconciles f.desired with the kernel.
func (f *FIB) syncLocked(why string) (Result, error) {
	f.stats.syncs.Add(1)
	p, nhs, err := f.planLocked()
	if err != nil {
		f.stats.errors.Add(1)
		return Result{}, err
	}
	f.snap.Store(&snapshot{want: p.want, desired: f.desired, objs: f.snap.Load().objs})
	res := f.apply(p, nhs)
	f.report(why, &res)
	if len(res.Failed) > 0 {
		errs := make([]error, len(res.Failed))
		for i, fl := range res.Failed {
			errs[i] = fl
		}
		return res, errors.Join(errs...)
	}
	return res, nil
}

// apply carries out p in two rounds: first what installs or changes
// routes (next-hop objects before the groups and routes that use them),
// then what removes (routes, then the objects no route of ours uses).
// Between the two it updates Watch's snapshot: without the routes the
// kernel refused, with the objects in use.
func (f *FIB) apply(p plan, nhs *nhState) (res Result) {
	notInstalled := make(map[netip.Prefix]bool)
	res.Refused = append(slices.Clone(f.invalid), p.refused...)

	// A job installs or changes one route with one or more requests.
	type job struct {
		r, old  kroute // old: the route changed; zero for an install
		add     bool
		ops     []int    // its requests, in order
		created []uint32 // next-hop objects it creates
		err     error
		errOp   int // the request that failed, -1 if none did
	}
	jobs := make([]job, 0, len(p.add)+len(p.replace))
	for _, r := range p.add {
		jobs = append(jobs, job{r: r, add: true})
	}
	for i, r := range p.replace {
		jobs = append(jobs, job{r: r, old: p.old[i]})
	}
	// Objects first, then groups, then routes: each exists before it is
	// used, in order within and across batches.
	var objOps, grpOps []op
	var objOwn, grpOwn []int
	rtOps, rtOwn := make([]op, 0, len(jobs)), make([]int, 0, len(jobs))
	f.ids.reset(nhs.ids)
	for k := range jobs {
		j := &jobs[k]
		if !f.nh6 || j.r.prefix.Addr().Is4() {
			kind := opReplace
			if j.add {
				kind = opAdd
			}
			rtOps, rtOwn = append(rtOps, op{kind: kind, r: j.r}), append(rtOwn, k)
			continue
		}
		group := make([]nhRef, 0, len(j.r.hops))
		var nhOps []op
		for _, h := range j.r.hops {
			id, err := f.ids.take()
			if err != nil {
				j.err = err
				break
			}
			nhOps = append(nhOps, op{kind: opNHAdd, nh: nhObj{id: id, gw: h.gw, ifindex: h.ifindex}})
			group = append(group, nhRef{id: id, weight: h.weight})
			j.created = append(j.created, id)
		}
		g := nhObj{isGroup: true, group: group}
		if j.err == nil && (j.add || !j.old.owned) {
			g.id, j.err = f.ids.take()
			j.created = append(j.created, g.id)
		}
		if j.err != nil {
			j.created = nil
			continue
		}
		for _, o := range nhOps {
			objOps, objOwn = append(objOps, o), append(objOwn, k)
		}
		switch {
		case !j.add && j.old.owned:
			// In place: the route does not change.
			g.id = j.old.nhid
			grpOps, grpOwn = append(grpOps, op{kind: opNHReplace, nh: g}), append(grpOwn, k)
		default:
			grpOps, grpOwn = append(grpOps, op{kind: opNHAdd, nh: g}), append(grpOwn, k)
			kind := opReplace
			if j.add {
				kind = opAdd
			}
			r := j.r
			r.nhid = g.id
			rtOps, rtOwn = append(rtOps, op{kind: kind, r: r}), append(rtOwn, k)
		}
		j.r.nhid = g.id
	}
	ops := slices.Concat(objOps, grpOps, rtOps)
	owners := slices.Concat(objOwn, grpOwn, rtOwn)
	nObj, nGrp := len(objOps), len(grpOps)
	for i, k := range owners {
		jobs[k].ops = append(jobs[k].ops, i)
	}
	errs, _ := f.w.run(ops)
	for k := range jobs {
		j := &jobs[k]
		j.errOp = -1
		for _, i := range j.ops {
			if errs[i] != nil {
				j.err, j.errOp = errs[i], i
				break
			}
		}
	}

	var live []uint32 // next-hop objects our routes use afterwards
	live = nhs.withMembers(live, p.keepNH...)
	// What the kernel holds afterwards, if every request succeeds.
	var made, regrouped []nhObj
	for i, o := range ops[:nObj+nGrp] {
		switch {
		case errs[i] != nil:
		case o.kind == opNHAdd:
			o.nh.proto = uint8(f.cfg.Protocol)
			made = append(made, o.nh)
		case o.kind == opNHReplace:
			regrouped = append(regrouped, o.nh)
		}
	}
	added := make([]kroute, 0, len(p.add))
	changed := make([]kroute, 0, len(p.replace))
	for _, j := range jobs {
		if j.add {
			added = append(added, j.r)
		} else {
			changed = append(changed, j.r)
		}
	}
	for _, j := range jobs {
		switch {
		case j.err == nil && j.add:
			res.Added = append(res.Added, j.r.route())
		case j.err == nil:
			res.Changed = append(res.Changed, Change{Old: j.old.route(), New: j.r.route()})
		case j.add && j.errOp >= 0 && ops[j.errOp].kind == opAdd && errors.Is(j.err, unix.EEXIST):
			// Ours was not there (we just listed), so the key is
			// another protocol's route.
			notInstalled[j.r.prefix] = true
			res.Refused = append(res.Refused, Refusal{Prefix: j.r.prefix, Reason: ReasonConflict,
				Detail: fmt.Sprintf("table %d already has a route of another protocol for %v at metric %d; it is left alone",
					f.cfg.Table, j.r.prefix, j.r.metric)})
		default:
			notInstalled[j.r.prefix] = true
			opName := "replace"
			if j.add {
				opName = "add"
			}
			err := j.err
			if j.errOp >= 0 && ops[j.errOp].kind >= opNHAdd {
				err = fmt.Errorf("%v %d: %w", ops[j.errOp].kind, ops[j.errOp].nh.id, err)
			}
			res.Failed = append(res.Failed, Failure{Route: j.r.route(), Op: opName, Err: err})
		}
		if j.err == nil {
			live = append(live, j.created...)
			if j.r.nhid != 0 {
				live = append(live, j.r.nhid)
			}
		} else if j.old.nhid != 0 {
			live = nhs.withMembers(live, j.old.nhid)
		}
	}

	want := p.want
	if len(notInstalled) > 0 {
		want = slices.DeleteFunc(slices.Clone(p.want), func(k kroute) bool { return notInstalled[k.prefix] })
	}
	slices.Sort(live)
	live = slices.Compact(live)
	f.snap.Store(&snapshot{want: want, desired: f.desired, objs: live})

	ops = slices.Grow(ops[:0], len(p.del))
	for _, r := range p.del {
		ops = append(ops, op{kind: opDelete, r: r})
	}
	nRoutes := len(ops)
	var created, left []uint32
	for _, j := range jobs {
		switch {
		case j.err != nil:
			created = append(created, j.created...)
		case j.old.nhid == j.r.nhid && j.r.nhid != 0:
			// Replaced in place: the old members left the group.
			if g, ok := nhs.obj(j.old.nhid); ok {
				for _, m := range g.group {
					left = append(left, m.id)
				}
			}
		}
	}
	ops = nhs.collect(ops, live, created, left)
	errs, _ = f.w.run(ops)
	var deleted []uint32
	for i, err := range errs[nRoutes:] {
		if err == nil || errors.Is(err, unix.ENOENT) {
			deleted = append(deleted, ops[nRoutes+i].nh.id)
		}
	}
	known := len(notInstalled) == 0 && len(deleted) == len(ops)-nRoutes
	for i, err := range errs[:nRoutes] {
		// ESRCH: already gone, which is what we wanted.
		if err == nil || errors.Is(err, unix.ESRCH) {
			res.Removed = append(res.Removed, ops[i].r.route())
			continue
		}
		res.Failed = append(res.Failed, Failure{Route: ops[i].r.route(), Op: "delete", Err: err})
	}
	for i, err := range errs[nRoutes:] {
		// ENOENT: gone, or never made (its job failed before it).
		if err != nil && !errors.Is(err, unix.ENOENT) {
			f.stats.errors.Add(1)
			f.log.Error("fib: kernel refused to delete an unused next-hop object of ours", "id", ops[nRoutes+i].nh.id, "err", err)
		}
	}
	f.known = known && len(res.Failed) == 0
	if f.known {
		// Adds, changes and kept routes are each sorted; removals are gone.
		f.cur = mergeKroutes(p.keep, mergeKroutes(added, changed))
		f.curNH = nhs
		if f.nh6 {
			f.curNH = nhs.after(made, regrouped, deleted)
		}
	} else {
		f.cur, f.curNH = nil, nil
	}
	// Adds, changes and removals are in prefix order already.
	slices.SortStableFunc(res.Refused, func(a, b Refusal) int { return comparePrefix(a.Prefix, b.Prefix) })
	return res
}

// maxLoggedChanges bounds per-route log lines at Info for one reconciliation.
const maxLoggedChanges = 20

func (f *FIB) report(why string, res *Result) {
	s := &f.stats
	s.installs.Add(uint64(len(res.Added)))
	s.replaces.Add(uint64(len(res.Changed)))
	s.removals.Add(uint64(len(res.Removed)))
	s.refusals.Add(uint64(len(res.Refused)))
	s.errors.Add(uint64(len(res.Failed)))

	// Refusals are logged when they appear and when they clear, not on
	// every reconciliation.
	now := make(map[refusalKey]bool, len(res.Refused))
	for _, r := range res.Refused {
		k := refusalKey{r.Prefix, r.NextHop, r.Reason}
		now[k] = true
		if !f.lastRefused[k] {
			args := []any{"prefix", r.Prefix, "reason", r.Reason, "detail", r.Detail}
			if r.NextHop.IsValid() {
				args = append(args, "next_hop", r.NextHop)
			}
			f.log.Warn("fib: refused", args...)
		}
	}
	for k := range f.lastRefused {
		if !now[k] {
			args := []any{"prefix", k.prefix, "was", k.reason}
			if k.nextHop.IsValid() {
				args = append(args, "next_hop", k.nextHop)
			}
			f.log.Info("fib: no longer refused", args...)
		}
	}
	f.lastRefused = now

	n := 0
	logChange := func(msg string, args ...any) {
		if n < maxLoggedChanges {
			f.log.Info(msg, args...)
		}
		n++
	}
	for _, r := range res.Added {
		logChange("fib: route added", "route", r)
	}
	for _, c := range res.Changed {
		logChange("fib: route replaced", "old", c.Old, "new", c.New)
	}
	for _, r := range res.Removed {
		logChange("fib: route removed", "route", r)
	}
	for i, fl := range res.Failed {
		if i < maxLoggedChanges {
			f.log.Error("fib: kernel refused a change", "op", fl.Op, "route", fl.Route, "err", fl.Err)
		}
	}
	if n > 0 || len(res.Failed) > 0 {
		f.log.Info("fib: reconciled", "why", why, "added", len(res.Added), "changed", len(res.Changed),
			"removed", len(res.Removed), "refused", len(res.Refused), "failed", len(res.Failed))
	}
}

// env reads the exchange interface's state.
func (f *FIB) env() (*env, error) {
	link, err := f.h.LinkByName(f.cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("fib: exchange interface %q: %w", f.cfg.Interface, err)
	}
	e := &env{
		ifname:  f.cfg.Interface,
		ifindex: link.Attrs().Index,
		own:     make(map[netip.Addr]bool),
		failed:  make(map[netip.Addr]bool),
		down:    f.down,
		metric:  uint32(f.cfg.Metric),
		nh6:     f.nh6,
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		// The kernel removed the connected routes and ours, and would
		// refuse new ones.
		e.ifDown = true
		return e, nil
	}
	addrs, err := f.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("fib: addresses of %s: %w", f.cfg.Interface, err)
	}
	for _, a := range addrs {
		if a.IPNet == nil || a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		e.own[ip] = true
		e.subnets = append(e.subnets, netip.PrefixFrom(ip, ones).Masked())
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		// A lenient handle: the library sends struct padding
		// uninitialized, which strict checking refuses. Neighbor
		// tables are small, so the lack of kernel filtering is cheap.
		neighs, err := f.hn.NeighList(e.ifindex, family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("fib: neighbors on %s: %w", f.cfg.Interface, err)
		}
		for _, n := range neighs {
			if n.LinkIndex != e.ifindex || n.State&unix.NUD_FAILED == 0 {
				continue
			}
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				e.failed[ip.Unmap()] = true
			}
		}
	}
	return e, nil
}

// listOurs dumps the routes of our protocol in our table, both families,
// and the namespace's next-hop objects; routes that use a group of ours
// get their next hops from it. With strict checking the kernel filters
// the routes: a full Internet table in main costs nothing here.
func (f *FIB) listOurs() ([]kroute, *nhState, error) {
	var out []kroute
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		start := len(out)
		for attempt := 1; ; attempt++ {
			out = out[:start]
			err := f.w.dump(family, func(kr kroute) { out = append(out, kr) })
			if errors.Is(err, errDumpInterrupted) && attempt < 5 {
				continue // the table changed during the dump
			}
			if err != nil {
				return nil, nil, fmt.Errorf("fib: list routes of protocol %d in table %d: %w", f.cfg.Protocol, f.cfg.Table, err)
			}
			break
		}
	}
	nhs := &nhState{}
	if f.nh6 {
		var err error
		if nhs, err = f.w.listNexthops(); err != nil {
			return nil, nil, fmt.Errorf("fib: list next-hop objects: %w", err)
		}
	}
	var uses []uint32 // the groups our routes use, with repeats, sorted
	for _, kr := range out {
		if kr.nhid != 0 {
			uses = append(uses, kr.nhid)
		}
	}
	slices.Sort(uses)
	for i := range out {
		if out[i].nhid != 0 {
			nhs.resolve(&out[i], uses)
		}
	}
	return out, nhs, nil
}

// fromNetlink converts a dumped route.
func fromNetlink(r netlink.Route) (kroute, bool) {
	var pfx netip.Prefix
	if r.Dst != nil {
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			return kroute{}, false
		}
		if r.Family == netlink.FAMILY_V4 {
			ip = ip.Unmap()
		}
		ones, _ := r.Dst.Mask.Size()
		pfx = netip.PrefixFrom(ip, ones)
	} else {
		switch r.Family {
		case netlink.FAMILY_V4:
			pfx = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		case netlink.FAMILY_V6:
			pfx = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		default:
			return kroute{}, false
		}
	}
	kr := kroute{prefix: pfx, metric: uint32(r.Priority), typ: uint8(r.Type)}
	gw := func(ip net.IP) netip.Addr {
		a, _ := netip.AddrFromSlice(ip)
		return a.Unmap()
	}
	if len(r.MultiPath) > 0 {
		for _, nh := range r.MultiPath {
			kr.hops = append(kr.hops, khop{gw: gw(nh.Gw), ifindex: nh.LinkIndex, weight: uint8(nh.Hops)})
		}
	} else if r.Gw != nil || r.LinkIndex != 0 {
		kr.hops = []khop{{gw: gw(r.Gw), ifindex: r.LinkIndex}}
	}
	sortHops(kr.hops)
	return kr, true
}
