package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/bwxchange/bwx/arbiter/api"
	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/delivery"
	"github.com/bwxchange/bwx/arbiter/federation"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
)

// Arbiter is a running arbiter.
type Arbiter struct {
	cfg     Config
	log     *slog.Logger
	db      *store.DB
	book    *book.Book
	servers []*grpc.Server
	health  *health.Server
	http    *http.Server
	lis     []net.Listener
	stop    chan struct{}
	sock    string // the operator socket this arbiter bound, removed on Close
	bgp     *bgpSide
	exiting bool // Exit, not Close: leave BGP sessions to the process's end
	// watching is closed when settlement's use watcher has stopped.
	watching <-chan struct{}
	dash     *dashboardSide
	fed      *federationSide

	// Addr is the bound gRPC address (useful with port 0 in tests).
	Addr net.Addr
	// MetricsAddr is the bound metrics address, if enabled.
	MetricsAddr net.Addr
	// FederationAddr is the bound federation address, if federating.
	FederationAddr net.Addr
	// DashboardAddr and DashboardLocalAddr are the bound dashboard
	// addresses (mTLS and loopback HTTP), if enabled.
	DashboardAddr, DashboardLocalAddr net.Addr
}

// Option changes how Start runs the arbiter.
type Option func(*options)

type options struct {
	bgpRunIn   func(func() error) error
	bookNow    func() time.Time
	fedBackoff [2]time.Duration
}

// WithFederationBackoff bounds the wait of a federation link between its
// attempts (tests that restart a peer do not wait the default 30 s).
func WithFederationBackoff(min, max time.Duration) Option {
	return func(o *options) { o.fedBackoff = [2]time.Duration{min, max} }
}

// WithBookClock runs the order book on the clock now instead of the wall
// clock (tests that need trades made in the past: a start in the past is
// refused, so the book's clock stands there while they are placed).
func WithBookClock(now func() time.Time) Option {
	return func(o *options) { o.bookNow = now }
}

// WithBGPRunIn runs the route server's event loop through runIn (see
// routeserver.Config.RunIn): with labnet's Host.Do, the route server
// listens inside that network namespace. Tests use it.
func WithBGPRunIn(runIn func(func() error) error) Option {
	return func(o *options) { o.bgpRunIn = runIn }
}

