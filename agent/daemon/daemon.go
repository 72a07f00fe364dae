package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pages"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
)

// Agent is the member-side daemon.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	bundle *pki.Bundle
	// conn reaches the arbiters (arbiter.addresses), failing over
	// between them.
	conn *rpc.Failover
	// streamOn is the arbiter the event stream is on; "" while down.
	streamOn atomic.Pointer[string]
	// routing applies traded routes; nil without bgp.route_servers.
	routing *Routing
	// measure samples traffic and probes paths; nil without capture/probe.
	measure *Measure
	// trading runs the access manager each round; nil when it does not run.
	trading *TradingLoop
	metrics *metrics
	// OnEvent, when set, sees every trade event after it is logged.
	OnEvent func(*pb.TradeEvent)
	// MinBackoff and MaxBackoff bound the reconnect delay.
	MinBackoff, MaxBackoff time.Duration
}

// New loads the bundle and prepares the connection (gRPC connects lazily).
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := pki.LoadBundle(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	if !b.Identity.IsMember() {
		return nil, fmt.Errorf("%s holds a %s certificate; the agent needs a member's (bwx-arbiter member add)", cfg.Bundle, b.Identity)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	log = log.With("member", b.Identity.String())
	var routing *Routing
	if cfg.Routing() {
		routing, err = NewRouting(cfg, b.Identity.ASN, log)
		if err != nil {
			return nil, err
		}
	}
	conn, err := rpc.DialTLSFailover(cfg.ArbiterAddresses(), cfg.Arbiter.ServerName, b, rpc.FailoverOptions{Log: log.With("component", "arbiters")})
	if err != nil {
		if routing != nil {
			routing.fib.Close()
		}
		return nil, err
	}
	mx := newMetrics()
	var measure *Measure
	var trading *TradingLoop
	if cfg.Measuring() {
		opt := MeasureOptions{OnMeasurements: mx.observeProbes}
		if cfg.managerRuns() {
			if trading, err = NewTradingLoop(cfg, b.Identity.ASN, conn, log); err != nil {
				if routing != nil {
					routing.fib.Close()
				}
				conn.Close()
				return nil, err
			}
			opt = trading.hooks(opt)
		}
		if measure, err = NewMeasure(cfg, b.Identity.ASN, conn, log, opt); err != nil {
			if routing != nil {
				routing.fib.Close()
			}
			conn.Close()
			return nil, err
		}
	}
	if trading == nil && cfg.Manager.Sell.Enabled && cfg.managerRuns() {
		// A seller without measuring: the sell policy still runs.
		if trading, err = NewTradingLoop(cfg, b.Identity.ASN, conn, log); err != nil {
			if routing != nil {
				routing.fib.Close()
			}
			conn.Close()
			return nil, err
		}
	}
	if trading != nil {
		trading.attach(measure, routing)
	}
	a := &Agent{cfg: cfg, log: log, bundle: b, conn: conn, routing: routing, measure: measure, trading: trading, metrics: mx,
		MinBackoff: time.Second, MaxBackoff: time.Minute}
	mx.register(a)
	return a, nil
}

// Routing is the route applier, or nil when no route server is configured.
func (a *Agent) Routing() *Routing { return a.routing }

// Conn is the connection to the arbiters.
func (a *Agent) Conn() grpc.ClientConnInterface { return a.conn }

// Close releases the connection and, if Run never did, the FIB (removing
// its routes unless fib.keep_routes_on_stop).
func (a *Agent) Close() error {
	if a.routing != nil {
		a.routing.fib.Close()
	}
	if a.measure != nil {
		a.measure.Close()
	}
	return a.conn.Close()
}

// Run serves the status socket, applies traded routes (with
// bgp.route_servers) and keeps the trade event stream open until ctx ends,
// reconnecting with jittered exponential backoff whenever the arbiter goes
// away. It returns once the routes are cleaned up (or kept, with
// fib.keep_routes_on_stop).
func (a *Agent) Run(ctx context.Context) error {
	cursor, err := a.loadCursor()
	if err != nil {
		return err
	}
	l, err := listenStatus(a.cfg.SocketPath())
	if err != nil {
		return err
	}
	ml, err := a.listenMetrics()
	if err != nil {
		l.Close()
		os.Remove(a.cfg.SocketPath())
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.serveStatus(ctx, l)
		os.Remove(a.cfg.SocketPath())
	}()
	if ml != nil {
		wg.Go(func() { a.serveMetrics(ctx, ml) })
	}
	if a.routing != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.routing.Run(ctx); err != nil {
				a.metrics.routingStopped.Store(true)
				a.log.Error("routing stopped: traded routes are not applied", "error", err)
			}
		}()
	}
	if a.trading != nil {
		wg.Go(func() { a.trading.Run(ctx) })
	}
	if a.measure != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.measure.Run(ctx); err != nil {
				a.metrics.measureStopped.Store(true)
				a.log.Error("measuring stopped: no usage or quality reports", "error", err)
			}
		}()
	}
	a.log.Info("agent running", "arbiters", a.cfg.ArbiterAddresses(), "resume_after_sequence", cursor, "metrics", a.cfg.Metrics.Listen)
	daemon.SdNotify(false, daemon.SdNotifyReady)
	delay := a.MinBackoff
	var lastQuick time.Time // the last move to another arbiter without backoff
	for {
		start := clock.Now()
		on := a.conn.Current()
		err := a.stream(ctx, &cursor)
		if ctx.Err() != nil {
			return nil
		}
		if st := status.Code(err); st == codes.PermissionDenied || st == codes.Unauthenticated {
			a.log.Error("the arbiter refuses this agent's certificate", "arbiter", on, "error", err)
		} else {
			a.log.Warn("event stream down", "arbiter", on, "error", err)
		}
		if clock.Since(start) > 2*a.MaxBackoff {
			delay = a.MinBackoff // it was up for a good while: start over
		}
		wait := delay/2 + rand.N(delay/2+1)
		next := a.conn.Current()
		quick := next != on && clock.Since(lastQuick) > a.MaxBackoff
		if quick {
			// The other arbiter of the pair: go now (after a short
			// jitter). Once per MaxBackoff: when every arbiter fails,
			// the backoff grows as with one.
			wait, lastQuick = rand.N(a.MinBackoff/2+1), clock.Now()
		}
		a.log.Info("reconnecting", "arbiter", next, "in", wait.Round(time.Millisecond).String(), "resume_after_sequence", cursor)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if !quick {
			delay = min(delay*2, a.MaxBackoff)
		}
	}
}

