package daemon

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/agent/spool"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/netx"
	"github.com/bwxchange/bwx/shared/pages"
)

// Spool kinds.
const (
	KindUsage       = "usage"
	KindMeasurement = "measurement"
)

// MeasureOptions adapt Measure to where it runs; the zero value is the
// daemon's (this process's network namespace).
type MeasureOptions struct {
	// Do runs fn where the capture and probe sockets must be opened (a
	// test's network namespace: labnet.Host.Do); nil runs it here.
	Do func(fn func() error) error
	// Handle is the netlink handle for neighbor lookups and the probe
	// tables (nil: one for this namespace).
	Handle *netlink.Handle
	// Sysctl reads and writes the probe interface's rp_filter (nil: /proc/sys).
	Sysctl probe.Sysctl
	// MinBackoff and MaxBackoff bound the retry waits toward the arbiter.
	MinBackoff, MaxBackoff time.Duration
	// OnInterval, if set, sees every closed capture interval.
	OnInterval func(capture.Interval)
	// OnMeasurements, if set, sees every probe round's results.
	OnMeasurements func([]probe.Measurement)
}

// Measure is the agent's measuring side: it samples the member's traffic
// (capture), turns each closed interval into usage samples per trade the
// member bought (what it sent toward the trade's prefixes through the
// seller's router) and per trade it sold (what it received from the
// buyer's routers toward the trade's prefixes: the seller's cross-check),
// runs the arbiter's probe tasks through each seller, and sends both to the
// arbiter through the durable spool, so nothing is lost while the arbiter
// is away and a resent report is a harmless duplicate.
type Measure struct {
	cfg  Config
	asn  uint32
	log  *slog.Logger
	conn grpc.ClientConnInterface
	opt  MeasureOptions
	sp   *spool.Spool
	h    *netlink.Handle
	ownH bool
	// neigh is a handle of its own for neighbor lookups: the probe paths
	// turn strict checking on for h (and off around rule dumps, from
	// other goroutines), and the kernel refuses neighbor dumps on a
	// strict-checking socket (EINVAL), which left usage at zero.
	neigh *netlink.Handle

	cap    *capture.Capture
	prober *probe.Prober
	paths  *probe.Paths
	ids    *sellerIDs

	refresh chan struct{} // re-read destinations and trades now
	tasksIn chan struct{} // probe tasks arrived

	mu      sync.Mutex
	table   *capture.Table
	routers map[uint32][]netip.Addr   // member ASN -> routers, from the registry's destinations
	dests   map[uint32][]netip.Prefix // seller ASN -> its registered prefixes
	trades  []*pb.Trade               // active trades this member bought
	sold    []*pb.Trade               // active trades this member sold
	// inSince is when incoming frames began to be sampled (zero: they are
	// not); an interval that began earlier has no whole seller figure.
	inSince time.Time
	warned  map[uint64]bool // sold trades whose buyer's routers are unknown, logged once
	tasks   map[taskKey]*pb.ProbeTask
	sellers map[uint32]probe.Seller // every seller probed through so far
	last    capture.Interval
	lastErr string

	spClosed atomic.Bool

	usageSpooled, measSpooled, usageSent, measSent, drops atomic.Int64
	sellerSpooled, unresolved                             atomic.Int64
}

type taskKey struct {
	via    uint32
	prefix netip.Prefix
}