// Start opens the store, loads the CA and starts serving. It returns once
// every listener is bound, so a caller may connect at once.
func Start(cfg Config, log *slog.Logger, opts ...Option) (*Arbiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	a := &Arbiter{cfg: cfg, log: log, stop: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	ca, err := pki.LoadCA(cfg.CADir())
	if err != nil {
		return nil, fmt.Errorf("%w\n(create the exchange CA first: bwx-arbiter ca init --config <file> --host <arbiter address>)", err)
	}
	sc := cfg.StoreConfig()
	if sc.Driver == store.SQLite {
		if err := os.MkdirAll(filepath.Dir(sc.Path), 0o750); err != nil {
			return nil, err
		}
	}
	if a.db, err = store.OpenConfig(sc); err != nil {
		return nil, err
	}
	v, _ := a.db.Version(context.Background())
	log.Info("database open", "driver", string(a.db.Dialect()), "database", a.db.Name(), "schema_version", v)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := api.NewMetrics(reg)

	registryDB := registry.New(a.db)
	usage, settlement, notices, err := newUsageServer(cfg, a.db, registryDB, log, a.stop)
	if err != nil {
		return nil, err
	}
	a.watching = notices.watching
	var loop *delivery.Loop
	src := &tradeSource{}
	if cfg.BGP.Enabled {
		if a.bgp, err = newBGPSide(cfg.BGP, log, a.db, registryDB, o.bgpRunIn); err != nil {
			return nil, err
		}
		loop = delivery.New(src, a.bgp, delivery.Options{Log: log.With("component", "delivery")})
		reg.MustRegister(collector{a.bgp})
	} else if err := registryDB.ClearAnnounced(context.Background()); err != nil {
		return nil, err
	}
	broker := api.NewBroker()
	trades := prometheus.NewCounter(prometheus.CounterOpts{Name: "bwx_arbiter_trades_total", Help: "Trades made since start."})
	matched := prometheus.NewCounter(prometheus.CounterOpts{Name: "bwx_arbiter_matched_bps_total", Help: "Capacity traded since start, bits/s."})
	reg.MustRegister(trades, matched)
	bookChanged := federation.NewDirty() // the orders the federation's publisher reads again
	notify := func(evs []book.Event) {
		seen := map[int64]bool{}
		for _, e := range evs {
			if e.Type == book.TradeCreated && !seen[e.Trade.ID] {
				seen[e.Trade.ID] = true
				trades.Inc()
				matched.Add(float64(e.Trade.CapacityBps))
				log.Info("trade", "id", e.Trade.ID, "buyer", e.Trade.BuyerASN, "seller", e.Trade.SellerASN,
					"prefixes", fmt.Sprint(e.Trade.Prefixes), "capacity_bps", e.Trade.CapacityBps, "price_micros", e.Trade.PriceMicros)
			}
		}
		broker.Publish(evs)
		var touched []int64
		for _, e := range evs {
			switch {
			case e.Order != nil:
				touched = append(touched, e.Order.ID)
			case e.Trade != nil:
				touched = append(touched, e.Trade.SellOrderID)
			}
		}
		bookChanged.Add(touched...)
		if loop != nil {
			loop.Notify(evs)
		}
	}
	if a.book, err = book.Start(context.Background(), a.db, book.Options{Now: o.bookNow, Notify: notify, Freshness: cfg.Quality.Freshness, CreditCheck: settlement.BookCreditCheck,
		Active: func(asn uint32) error { return registryDB.CheckActive(context.Background(), asn) }}); err != nil {
		return nil, err
	}
	bk := a.book
	notices.attach(bk)
	changed := bk.RefreshMembers
	if a.bgp != nil {
		src.bk = bk
		a.bgp.run(bk, loop)
		changed = func(ctx context.Context) error {
			a.bgp.RegistryChanged()
			return bk.RefreshMembers(ctx)
		}
	}
	openOrders := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bwx_arbiter_open_orders", Help: "Orders resting in the book."},
		func() float64 { return float64(bk.OpenCount()) })
	reg.MustRegister(openOrders)
	admin := &api.FederationAdminServer{}
	if cfg.Federation.Enabled() {
		if a.fed, err = startFederation(cfg.Federation, log, bk, bookChanged, o.fedBackoff); err != nil {
			return nil, err
		}
		a.FederationAddr = a.fed.lis.Addr()
		admin.View = a.fed.view
		reg.MustRegister(federationCollector{a.fed})
	}
	a.health = health.NewServer()
	matrix := newMatrix(cfg.Quality, a.db)
	probes := newScheduler(cfg.Quality, registryDB, matrix)
	register := func(s *grpc.Server) {
		pb.RegisterRegistryServiceServer(s, &api.RegistryServer{Registry: registryDB, CA: ca, Changed: wakeProbes(changed, probes), Log: log, Book: bk})
		pb.RegisterTradingServiceServer(s, &api.TradingServer{Book: bk, Broker: broker, Metrics: metrics, Stopping: a.stop, Delivery: delivery.NewRecord(a.db)})
		rss := &api.RouteServerServer{Registry: registryDB}
		if a.bgp != nil {
			rss.RS, rss.Reread = a.bgp.rs, a.bgp.RegistryChanged
		}
		pb.RegisterRouteServerServiceServer(s, rss)
		pb.RegisterQualityServiceServer(s, &api.QualityServer{Matrix: matrix, Scheduler: probes, PollInterval: cfg.Quality.PollInterval, Stopping: a.stop, Log: log, Trades: bk, Standing: registryDB})
		pb.RegisterUsageServiceServer(s, usage)
		pb.RegisterFederationAdminServiceServer(s, admin)
		healthpb.RegisterHealthServer(s, a.health)
		reflection.Register(s)
	}
	pc := cfg.GRPC.PerCaller
	fairness := api.NewFairness(pc.InFlight, pc.Streams, pc.CallsPerSec, pc.Burst, reg)
	newServer := func(local bool, opts ...grpc.ServerOption) *grpc.Server {
		auth := &api.Authenticator{Local: local, Registry: registryDB, Log: log, Metrics: metrics, Fairness: fairness}
		opts = append(opts, grpc.ChainUnaryInterceptor(auth.Unary), grpc.ChainStreamInterceptor(auth.Stream),
			// Agents keep an event stream open for days; pings find dead peers.
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
			// A client pinging more often than every 10 s is closed (GOAWAY).
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
			// The transport's bound on one connection's streams (answers
			// queued for a slow reader stay in memory until written);
			// Fairness bounds the caller's across its connections.
			grpc.MaxRecvMsgSize(MaxRecvMsgSize), grpc.MaxConcurrentStreams(MaxConcurrentStreams))
		s := grpc.NewServer(opts...)
		register(s)
		a.servers = append(a.servers, s)
		return s
	}

	tlsServer := newServer(false, grpc.Creds(credentials.NewTLS(pki.ServerTLS(ca.ServerCertificate(), ca.Pool()))))
	lis, err := net.Listen("tcp", cfg.GRPC.Listen)
	if err != nil {
		return nil, fmt.Errorf("grpc.listen: %w", err)
	}
	a.lis = append(a.lis, lis)
	a.Addr = lis.Addr()
	go serve(log, "grpc", func() error { return tlsServer.Serve(lis) })

	if cfg.Operator.Socket != "" {
		sock, err := listenUnix(cfg.Operator.Socket)
		if err != nil {
			return nil, fmt.Errorf("operator.socket: %w", err)
		}
		a.lis = append(a.lis, sock)
		a.sock = cfg.Operator.Socket
		local := newServer(true)
		go serve(log, "operator socket", func() error { return local.Serve(sock) })
	}

	if cfg.Metrics.Listen != "" {
		ml, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return nil, fmt.Errorf("metrics.listen: %w", err)
		}
		a.MetricsAddr = ml.Addr()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if err := a.db.PingContext(r.Context()); err != nil {
				http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		a.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go serve(log, "metrics", func() error { return a.http.Serve(ml) })
	}
	if err := a.startDashboard(ca, registryDB); err != nil {
		return nil, err
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ok = true
	log.Info("arbiter serving", "grpc", a.Addr.String(), "operator_socket", cfg.Operator.Socket,
		"metrics", cfg.Metrics.Listen, "ca", cfg.CADir())
	if a.bgp != nil {
		log.Info("route server started", "asn", cfg.BGP.ASN, "router_id", cfg.BGP.RouterID, "listen", fmt.Sprint(cfg.BGP.Listen),
			"port", cfg.BGP.Port, "members", len(a.bgp.rs.Members()))
	}
	if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); sent || err != nil {
		log.Debug("sd_notify READY", "sent", sent, "error", err)
	}
	return a, nil
}

