package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/agent/spool"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/config"
)

// ManagerConfig is the `manager:` section: the access manager's policy
// (agent/manager.Policy, its keys inline) and how the daemon drives it.
type ManagerConfig struct {
	manager.Policy `yaml:",inline"`
	// Round is how often the manager decides; 0: every capture interval.
	Round time.Duration `yaml:"round"`
	// JournalSize is how many decisions are kept, in memory and in
	// <state_dir>/decisions.jsonl.
	JournalSize int `yaml:"journal_size"`
}

// defaultManager is shadow mode (manager.DefaultPolicy): it never trades,
// and shows what trading would be worth as soon as a budget is set. It
// only runs with capture configured: without demand it has nothing to
// decide from.
func defaultManager() ManagerConfig {
	return ManagerConfig{Policy: manager.DefaultPolicy(), JournalSize: 10000}
}

func (c *Config) validateManager() error {
	mc := &c.Manager
	if mc.Round != 0 && (mc.Round < time.Second || mc.Round > 24*time.Hour) {
		return config.Errorf("manager.round", "want 1s to 24h (or 0: the capture interval), got %v", mc.Round)
	}
	if mc.JournalSize < 1 || mc.JournalSize > 1000000 {
		return config.Errorf("manager.journal_size", "want 1 to 1000000, got %d", mc.JournalSize)
	}
	if err := mc.Policy.Validate(); err != nil {
		return config.Prefix("manager", err)
	}
	// The manager's probe tables and marks follow the measuring side's:
	// base+4096 (the default path) to base+8191.
	if c.Probe.Enabled && mc.Mode != manager.ModeOff {
		if uint64(c.Probe.TableBase)+2*probe.MaxSellerID+1 > 0xFFFFFFFF || uint64(c.Probe.MarkBase)+2*probe.MaxSellerID+1 > 0xFFFFFFFF {
			return config.Errorf("probe.table_base", "the access manager needs tables and marks up to base+%d: lower probe.table_base and probe.mark_base", 2*probe.MaxSellerID+1)
		}
		if c.Probe.TableBase <= 255 {
			return config.Errorf("probe.table_base", "the access manager's tables (base+%d..base+%d) would cross 253-255: use a base above 255", probe.MaxSellerID+1, 2*probe.MaxSellerID+1)
		}
	}
	if mc.Mode == manager.ModeTrade && len(c.Capture.Interfaces) == 0 && !mc.Sell.Enabled {
		return config.Errorf("manager.mode", "trade needs capture.interfaces (the demand it buys for) or sell.enabled")
	}
	return nil
}

// managerRuns tells whether the manager loop runs: not off, and with
// something to decide from (capture for buying, the sell policy).
func (c *Config) managerRuns() bool {
	return c.Manager.Mode != manager.ModeOff && (len(c.Capture.Interfaces) > 0 || c.Manager.Sell.Enabled)
}

// managerRound is the configured round, or the capture interval.
func (c *Config) managerRound() time.Duration {
	if c.Manager.Round > 0 {
		return c.Manager.Round
	}
	return c.Capture.Interval
}

// ManagerLoop drives the access manager (agent/manager) each round: it
// feeds capture intervals and probe rounds in, asks the arbiter for offers
// toward the destinations that qualify, and carries out the decisions'
// intents over the Trading API, the FIB (Routing.Prefer) and the quality
// service. Decisions are appended to <state_dir>/decisions.jsonl and
// replayed on start, so hold-downs and the change cap survive a restart.
type ManagerLoop struct {
	cfg     Config
	asn     uint32
	log     *slog.Logger
	conn    *grpc.ClientConn
	m       *manager.Manager
	measure *Measure
	routing *Routing

	// The default path's own probe table and prober: the member's path
	// is measured through a table holding only its default route, so a
	// traded route in the main table does not hide it.
	dpaths  *probe.Paths
	dprober *probe.Prober
	dseller probe.Seller

	mu      sync.Mutex
	saved   uint64 // last journaled decision written to the file
	rounds  int64
	lastErr string
	lastAt  time.Time
}

func (c *Config) journalPath() string { return filepath.Join(c.StateDir, "decisions.jsonl") }