// NewMeasure opens the spool and, as configured, the capture sockets and
// the prober (through opt.Do).
func NewMeasure(cfg Config, asn uint32, conn grpc.ClientConnInterface, log *slog.Logger, opt MeasureOptions) (_ *Measure, err error) {
	if err := cfg.validateMeasure(); err != nil {
		return nil, err
	}
	if opt.Do == nil {
		opt.Do = func(fn func() error) error { return fn() }
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = time.Second
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(time.Minute, opt.MinBackoff)
	}
	m := &Measure{cfg: cfg, asn: asn, log: log.With("component", "measure"), conn: conn, opt: opt, h: opt.Handle,
		refresh: make(chan struct{}, 1), tasksIn: make(chan struct{}, 1),
		tasks: map[taskKey]*pb.ProbeTask{}, sellers: map[uint32]probe.Seller{}, routers: map[uint32][]netip.Addr{}, warned: map[uint64]bool{}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.sp, err = spool.Open(cfg.SpoolPath(), spool.Options{}); err != nil {
		return nil, fmt.Errorf("report spool: %w", err)
	}
	if m.h == nil {
		if m.h, err = netlink.NewHandle(); err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		m.ownH = true
	}
	if len(cfg.Capture.Interfaces) > 0 {
		if err = opt.Do(func() (err error) {
			m.neigh, err = netlink.NewHandle(unix.NETLINK_ROUTE)
			return err
		}); err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		err = opt.Do(func() (err error) {
			m.cap, err = capture.Open(capture.Config{Interfaces: cfg.Capture.Interfaces, Interval: cfg.Capture.Interval,
				SampleRate: cfg.Capture.SampleRate, SnapLen: cfg.Capture.SnapLen, TopAddresses: cfg.Capture.TopAddresses,
				Incoming: cfg.Capture.Direction != DirectionOut, IncomingPaused: cfg.Capture.Direction == DirectionAuto})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		if cfg.Capture.Direction == DirectionBoth {
			m.inSince = clock.Now()
		}
	}
	if cfg.Probe.Enabled {
		pc := probe.PathsConfig{Link: cfg.probeLink(), TableBase: cfg.Probe.TableBase, MarkBase: cfg.Probe.MarkBase,
			RulePriority: cfg.Probe.RulePriority, Sysctl: opt.Sysctl}
		if m.paths, err = probe.NewPaths(m.h, pc); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		if m.prober, err = probe.New(probe.Config{Count: cfg.Probe.Count, TargetsPerMinute: cfg.Probe.TargetsPerMinute, Do: opt.Do}); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		if m.ids, err = loadSellerIDs(cfg.StateDir + "/probe-sellers.json"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Close releases what Run did not (Run releases everything when it ends).
func (m *Measure) Close() {
	if m.cap != nil {
		m.cap.Close() // an error after Run: Run closed the sockets
	}
	if m.prober != nil {
		m.prober.Close()
		m.prober = nil
	}
	if m.paths != nil {
		m.paths.Close()
		m.paths = nil
	}
	if m.sp != nil && !m.spClosed.Swap(true) {
		m.sp.Close()
	}
	if m.ownH && m.h != nil {
		m.h.Close()
		m.h = nil
	}
	if m.neigh != nil {
		m.neigh.Close()
		m.neigh = nil
	}
}

// Spool is the report spool (status and tests).
func (m *Measure) Spool() *spool.Spool { return m.sp }

// Refresh asks for the destinations and trades to be re-read now (a trade
// event came).
func (m *Measure) Refresh() {
	select {
	case m.refresh <- struct{}{}:
	default:
	}
}

// Run measures and reports until ctx ends, then releases everything.
func (m *Measure) Run(ctx context.Context) error {
	defer m.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { m.refreshLoop(ctx) })
	drain := spool.DrainOptions{MinBackoff: m.opt.MinBackoff, MaxBackoff: m.opt.MaxBackoff,
		OnError: func(err error, wait time.Duration) {
			m.log.Warn("reports not delivered; kept in the spool", "error", err, "retry_in", wait.Round(time.Millisecond).String())
		},
		OnParked: func(it spool.Item, err error) {
			m.log.Error("the arbiter refused a report; parked in the spool", "kind", it.Kind, "key", it.Key, "error", err)
		}}
	du, dm := drain, drain
	du.OnSent = func(n int) { m.usageSent.Add(int64(n)) }
	dm.OnSent = func(n int) { m.measSent.Add(int64(n)) }
	wg.Go(func() { spool.Drain(ctx, m.sp, KindUsage, m.sendUsage, du) })
	wg.Go(func() { spool.Drain(ctx, m.sp, KindMeasurement, m.sendMeasurements, dm) })
	if m.prober != nil {
		wg.Go(func() { m.taskLoop(ctx) })
		wg.Go(func() { m.probeLoop(ctx) })
	}
	if m.cap != nil {
		if err := m.cap.Run(ctx, m.interval); err != nil && ctx.Err() == nil {
			cancel()
			return fmt.Errorf("capture: %w", err)
		}
	}
	<-ctx.Done()
	return nil
}

// backoff waits a jittered delay, doubling it for next time.
func (m *Measure) backoff(ctx context.Context, delay *time.Duration) bool {
	wait := *delay/2 + rand.N(*delay/2+1)
	*delay = min(*delay*2, m.opt.MaxBackoff)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(wait):
		return true
	}
}

// refreshLoop re-reads the registry's destinations and the member's
// trades every capture.refresh, on Refresh, and sooner after a failure.
func (m *Measure) refreshLoop(ctx context.Context) {
	delay := m.opt.MinBackoff
	for {
		err := m.reload(ctx)
		if ctx.Err() != nil {
			return
		}
		next := m.cfg.Capture.Refresh
		if err != nil {
			m.log.Warn("cannot read destinations or trades from the arbiter; keeping the last ones", "error", err)
			next = min(next, delay)
			delay = min(delay*2, m.opt.MaxBackoff)
		} else {
			delay = m.opt.MinBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		case <-m.refresh:
		}
	}
}

func (m *Measure) reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sellers, err := pages.List(ctx, pb.NewQualityServiceClient(m.conn).ListDestinations, &pb.ListDestinationsRequest{}, (*pb.ListDestinationsResponse).GetSellers, 0)
	if err != nil {
		return fmt.Errorf("list destinations: %w", err)
	}
	trades, err := pages.Trades(ctx, pb.NewTradingServiceClient(m.conn), &pb.ListTradesRequest{ActiveOnly: true}, 0)
	if err != nil {
		return fmt.Errorf("list trades: %w", err)
	}
	var prefixes []netip.Prefix
	routers, dests := map[uint32][]netip.Addr{}, map[uint32][]netip.Prefix{}
	for _, d := range sellers {
		for _, s := range d.Prefixes {
			if p, err := netip.ParsePrefix(s); err == nil {
				prefixes = append(prefixes, p.Masked())
				dests[d.SellerAsn] = append(dests[d.SellerAsn], p.Masked())
			}
		}
		for _, s := range d.RouterAddresses {
			if a, err := netip.ParseAddr(s); err == nil {
				routers[d.SellerAsn] = append(routers[d.SellerAsn], a)
			}
		}
	}
	var bought, sold []*pb.Trade
	for _, t := range trades {
		switch m.asn {
		case t.BuyerAsn:
			bought = append(bought, t)
		case t.SellerAsn:
			sold = append(sold, t)
		default:
			continue
		}
		for _, s := range t.Prefixes {
			if p, err := netip.ParsePrefix(s); err == nil {
				prefixes = append(prefixes, p.Masked())
			}
		}
	}
	table, err := capture.NewTable(prefixes)
	if err != nil {
		return fmt.Errorf("destinations: %w", err)
	}
	m.mu.Lock()
	m.table, m.routers, m.dests, m.trades, m.sold = table, routers, dests, bought, sold
	m.mu.Unlock()
	if m.cap != nil {
		m.cap.SetTable(table)
		return m.setIncoming(len(sold) > 0)
	}
	return nil
}

// setIncoming samples incoming frames while the member has sold trades to
// report on (capture.direction auto); buyers' agents do not pay for them.
func (m *Measure) setIncoming(on bool) error {
	if m.cfg.Capture.Direction != DirectionAuto {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if on == !m.inSince.IsZero() {
		return nil
	}
	if err := m.cap.SetIncoming(on); err != nil {
		return err
	}
	m.inSince = time.Time{}
	if on {
		m.inSince = clock.Now()
	}
	m.log.Info("sampling incoming frames for the seller's usage reports", "on", on)
	return nil
}

// neighbors reads the neighbor tables of the capture interfaces (the
// kernel resolved these routers to send to them) once: address to MAC.
func (m *Measure) neighbors() map[netip.Addr][6]byte {
	out := map[netip.Addr][6]byte{}
	for _, name := range m.cfg.Capture.Interfaces {
		l, err := m.neigh.LinkByName(name)
		if err == nil {
			var ns []netlink.Neigh
			if ns, err = m.neigh.NeighList(l.Attrs().Index, netlink.FAMILY_ALL); err == nil {
				for _, n := range ns {
					a, ok := netip.AddrFromSlice(n.IP)
					if !ok || len(n.HardwareAddr) != 6 || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
						continue
					}
					out[a.Unmap()] = [6]byte(n.HardwareAddr)
				}
				continue
			}
		}
		// Without the routers' MACs every figure would read zero: say so.
		m.setErr(fmt.Errorf("neighbors of %s: %w", name, err))
		m.log.Warn("cannot read the neighbor table: usage reports read zero", "interface", name, "error", err)
	}
	return out
}

// macsOf is the MACs of routers in a neighbor table read by neighbors.
func macsOf(neigh map[netip.Addr][6]byte, routers []netip.Addr) map[[6]byte]bool {
	out := map[[6]byte]bool{}
	for _, a := range routers {
		if mac, ok := neigh[a]; ok {
			out[mac] = true
		}
	}
	return out
}

// interval turns a closed capture interval into usage samples: one per
// active trade this member bought, the bits/s it sent toward the trade's
// prefixes through the seller's router, and one per active trade it sold,
// the bits/s it received from the buyer's routers toward the trade's
// prefixes; each with its sample count.
func (m *Measure) interval(iv capture.Interval) {
	if m.opt.OnInterval != nil {
		m.opt.OnInterval(iv)
	}
	if iv.KernelDrops > 0 {
		m.drops.Add(int64(iv.KernelDrops))
		m.log.Warn("the kernel dropped sampled frames: this interval's figures are too low", "drops", iv.KernelDrops,
			"interval_start", iv.Start.Format(time.RFC3339))
	}
	m.mu.Lock()
	m.last = iv
	trades, sold, inSince := m.trades, m.sold, m.inSince
	m.mu.Unlock()
	if !iv.To.After(iv.From) {
		return
	}
	var recs []spool.Record
	var neigh map[netip.Addr][6]byte // read once, for the first trade that needs it
	for _, t := range trades {
		if !overlaps(t, iv) {
			continue
		}
		var hops []netip.Addr
		for _, s := range t.SellerNextHops {
			if a, err := netip.ParseAddr(s); err == nil {
				hops = append(hops, a)
			}
		}
		if neigh == nil {
			neigh = m.neighbors()
		}
		macs := macsOf(neigh, hops)
		bps, samples := sumFigures(iv, capture.Outgoing, tradePrefixes(t), macs)
		if r, ok := usageRecord(t.Id, pb.ReporterRole_REPORTER_ROLE_BUYER, iv, bps, samples); ok {
			recs = append(recs, r)
		}
	}
	nBought := len(recs)
	// Seller's side: only for intervals wholly sampled incoming.
	for _, t := range sold {
		if inSince.IsZero() || iv.From.Before(inSince) || !overlaps(t, iv) {
			continue
		}
		var routers []netip.Addr
		for _, s := range t.BuyerRouters {
			if a, err := netip.ParseAddr(s); err == nil {
				routers = append(routers, a)
			}
		}
		if len(routers) == 0 { // an arbiter older than the field
			m.mu.Lock()
			routers = m.routers[t.BuyerAsn]
			m.mu.Unlock()
		}
		if len(routers) == 0 {
			// No figure rather than a false zero.
			m.unresolved.Add(1)
			if !m.warned[t.Id] {
				m.warned[t.Id] = true
				m.log.Warn("sold trade: the buyer's routers are not known; no seller usage report",
					"trade", t.Id, "buyer_asn", t.BuyerAsn)
			}
			continue
		}
		if neigh == nil {
			neigh = m.neighbors()
		}
		bps, samples := sumFigures(iv, capture.Incoming, tradePrefixes(t), macsOf(neigh, routers))
		if r, ok := usageRecord(t.Id, pb.ReporterRole_REPORTER_ROLE_SELLER, iv, bps, samples); ok {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return
	}
	if err := m.sp.PutAll(context.Background(), KindUsage, recs); err != nil {
		m.setErr(err)
		m.log.Error("cannot spool usage samples: they are lost", "samples", len(recs), "error", err)
		return
	}
	m.usageSpooled.Add(int64(len(recs)))
	m.sellerSpooled.Add(int64(len(recs) - nBought))
}

func overlaps(t *pb.Trade, iv capture.Interval) bool {
	return t.DeliveryStart.AsTime().Before(iv.To) && t.DeliveryEnd.AsTime().After(iv.From)
}

func tradePrefixes(t *pb.Trade) map[netip.Prefix]bool {
	out := map[netip.Prefix]bool{}
	for _, s := range t.Prefixes {
		if p, err := netip.ParsePrefix(s); err == nil {
			out[p.Masked()] = true
		}
	}
	return out
}

// sumFigures adds up the interval's figures of direction dir toward
// prefixes whose router (next hop out, previous hop in) is one of macs.
func sumFigures(iv capture.Interval, dir capture.Direction, prefixes map[netip.Prefix]bool, macs map[[6]byte]bool) (bps, samples int64) {
	for _, f := range iv.Figures {
		if f.Direction == dir && prefixes[f.Prefix] && len(f.NextHop) == 6 && macs[[6]byte(f.NextHop)] {
			bps += f.BitsPerSecond
			samples += f.Samples
		}
	}
	return bps, samples
}

// usageRecord is the spool record of one usage sample. Its key names the
// trade, the interval measured and the role, so a repeated report of the
// same (trade, interval, reporter) is a duplicate at the arbiter.
func usageRecord(trade uint64, role pb.ReporterRole, iv capture.Interval, bps, samples int64) (spool.Record, bool) {
	name := "buyer"
	if role == pb.ReporterRole_REPORTER_ROLE_SELLER {
		name = "seller"
	}
	key := fmt.Sprintf("usage:%d:%d:%d:%s", trade, iv.From.UnixMicro(), iv.To.UnixMicro(), name)
	s := &pb.UsageSample{IdempotencyKey: key, TradeId: trade, Role: role,
		IntervalStart: timestamppb.New(iv.From), IntervalEnd: timestamppb.New(iv.To), BitsPerSecond: bps, SampleCount: samples}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		return spool.Record{}, false // a UsageSample always marshals
	}
	return spool.Record{Key: key, Payload: b}, true
}

// reportable tells whether the arbiter takes this member's measurement
// through seller toward p: p is inside one of the seller's registered
// prefixes (a path every other member is asked to measure) and the seller
// has a router of its family, or inside a trade this member bought from
// the seller. The arbiter refuses any other path.
func (m *Measure) reportable(seller uint32, p netip.Prefix) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	inside := func(q netip.Prefix) bool {
		return q.Bits() <= p.Bits() && q.Addr().BitLen() == p.Addr().BitLen() && q.Contains(p.Addr())
	}
	family := false
	for _, a := range m.routers[seller] {
		family = family || a.Is4() == p.Addr().Is4()
	}
	for _, q := range m.dests[seller] {
		if family && inside(q) {
			return true
		}
	}
	for _, t := range m.trades {
		if t.SellerAsn != seller {
			continue
		}
		for _, s := range t.Prefixes {
			if q, err := netip.ParsePrefix(s); err == nil && inside(q.Masked()) {
				return true
			}
		}
	}
	return false
}

func (m *Measure) setErr(err error) {
	m.mu.Lock()
	m.lastErr = err.Error()
	m.mu.Unlock()
}

// refused tells whether the arbiter refused a batch for good.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.NotFound, codes.FailedPrecondition:
		return true
	}
	return false
}

