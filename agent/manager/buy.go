package manager

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/shared/pathscore"
)

// covered tells whether a trade not ended (or a pending buy) covers p
// through a path that has not broken its limits.
func (s *step) covered(p netip.Prefix) bool {
	for _, t := range s.trades {
		if t.Covers(p) && !s.avoided(t.Seller, p) {
			return true
		}
	}
	return false
}

func (s *step) cancel(o Order, reason string) Decision {
	return Decision{At: s.now, Kind: KindCancel, Prefix: o.Prefix, OrderID: o.ID, Reason: reason, HoldUntil: s.now.Add(s.m.pol.Stability.RebuyHoldDown),
		PriceMicros: o.PriceMicros, SizeBps: o.Remaining(), MonthlyMicros: monthly(o.PriceMicros, o.Remaining()),
		Intents: []Intent{{Type: CancelOrder, OrderID: o.ID}}}
}

// candidate is an offer that passed the policy's filters.
type candidate struct {
	offer   Offer
	q       Quality
	size    int64
	monthly int64
	// score is the path score among the candidates, level its place in
	// [0, 1] (rank fills them in).
	score pathscore.Score
	level float64
	// pos is the offer's place in the exchange's answer, which lists
	// offers of equal price in time priority.
	pos int
}

// candidates are the offers for dst the policy allows for delivery from
// start to end, except from the sellers in exclude, ranked by the policy;
// why says what was filtered out when none is left.
func (s *step) candidates(dst Destination, start, end time.Time, exclude ...uint32) (cs []candidate, why string) {
	b := &s.m.pol.Buy
	floor := b.FloorLimits()
	counts := map[string]int{}
	for pos, o := range s.offers[dst.Prefix] {
		size := s.sizeFor(dst.P95Bps, o.MinBlockBps)
		q, ok := s.quality(o.Seller, dst.Prefix)
		if !ok && o.Measured != nil {
			q, ok = *o.Measured, true
		}
		var reason string
		switch {
		case o.Seller == DefaultPath || slices.Contains(exclude, o.Seller):
			continue
		case !b.sellerAllowed(o.Seller):
			reason = "seller not allowed"
		case s.avoided(o.Seller, dst.Prefix):
			reason = "path broke its limits"
		case o.PriceMicros <= 0 || o.PriceMicros > int64(b.MaxPrice):
			reason = "above max price"
		case !ok:
			reason = "unmeasured"
		case q.Probes < s.m.pol.Quality.MinProbes:
			reason = "too few probes yet (probing more)"
		case floor.beyond(q):
			reason = "below quality floor"
		case o.AvailableBps < size:
			reason = "too little capacity"
		case !o.Start.IsZero() && o.Start.After(start), !o.End.IsZero() && o.End.Before(end):
			reason = "delivery period"
		case s.in.Port.CapacityBps > 0 && s.in.Port.CapacityBps-s.in.Port.CommittedBps < size:
			reason = "own port full"
		}
		if reason != "" {
			counts[reason]++
			continue
		}
		cs = append(cs, candidate{offer: o, q: q, size: size, monthly: monthly(o.PriceMicros, size), pos: pos})
	}
	s.rank(cs)
	if len(cs) == 0 {
		if len(counts) == 0 {
			return nil, "no offers"
		}
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		why = "no usable offer:"
		for _, k := range keys {
			why += fmt.Sprintf(" %d %s;", counts[k], k)
		}
		why = why[:len(why)-1]
	}
	return cs, why
}