// NewManagerLoop makes the manager and replays the persisted journal.
// measure and routing may be nil (no capture/probing, no route server).
func NewManagerLoop(cfg Config, asn uint32, conn *grpc.ClientConn, log *slog.Logger) (*ManagerLoop, error) {
	m, err := manager.New(cfg.Manager.Policy, cfg.Manager.JournalSize)
	if err != nil {
		return nil, config.Prefix("manager", err)
	}
	l := &ManagerLoop{cfg: cfg, asn: asn, log: log.With("component", "manager"), conn: conn, m: m}
	ds, err := readJournal(cfg.journalPath(), cfg.Manager.JournalSize)
	if err != nil {
		return nil, err
	}
	m.Restore(ds)
	l.saved = m.Journal().Last()
	return l, nil
}

// Manager is the decision logic (tests, status).
func (l *ManagerLoop) Manager() *manager.Manager { return l.m }

// hooks adds the loop's feeds to Measure's options.
func (l *ManagerLoop) hooks(opt MeasureOptions) MeasureOptions {
	prevI, prevM := opt.OnInterval, opt.OnMeasurements
	opt.OnInterval = func(iv capture.Interval) {
		if prevI != nil {
			prevI(iv)
		}
		l.addInterval(iv)
	}
	opt.OnMeasurements = func(ms []probe.Measurement) {
		if prevM != nil {
			prevM(ms)
		}
		l.addMeasurements(ms)
	}
	return opt
}

// attach gives the loop the parts it drives.
func (l *ManagerLoop) attach(measure *Measure, routing *Routing) {
	l.measure, l.routing = measure, routing
}

// addInterval turns capture figures into demand samples, each next hop's
// MAC mapped to the seller whose router it is (DefaultPath otherwise).
func (l *ManagerLoop) addInterval(iv capture.Interval) {
	if l.measure == nil || !iv.To.After(iv.From) {
		return
	}
	bySeller := l.sellerMACs()
	var ss []manager.DemandSample
	for _, f := range iv.Figures {
		if !f.Prefix.IsValid() {
			continue
		}
		var seller uint32
		if len(f.NextHop) == 6 {
			seller = bySeller[[6]byte(f.NextHop)]
		}
		ss = append(ss, manager.DemandSample{Prefix: f.Prefix, Seller: seller, Start: iv.Start, End: iv.End,
			BitsPerSecond: f.BitsPerSecond, Samples: f.Samples})
	}
	l.m.AddDemand(ss...)
}

// sellerMACs maps the registered routers' MACs to their members.
func (l *ManagerLoop) sellerMACs() map[[6]byte]uint32 {
	l.measure.mu.Lock()
	routers := make(map[uint32][]netip.Addr, len(l.measure.routers))
	for asn, as := range l.measure.routers {
		routers[asn] = as
	}
	l.measure.mu.Unlock()
	out := map[[6]byte]uint32{}
	neigh := l.measure.neighbors()
	for asn, as := range routers {
		if asn == l.asn {
			continue
		}
		for mac := range macsOf(neigh, as) {
			out[mac] = asn
		}
	}
	return out
}

func (l *ManagerLoop) addMeasurements(ms []probe.Measurement) {
	ss := make([]manager.PathSample, 0, len(ms))
	for _, x := range ms {
		ss = append(ss, manager.PathSample{Seller: x.ASN, Prefix: x.Prefix, At: x.At, Sent: x.Sent, Received: x.Received,
			LatencyUs: x.LatencyUs, JitterUs: x.JitterUs, LossPPM: x.LossPPM})
	}
	l.m.AddQuality(ss...)
}

// Run decides every round until ctx ends.
func (l *ManagerLoop) Run(ctx context.Context) error {
	defer l.closeProbes()
	round := l.cfg.managerRound()
	l.log.Info("access manager running", "mode", string(l.cfg.Manager.Mode), "round", round.String())
	t := time.NewTicker(round)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := l.Round(ctx)
		l.mu.Lock()
		l.rounds++
		l.lastAt = clock.Now().UTC()
		l.lastErr = ""
		if err != nil {
			l.lastErr = err.Error()
		}
		l.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			l.log.Warn("manager round incomplete; trying again next round", "error", err)
		}
	}
}

