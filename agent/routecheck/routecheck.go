// Package routecheck decides which of the routes the agent learned from the
// route server it may install: only what the member bought.
//
// The route server is not trusted with that decision. A learned path (a
// prefix and a next hop) is accepted only if one of the member's own
// trades, as the arbiter's trade event stream and trade list told the
// agent, is in its delivery period, lists exactly that prefix, and lists
// that next hop among the seller's routers. A default route (0.0.0.0/0,
// ::/0) is never accepted, bought or not, and a malformed path (a next hop
// of the other family, unspecified, loopback, multicast) is refused
// without looking at trades. Every refused path is counted by reason and
// logged once, when it is first refused; it is never installed. Checking
// is per path: a refused path never affects the others.
//
// The race between the trade event stream and BGP: the arbiter commits a
// trade and its event, and the route server announces the trade when its
// delivery starts, but the two reach the agent on different connections,
// so a path may arrive before the agent has heard of its trade (its event
// stream was reconnecting, or is slower). Grace (Config.Grace, default
// DefaultGrace) covers that: a path that no known trade justifies is held
// pending, neither installed nor counted, for Grace after it was first
// seen; a trade heard of in that time installs it, and after that it is
// refused. Until the first full trade list (SetTrades) the checker knows
// no trades at all and holds every such path pending. Grace also allows
// for clock skew between the arbiter and the agent: a trade counts from
// Grace before its delivery start to Grace after its end (the route server
// withdraws the path at the end on its own clock in any case).
//
// The package is pure: no BGP, gRPC or netlink. The agent's daemon feeds
// it trades and the speaker's learned paths, and hands the accepted ones
// to the FIB.
package routecheck

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// DefaultGrace is Config.Grace's default.
const DefaultGrace = 30 * time.Second

// maxLogged bounds the refusal lines one Check logs: a route server that
// sends a full table of bad paths must not flood the log.
const maxLogged = 100

// keepEnded is how long a trade is remembered after its end (plus Grace),
// so a path that outlives its trade is refused as such.
const keepEnded = time.Hour

// Reason is why a path was refused; the values label the agent's counter.
type Reason string

const (
	// ReasonDefaultRoute: 0.0.0.0/0 or ::/0. Never installed from the
	// route server, whatever the trades say.
	ReasonDefaultRoute Reason = "default-route"
	// ReasonMalformed: the prefix or next hop cannot be a traded route
	// (next hop of the other family, unspecified, loopback, multicast...).
	ReasonMalformed Reason = "malformed"
	// ReasonNotTraded: the prefix is in none of the member's trades.
	ReasonNotTraded Reason = "prefix-not-traded"
	// ReasonNextHop: a current trade of the member lists the prefix, but
	// not this next hop among its seller's routers.
	ReasonNextHop Reason = "next-hop-not-in-trade"
	// ReasonInactive: the member's trades for the prefix and next hop are
	// not in their delivery period (not started, ended or cancelled).
	ReasonInactive Reason = "trade-not-active"
)

// Reasons are all the reasons, for metrics that export every label.
var Reasons = []Reason{ReasonDefaultRoute, ReasonMalformed, ReasonNotTraded, ReasonNextHop, ReasonInactive}

// Trade is what the agent knows of one of its trades.
type Trade struct {
	ID       uint64
	BuyerASN uint32
	// Prefixes are delivered exactly as listed.
	Prefixes []netip.Prefix
	// NextHops are the seller's routers on the exchange LAN.
	NextHops []netip.Addr
	// Start and End bound the delivery period [Start, End).
	Start, End time.Time
	Cancelled  bool
}

// active tells whether t counts at now, with grace either side.
func (t *Trade) active(now time.Time, grace time.Duration) bool {
	return !t.Cancelled && !now.Before(t.Start.Add(-grace)) && now.Before(t.End.Add(grace))
}

// Path is one learned path: a prefix through one next hop, with the trade
// IDs the route server named in its communities (shown, not trusted).
type Path struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	Trades  []uint64
}

// State is a path's verdict.
type State int