// pushBack keeps a batch the arbiter pushed back (ResourceExhausted: a
// member's bound or rate) in the spool until the time its RetryInfo
// names (a second if it names none).
func pushBack(err error) error {
	if status.Code(err) != codes.ResourceExhausted {
		return err
	}
	after := time.Second
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() > 0 {
			after = min(ri.RetryDelay.AsDuration(), 10*time.Minute)
		}
	}
	return spool.RetryAfter(err, after)
}

func (m *Measure) sendUsage(ctx context.Context, items []spool.Item) error {
	req := &pb.ReportUsageRequest{}
	for _, it := range items {
		var s pb.UsageSample
		if err := proto.Unmarshal(it.Payload, &s); err != nil {
			return spool.Reject(fmt.Errorf("corrupt spooled usage sample %s: %w", it.Key, err))
		}
		req.Samples = append(req.Samples, &s)
	}
	_, err := pb.NewUsageServiceClient(m.conn).ReportUsage(ctx, req)
	if refused(err) {
		return spool.Reject(err)
	}
	return pushBack(err)
}

func (m *Measure) sendMeasurements(ctx context.Context, items []spool.Item) error {
	req := &pb.ReportMeasurementsRequest{}
	for _, it := range items {
		var s pb.Measurement
		if err := proto.Unmarshal(it.Payload, &s); err != nil {
			return spool.Reject(fmt.Errorf("corrupt spooled measurement %s: %w", it.Key, err))
		}
		req.Measurements = append(req.Measurements, &s)
	}
	_, err := pb.NewQualityServiceClient(m.conn).ReportMeasurements(ctx, req)
	if refused(err) {
		return spool.Reject(err)
	}
	return pushBack(err)
}