// Round is one round: market, probes, decisions, intents, journal.
func (l *ManagerLoop) Round(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(l.cfg.managerRound(), 30*time.Second))
	defer cancel()
	defer l.persist()
	now := clock.Now().UTC()
	tc := pb.NewTradingServiceClient(l.conn)
	in := manager.Inputs{Now: now}
	ors, err := tc.ListOrders(ctx, &pb.ListOrdersRequest{OpenOnly: true})
	if err != nil {
		return fmt.Errorf("list orders: %w", err)
	}
	for _, o := range ors.Orders {
		in.Orders = append(in.Orders, orderFromProto(o, l.asn))
	}
	// Not active_only: a renewal is scheduled, not yet active, and the
	// manager must see it or it renews again.
	ts, err := tc.ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil {
		return fmt.Errorf("list trades: %w", err)
	}
	for _, t := range ts.Trades {
		if st := t.Status; st != pb.TradeStatus_TRADE_STATUS_ACTIVE && st != pb.TradeStatus_TRADE_STATUS_SCHEDULED {
			continue
		}
		mt := tradeFromProto(t, l.asn)
		in.Trades = append(in.Trades, mt)
		if mt.ActiveAt(now) {
			in.Port.CommittedBps += mt.CapacityBps
		}
	}
	me, err := pb.NewRegistryServiceClient(l.conn).GetMember(ctx, &pb.GetMemberRequest{Asn: l.asn})
	if err != nil {
		return fmt.Errorf("get member: %w", err)
	}
	in.Port.CapacityBps = me.GetPort().GetCapacityBps()
	wanted := l.m.Wanted(now)
	pol := l.cfg.Manager.Policy
	for _, d := range wanted {
		// Asked for as much as the own port takes, an offer's available
		// capacity is what could be bought from it at all.
		// Every offer, whatever the exchange measured: the manager judges
		// sellers from its own recent probe rounds, and a seller it is not
		// shown it never probes again (one bad round an hour ago would
		// hide it for the hour the exchange keeps measurements).
		r, err := tc.ListOffers(ctx, &pb.ListOffersRequest{Spec: l.buySpec(d.Prefix, max(in.Port.CapacityBps, d.P95Bps), 0, now, now.Add(pol.Buy.Term), manager.Limits{})})
		if err != nil {
			return fmt.Errorf("list offers for %v: %w", d.Prefix, err)
		}
		for _, o := range r.Offers {
			in.Offers = append(in.Offers, offerFromProto(o, d.Prefix))
		}
	}
	if err := l.probe(ctx, wanted, in.Offers, in.Trades); err != nil {
		l.log.Warn("manager probes failed; deciding from the quality known so far", "error", err)
	}
	for _, d := range l.m.Step(in) {
		l.log.Info("decision", "seq", d.Seq, "kind", string(d.Kind), "shadow", d.Shadow, "decision", d.String())
		for _, it := range d.Intents {
			if err := l.carryOut(ctx, it, now); err != nil {
				l.log.Error("cannot carry out the manager's intent", "seq", d.Seq, "intent", string(it.Type), "error", err)
				if it.ClientOrderID != "" {
					l.m.Failed(it.ClientOrderID, clock.Now().UTC(), err)
				}
			}
		}
	}
	return nil
}

// buySpec is the buy behind ListOffers and TakeOffer, with lim as its
// quality limits (for a take, the trade's SLA). The manager chose the
// seller from its own probe rounds, so an offer the exchange has not
// measured yet is acceptable.
func (l *ManagerLoop) buySpec(p netip.Prefix, capacity, block int64, start, end time.Time, lim manager.Limits) *pb.OrderSpec {
	pol := l.cfg.Manager.Policy.Buy
	q := limitsToProto(lim)
	q.AllowUnverified = true
	// The arbiter wants both; ListOffers only needs the destination.
	capacity, block = max(capacity, 1), max(block, 1)
	s := &pb.OrderSpec{Side: pb.Side_SIDE_BUY, Destination: &pb.Destination{Kind: &pb.Destination_Prefix{Prefix: p.String()}},
		Protocol: protoOf(p), CapacityBps: capacity, MinBlockBps: block, Quality: q, TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY,
		DeliveryStart: timestamppb.New(start), DeliveryEnd: timestamppb.New(end), OrderType: pb.OrderType_ORDER_TYPE_FOK,
		SingleSeller: true, PriceMicros: int64(pol.MaxPrice)}
	switch pol.Ranking {
	case manager.ByPerformance:
		s.Ranking = pb.Ranking_RANKING_PERFORMANCE
	case manager.Weighted:
		s.Ranking = pb.Ranking_RANKING_WEIGHTED
		s.PriceWeightPercent = uint32(pol.PriceWeight)
	default:
		s.Ranking = pb.Ranking_RANKING_PRICE
	}
	return s
}

