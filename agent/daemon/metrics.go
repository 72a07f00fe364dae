package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/agent/routecheck"
	"github.com/bwxchange/bwx/agent/speaker"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/rpc"
)

// metrics is the agent's Prometheus side. Most figures are read from the
// parts' own state at scrape time (collector); only what exists nowhere
// else is kept here: the event stream's state, the last probe round per
// seller, and whether a part stopped for good.
type metrics struct {
	reg *prometheus.Registry

	streamUp       atomic.Bool
	routingStopped atomic.Bool
	measureStopped atomic.Bool
	addr           atomic.Pointer[net.Addr]

	mu      sync.Mutex
	rounds  int64
	targets int64
	sellers map[uint32]sellerProbe
}

// sellerProbe is a seller's figures from the last round that probed it.
type sellerProbe struct {
	at             time.Time
	sent, received int64
	latencyUs      float64 // mean over the replies
}

func newMetrics() *metrics {
	return &metrics{reg: prometheus.NewRegistry(), sellers: map[uint32]sellerProbe{}}
}

// register adds the process, agent and capture collectors; called once
// the parts exist.
func (m *metrics) register(a *Agent) {
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collector{a})
	if a.measure != nil && a.measure.cap != nil {
		m.reg.MustRegister(a.measure.cap.Collector())
	}
}