func (a *Agent) stream(ctx context.Context, cursor *uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := pb.NewTradingServiceClient(a.conn).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{AfterSequence: *cursor}, grpc.WaitForReady(false))
	if err != nil {
		return err
	}
	on := a.conn.StreamArbiter(s)
	if a.routing != nil {
		// The stream resumes after the last event seen: the trades made
		// before it come from the list, for the route check. Any order
		// works: the stream replays every event after the cursor.
		ts, err := pages.Trades(ctx, pb.NewTradingServiceClient(a.conn), &pb.ListTradesRequest{}, 0)
		if err != nil {
			return fmt.Errorf("list trades: %w", err)
		}
		a.routing.SetTrades(ts)
		a.log.Info("trades listed for the route check", "trades", len(ts))
	}
	a.metrics.streamUp.Store(true)
	defer a.metrics.streamUp.Store(false)
	a.streamOn.Store(&on)
	defer a.streamOn.Store(nil)
	a.log.Info("event stream open", "arbiter", on, "after_sequence", *cursor)
	for {
		ev, err := s.Recv()
		if err != nil {
			return err
		}
		if ev.Sequence <= *cursor {
			// Applied already (an arbiter that replays what the cursor
			// says we have): applying it twice could undo a later event.
			a.log.Warn("event at or before the cursor skipped", "arbiter", on, "sequence", ev.Sequence, "cursor", *cursor)
			continue
		}
		if o := ev.Order; o != nil {
			a.log.Info("order event", "sequence", ev.Sequence, "type", strings.TrimPrefix(ev.Type.String(), "TRADE_EVENT_TYPE_"),
				"order", o.Id, "status", strings.TrimPrefix(o.Status.String(), "ORDER_STATUS_"), "filled_bps", o.FilledBps)
		}
		t := ev.Trade
		role := "buyer"
		if t.GetSellerAsn() == a.bundle.Identity.ASN {
			role = "seller"
		}
		if t != nil && ev.Use == nil {
			a.log.Info("trade event", "sequence", ev.Sequence, "type", strings.TrimPrefix(ev.Type.String(), "TRADE_EVENT_TYPE_"),
				"trade", t.GetId(), "role", role, "buyer", t.GetBuyerAsn(), "seller", t.GetSellerAsn(),
				"prefixes", strings.Join(t.GetPrefixes(), ","), "next_hops", strings.Join(t.GetSellerNextHops(), ","),
				"capacity_bps", t.GetCapacityBps(), "price_micros", t.GetPriceMicros(),
				"delivery_start", t.GetDeliveryStart().AsTime().Format(time.RFC3339), "delivery_end", t.GetDeliveryEnd().AsTime().Format(time.RFC3339))
		}
		if u := ev.Use; u != nil {
			// Claim 16: the exchange saw sustained over- or underuse.
			a.log.Warn("trade use notice", "sequence", ev.Sequence, "type", strings.TrimPrefix(ev.Type.String(), "TRADE_EVENT_TYPE_"),
				"trade", u.TradeId, "capacity_bps", u.CapacityBps, "peak_bps", u.PeakBps, "min_bps", u.MinBps,
				"from", u.Start.AsTime().Format(time.RFC3339), "to", u.End.AsTime().Format(time.RFC3339))
		}
		if c := ev.Credit; c != nil {
			a.log.Warn("credit notice: new buy orders are refused at the limit", "sequence", ev.Sequence,
				"type", strings.TrimPrefix(ev.Type.String(), "TRADE_EVENT_TYPE_"), "limit_micros", c.LimitMicros,
				"exposure_micros", c.ExposureMicros, "unpaid_micros", c.UnpaidMicros, "accrued_micros", c.AccruedMicros)
		}
		if a.routing != nil {
			a.routing.TradeEvent(ev)
		}
		if a.OnEvent != nil {
			a.OnEvent(ev)
		}
		if a.measure != nil && t != nil && ev.Use == nil {
			a.measure.Refresh() // a trade began or ended: re-read the trades
		}
		*cursor = ev.Sequence
		if err := a.saveCursor(ev.Sequence); err != nil {
			a.log.Error("cannot save the event cursor; events may be shown again after a restart", "error", err)
		}
	}
}

func (a *Agent) cursorPath() string { return filepath.Join(a.cfg.StateDir, "events.cursor") }

func (a *Agent) loadCursor() (uint64, error) {
	b, err := os.ReadFile(a.cursorPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: corrupt cursor %q (delete it to replay all events)", a.cursorPath(), b)
	}
	return v, nil
}

// saveCursor writes atomically so a crash leaves the old or the new value.
func (a *Agent) saveCursor(v uint64) error {
	tmp := a.cursorPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(v, 10)+"\n"), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, a.cursorPath())
}