func protoOf(p netip.Prefix) pb.Protocol {
	if p.Addr().Is4() {
		return pb.Protocol_PROTOCOL_IPV4
	}
	return pb.Protocol_PROTOCOL_IPV6
}

func limitsToProto(l manager.Limits) *pb.Quality {
	q := &pb.Quality{}
	if l.MaxLatencyUs > 0 {
		q.MaxLatencyUs = proto.Int64(l.MaxLatencyUs)
	}
	if l.MaxJitterUs > 0 {
		q.MaxJitterUs = proto.Int64(l.MaxJitterUs)
	}
	if l.MaxLossPPM > 0 {
		q.MaxLossPpm = proto.Int32(l.MaxLossPPM)
	}
	return q
}

// carryOut performs one intent.
func (l *ManagerLoop) carryOut(ctx context.Context, it manager.Intent, now time.Time) error {
	tc := pb.NewTradingServiceClient(l.conn)
	switch it.Type {
	case manager.TakeOffer:
		spec := l.buySpec(it.Prefix, it.CapacityBps, it.MinBlockBps, it.Start, it.End, it.Limits)
		spec.PriceMicros = it.PriceMicros
		r, err := tc.TakeOffer(ctx, &pb.TakeOfferRequest{OfferOrderId: it.OfferOrderID, Spec: spec, ClientOrderId: it.ClientOrderID})
		if err != nil {
			return err
		}
		if len(r.Trades) == 0 {
			return fmt.Errorf("offer %d took nothing (order %d %s)", it.OfferOrderID, r.GetOrder().GetId(), r.GetOrder().GetStatus())
		}
		l.log.Info("bought", "prefix", it.Prefix, "seller", it.Seller, "trade", r.Trades[0].Id, "capacity_bps", r.Trades[0].CapacityBps,
			"price_micros", r.Trades[0].PriceMicros)
		if l.measure != nil {
			l.measure.Refresh()
		}
	case manager.CancelOrder:
		_, err := tc.CancelOrder(ctx, &pb.CancelOrderRequest{OrderId: it.OrderID})
		return err
	case manager.PlaceSell:
		d := &pb.Destination{}
		proto4 := pb.Protocol_PROTOCOL_IPV4
		if p, err := netip.ParsePrefix(it.Destination); err == nil {
			d.Kind = &pb.Destination_Prefix{Prefix: p.String()}
			proto4 = protoOf(p)
		} else {
			d.Kind = &pb.Destination_RouteType{RouteType: routeType(it.Destination)}
		}
		spec := &pb.OrderSpec{Side: pb.Side_SIDE_SELL, Destination: d, Protocol: proto4, CapacityBps: it.CapacityBps,
			MinBlockBps: it.MinBlockBps, PriceMicros: it.PriceMicros, Quality: limitsToProto(it.Limits),
			TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY, DeliveryStart: timestamppb.New(it.Start), DeliveryEnd: timestamppb.New(it.End),
			OrderType: pb.OrderType_ORDER_TYPE_LIMIT}
		_, err := tc.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: spec, ClientOrderId: it.ClientOrderID})
		return err
	case manager.ModifySell:
		_, err := tc.ModifyOrder(ctx, &pb.ModifyOrderRequest{OrderId: it.OrderID, CapacityBps: proto.Int64(it.CapacityBps), PriceMicros: proto.Int64(it.PriceMicros)})
		return err
	case manager.Route:
		if l.routing == nil {
			return errors.New("no route server configured (bgp.route_servers): the member's router chooses the path")
		}
		var hops []netip.Addr
		if l.measure != nil {
			l.measure.mu.Lock()
			hops = slices.Clone(l.measure.routers[it.Seller])
			l.measure.mu.Unlock()
		}
		l.routing.Prefer(it.Prefix, it.Seller, hops)
	case manager.ReportBreach:
		r := &pb.ReportBreachRequest{TradeId: it.TradeID, SellerAsn: it.Seller, DestinationPrefix: it.Prefix.String(),
			Limits: limitsToProto(it.Limits), ObservedAt: timestamppb.New(now)}
		if o := it.Observed; o != nil {
			r.LatencyUs, r.JitterUs, r.LossPpm = o.LatencyUs, o.JitterUs, o.LossPPM
		}
		_, err := pb.NewQualityServiceClient(l.conn).ReportBreach(ctx, r)
		return err
	default:
		return fmt.Errorf("unknown intent %q", it.Type)
	}
	return nil
}