// rank orders candidates best first by the policy's ranking (as the
// exchange ranks, claims 24-25): price, then the path score; the path
// score (shared/pathscore: loss, latency, jitter, each only on a
// significant difference), then price; or the weighted mix of price over
// max price and the path score's level among the candidates. The
// exchange's order (time priority among equal prices), then seller and
// offer ID break ties, so the order is total.
func (s *step) rank(cs []candidate) {
	b := &s.m.pol.Buy
	fs := make([]*pathscore.Figures, len(cs))
	for i := range cs {
		f := cs[i].q.figures()
		fs[i] = &f
	}
	scores := pathscore.Rank(fs)
	levels := pathscore.Levels(scores)
	for i := range cs {
		cs[i].score, cs[i].level = scores[i], levels[i]
	}
	tie := func(a, c candidate) int {
		return cmp.Or(cmp.Compare(a.pos, c.pos), cmp.Compare(a.offer.Seller, c.offer.Seller), cmp.Compare(a.offer.OrderID, c.offer.OrderID))
	}
	perf := func(a, c candidate) int { return a.score.Compare(c.score) }
	price := func(a, c candidate) int { return cmp.Compare(a.offer.PriceMicros, c.offer.PriceMicros) }
	switch b.Ranking {
	case ByPerformance:
		slices.SortFunc(cs, func(a, c candidate) int { return cmp.Or(perf(a, c), price(a, c), tie(a, c)) })
	case Weighted:
		w := float64(b.PriceWeight) / 100
		score := func(c candidate) float64 {
			p := float64(c.offer.PriceMicros) / float64(max(int64(b.MaxPrice), 1))
			return w*p + (1-w)*c.level
		}
		slices.SortFunc(cs, func(a, c candidate) int {
			return cmp.Or(cmp.Compare(score(a), score(c)), price(a, c), perf(a, c), tie(a, c))
		})
	default:
		slices.SortFunc(cs, func(a, c candidate) int { return cmp.Or(price(a, c), perf(a, c), tie(a, c)) })
	}
}

// gain is what a path gains over the current one: each figure's point
// difference and its 95 % margin, counted toward a threshold only when
// significant; compared says which comparison decided, lossier whether
// the path's loss is significantly higher than the current one's.
type gain struct {
	latencyUs, latencyMarginUs int64
	lossPPM, lossMarginPPM     int32
	saving                     int64 // per month
	compared                   string
	lossier                    bool
}

// improves tells whether going from cur (nil: unmeasured) at curPrice to q
// at price for size gains at least one set threshold, scaled by pct
// percent (hysteresis). A latency or loss gain counts only when it is
// significant (shared/pathscore); nothing justifies a path whose loss is
// significantly higher than the current one's, whatever it gains.
func (s *step) improves(cur *Quality, curPrice int64, q Quality, price, size int64, pct int) (gain, bool) {
	im := s.m.pol.Buy.MinImprovement
	var g gain
	ok := false
	if cur != nil {
		c, n := cur.figures(), q.figures()
		pg := pathscore.GainOf(c, n)
		g.latencyUs, g.latencyMarginUs, g.lossPPM, g.lossMarginPPM = pg.LatencyUs, pg.LatencyMarginUs, pg.LossPPM, pg.LossMarginPPM
		g.compared = pathscore.Explain(n, c)
		if g.lossier = pathscore.Worse(pathscore.Loss, n, c); g.lossier {
			g.compared = "never: " + g.compared
			return g, false
		}
		if im.Latency > 0 && pathscore.Worse(pathscore.Latency, c, n) && g.latencyUs >= im.Latency.Microseconds()*int64(pct)/100 {
			ok = true
		}
		if im.Loss > 0 && pathscore.Worse(pathscore.Loss, c, n) && int64(g.lossPPM) >= int64(im.Loss)*int64(pct)/100 {
			ok = true
		}
	}
	if curPrice > 0 {
		g.saving = monthly(curPrice, size) - monthly(price, size)
		if im.Savings > 0 && g.saving >= int64(im.Savings)*int64(pct)/100 {
			ok = true
		}
	}
	return g, ok
}

// limitsReached says which buy limit a new trade would break, if any.
func (s *step) limitsReached(extra budgetItem) (string, int64) {
	b := &s.m.pol.Buy
	used := peakCost(s.now, s.budgetItems(), nil)
	switch {
	case s.peakTrades(extra) > int64(b.MaxTrades):
		return fmt.Sprintf("buy.max_trades %d reached", b.MaxTrades), used
	case len(s.orders)+s.pending() >= b.MaxOpenOrders:
		return fmt.Sprintf("buy.max_open_orders %d reached", b.MaxOpenOrders), used
	}
	if peak := peakCost(s.now, s.budgetItems(), &extra); peak > int64(b.Budget) {
		return fmt.Sprintf("monthly cost would peak at %v, over buy.budget %v", Money(peak), b.Budget), used
	}
	return "", used
}