// observeProbes takes one probe round's results (MeasureOptions.OnMeasurements).
func (m *metrics) observeProbes(ms []probe.Measurement) {
	type agg struct {
		at             time.Time
		sent, received int64
		latency        float64 // sum of LatencyUs weighted by replies
	}
	by := map[uint32]*agg{}
	var targets int64
	for _, x := range ms {
		targets += int64(len(x.Targets))
		g := by[x.ASN]
		if g == nil {
			g = &agg{at: x.At}
			by[x.ASN] = g
		}
		g.sent += int64(x.Sent)
		g.received += int64(x.Received)
		g.latency += float64(x.LatencyUs) * float64(x.Received)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rounds++
	m.targets += targets
	var newest time.Time
	for asn, g := range by {
		p := sellerProbe{at: g.at, sent: g.sent, received: g.received}
		if g.received > 0 {
			p.latencyUs = g.latency / float64(g.received)
		}
		m.sellers[asn] = p
		if g.at.After(newest) {
			newest = g.at
		}
	}
	// A seller not probed for a day is gone (left the exchange, no
	// trades): its series go rather than stay forever.
	for asn, p := range m.sellers {
		if p.at.Before(newest.Add(-sellerProbeTTL)) {
			delete(m.sellers, asn)
		}
	}
}

const sellerProbeTTL = 24 * time.Hour

var (
	descArbiterConn = prometheus.NewDesc("bwx_agent_arbiter_connected",
		"1 while the gRPC connection to the current arbiter is ready.", nil, nil)
	descArbiterReady = prometheus.NewDesc("bwx_agent_arbiter_ready",
		"Per arbiter of arbiter.addresses: 1 while its gRPC connection is ready.", []string{"arbiter"}, nil)
	descStreamUp = prometheus.NewDesc("bwx_agent_event_stream_up",
		"1 while the trade event stream from the arbiter is open.", nil, nil)

	descSessions = prometheus.NewDesc("bwx_agent_bgp_sessions",
		"BGP sessions by peer (route_server, member_router) and state (idle, connect, active, opensent, openconfirm, established).", []string{"peer", "state"}, nil)
	descUpdates = prometheus.NewDesc("bwx_agent_bgp_updates_total",
		"Path announcements and withdrawals received from the route server.", nil, nil)
	descIgnored = prometheus.NewDesc("bwx_agent_bgp_ignored_paths_total",
		"Announcements that were not this member's traded routes (ignored).", nil, nil)

	descLearned = prometheus.NewDesc("bwx_agent_routes_learned",
		"Traded routes (prefixes) the route server sent, before the check against the member's trades.", nil, nil)
	descRejected = prometheus.NewDesc("bwx_agent_routes_rejected_total",
		"Paths from the route server refused because no active trade of this member justifies them, by reason "+
			"(default-route, malformed, prefix-not-traded, next-hop-not-in-trade, trade-not-active); each counted when first refused.", []string{"reason"}, nil)
	descPending = prometheus.NewDesc("bwx_agent_routes_pending",
		"Paths from the route server held, not installed, while the trade that would justify them may still be on its way (bgp.trade_grace).", nil, nil)
	descTradesKnown = prometheus.NewDesc("bwx_agent_routes_trades_known",
		"This member's trades (bought) the route check knows from the arbiter's event stream and trade list.", nil, nil)
	descInstalled = prometheus.NewDesc("bwx_agent_routes_installed",
		"The agent's routes in the kernel table.", nil, nil)
	descOutOfSync = prometheus.NewDesc("bwx_agent_routes_out_of_sync",
		"Difference between desired and installed routes: missing (to add or replace) and extra (to remove).", []string{"diff"}, nil)
	descRefused = prometheus.NewDesc("bwx_agent_routes_refused",
		"Next hops or routes the last FIB sync refused, by reason.", []string{"reason"}, nil)
	descNextHops = prometheus.NewDesc("bwx_agent_seller_next_hops",
		"Sellers' routers used as next hops, up or down (no answer to ARP/ND).", []string{"state"}, nil)
	descFIBReadable = prometheus.NewDesc("bwx_agent_fib_readable",
		"1 when the kernel table could be read for this scrape (installed and out_of_sync are missing otherwise).", nil, nil)
	descSynced = prometheus.NewDesc("bwx_agent_fib_synced",
		"1 once the first FIB sync was made (before it, routes a previous run left are kept as they are).", nil, nil)
	descSyncFailing = prometheus.NewDesc("bwx_agent_fib_sync_failing",
		"1 when the last FIB sync failed.", nil, nil)
	descLastSync = prometheus.NewDesc("bwx_agent_fib_last_sync_timestamp_seconds",
		"When the last successful FIB sync ended (Unix time).", nil, nil)
	descFIBErrors = prometheus.NewDesc("bwx_agent_fib_errors_total",
		"Kernel errors installing or removing routes, and failed FIB syncs.", nil, nil)
	descFIBChanges = prometheus.NewDesc("bwx_agent_fib_route_changes_total",
		"Routes added, replaced and removed in the kernel.", []string{"op"}, nil)
	descFIBRepairs = prometheus.NewDesc("bwx_agent_fib_repairs_total",
		"Times the agent restored its routes after someone else changed the table.", nil, nil)

	descSpoolPending = prometheus.NewDesc("bwx_agent_spool_pending_reports",
		"Reports waiting in the spool for the arbiter, by kind.", []string{"kind"}, nil)
	descSpoolAge = prometheus.NewDesc("bwx_agent_spool_oldest_pending_age_seconds",
		"Age of the oldest report waiting in the spool (0 when none), by kind.", []string{"kind"}, nil)
	descSpoolParked = prometheus.NewDesc("bwx_agent_spool_parked_reports",
		"Reports the arbiter refused for good, kept in the spool, by kind.", []string{"kind"}, nil)
	descSpooled = prometheus.NewDesc("bwx_agent_reports_spooled_total",
		"Reports (usage samples, measurements) stored in the spool since start.", []string{"kind"}, nil)
	descSent = prometheus.NewDesc("bwx_agent_reports_sent_total",
		"Reports (usage samples, measurements) the arbiter accepted since start.", []string{"kind"}, nil)
	descTrades = prometheus.NewDesc("bwx_agent_trades_bought",
		"Active trades this member bought (usage is reported for each).", nil, nil)
	descLastInterval = prometheus.NewDesc("bwx_agent_capture_last_interval_timestamp_seconds",
		"Start of the last capture interval closed (Unix time).", nil, nil)

	descProbeRounds = prometheus.NewDesc("bwx_agent_probe_rounds_total",
		"Probe rounds completed.", nil, nil)
	descProbeTargets = prometheus.NewDesc("bwx_agent_probe_targets_total",
		"Targets probed, summed over rounds.", nil, nil)
	descProbeTasks = prometheus.NewDesc("bwx_agent_probe_pending_tasks",
		"Probe tasks from the arbiter waiting for a round.", nil, nil)
	descProbeLoss = prometheus.NewDesc("bwx_agent_probe_loss_ratio",
		"Share of echo requests without a timely reply through the seller, in the last round that probed it.", []string{"seller_asn"}, nil)
	descProbeLatency = prometheus.NewDesc("bwx_agent_probe_latency_seconds",
		"Mean round-trip time through the seller in the last round that probed it (absent when nothing answered).", []string{"seller_asn"}, nil)
	descProbeAt = prometheus.NewDesc("bwx_agent_probe_last_round_timestamp_seconds",
		"When the last round that probed the seller started (Unix time).", []string{"seller_asn"}, nil)
)

// sessionStates are the speaker's session states, all exported (0 too) so
// a query by state never finds nothing.
var sessionStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

// refusalReasons are fib's reasons, all exported for the same reason.
var refusalReasons = []fib.Reason{fib.ReasonOffLink, fib.ReasonInterfaceDown, fib.ReasonOwnAddress,
	fib.ReasonNeighborFailed, fib.ReasonDown, fib.ReasonNoNextHop, fib.ReasonConflict, fib.ReasonInvalid}

type collector struct{ a *Agent }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descArbiterConn, descArbiterReady, descStreamUp, descSessions, descUpdates, descIgnored,
		descLearned, descRejected, descPending, descTradesKnown, descInstalled, descOutOfSync, descRefused, descNextHops, descFIBReadable, descSynced, descSyncFailing,
		descLastSync, descFIBErrors, descFIBChanges, descFIBRepairs, descSpoolPending, descSpoolAge, descSpoolParked,
		descSpooled, descSent, descTrades, descLastInterval, descProbeRounds, descProbeTargets, descProbeTasks,
		descProbeLoss, descProbeLatency, descProbeAt} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	ready := false
	for _, x := range a.conn.Arbiters() {
		r := x.State == rpc.StateReady
		ready = ready || (x.Current && r)
		gauge(ch, descArbiterReady, b2f(r), x.Address)
	}
	gauge(ch, descArbiterConn, b2f(ready))
	gauge(ch, descStreamUp, b2f(a.metrics.streamUp.Load()))
	if a.routing != nil {
		c.collectRouting(ch)
	}
	if a.measure != nil {
		c.collectMeasure(ch)
	}
}