// MeasureStatus is the measuring side in `bwx-agent status`.
type MeasureStatus struct {
	Capturing    bool `json:"capturing"`
	Probing      bool `json:"probing"`
	Destinations int  `json:"destinations"`
	TradesBought int  `json:"trades_bought"`
	TradesSold   int  `json:"trades_sold"`
	// CapturingIncoming: incoming frames are sampled (seller's reports).
	CapturingIncoming bool  `json:"capturing_incoming"`
	SellerSpooled     int64 `json:"seller_usage_spooled"`
	// SellerUnresolved counts sold trade intervals not reported because
	// the buyer's routers were not known.
	SellerUnresolved int64     `json:"seller_usage_unresolved"`
	LastInterval     time.Time `json:"last_interval,omitzero"`
	KernelDrops      int64     `json:"kernel_drops"`
	UsageSpooled     int64     `json:"usage_spooled"`
	UsageSent        int64     `json:"usage_sent"`
	MeasurementsDone int64     `json:"measurements_spooled"`
	MeasurementsSent int64     `json:"measurements_sent"`
	UsageBacklog     int       `json:"usage_backlog"`
	MeasureBacklog   int       `json:"measurement_backlog"`
	Parked           int       `json:"parked"`
	PendingTasks     int       `json:"pending_probe_tasks"`
	Sellers          int       `json:"probe_sellers"`
	Error            string    `json:"error,omitempty"`
	// Top are the busiest destination prefixes of the last interval's
	// outgoing traffic (the demand the access manager sees).
	Top []TopDestination `json:"top_destinations,omitempty"`
}