// peakTrades is the most buy trades delivering at one instant from now on
// with one more over extra's period (a renewal follows its trade, so it
// does not count twice).
func (s *step) peakTrades(extra budgetItem) int64 {
	items := make([]budgetItem, 0, len(s.trades))
	for _, t := range s.trades {
		items = append(items, budgetItem{t.Start, t.End, 1})
	}
	extra.monthly = 1
	return peakCost(s.now, items, &extra)
}

// take records a buy-side decision and its pending trade.
func (s *step) take(d Decision, c candidate, start, end time.Time) {
	m := s.m
	id := m.clientID(s.now)
	// The trade's limits at the exchange (its SLA) are the floor as
	// configured; failover holds it to FloorLimits when that sets none.
	lim := m.pol.Buy.Floor.Limits()
	d.Seller = c.offer.Seller
	d.SizeBps = c.size
	d.PriceMicros = c.offer.PriceMicros
	d.MonthlyMicros = c.monthly
	d.Budget = int64(m.pol.Buy.Budget)
	d.Chosen = &c.q
	d.Intents = []Intent{{Type: TakeOffer, ClientOrderID: id, OfferOrderID: c.offer.OrderID, Seller: c.offer.Seller,
		Prefix: d.Prefix, CapacityBps: c.size, MinBlockBps: c.offer.MinBlockBps, PriceMicros: c.offer.PriceMicros,
		Limits: lim, Start: start, End: end}}
	expires := s.now.Add(pendingTTL)
	if m.pol.Mode == ModeShadow {
		expires = end
	}
	v := virtualTrade{Trade: Trade{Side: Buy, Seller: c.offer.Seller, Prefixes: []netip.Prefix{d.Prefix},
		CapacityBps: c.size, PriceMicros: c.offer.PriceMicros, Start: start, End: end, Limits: lim}, clientID: id, expires: expires}
	m.virtual = append(m.virtual, v)
	s.trades = append(s.trades, v.Trade)
	s.out = append(s.out, m.record(d))
}

func (s *step) lapse(t Trade, p netip.Prefix, reason string) {
	m := s.m
	k := lapseKey(t)
	if _, done := m.lapsed[k]; done {
		return
	}
	m.lapsed[k] = t.End
	d := Decision{At: s.now, Kind: KindLapse, Prefix: p, Seller: t.Seller, TradeID: t.ID,
		Reason: reason, PriceMicros: t.PriceMicros, SizeBps: t.CapacityBps, MonthlyMicros: monthly(t.PriceMicros, t.CapacityBps)}
	if p.IsValid() {
		d.HoldUntil = t.End.Add(m.pol.Stability.RebuyHoldDown)
	}
	s.out = append(s.out, m.record(d))
}

func lapseKey(t Trade) string {
	return fmt.Sprintf("%d/%d/%d/%s", t.ID, t.Seller, t.End.Unix(), firstPrefix(t.Prefixes))
}