const (
	// Accepted: install it.
	Accepted State = iota
	// Pending: no known trade justifies it yet; within the grace period
	// (or before the first trade list) it is neither installed nor counted.
	Pending
	// Refused: not installed, counted and logged.
	Refused
)

func (s State) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Pending:
		return "pending"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Verdict is the decision on one path.
type Verdict struct {
	Path
	State State
	// Reason and Detail say why a path is refused, or would be if it
	// stays unjustified (pending).
	Reason Reason
	Detail string
	// Justified are the trades that justify an accepted path.
	Justified []uint64
}

// Report is one Check's outcome.
type Report struct {
	// Verdicts are in the order of the paths given.
	Verdicts []Verdict
	// Recheck is when a verdict may change with no new input (a pending
	// path's grace ends, a trade starts or ends); zero: not before new
	// input.
	Recheck time.Time
}

// Config configures a Checker.
type Config struct {
	// ASN is the member's: trades bought by others are ignored.
	ASN uint32
	// Grace is the race and clock-skew allowance (default DefaultGrace;
	// negative: none).
	Grace time.Duration
	// Now reads the clock (default clock.Now).
	Now func() time.Time
	// Log receives a line per refused path (when it is first refused)
	// and per path no longer refused; nil discards.
	Log *slog.Logger
}

type pathKey struct {
	prefix  netip.Prefix
	nextHop netip.Addr
}

// Checker holds the member's trades and judges learned paths. Its methods
// are safe for concurrent use.
type Checker struct {
	cfg Config

	mu       sync.Mutex
	trades   map[uint64]*Trade
	byPrefix map[netip.Prefix][]uint64 // trade IDs listing each prefix
	loaded   bool
	seen     map[pathKey]time.Time // when each path was first seen
	refused  map[pathKey]Reason    // the paths refused at the last Check
	counts   map[Reason]uint64
	pending  int
}

// New makes a Checker that knows no trades yet.
func New(cfg Config) *Checker {
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Grace < 0 {
		cfg.Grace = 0
	}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Checker{
		cfg:      cfg,
		trades:   map[uint64]*Trade{},
		byPrefix: map[netip.Prefix][]uint64{},
		seen:     map[pathKey]time.Time{},
		refused:  map[pathKey]Reason{},
		counts:   map[Reason]uint64{},
	}
}

// SetTrades replaces the known trades with the arbiter's full list (the
// member's trades, any state; others' are ignored). The first call ends
// the wait for a trade list.
func (c *Checker) SetTrades(ts []Trade) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = true
	clear(c.trades)
	for _, t := range ts {
		c.addLocked(t)
	}
	c.reindexLocked()
}

// AddTrade records one trade (a trade event), replacing one with its ID.
// It reports whether the last Check's verdicts may change: false for a
// trade of another member, and for a new trade while no path was pending
// or refused (a trade added can only justify more paths; its own paths,
// arriving later, are checked then).
func (c *Checker) AddTrade(t Trade) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.trades[t.ID]
	if !c.addLocked(t) {
		return false
	}
	c.reindexLocked()
	// The new version may be pruned at once (it ended long ago): a known
	// trade that is gone changes verdicts too.
	cur := c.trades[t.ID]
	return c.pending > 0 || len(c.refused) > 0 || (old != nil && (cur == nil || !sameTrade(old, cur)))
}

func sameTrade(a, b *Trade) bool {
	return a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Cancelled == b.Cancelled &&
		slices.Equal(a.Prefixes, b.Prefixes) && slices.Equal(a.NextHops, b.NextHops)
}

// EndTrade ends a known trade at the given time (an ended or cancelled
// event), if it ends later. It reports whether it did: otherwise no
// verdict changes (a trade of another member or unknown, or one that ends
// by then anyway, whose end the Report's Recheck already covers).
func (c *Checker) EndTrade(id uint64, at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.trades[id]
	if t == nil || !at.Before(t.End) {
		return false
	}
	t.End = at
	return true
}

// Loaded tells whether a full trade list was set.
func (c *Checker) Loaded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loaded
}