func (c collector) collectRouting(ch chan<- prometheus.Metric) {
	st, err := c.a.routing.Status()
	sessions := func(peer string, ss []speaker.Session) {
		n := map[string]int{}
		for _, s := range ss {
			n[s.State]++
		}
		for _, state := range sessionStates {
			gauge(ch, descSessions, float64(n[state]), peer, state)
		}
	}
	sessions("route_server", st.Sessions)
	if len(c.a.cfg.BGP.MemberRouter.Addresses) > 0 {
		sessions("member_router", st.Routers)
	}
	counter(ch, descUpdates, float64(st.BGP.Updates))
	counter(ch, descIgnored, float64(st.BGP.Ignored))
	gauge(ch, descLearned, float64(len(st.Learned)))
	counts := c.a.routing.check.Counts()
	for _, r := range routecheck.Reasons {
		counter(ch, descRejected, float64(counts[r]), string(r))
	}
	gauge(ch, descPending, float64(st.Checks.Pending))
	gauge(ch, descTradesKnown, float64(st.Checks.Trades))
	gauge(ch, descFIBReadable, b2f(err == nil))
	if err == nil {
		gauge(ch, descInstalled, float64(len(st.Installed)))
		gauge(ch, descOutOfSync, float64(len(st.Missing)), "missing")
		gauge(ch, descOutOfSync, float64(len(st.Extra)), "extra")
		// Status fills these only when the table was read.
		n := map[string]int{}
		for _, r := range st.Refused {
			n[r.Reason]++
		}
		for _, r := range refusalReasons {
			gauge(ch, descRefused, float64(n[string(r)]), string(r))
		}
		var down int
		for _, nb := range st.Down {
			if nb.Down {
				down++
			}
		}
		gauge(ch, descNextHops, float64(len(st.Down)-down), "up")
		gauge(ch, descNextHops, float64(down), "down")
		gauge(ch, descSynced, b2f(st.Synced))
		gauge(ch, descSyncFailing, b2f(st.SyncErr != ""))
		if !st.LastSync.IsZero() {
			gauge(ch, descLastSync, float64(st.LastSync.UnixNano())/1e9)
		}
	}
	f := st.FIB
	counter(ch, descFIBErrors, float64(f.Errors))
	counter(ch, descFIBChanges, float64(f.Installs), "add")
	counter(ch, descFIBChanges, float64(f.Replaces), "replace")
	counter(ch, descFIBChanges, float64(f.Removals), "remove")
	counter(ch, descFIBRepairs, float64(f.Repairs))
}