// renewals renews, from the same seller, the trades ending within
// buy.renew_before that still pay off (with the hysteresis discount), and
// lets the others lapse.
func (s *step) renewals() {
	m := s.m
	b := &m.pol.Buy
	h := m.pol.Stability.Hysteresis
	for _, t := range slices.Clone(s.trades) {
		if _, done := m.lapsed[lapseKey(t)]; done || t.End.Sub(s.now) > b.RenewBefore {
			continue
		}
		if t.ID == 0 && m.pol.Mode != ModeShadow {
			continue
		}
		// Renewed or superseded already: another trade covers the same
		// destination beyond this one's end.
		var dst *Destination
		for i := range s.want {
			if t.Covers(s.want[i].Prefix) {
				dst = &s.want[i]
				break
			}
		}
		p := firstPrefix(t.Prefixes)
		if dst != nil {
			p = dst.Prefix
		}
		superseded := false
		for _, u := range s.trades {
			if u.Covers(p) && u.End.After(t.End) {
				superseded = true
				if u.Seller != t.Seller {
					s.lapse(t, netip.Prefix{}, fmt.Sprintf("superseded by AS%d", u.Seller))
				}
			}
		}
		if superseded {
			continue
		}
		subject := "renew " + lapseKey(t)
		cur, curOK := s.quality(t.Seller, p)
		def, defOK := s.quality(DefaultPath, p)
		switch {
		case dst == nil:
			s.lapse(t, p, "destination no longer qualifies")
			continue
		case s.avoided(t.Seller, p):
			s.lapse(t, p, "path broke its limits")
			continue
		case !b.sellerAllowed(t.Seller):
			s.lapse(t, p, "seller no longer allowed")
			continue
		case t.PriceMicros > int64(b.MaxPrice):
			s.lapse(t, p, fmt.Sprintf("price %v above buy.max_price %v", Money(t.PriceMicros), b.MaxPrice))
			continue
		case !curOK:
			s.lapse(t, p, "no fresh measurement of the traded path")
			continue
		case cur.Probes < m.pol.Quality.MinProbes || defOK && def.Probes < m.pol.Quality.MinProbes:
			// Not enough to judge either way: probe more, decide later.
			m.hold(&s.out, subject, Decision{At: s.now, Prefix: p, Seller: t.Seller, TradeID: t.ID,
				Reason: fmt.Sprintf("renewal waits: too few probes yet (fewer than quality.min_probes %d): probing more", m.pol.Quality.MinProbes)})
			continue
		}
		g, ok := s.improves(qptr(def, defOK), int64(b.DefaultPathPrice), cur, t.PriceMicros, t.CapacityBps, 100-h)
		if !ok {
			why := fmt.Sprintf("no longer pays off: gains %dus, %dppm, saves %v a month", g.latencyUs, g.lossPPM, Money(g.saving))
			if g.compared != "" {
				why += " (" + g.compared + ")"
			}
			s.lapse(t, p, why)
			continue
		}
		start, end := t.End, t.End.Add(b.Term)
		var pick *candidate
		cs, why := s.candidates(*dst, start, end)
		for i := range cs {
			if cs[i].offer.Seller == t.Seller {
				pick = &cs[i]
				break
			}
		}
		d := Decision{At: s.now, Kind: KindRenew, Prefix: p, Seller: t.Seller, TradeID: t.ID, DemandP95Bps: dst.P95Bps,
			Current: qptr(def, defOK), GainLatencyUs: g.latencyUs, GainLossPPM: g.lossPPM, SavingMicros: g.saving,
			GainLatencyMarginUs: g.latencyMarginUs, GainLossMarginPPM: g.lossMarginPPM, Compared: g.compared}
		if pick == nil {
			if why == "" {
				why = fmt.Sprintf("AS%d offers nothing usable", t.Seller)
			}
			d.Reason = "pays off but cannot renew: " + why
			m.hold(&s.out, subject, d)
			continue
		}
		if lim, used := s.limitsReached(budgetItem{start, end, pick.monthly}); lim != "" {
			d.Reason, d.BudgetUsed, d.Budget = "pays off but cannot renew: "+lim, used, int64(b.Budget)
			m.hold(&s.out, subject, d)
			continue
		}
		d.BudgetUsed = peakCost(s.now, s.budgetItems(), nil)
		d.Reason = "still pays off; renewing before it ends"
		s.take(d, *pick, start, end)
	}
}