func (c *Checker) addLocked(t Trade) bool {
	if t.BuyerASN != c.cfg.ASN || t.ID == 0 {
		return false
	}
	x := &Trade{ID: t.ID, BuyerASN: t.BuyerASN, Start: t.Start, End: t.End, Cancelled: t.Cancelled}
	for _, p := range t.Prefixes {
		if p.IsValid() {
			x.Prefixes = append(x.Prefixes, p.Masked())
		}
	}
	for _, a := range t.NextHops {
		if a.IsValid() {
			x.NextHops = append(x.NextHops, a.Unmap().WithZone(""))
		}
	}
	c.trades[t.ID] = x
	return true
}

// reindexLocked rebuilds the prefix index and forgets trades long ended.
func (c *Checker) reindexLocked() {
	now := c.cfg.Now()
	clear(c.byPrefix)
	for id, t := range c.trades {
		if now.After(t.End.Add(c.cfg.Grace + keepEnded)) {
			delete(c.trades, id)
			continue
		}
		for _, p := range t.Prefixes {
			c.byPrefix[p] = append(c.byPrefix[p], id)
		}
	}
	for _, ids := range c.byPrefix {
		slices.Sort(ids)
	}
}

// Check judges the paths learned now (the whole set: a path missing from
// it is forgotten, so one that comes back starts its grace again) and logs
// and counts the paths newly refused.
func (c *Checker) Check(paths []Path) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	rep := Report{Verdicts: make([]Verdict, len(paths))}
	// seen is rebuilt from the paths given: a path missing from them is
	// forgotten.
	seen := make(map[pathKey]time.Time, len(paths))
	refused := make(map[pathKey]Reason)
	c.pending = 0
	logged := 0 // refusals logged by this Check
	later := func(t time.Time) {
		if t.After(now) && (rep.Recheck.IsZero() || t.Before(rep.Recheck)) {
			rep.Recheck = t
		}
	}
	for i, p := range paths {
		k := pathKey{p.Prefix, p.NextHop}
		first, ok := c.seen[k]
		if !ok {
			first = now
		}
		seen[k] = first
		v := c.judgeLocked(p, now)
		if v.State == Pending {
			// Held for the grace period, or until a trade list is known.
			switch end := first.Add(c.cfg.Grace); {
			case !c.loaded:
			case now.Before(end):
				later(end)
			default:
				v.State = Refused
			}
		}
		if v.State == Pending {
			c.pending++
		}
		if v.State == Refused {
			refused[k] = v.Reason
			if was, ok := c.refused[k]; !ok || was != v.Reason {
				args := []any{"prefix", p.Prefix, "next_hop", p.NextHop, "reason", string(v.Reason), "detail", v.Detail,
					"route_server_trades", p.Trades}
				if ok {
					args = append(args, "was", string(was))
				} else {
					c.counts[v.Reason]++
				}
				if logged < maxLogged {
					c.cfg.Log.Warn("route from the route server refused: not installed", args...)
				}
				logged++
			}
		}
		rep.Verdicts[i] = v
	}
	if logged > maxLogged {
		c.cfg.Log.Warn("more routes from the route server refused: not installed (bwx-agent status lists them)", "not_logged", logged-maxLogged)
	}
	for k, was := range c.refused {
		if _, still := refused[k]; !still {
			how := "withdrawn"
			if _, present := seen[k]; present {
				how = "now justified by a trade"
			}
			c.cfg.Log.Info("route from the route server no longer refused", "prefix", k.prefix, "next_hop", k.nextHop, "was", string(was), "how", how)
		}
	}
	c.seen, c.refused = seen, refused
	// Trades starting or ending change verdicts by themselves.
	for _, t := range c.trades {
		later(t.Start.Add(-c.cfg.Grace))
		later(t.End.Add(c.cfg.Grace))
	}
	return rep
}