// TopDestination is one destination prefix's outgoing traffic in an
// interval, over all next hops ("unmatched" is the zero Prefix).
type TopDestination struct {
	Prefix        netip.Prefix `json:"prefix"`
	BitsPerSecond int64        `json:"bits_per_second"`
	Samples       int64        `json:"samples"`
	NextHops      []string     `json:"next_hops"` // the routers' MAC addresses
}

// MaxTopDestinations bounds MeasureStatus.Top.
const MaxTopDestinations = 10

// topDestinations sums an interval's outgoing figures per prefix, busiest
// first.
func topDestinations(iv capture.Interval) []TopDestination {
	by := map[netip.Prefix]*TopDestination{}
	var out []*TopDestination
	for _, f := range iv.Figures {
		if f.Direction != capture.Outgoing {
			continue
		}
		d := by[f.Prefix]
		if d == nil {
			d = &TopDestination{Prefix: f.Prefix}
			by[f.Prefix] = d
			out = append(out, d)
		}
		d.BitsPerSecond += f.BitsPerSecond
		d.Samples += f.Samples
		if hw := f.NextHop.String(); hw != "" && !slices.Contains(d.NextHops, hw) {
			d.NextHops = append(d.NextHops, hw)
		}
	}
	slices.SortFunc(out, func(a, b *TopDestination) int {
		return cmp.Or(cmp.Compare(b.BitsPerSecond, a.BitsPerSecond), netx.ComparePrefix(a.Prefix, b.Prefix))
	})
	top := make([]TopDestination, 0, min(len(out), MaxTopDestinations))
	for _, d := range out[:min(len(out), MaxTopDestinations)] {
		top = append(top, *d)
	}
	return top
}