func (c collector) collectMeasure(ch chan<- prometheus.Metric) {
	m := c.a.measure
	ms := m.Status()
	uSpooled, uSent, mSpooled, mSent := m.Counts()
	counter(ch, descSpooled, float64(uSpooled), KindUsage)
	counter(ch, descSent, float64(uSent), KindUsage)
	counter(ch, descSpooled, float64(mSpooled), KindMeasurement)
	counter(ch, descSent, float64(mSent), KindMeasurement)
	if sp := m.sp; sp != nil && !m.spClosed.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		now := clock.Now()
		for _, kind := range []string{KindUsage, KindMeasurement} {
			st, err := sp.Stats(ctx, kind)
			if err != nil {
				continue // closing: the scrape goes without the spool
			}
			gauge(ch, descSpoolPending, float64(st.Pending), kind)
			gauge(ch, descSpoolParked, float64(st.Parked), kind)
			var age float64
			if !st.Oldest.IsZero() {
				age = max(0, now.Sub(st.Oldest).Seconds())
			}
			gauge(ch, descSpoolAge, age, kind)
		}
	}
	gauge(ch, descTrades, float64(ms.TradesBought))
	if ms.Capturing && !ms.LastInterval.IsZero() {
		gauge(ch, descLastInterval, float64(ms.LastInterval.UnixNano())/1e9)
	}
	if !ms.Probing {
		return
	}
	gauge(ch, descProbeTasks, float64(ms.PendingTasks))
	x := c.a.metrics
	x.mu.Lock()
	defer x.mu.Unlock()
	counter(ch, descProbeRounds, float64(x.rounds))
	counter(ch, descProbeTargets, float64(x.targets))
	for asn, p := range x.sellers {
		l := strconv.FormatUint(uint64(asn), 10)
		if p.sent > 0 {
			gauge(ch, descProbeLoss, float64(p.sent-p.received)/float64(p.sent), l)
		}
		if p.received > 0 {
			gauge(ch, descProbeLatency, p.latencyUs/1e6, l)
		}
		gauge(ch, descProbeAt, float64(p.at.UnixNano())/1e9, l)
	}
}

// MetricsAddr is where /metrics is served, once Run has opened it (nil
// before, or with metrics.listen empty).
func (a *Agent) MetricsAddr() net.Addr {
	if p := a.metrics.addr.Load(); p != nil {
		return *p
	}
	return nil
}

// listenMetrics opens metrics.listen (nil listener when it is empty).
func (a *Agent) listenMetrics() (net.Listener, error) {
	if a.cfg.Metrics.Listen == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", a.cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	addr := l.Addr()
	a.metrics.addr.Store(&addr)
	return l, nil
}

// health lists what is wrong, if anything. The arbiter being away is not:
// the agent keeps its routes and spools its reports (bwx_agent_event_stream_up
// says so), and a restart would not bring the arbiter back.
func (a *Agent) health(ctx context.Context) []string {
	var bad []string
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := d.DialContext(ctx, "unix", a.cfg.SocketPath()); err != nil {
		bad = append(bad, "status socket: "+err.Error())
	} else {
		c.Close()
	}
	if a.routing != nil && a.metrics.routingStopped.Load() {
		bad = append(bad, "routing stopped: traded routes are not applied")
	}
	if a.measure != nil && a.metrics.measureStopped.Load() {
		bad = append(bad, "measuring stopped: no usage or quality reports")
	}
	return bad
}

// serveMetrics answers /metrics and /healthz on l until ctx is done.
func (a *Agent) serveMetrics(ctx context.Context, l net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if bad := a.health(r.Context()); len(bad) > 0 {
			http.Error(w, strings.Join(bad, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("metrics", "error", err)
	}
}

// validateMetricsListen checks metrics.listen: "" or host:port with a
// numeric port.
func validateMetricsListen(s string) error {
	if s == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return config.Errorf("metrics.listen", "want host:port (or \"\" to disable), got %q", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return config.Errorf("metrics.listen", "want a port number 0-65535, got %q", port)
	}
	return nil
}
