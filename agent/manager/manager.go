package manager

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// ClientOrderPrefix starts the client order ID of every order the manager
// places; it only ever cancels or changes orders that carry it.
const ClientOrderPrefix = "bwxm-"

// pendingTTL is how long a taken offer counts as bought before its trade
// shows up in Inputs.Trades (or Failed says it failed).
const pendingTTL = 15 * time.Minute

// virtualTrade is a buy the manager decided that is not (yet) among the
// member's trades: pending in trade mode, imagined in shadow mode.
type virtualTrade struct {
	Trade
	clientID string
	expires  time.Time
}

// Manager makes the access manager's decisions. Its methods are safe for
// concurrent use.
type Manager struct {
	mu      sync.Mutex
	pol     Policy
	demand  *Demand
	paths   *paths
	journal *Journal

	noRebuy  map[netip.Prefix]time.Time // no buy before
	lastBuy  map[netip.Prefix]time.Time // switch hold-down
	changes  []time.Time                // in the last hour
	lastHold map[string]held            // subject -> last hold journaled
	avoid    map[pathKey]time.Time      // breached paths, until the trade ends
	breached map[breachKey]bool         // breaches reported and not yet cleared
	route    map[netip.Prefix]uint32    // route preference per traded prefix
	switchTo map[netip.Prefix]uint32    // demand prefix -> seller switched to
	virtual  []virtualTrade
	lapsed   map[string]time.Time // trades let lapse -> their end
	// shadowSells are the sell orders shadow mode would have in the book.
	shadowSells map[string]Order
	nextID      uint64
}

// held is the last hold journaled about a subject; forgotten after a day
// (so it is journaled again, and the map does not grow).
type held struct {
	reason string
	until  time.Time
}

type breachKey struct {
	trade  uint64
	seller uint32
	prefix netip.Prefix
}

// New returns a manager for p (validated here) that keeps journalSize
// decisions.
func New(p Policy, journalSize int) (*Manager, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("manager policy: %w", err)
	}
	return &Manager{
		pol:         p,
		demand:      NewDemand(p.Demand.Window),
		paths:       newPaths(max(p.Quality.Rounds, p.Failover.Rounds, keptRounds)),
		journal:     NewJournal(journalSize),
		noRebuy:     map[netip.Prefix]time.Time{},
		lastBuy:     map[netip.Prefix]time.Time{},
		lastHold:    map[string]held{},
		avoid:       map[pathKey]time.Time{},
		breached:    map[breachKey]bool{},
		route:       map[netip.Prefix]uint32{},
		switchTo:    map[netip.Prefix]uint32{},
		lapsed:      map[string]time.Time{},
		shadowSells: map[string]Order{},
	}, nil
}

// Journal is the decision journal (for `bwx-agent decisions` and for the
// daemon to persist with Since).
func (m *Manager) Journal() *Journal { return m.journal }

// AddDemand folds in capture figures (one call per capture interval).
func (m *Manager) AddDemand(s ...DemandSample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.demand.Add(s...)
}

// AddQuality folds in probe rounds, of the default path and of every seller.
func (m *Manager) AddQuality(s ...PathSample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range s {
		if r.Prefix.IsValid() {
			r.At = r.At.UTC()
			m.paths.add(r)
		}
	}
}

// Wanted returns the destinations that qualify for buying at now, most
// traffic first: the daemon asks ListOffers for each (a buy spec with the
// prefix, the policy's ranking and quality floor) and passes the offers to
// Step.
func (m *Manager) Wanted(now time.Time) []Destination {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wanted(now.UTC())
}

func (m *Manager) wanted(now time.Time) []Destination {
	d := m.pol.Demand
	var out []Destination
	// The top destinations among those allowed: a busy destination the
	// policy excludes must not crowd out one it allows.
	for _, dst := range m.demand.Top(now, len(m.demand.series)) {
		if len(out) == d.Top {
			break
		}
		if dst.P95Bps > 0 && dst.P95Bps >= int64(d.MinRate) && dst.Intervals >= d.MinIntervals &&
			dst.Samples >= d.MinSamples && m.pol.Buy.destAllowed(dst.Prefix) {
			out = append(out, dst)
		}
	}
	return out
}

