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

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/agent/probe"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/pages"
)

// TradingLoop drives the access manager (agent/manager) each round: it
// feeds capture intervals and probe rounds in, asks the arbiter for offers
// toward the destinations that qualify, and carries out the decisions'
// intents over the Trading API, the FIB (Routing.Prefer) and the quality
// service. Decisions are appended to <state_dir>/decisions.jsonl and
// replayed on start, so hold-downs and the change cap survive a restart.
type TradingLoop struct {
	cfg     Config
	asn     uint32
	log     *slog.Logger
	conn    grpc.ClientConnInterface
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

// NewTradingLoop makes the manager and replays the persisted journal.
// measure and routing may be nil (no capture/probing, no route server).
func NewTradingLoop(cfg Config, asn uint32, conn grpc.ClientConnInterface, log *slog.Logger) (*TradingLoop, error) {
	m, err := manager.New(cfg.Manager.Policy, cfg.Manager.JournalSize)
	if err != nil {
		return nil, config.Prefix("manager", err)
	}
	l := &TradingLoop{cfg: cfg, asn: asn, log: log.With("component", "manager"), conn: conn, m: m}
	ds, err := manager.ReadJournalFile(cfg.journalPath(), cfg.Manager.JournalSize)
	if err != nil {
		return nil, err
	}
	m.Restore(ds)
	l.saved = m.Journal().Last()
	return l, nil
}

// Manager is the decision logic (tests, status).
func (l *TradingLoop) Manager() *manager.Manager { return l.m }

// hooks adds the loop's feeds to Measure's options.
func (l *TradingLoop) hooks(opt MeasureOptions) MeasureOptions {
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
func (l *TradingLoop) attach(measure *Measure, routing *Routing) {
	l.measure, l.routing = measure, routing
}

// addInterval turns capture figures into demand samples, each next hop's
// MAC mapped to the seller whose router it is (DefaultPath otherwise).
func (l *TradingLoop) addInterval(iv capture.Interval) {
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
func (l *TradingLoop) sellerMACs() map[[6]byte]uint32 {
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

func (l *TradingLoop) addMeasurements(ms []probe.Measurement) {
	ss := make([]manager.PathSample, 0, len(ms))
	for _, x := range ms {
		ss = append(ss, manager.PathSample{Seller: x.ASN, Prefix: x.Prefix, At: x.At, Sent: x.Sent, Received: x.Received,
			LatencyUs: x.LatencyUs, JitterUs: x.JitterUs, LossPPM: x.LossPPM})
	}
	l.m.AddQuality(ss...)
}

// Run decides every round until ctx ends.
func (l *TradingLoop) Run(ctx context.Context) error {
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
func (l *TradingLoop) Round(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(l.cfg.managerRound(), 30*time.Second))
	defer cancel()
	defer l.persist()
	now := clock.Now().UTC()
	tc := pb.NewTradingServiceClient(l.conn)
	in := manager.Inputs{Now: now}
	ors, err := pages.Orders(ctx, tc, &pb.ListOrdersRequest{OpenOnly: true}, 0)
	if err != nil {
		return fmt.Errorf("list orders: %w", err)
	}
	for _, o := range ors {
		in.Orders = append(in.Orders, orderFromProto(o, l.asn))
	}
	// Not active_only: a renewal is scheduled, not yet active, and the
	// manager must see it or it renews again.
	ts, err := pages.Trades(ctx, tc, &pb.ListTradesRequest{}, 0)
	if err != nil {
		return fmt.Errorf("list trades: %w", err)
	}
	for _, t := range ts {
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
		offers, err := pages.List(ctx, tc.ListOffers, &pb.ListOffersRequest{Spec: l.buySpec(d.Prefix, max(in.Port.CapacityBps, d.P95Bps), 0, now, now.Add(pol.Buy.Term), manager.Limits{})},
			(*pb.ListOffersResponse).GetOffers, 0)
		if err != nil {
			return fmt.Errorf("list offers for %v: %w", d.Prefix, err)
		}
		for _, o := range offers {
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

// carryOut performs one intent.
func (l *TradingLoop) carryOut(ctx context.Context, it manager.Intent, now time.Time) error {
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

// persist appends the decisions made since the last call to the journal
// file, and rewrites it when it has grown to twice the journal size.
func (l *TradingLoop) persist() {
	l.mu.Lock()
	defer l.mu.Unlock()
	ds := l.m.Journal().Since(l.saved)
	if len(ds) == 0 {
		return
	}
	if err := manager.AppendJournalFile(l.cfg.journalPath(), ds, l.cfg.Manager.JournalSize); err != nil {
		l.log.Error("cannot persist the decision journal; a restart may forget hold-downs", "error", err)
		return
	}
	l.saved = ds[len(ds)-1].Seq
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
func (l *TradingLoop) Status() ManagerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ManagerStatus{Mode: string(l.cfg.Manager.Mode), Rounds: l.rounds, LastRound: l.lastAt, Decisions: l.m.Journal().Last(), Error: l.lastErr}
}