func routeType(s string) pb.RouteType {
	switch s {
	case "customer":
		return pb.RouteType_ROUTE_TYPE_CUSTOMER
	case "peer":
		return pb.RouteType_ROUTE_TYPE_PEER
	case "transit":
		return pb.RouteType_ROUTE_TYPE_TRANSIT
	}
	return pb.RouteType_ROUTE_TYPE_UNSPECIFIED
}

func orderFromProto(o *pb.Order, asn uint32) manager.Order {
	s := o.GetSpec()
	mo := manager.Order{ID: o.Id, Side: manager.Buy, CapacityBps: s.GetCapacityBps(), FilledBps: o.FilledBps,
		MinBlockBps: s.GetMinBlockBps(), PriceMicros: s.GetPriceMicros(), Start: s.GetDeliveryStart().AsTime(),
		End: s.GetDeliveryEnd().AsTime(), ClientOrderID: o.ClientOrderId}
	if s.GetSide() == pb.Side_SIDE_SELL {
		mo.Side = manager.Sell
	}
	switch d := s.GetDestination().GetKind().(type) {
	case *pb.Destination_Prefix:
		if p, err := netip.ParsePrefix(d.Prefix); err == nil {
			mo.Prefix = p.Masked()
		}
		mo.Destination = d.Prefix
	case *pb.Destination_RouteType:
		switch d.RouteType {
		case pb.RouteType_ROUTE_TYPE_CUSTOMER:
			mo.Destination = "customer"
		case pb.RouteType_ROUTE_TYPE_PEER:
			mo.Destination = "peer"
		case pb.RouteType_ROUTE_TYPE_TRANSIT:
			mo.Destination = "transit"
		default:
			mo.Destination = d.RouteType.String()
		}
	case *pb.Destination_OriginAsn:
		mo.Destination = "AS" + strconv.FormatUint(uint64(d.OriginAsn), 10)
	}
	return mo
}

func tradeFromProto(t *pb.Trade, asn uint32) manager.Trade {
	mt := manager.Trade{ID: t.Id, Side: manager.Buy, Seller: t.SellerAsn, Buyer: t.BuyerAsn, CapacityBps: t.CapacityBps,
		PriceMicros: t.PriceMicros, Start: t.GetDeliveryStart().AsTime(), End: t.GetDeliveryEnd().AsTime()}
	if t.SellerAsn == asn {
		mt.Side = manager.Sell
	}
	for _, s := range t.Prefixes {
		if p, err := netip.ParsePrefix(s); err == nil {
			mt.Prefixes = append(mt.Prefixes, p.Masked())
		}
	}
	return mt
}

func offerFromProto(o *pb.Offer, asked netip.Prefix) manager.Offer {
	mo := manager.Offer{OrderID: o.OrderId, Seller: o.SellerAsn, Prefix: asked, AvailableBps: o.AvailableBps,
		MinBlockBps: o.MinBlockBps, PriceMicros: o.PriceMicros, Start: o.GetDeliveryStart().AsTime()}
	if o.DeliveryEnd != nil {
		mo.End = o.DeliveryEnd.AsTime()
	}
	if q := o.Measured; q != nil {
		mo.Measured = &manager.Quality{LatencyUs: q.GetMaxLatencyUs(), JitterUs: q.GetMaxJitterUs(), LossPPM: q.GetMaxLossPpm()}
	}
	if q := o.MeasuredPath; q != nil {
		// With its samples: an answer without a probe count cannot
		// justify a buy (quality.min_probes).
		mo.Measured = &manager.Quality{LatencyUs: q.LatencyUs, JitterUs: q.JitterUs, LossPPM: q.LossPpm, Probes: q.Probes,
			Rounds: int(q.Samples), LatencyErrUs: q.LatencyErrUs, JitterErrUs: q.JitterErrUs, LossDispersion: q.LossDispersion}
	}
	return mo
}