// Quality is the smoothed quality of seller's path (DefaultPath: the
// member's own) toward p at now, from the probe rounds fed so far; ok is
// false without a fresh round (quality.max_age).
func (m *Manager) Quality(now time.Time, seller uint32, p netip.Prefix) (q Quality, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paths.smoothed(seller, p, now.UTC(), m.pol.Quality.MaxAge, m.pol.Quality.Rounds, m.pol.Quality.MinProbes)
}

// Failed tells the manager that the intent with clientOrderID failed (the
// RPC was refused): the buy no longer counts as pending.
func (m *Manager) Failed(clientOrderID string, at time.Time, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, v := range m.virtual {
		if v.clientID == clientOrderID {
			m.virtual = slices.Delete(m.virtual, i, i+1)
			m.record(Decision{At: at.UTC(), Kind: KindHold, Prefix: firstPrefix(v.Prefixes), Seller: v.Seller,
				Reason: fmt.Sprintf("order %s failed: %v", clientOrderID, err)})
			return
		}
	}
}

func firstPrefix(ps []netip.Prefix) netip.Prefix {
	if len(ps) == 0 {
		return netip.Prefix{}
	}
	return ps[0]
}

// Restore replays persisted decisions (oldest first) into the journal and
// the hold-downs and change cap, so a restarted agent does not rebuy what it
// just let go or exceed its cap.
func (m *Manager) Restore(ds []Decision) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.journal.restore(ds)
	for _, d := range ds {
		m.apply(d)
	}
}

// record journals d and applies it to the stability state.
func (m *Manager) record(d Decision) Decision {
	if m.pol.Mode == ModeShadow {
		d.Shadow = true
		d.Intents = nil
	}
	m.apply(d)
	return m.journal.add(d)
}