// judgeLocked is the rule, without the grace for unknown trades: a path
// that no trade justifies comes back Pending with the reason it would be
// refused for.
func (c *Checker) judgeLocked(p Path, now time.Time) Verdict {
	v := Verdict{Path: p, State: Refused}
	pfx, nh := p.Prefix, p.NextHop
	if pfx.IsValid() && pfx.Bits() == 0 {
		v.Reason, v.Detail = ReasonDefaultRoute, fmt.Sprintf("%v is a default route: never installed from the route server", pfx)
		return v
	}
	if why := malformed(pfx, nh); why != "" {
		v.Reason, v.Detail = ReasonMalformed, why
		return v
	}
	ids := c.byPrefix[pfx]
	if len(ids) == 0 {
		v.State, v.Reason = Pending, ReasonNotTraded
		v.Detail = fmt.Sprintf("%v is in no trade of AS%d", pfx, c.cfg.ASN)
		return v
	}
	var current, hopOK []uint64
	for _, id := range ids {
		t := c.trades[id]
		has := slices.Contains(t.NextHops, nh)
		if t.active(now, c.cfg.Grace) {
			current = append(current, id)
			if has {
				v.Justified = append(v.Justified, id)
			}
		} else if has {
			hopOK = append(hopOK, id)
		}
	}
	switch {
	case len(v.Justified) > 0:
		v.State = Accepted
	case len(current) > 0:
		var hops []string
		for _, id := range current {
			for _, a := range c.trades[id].NextHops {
				hops = append(hops, a.String())
			}
		}
		v.State, v.Reason = Pending, ReasonNextHop
		v.Detail = fmt.Sprintf("next hop %v is not a seller's router of trade %s for %v (%s)", nh, idList(current), pfx, strings.Join(hops, ", "))
	default:
		which := ids
		if len(hopOK) > 0 {
			which = hopOK
		}
		var spans []string
		for _, id := range which {
			t := c.trades[id]
			s := fmt.Sprintf("#%d %s to %s", id, t.Start.UTC().Format(time.RFC3339), t.End.UTC().Format(time.RFC3339))
			if t.Cancelled {
				s += " cancelled"
			}
			spans = append(spans, s)
		}
		v.State, v.Reason = Pending, ReasonInactive
		v.Detail = fmt.Sprintf("no trade for %v is in its delivery period at %s (%s)", pfx, now.UTC().Format(time.RFC3339), strings.Join(spans, "; "))
	}
	return v
}

func idList(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprintf("#%d", id)
	}
	return strings.Join(s, ", ")
}

// malformed says what makes a path unusable as a traded route, or "".
func malformed(pfx netip.Prefix, nh netip.Addr) string {
	switch {
	case !pfx.IsValid():
		return "invalid prefix"
	case pfx.Addr().Zone() != "":
		return fmt.Sprintf("prefix %v has a zone", pfx)
	case pfx.Addr().Is4In6():
		return fmt.Sprintf("prefix %v is IPv4-mapped IPv6", pfx)
	case pfx.Masked() != pfx:
		return fmt.Sprintf("prefix %v has host bits set", pfx)
	case !nh.IsValid():
		return fmt.Sprintf("%v has no next hop", pfx)
	case nh.Is4In6() || nh.Is4() != pfx.Addr().Is4():
		return fmt.Sprintf("next hop %v is not of the family of %v", nh, pfx)
	case nh.Zone() != "":
		return fmt.Sprintf("next hop %v has a zone", nh)
	case nh.IsUnspecified() || nh.IsMulticast() || nh.IsLoopback() || nh.IsLinkLocalMulticast() ||
		nh == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("next hop %v is not a unicast router address", nh)
	}
	return ""
}

// Counts returns the paths refused since New, by reason (each counted
// when it is refused, not at every Check).
func (c *Checker) Counts() map[Reason]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Reason]uint64, len(Reasons))
	for _, r := range Reasons {
		out[r] = c.counts[r]
	}
	return out
}

// Stats are the checker's figures now.
type Stats struct {
	// Trades are the member's trades known (current, scheduled and
	// recently ended).
	Trades int `json:"trades"`
	// Loaded: a full trade list was set.
	Loaded bool `json:"loaded"`
	// Pending and Refused are the paths held and refused at the last Check.
	Pending int `json:"pending"`
	Refused int `json:"refused"`
}

// Stats returns the figures now.
func (c *Checker) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Trades: len(c.trades), Loaded: c.loaded, Pending: c.pending, Refused: len(c.refused)}
}