func serve(log *slog.Logger, what string, f func() error) {
	if err := f(); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		log.Error("listener stopped", "listener", what, "error", err)
	}
}

// listenUnix binds the operator socket with mode 0600, replacing a stale
// socket file left by a crash, but never another kind of file.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another arbiter is serving on it", path)
		}
		os.Remove(path)
	}
	// The socket is created with the umask applied, then tightened before
	// Listen returns to anyone; a 0177 umask around bind closes the gap.
	l, err := listenWithUmask(path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Exit is Close for a process about to exit: with bgp.graceful_stop the
// members' BGP sessions are not closed with a NOTIFICATION but left to the
// process's end, so members that help with graceful restart keep their
// trades while the arbiter restarts.
func (a *Arbiter) Exit() error {
	a.exiting = true
	return a.Close()
}

// Close stops serving: in-flight calls finish (up to a grace period),
// streams are ended, the route server's sessions are closed (CEASE) and the
// database is closed.
func (a *Arbiter) Close() error {
	if a.health != nil {
		a.health.Shutdown()
	}
	close(a.stop)
	var wg sync.WaitGroup
	for _, s := range a.servers {
		wg.Add(1)
		go func(s *grpc.Server) {
			defer wg.Done()
			done := make(chan struct{})
			go func() { s.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				s.Stop()
			}
		}(s)
	}
	wg.Wait()
	a.fed.close()
	for _, l := range a.lis {
		l.Close()
	}
	a.closeDashboard()
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.http.Shutdown(ctx)
		cancel()
	}
	if a.sock != "" {
		os.Remove(a.sock)
	}
	if a.bgp != nil {
		a.bgp.stop(a.cfg.BGP.GracefulStop && a.exiting)
	}
	if a.watching != nil {
		<-a.watching // its last check may still append events to the book
	}
	if a.book != nil {
		a.book.Close()
	}
	if a.db != nil {
		return a.db.Close()
	}
	return nil
}