func (m *Manager) apply(d Decision) {
	if d.Kind.changes() {
		m.changes = append(m.changes, d.At)
	}
	if d.Kind != KindHold && d.Prefix.IsValid() {
		delete(m.lastHold, "buy "+d.Prefix.String())
	}
	switch d.Kind {
	case KindBuy, KindSwitch:
		m.lastBuy[d.Prefix] = d.At
	case KindCancel, KindLapse:
		if d.Prefix.IsValid() && !d.HoldUntil.IsZero() {
			m.noRebuy[d.Prefix] = laterOf(m.noRebuy[d.Prefix], d.HoldUntil)
		}
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// changesInHour counts capped changes in the hour before now.
func (m *Manager) changesInHour(now time.Time) int {
	from := now.Add(-time.Hour)
	i := 0
	for i < len(m.changes) && !m.changes[i].After(from) {
		i++
	}
	m.changes = m.changes[i:]
	return len(m.changes)
}

func (m *Manager) capReached(now time.Time) bool {
	return m.changesInHour(now) >= m.pol.Stability.MaxChangesPerHour
}

// hold journals a hold for subject once per distinct reason.
func (m *Manager) hold(out *[]Decision, subject string, d Decision) {
	if m.lastHold[subject].reason == d.Reason {
		return
	}
	m.lastHold[subject] = held{d.Reason, d.At.Add(24 * time.Hour)}
	d.Kind = KindHold
	*out = append(*out, m.record(d))
}

func (m *Manager) clientID(now time.Time) string {
	m.nextID++
	return fmt.Sprintf("%s%d-%d", ClientOrderPrefix, now.UnixMilli(), m.nextID)
}

// Step makes this round's decisions from in and the demand and quality fed
// so far. The daemon carries out the Intents of the returned decisions in
// order (none in shadow mode); all of them are also in the Journal.
func (m *Manager) Step(in Inputs) []Decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pol.Mode == ModeOff {
		return nil
	}
	now := in.Now.UTC()
	s := &step{m: m, in: in, now: now}
	s.prepare()
	s.failover()
	s.routes()
	s.cancelOrders()
	s.renewals()
	s.buys()
	s.routes() // failover buys and switches that are already active
	s.sell()
	return s.out
}

// step is one round's working state.
type step struct {
	m      *Manager
	in     Inputs
	now    time.Time
	out    []Decision
	trades []Trade // buy trades not ended, real then virtual
	orders []Order // open buy orders
	want   []Destination
	offers map[netip.Prefix][]Offer
}

func (s *step) prepare() {
	m := s.m
	for _, t := range s.in.Trades {
		if t.Side == Buy && t.End.After(s.now) {
			s.trades = append(s.trades, t)
		}
	}
	// A virtual trade ends when its real trade shows up or it expires.
	m.virtual = slices.DeleteFunc(m.virtual, func(v virtualTrade) bool {
		if !s.now.Before(v.expires) || !v.End.After(s.now) {
			return true
		}
		for _, t := range s.trades {
			// The arbiter keeps times to the microsecond: allow for it.
			if t.Seller == v.Seller && t.End.Sub(v.End).Abs() < time.Second && t.Covers(v.Prefixes[0]) {
				return true
			}
		}
		return false
	})
	for _, v := range m.virtual {
		s.trades = append(s.trades, v.Trade)
	}
	for _, o := range s.in.Orders {
		if o.Side == Buy {
			s.orders = append(s.orders, o)
		}
	}
	for k, h := range m.lastHold {
		if s.now.After(h.until) {
			delete(m.lastHold, k)
		}
	}
	for k, end := range m.lapsed {
		if s.now.After(end) {
			delete(m.lapsed, k)
		}
	}
	for k, until := range m.avoid {
		if !s.now.Before(until) {
			delete(m.avoid, k)
		}
	}
	s.want = m.wanted(s.now)
	s.offers = map[netip.Prefix][]Offer{}
	for _, o := range s.in.Offers {
		p := o.Prefix.Masked()
		s.offers[p] = append(s.offers[p], o)
	}
}

// pending is the buys in flight. Shadow mode's imagined trades are never
// in flight: they count as trades (buy.max_trades), not as open orders.
func (s *step) pending() int {
	if s.m.pol.Mode == ModeShadow {
		return 0
	}
	return len(s.m.virtual)
}

// avoided tells whether seller's path toward p (or a prefix overlapping
// it) broke its limits.
func (s *step) avoided(seller uint32, p netip.Prefix) bool {
	for k := range s.m.avoid {
		if k.seller == seller && k.prefix.Overlaps(p) {
			return true
		}
	}
	return false
}

// quality is a path's smoothed quality from the agent's own probes.
func (s *step) quality(seller uint32, p netip.Prefix) (Quality, bool) {
	q := &s.m.pol.Quality
	return s.m.paths.smoothed(seller, p, s.now, q.MaxAge, q.Rounds, q.MinProbes)
}

func qptr(q Quality, ok bool) *Quality {
	if !ok {
		return nil
	}
	return &q
}

// budgetItem is a cost over a period.
type budgetItem struct {
	start, end time.Time
	monthly    int64
}

func (s *step) budgetItems() []budgetItem {
	var items []budgetItem
	for _, t := range s.trades {
		items = append(items, budgetItem{t.Start, t.End, monthly(t.PriceMicros, t.CapacityBps)})
	}
	for _, o := range s.orders {
		items = append(items, budgetItem{o.Start, o.End, monthly(o.PriceMicros, o.Remaining())})
	}
	return items
}

// PeakCost is the highest monthly cost at any instant from now on of items
// with extra added: the budget must cover it. An item with a zero end
// never ends.
func peakCost(now time.Time, items []budgetItem, extra *budgetItem) int64 {
	if extra != nil {
		items = append(slices.Clip(items), *extra)
	}
	var peak int64
	for _, at := range items {
		t := laterOf(at.start, now)
		var sum int64
		for _, it := range items {
			if !t.Before(it.start) && (it.end.IsZero() || t.Before(it.end)) {
				sum = satAdd(sum, it.monthly)
			}
		}
		peak = max(peak, sum)
	}
	return peak
}

func satAdd(a, b int64) int64 {
	if a > 1<<63-1-b {
		return 1<<63 - 1
	}
	return a + b
}

// sizeFor is the capacity to buy for demand p95 in whole blocks.
func (s *step) sizeFor(p95, block int64) int64 {
	want := p95 + p95*int64(s.m.pol.Buy.Headroom)/100
	if block <= 0 {
		return want
	}
	return (want + block - 1) / block * block
}

// routes keeps one route preference per traded prefix: the path it had
// while that stays valid, a switched-to seller once its trade delivers,
// else the best valid trade, else the default path.
func (s *step) routes() {
	m := s.m
	active := map[netip.Prefix][]Trade{}
	for _, t := range s.in.Trades {
		if t.Side == Buy && t.ActiveAt(s.now) {
			for _, p := range t.Prefixes {
				active[p.Masked()] = append(active[p.Masked()], t)
			}
		}
	}
	keys := map[netip.Prefix]bool{}
	for p := range active {
		keys[p] = true
	}
	for p := range m.route {
		keys[p] = true
	}
	sorted := make([]netip.Prefix, 0, len(keys))
	for p := range keys {
		sorted = append(sorted, p)
	}
	slices.SortFunc(sorted, func(a, b netip.Prefix) int { return a.Compare(b) })
	for _, p := range sorted {
		valid := map[uint32]Trade{}
		for _, t := range active[p] {
			if !s.avoided(t.Seller, p) {
				if _, ok := valid[t.Seller]; !ok {
					valid[t.Seller] = t
				}
			}
		}
		cur, had := m.route[p]
		want := DefaultPath
		reason := ""
		switched := DefaultPath
		for dp, seller := range m.switchTo {
			if dp.Overlaps(p) {
				switched = seller
			}
		}
		switch _, ok := valid[switched]; {
		case switched != DefaultPath && ok:
			want, reason = switched, "switched seller's trade delivers"
			for dp, seller := range m.switchTo {
				if dp.Overlaps(p) && seller == switched {
					delete(m.switchTo, dp)
				}
			}
		case had && cur != DefaultPath && valid[cur].ID != 0:
			want = cur
		default:
			var best *Trade
			for _, t := range valid {
				if best == nil || t.PriceMicros < best.PriceMicros || t.PriceMicros == best.PriceMicros && t.Seller < best.Seller {
					best = &t
				}
			}
			if best != nil {
				want, reason = best.Seller, "trade delivers"
			} else {
				reason = "no valid trade: back to the default path"
			}
		}
		if had && want == cur {
			continue
		}
		if !had && want == DefaultPath {
			continue
		}
		if had && cur != DefaultPath && s.avoided(cur, p) {
			reason = fmt.Sprintf("AS%d broke its limits; %s", cur, reason)
		}
		m.route[p] = want
		if want == DefaultPath && len(active[p]) == 0 {
			delete(m.route, p)
		}
		d := Decision{At: s.now, Kind: KindRoute, Prefix: p, Seller: want, From: cur, Reason: reason,
			Intents: []Intent{{Type: Route, Prefix: p, Seller: want}}}
		if t, ok := valid[want]; ok {
			d.TradeID = t.ID
		}
		s.out = append(s.out, m.record(d))
	}
}

// failover counts, for each trade with limits, the newest consecutive
// probe rounds of its seller's path beyond them; Failover.Rounds of them
// is a breach when, pooled, they count at least quality.min_probes echo
// requests and are significantly beyond the limits (else the manager
// probes more): reported once, and the path is avoided until the trade
// ends.
func (s *step) failover() {
	m := s.m
	n := m.pol.Failover.Rounds
	for _, t := range s.trades {
		if t.ID == 0 && m.pol.Mode != ModeShadow {
			continue // pending: no trade to report yet
		}
		lim := t.Limits
		if lim == (Limits{}) {
			lim = m.pol.Buy.FloorLimits() // a trade bought without limits: the policy's floor (2 % loss by default)
		}
		if lim == (Limits{}) {
			continue
		}
		for k, rs := range m.paths.m {
			if k.seller != t.Seller || !t.Covers(k.prefix) {
				continue
			}
			bad := 0
			for i := len(rs) - 1; i >= 0 && !rs[i].At.Before(t.Start); i-- {
				if lim.Meets(roundQuality(rs[i])) {
					break
				}
				bad++
			}
			bk := breachKey{t.ID, t.Seller, k.prefix}
			if bad == 0 {
				delete(m.breached, bk)
				continue
			}
			if bad < n || m.breached[bk] {
				continue
			}
			pooled := pool(rs[len(rs)-bad:])
			if pooled.Probes < m.pol.Quality.MinProbes || !lim.beyond(pooled) {
				continue // not enough to tell a breach from noise yet
			}
			m.breached[bk] = true
			m.avoid[pathKey{t.Seller, k.prefix}] = laterOf(m.avoid[pathKey{t.Seller, k.prefix}], t.End)
			last := roundQuality(rs[len(rs)-1])
			s.out = append(s.out, m.record(Decision{
				At: s.now, Kind: KindBreach, Prefix: k.prefix, Seller: t.Seller, TradeID: t.ID,
				Reason: fmt.Sprintf("%d consecutive probe rounds beyond the trade's limits, significantly (latency %s, loss %s)",
					bad, pooled.figures().LatencyString(), pooled.figures().LossString()),
				Chosen:  &pooled,
				Intents: []Intent{{Type: ReportBreach, TradeID: t.ID, Seller: t.Seller, Prefix: k.prefix, Limits: lim, Observed: &last}},
			}))
		}
	}
}

// ours tells whether the manager placed an order.
func ours(o Order) bool { return strings.HasPrefix(o.ClientOrderID, ClientOrderPrefix) }

// cancelOrders cancels the manager's own open buy orders that no longer
// make sense: above the max price, for a destination that no longer
// qualifies or is covered, or beyond the budget or the open-order limit.
func (s *step) cancelOrders() {
	m := s.m
	b := &m.pol.Buy
	wanted := map[netip.Prefix]bool{}
	for _, d := range s.want {
		wanted[d.Prefix] = true
	}
	var keep []Order
	for _, o := range s.orders {
		if !ours(o) {
			keep = append(keep, o)
			continue
		}
		reason := ""
		switch {
		case o.PriceMicros > int64(b.MaxPrice):
			reason = fmt.Sprintf("price %v above buy.max_price %v", Money(o.PriceMicros), b.MaxPrice)
		case !o.Prefix.IsValid() || !wanted[o.Prefix.Masked()]:
			reason = "destination no longer qualifies"
		case s.covered(o.Prefix):
			reason = "destination already covered by a trade"
		}
		if reason == "" {
			keep = append(keep, o)
			continue
		}
		s.out = append(s.out, m.record(s.cancel(o, reason)))
	}
	// Then the newest of ours while over the budget or the order limit.
	for {
		over := ""
		s.orders = keep
		if peak := peakCost(s.now, s.budgetItems(), nil); peak > int64(b.Budget) {
			over = fmt.Sprintf("monthly cost %v over buy.budget %v", Money(peak), b.Budget)
		} else if len(keep)+s.pending() > b.MaxOpenOrders {
			over = fmt.Sprintf("%d open orders, more than buy.max_open_orders %d", len(keep)+s.pending(), b.MaxOpenOrders)
		}
		i := len(keep) - 1
		for i >= 0 && !ours(keep[i]) {
			i--
		}
		if over == "" || i < 0 {
			break
		}
		s.out = append(s.out, m.record(s.cancel(keep[i], over)))
		keep = slices.Delete(keep, i, i+1)
	}
	s.orders = keep
}