// Status reports what Measure is doing.
func (m *Measure) Status() MeasureStatus {
	m.mu.Lock()
	st := MeasureStatus{Capturing: len(m.cfg.Capture.Interfaces) > 0, Probing: m.cfg.Probe.Enabled, TradesBought: len(m.trades),
		TradesSold: len(m.sold), CapturingIncoming: m.cap != nil && !m.inSince.IsZero(),
		LastInterval: m.last.Start, PendingTasks: len(m.tasks), Sellers: len(m.sellers), Error: m.lastErr, Top: topDestinations(m.last)}
	if m.table != nil {
		st.Destinations = m.table.Len()
	}
	m.mu.Unlock()
	st.KernelDrops, st.UsageSpooled, st.UsageSent = m.drops.Load(), m.usageSpooled.Load(), m.usageSent.Load()
	st.SellerSpooled, st.SellerUnresolved = m.sellerSpooled.Load(), m.unresolved.Load()
	st.MeasurementsDone, st.MeasurementsSent = m.measSpooled.Load(), m.measSent.Load()
	if sp := m.sp; sp != nil && !m.spClosed.Load() {
		st.UsageBacklog, st.MeasureBacklog = sp.Len(KindUsage), sp.Len(KindMeasurement)
		st.Parked = sp.ParkedLen(KindUsage) + sp.ParkedLen(KindMeasurement)
	}
	return st
}

// Counts returns how many usage samples and measurements were spooled and
// delivered since start (tests).
func (m *Measure) Counts() (usageSpooled, usageSent, measSpooled, measSent int64) {
	return m.usageSpooled.Load(), m.usageSent.Load(), m.measSpooled.Load(), m.measSent.Load()
}