// probe measures, for each destination the manager wants and each it has
// bought, the member's default path and every seller offering or
// delivering it, and feeds the rounds to the manager. The sellers'
// results also go to the arbiter (the quality matrix), as probe tasks'
// results do.
func (l *ManagerLoop) probe(ctx context.Context, wanted []manager.Destination, offers []manager.Offer, trades []manager.Trade) error {
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
	configured, _ := l.cfg.probeTargets()
	seen := map[netip.Prefix][]netip.Addr{}
	if m.cap != nil {
		for p, as := range m.cap.Meter().TopAddresses(l.cfg.Probe.TargetsPerPrefix) {
			for _, a := range as {
				seen[p] = append(seen[p], a.Addr)
			}
		}
	}
	ts, missing, err := probe.SelectTargets(paths, configured, seen, l.cfg.Probe.TargetsPerPrefix, l.dpaths.Config())
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		l.log.Warn("no probe target known for some destinations: configure probe.targets", "prefixes", fmt.Sprint(missing))
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
func (l *ManagerLoop) setupPaths(sellers map[uint32]probe.Seller) error {
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

func (l *ManagerLoop) closeProbes() {
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
func (l *ManagerLoop) spoolMeasurements(ctx context.Context, ms []probe.Measurement) {
	m := l.measure
	recs := make([]spool.Record, 0, len(ms))
	for _, x := range ms {
		if len(x.Targets) == 0 || x.ASN == 0 || !m.reportable(x.ASN, x.Prefix) {
			continue // the default path, or a path the arbiter does not take from us: ours alone
		}
		key := fmt.Sprintf("meas:%d:%s:%d", x.ASN, x.Prefix, x.At.UnixNano())
		pm := &pb.Measurement{IdempotencyKey: key, ViaAsn: x.ASN, DestinationPrefix: x.Prefix.String(), Target: x.Targets[0].String(),
			MeasuredAt: timestamppb.New(x.At), LatencyUs: x.LatencyUs, JitterUs: x.JitterUs, LossPpm: x.LossPPM,
			AsHops: x.ASHops, IpHops: x.IPHops, ProbesSent: x.Sent, VantageAsn: l.asn}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pm)
		if err != nil {
			continue
		}
		recs = append(recs, spool.Record{Key: key, Payload: b})
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

// persist appends the decisions made since the last call to the journal
// file, and rewrites it when it has grown to twice the journal size.
func (l *ManagerLoop) persist() {
	l.mu.Lock()
	defer l.mu.Unlock()
	ds := l.m.Journal().Since(l.saved)
	if len(ds) == 0 {
		return
	}
	if err := appendJournal(l.cfg.journalPath(), ds, l.cfg.Manager.JournalSize); err != nil {
		l.log.Error("cannot persist the decision journal; a restart may forget hold-downs", "error", err)
		return
	}
	l.saved = ds[len(ds)-1].Seq
}

func appendJournal(path string, ds []manager.Decision, keep int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, d := range ds {
		if err := enc.Encode(d); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return err
	}
	// Compact when the file is well past what Restore reads back.
	if fi.Size() > int64(keep)*2*1024 {
		all, err := readJournal(path, keep)
		if err != nil {
			return err
		}
		tmp := path + ".tmp"
		g, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(g)
		enc := json.NewEncoder(bw)
		for _, d := range all {
			enc.Encode(d)
		}
		if err := errors.Join(bw.Flush(), g.Sync(), g.Close()); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	return nil
}

// readJournal reads the last keep decisions of the journal file. A torn
// last line (a crash mid-write) is skipped; any other bad line is an error
// naming it.
func readJournal(path string, keep int) ([]manager.Decision, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []manager.Decision
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	var bad error
	for sc.Scan() {
		line++
		if bad != nil {
			return nil, bad // a bad line that was not the last
		}
		var d manager.Decision
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			bad = fmt.Errorf("%s:%d: corrupt decision (%v); move the file away to start with an empty journal", path, line, err)
			continue
		}
		out = append(out, d)
		if len(out) > 2*keep {
			out = append(out[:0], out[len(out)-keep:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) > keep {
		out = out[len(out)-keep:]
	}
	return out, nil
}

// ManagerStatus is the manager in `bwx-agent status`.
type ManagerStatus struct {
	Mode      string    `json:"mode"`
	Rounds    int64     `json:"rounds"`
	LastRound time.Time `json:"last_round,omitzero"`
	Decisions uint64    `json:"decisions"`
	Error     string    `json:"error,omitempty"`
}

// Status reports the loop's progress.
func (l *ManagerLoop) Status() ManagerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ManagerStatus{Mode: string(l.cfg.Manager.Mode), Rounds: l.rounds, LastRound: l.lastAt, Decisions: l.m.Journal().Last(), Error: l.lastErr}
}