// buys takes, for each qualifying destination, the best-ranked offer that
// improves enough on the current path: a buy for an uncovered destination,
// a switch (with the hysteresis margin) for a covered one.
func (s *step) buys() {
	m := s.m
	b := &m.pol.Buy
	st := &m.pol.Stability
	for _, dst := range s.want {
		p := dst.Prefix
		subject := "buy " + p.String()
		var valid []Trade
		failover, pending := false, false
		for _, t := range s.trades {
			if !t.Covers(p) {
				continue
			}
			if t.ID == 0 {
				pending = true
			}
			if s.avoided(t.Seller, p) {
				failover = true
			} else {
				valid = append(valid, t)
			}
		}
		if pending && len(valid) > 0 {
			continue
		}
		failover = failover && len(valid) == 0
		d := Decision{At: s.now, Prefix: p, DemandP95Bps: dst.P95Bps, Budget: int64(b.Budget)}
		var cur *Quality
		var curPrice int64
		var exclude []uint32
		pct := 100
		if len(valid) > 0 {
			sellers := map[uint32]bool{}
			for _, t := range valid {
				sellers[t.Seller] = true
			}
			if len(sellers) > 1 {
				continue // a switch is under way
			}
			t := valid[0]
			d.Kind, d.From, d.TradeID = KindSwitch, t.Seller, t.ID
			cur, curPrice = qptr(s.quality(t.Seller, p)), t.PriceMicros
			if cur == nil {
				continue // cannot judge the traded path
			}
			exclude = []uint32{t.Seller}
			pct = 100 + st.Hysteresis
		} else {
			d.Kind = KindBuy
			cur, curPrice = qptr(s.quality(DefaultPath, p)), int64(b.DefaultPathPrice)
		}
		d.Current = cur
		if cur != nil && cur.Probes < m.pol.Quality.MinProbes && !failover {
			// Too few probes of the current path to judge a gain on it.
			if d.Kind == KindBuy {
				m.hold(&s.out, subject, withReason(d, fmt.Sprintf("too few probes of the current path yet (fewer than quality.min_probes %d): probing more", m.pol.Quality.MinProbes)))
			}
			continue
		}
		start, end := s.now, s.now.Add(b.Term)
		cs, why := s.candidates(dst, start, end, exclude...)
		var pick *candidate
		var g gain
		lossier := 0
		for i := range cs {
			gg, ok := s.improves(cur, curPrice, cs[i].q, cs[i].offer.PriceMicros, cs[i].size, pct)
			if ok {
				pick, g = &cs[i], gg
				break
			}
			if gg.lossier {
				lossier++
			}
		}
		if pick == nil {
			if why == "" {
				why = fmt.Sprintf("no offer improves enough on the current path (%d offers)", len(cs))
				if lossier > 0 {
					why += fmt.Sprintf("; %d with significantly more loss than it", lossier)
				}
				if cur == nil && b.MinImprovement.Savings == 0 {
					why = "the current path is not measured"
				}
			}
			if d.Kind == KindBuy {
				m.hold(&s.out, subject, withReason(d, why))
			}
			continue
		}
		d.GainLatencyUs, d.GainLossPPM, d.SavingMicros = g.latencyUs, g.lossPPM, g.saving
		d.GainLatencyMarginUs, d.GainLossMarginPPM, d.Compared = g.latencyMarginUs, g.lossMarginPPM, g.compared
		d.Seller, d.Chosen, d.SizeBps, d.PriceMicros, d.MonthlyMicros = pick.offer.Seller, &pick.q, pick.size, pick.offer.PriceMicros, pick.monthly
		switch {
		case d.Kind == KindBuy && !failover && s.now.Before(m.noRebuy[p]):
			m.hold(&s.out, subject, withReason(d, fmt.Sprintf("rebuy hold-down until %s", m.noRebuy[p].Format(time.RFC3339))))
			continue
		case d.Kind == KindSwitch && s.now.Before(m.lastBuy[p].Add(st.SwitchHoldDown)):
			m.hold(&s.out, subject, withReason(d, fmt.Sprintf("switch hold-down until %s", m.lastBuy[p].Add(st.SwitchHoldDown).Format(time.RFC3339))))
			continue
		case !failover && m.capReached(s.now):
			m.hold(&s.out, subject, withReason(d, fmt.Sprintf("stability.max_changes_per_hour %d reached", st.MaxChangesPerHour)))
			continue
		}
		if lim, used := s.limitsReached(budgetItem{start, end, pick.monthly}); lim != "" {
			d.BudgetUsed = used
			m.hold(&s.out, subject, withReason(d, lim))
			continue
		}
		d.BudgetUsed = peakCost(s.now, s.budgetItems(), nil)
		switch {
		case failover:
			d.Reason = "failover: the traded path broke its limits; next best offer"
		case d.Kind == KindSwitch:
			d.Reason = fmt.Sprintf("better than AS%d by more than the threshold plus %d%% hysteresis", d.From, st.Hysteresis)
			m.switchTo[p] = pick.offer.Seller
		default:
			d.Reason = "improves on the default path by at least the threshold"
		}
		s.take(d, *pick, start, end)
	}
}

func withReason(d Decision, r string) Decision {
	d.Reason = r
	return d
}
