package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/vishvananda/netlink"

	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/agent/spool"
)

// probe measures, for each destination the manager wants and each it has
// bought, the member's default path and every seller offering or
// delivering it, and feeds the rounds to the manager. The sellers'
// results also go to the arbiter (the quality matrix), as probe tasks'
// results do.
func (l *TradingLoop) probe(ctx context.Context, wanted []manager.Destination, offers []manager.Offer, trades []manager.Trade) error {
	if l.measure == nil || l.measure.prober == nil {
		return nil
	}
	sellersOf := map[netip.Prefix]map[uint32]bool{}
	add := func(p netip.Prefix, s uint32) {
		if sellersOf[p] == nil {
			sellersOf[p] = map[uint32]bool{}
		}
		sellersOf[p][s] = true
	}
	for _, d := range wanted {
		add(d.Prefix, manager.DefaultPath)
	}
	for _, o := range offers {
		add(o.Prefix, o.Seller)
	}
	for _, t := range trades {
		if t.Side != manager.Buy {
			continue
		}
		for _, p := range t.Prefixes {
			add(p, manager.DefaultPath)
			add(p, t.Seller)
		}
	}
	if len(sellersOf) == 0 {
		return nil
	}
	// Sellers keep the measuring side's stable IDs; all paths live in the
	// manager's own tables, so its rounds never race the task rounds.
	m := l.measure
	m.mu.Lock()
	routers := map[uint32][]netip.Addr{}
	for a, rs := range m.routers {
		routers[a] = rs
	}
	m.mu.Unlock()
	sellers := map[uint32]probe.Seller{}
	for _, ss := range sellersOf {
		for s := range ss {
			if s == manager.DefaultPath || sellers[s].Name != "" {
				continue
			}
			id, err := m.ids.get(s)
			if err != nil {
				return err
			}
			sl := probe.Seller{Name: "AS" + strconv.FormatUint(uint64(s), 10), ASN: s, ID: id}
			for _, a := range routers[s] {
				if a.Is4() && !sl.NextHop4.IsValid() {
					sl.NextHop4 = a
				} else if a.Is6() && !sl.NextHop6.IsValid() {
					sl.NextHop6 = a
				}
			}
			if sl.NextHop4.IsValid() || sl.NextHop6.IsValid() {
				sellers[s] = sl
			}
		}
	}
	if err := l.setupPaths(sellers); err != nil {
		return err
	}
	var paths []probe.Path
	for p, ss := range sellersOf {
		for s := range ss {
			if s == manager.DefaultPath {
				paths = append(paths, probe.Path{Prefix: p, Seller: l.dseller})
			} else if sl, ok := sellers[s]; ok {
				paths = append(paths, probe.Path{Prefix: p, Seller: sl})
			}
		}
	}
	ts, err := l.cfg.selectTargets(l.log, "destinations", paths, m.seenTargets(), l.dpaths.Config())
	if err != nil {
		return err
	}
	ms, err := l.dprober.Round(ctx, ts)
	l.addMeasurements(ms)
	l.spoolMeasurements(ctx, ms)
	return err
}

// setupPaths makes the manager's probe tables: the default path's (ID 0,
// a copy of the main table's default routes, not ours) and the sellers',
// in tables and marks beyond the measuring side's range, with rules of
// their own protocol number so neither side's reconcile removes the
// other's.
func (l *TradingLoop) setupPaths(sellers map[uint32]probe.Seller) error {
	m := l.measure
	var gw4, gw6 netip.Addr
	link := l.cfg.probeLink()
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := m.h.RouteListFiltered(fam, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("default path: %w", err)
		}
		for _, r := range rs {
			if (r.Dst != nil && !isDefault(r.Dst.String())) || r.Gw == nil || int(r.Protocol) == fib.DefaultProtocol {
				continue
			}
			a, _ := netip.AddrFromSlice(r.Gw)
			if fam == netlink.FAMILY_V4 {
				gw4 = a.Unmap()
			} else {
				gw6 = a
			}
			if ln, err := m.h.LinkByIndex(r.LinkIndex); err == nil {
				link = ln.Attrs().Name
			}
		}
	}
	if !gw4.IsValid() && !gw6.IsValid() {
		return errors.New("default path: the main table has no default route to probe through")
	}
	s := probe.Seller{Name: "default", ASN: manager.DefaultPath, ID: 0, NextHop4: gw4, NextHop6: gw6}
	if l.dpaths == nil || l.dpaths.Config().Link != link {
		l.closeProbes()
		pc := probe.PathsConfig{Link: link, TableBase: l.cfg.Probe.TableBase + probe.MaxSellerID + 1,
			MarkBase: l.cfg.Probe.MarkBase + probe.MaxSellerID + 1, RulePriority: l.cfg.Probe.RulePriority,
			Protocol: probe.DefaultProtocol - 1, Sysctl: m.opt.Sysctl}
		var err error
		if l.dpaths, err = probe.NewPaths(m.h, pc); err != nil {
			return fmt.Errorf("default path: %w", err)
		}
		if l.dprober, err = probe.New(probe.Config{Count: l.cfg.Probe.Count, TargetsPerMinute: l.cfg.Probe.TargetsPerMinute, Do: m.opt.Do}); err != nil {
			return fmt.Errorf("default path: %w", err)
		}
	}
	all := []probe.Seller{s}
	for _, sl := range sellers {
		all = append(all, sl)
	}
	slices.SortFunc(all, func(a, b probe.Seller) int { return int(a.ID) - int(b.ID) })
	if err := l.dpaths.Reconcile(all); err != nil {
		return fmt.Errorf("probe paths: %w", err)
	}
	l.dseller = s
	return nil
}

func isDefault(s string) bool { return s == "0.0.0.0/0" || s == "::/0" }

func (l *TradingLoop) closeProbes() {
	if l.dprober != nil {
		l.dprober.Close()
		l.dprober = nil
	}
	if l.dpaths != nil {
		l.dpaths.Close()
		l.dpaths = nil
	}
	l.dseller = probe.Seller{}
}

// spoolMeasurements sends the sellers' rounds to the arbiter like the
// probe tasks' results.
func (l *TradingLoop) spoolMeasurements(ctx context.Context, ms []probe.Measurement) {
	m := l.measure
	recs := make([]spool.Record, 0, len(ms))
	for _, x := range ms {
		if len(x.Targets) == 0 || x.ASN == 0 || !m.reportable(x.ASN, x.Prefix) {
			continue // the default path, or a path the arbiter does not take from us: ours alone
		}
		rec, err := measurementRecord(x, l.asn)
		if err != nil {
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 || m.spClosed.Load() {
		return
	}
	if err := m.sp.PutAll(ctx, KindMeasurement, recs); err != nil {
		l.log.Warn("cannot spool the manager's measurements", "error", err)
		return
	}
	m.measSpooled.Add(int64(len(recs)))
}
