package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	_ "google.golang.org/grpc/health" // client-side health checking (HealthServiceConfig)
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// MatcherKey names the matcher: an arbiter that is not the matcher
// refuses a trading call with this key in its response metadata (header
// or trailer), or in an errdetails.ErrorInfo's metadata, holding the
// matcher's gRPC host:port. Failover retries the call there, once.
const MatcherKey = "bwx-matcher"

// DefaultHoldDown is how long Failover avoids an arbiter after it failed
// a call (Unavailable, DeadlineExceeded) while another may answer.
const DefaultHoldDown = 10 * time.Second

// Failover is a connection to several arbiters (an arbiter pair): each
// call and stream goes to the current arbiter, the first of the list that
// is not known to be down; when it fails with Unavailable or
// DeadlineExceeded, or its connection is lost, the next one becomes
// current. A call refused with Unavailable is tried once on the next
// arbiter: every call that changes state carries an idempotency key
// (client_order_id, idempotency_key), so a retry cannot do it twice.
// A stream is not resumed here: its caller opens it again (the agent's
// event stream resumes from its cursor).
//
// Each arbiter has its own gRPC channel, connected from the start: gRPC
// reconnects each with backoff and keepalive notices a dead peer, so the
// channel's state tells whether the arbiter answers. Failover implements
// grpc.ClientConnInterface.
type Failover struct {
	addrs    []string
	conns    []*grpc.ClientConn
	dial     func(addr string) (*grpc.ClientConn, error)
	log      *slog.Logger
	holdDown time.Duration

	mu     sync.Mutex
	active int
	arbs   []arbiterState
	extra  map[string]*grpc.ClientConn // matchers named that are not in addrs
	closed bool
}

type arbiterState struct {
	downUntil time.Time
	lastErr   string
	lastErrAt time.Time
	since     time.Time // current since
}

// Arbiter is one arbiter as Failover sees it.
type Arbiter struct {
	Address string `json:"address"`
	// State is the gRPC channel's: idle, connecting, ready,
	// transient_failure, shutdown.
	State string `json:"state"`
	// Current: calls and streams go here now.
	Current bool      `json:"current"`
	Since   time.Time `json:"since,omitzero"`
	// LastError is the last failure that moved calls away from it.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// HealthServiceConfig makes a channel to one arbiter follow its
// grpc.health.v1 status (the arbiter's "" service; an arbiter going
// NOT_SERVING, as on shutdown, puts the channel in TRANSIENT_FAILURE, so
// Failover moves on). gRPC checks health under round_robin, not
// pick_first; with one address the two pick the same.
const HealthServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// FailoverOptions tune NewFailover; the zero value means the defaults.
type FailoverOptions struct {
	HoldDown time.Duration // DefaultHoldDown
	Log      *slog.Logger
}

// DialTLSFailover is NewFailover over DialTLS: every arbiter's
// certificate is checked against serverName, or the host part of its
// address when serverName is empty.
func DialTLSFailover(addrs []string, serverName string, b *pki.Bundle, opt FailoverOptions) (*Failover, error) {
	return NewFailover(addrs, func(addr string) (*grpc.ClientConn, error) {
		// No idle mode: the channel's state is the arbiter's health. A
		// ping every 15 s (the arbiter allows one per 10 s) notices a
		// frozen arbiter, whose connection stays open, within 20 s.
		return DialTLS(addr, serverName, b, grpc.WithIdleTimeout(0),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 15 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
			grpc.WithDefaultServiceConfig(HealthServiceConfig))
	}, opt)
}

// NewFailover opens a channel to each of addrs (host:port, in order of
// preference) with dial and starts connecting them.
func NewFailover(addrs []string, dial func(addr string) (*grpc.ClientConn, error), opt FailoverOptions) (*Failover, error) {
	if len(addrs) == 0 {
		return nil, errors.New("rpc: no arbiter address")
	}
	f := &Failover{addrs: append([]string(nil), addrs...), dial: dial, log: opt.Log, holdDown: opt.HoldDown,
		arbs: make([]arbiterState, len(addrs)), extra: map[string]*grpc.ClientConn{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.holdDown <= 0 {
		f.holdDown = DefaultHoldDown
	}
	for _, a := range addrs {
		c, err := dial(a)
		if err != nil {
			for _, c := range f.conns {
				c.Close()
			}
			return nil, fmt.Errorf("arbiter %s: %w", a, err)
		}
		c.Connect()
		f.conns = append(f.conns, c)
	}
	f.arbs[0].since = clock.Now().UTC()
	return f, nil
}

// Close closes every channel.
func (f *Failover) Close() error {
	f.mu.Lock()
	f.closed = true
	extra := f.extra
	f.extra = map[string]*grpc.ClientConn{}
	f.mu.Unlock()
	var errs []error
	for _, c := range f.conns {
		errs = append(errs, c.Close())
	}
	for _, c := range extra {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Current is the address calls go to now.
func (f *Failover) Current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs[f.active]
}

// Arbiters is the state of each arbiter, in configured order.
func (f *Failover) Arbiters() []Arbiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Arbiter, len(f.addrs))
	for i, a := range f.addrs {
		s := f.arbs[i]
		out[i] = Arbiter{Address: a, State: stateName(f.conns[i].GetState()), Current: i == f.active,
			LastError: s.lastErr, LastErrorAt: s.lastErrAt}
		if i == f.active {
			out[i].Since = s.since
		}
	}
	return out
}

// StateReady is Arbiter.State of a connected arbiter.
var StateReady = stateName(connectivity.Ready)

func stateName(s connectivity.State) string {
	return strings.ToLower(s.String())
}

// usable tells whether arbiter i may take calls now. f.mu is held.
func (f *Failover) usable(i int, now time.Time) bool {
	switch f.conns[i].GetState() {
	case connectivity.TransientFailure, connectivity.Shutdown:
		return false
	}
	return !now.Before(f.arbs[i].downUntil)
}

// pick returns the arbiter for the next call: the current one while it is
// connected; else the next connected one in order (so a call does not wait
// for the current one's connection attempt while another is up); else the
// first usable one from the current on; else the current one (all are
// down: the call fails and its caller backs off).
func (f *Failover) pick() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := clock.Now()
	n := len(f.conns)
	ready := func(i int) bool { return f.conns[i].GetState() == connectivity.Ready && f.usable(i, now) }
	choose := func(i int) int {
		if old := &f.arbs[f.active]; i != f.active {
			why := old.lastErr // a call failed lately: held down
			if !now.Before(old.downUntil) {
				why = "connection " + stateName(f.conns[f.active].GetState())
				old.lastErr, old.lastErrAt = why, now.UTC()
			}
			f.setActive(i, why)
		}
		return i
	}
	for k := range n {
		if i := (f.active + k) % n; ready(i) {
			return choose(i)
		}
	}
	for k := range n {
		if i := (f.active + k) % n; f.usable(i, now) {
			return choose(i)
		}
	}
	return f.active
}

// setActive makes i current. f.mu is held.
func (f *Failover) setActive(i int, why string) {
	if i == f.active {
		return
	}
	f.log.Warn("arbiter failover", "from", f.addrs[f.active], "to", f.addrs[i], "reason", why)
	f.active = i
	f.arbs[i].since = clock.Now().UTC()
}

// failed records err from arbiter i; it tells whether err says the
// arbiter is away (Unavailable, DeadlineExceeded), and then moves
// calls to the next arbiter.
func (f *Failover) failed(i int, err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
	default:
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := clock.Now()
	s := &f.arbs[i]
	s.downUntil = now.Add(f.holdDown)
	s.lastErr, s.lastErrAt = err.Error(), now.UTC()
	if i == f.active && len(f.conns) > 1 {
		n := len(f.conns)
		next := (i + 1) % n
		for k := 1; k < n; k++ {
			if j := (i + k) % n; f.usable(j, now) {
				next = j
				break
			}
		}
		f.setActive(next, err.Error())
	}
	return true
}

// Invoke is grpc.ClientConnInterface's unary call.
func (f *Failover) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	i := f.pick()
	err := f.invokeOn(ctx, i, method, args, reply, opts)
	if err == nil {
		return nil
	}
	// A deadline passed counts against the arbiter too (a frozen one
	// holds calls until then); only Unavailable is retried at once.
	if !f.failed(i, err) || ctx.Err() != nil || status.Code(err) != codes.Unavailable {
		return err
	}
	if j := f.pick(); j != i {
		if err2 := f.invokeOn(ctx, j, method, args, reply, opts); err2 == nil || !f.failed(j, err2) {
			return err2
		}
	}
	return err
}

// invokeOn calls on arbiter i; a refusal naming the matcher is retried
// there once.
func (f *Failover) invokeOn(ctx context.Context, i int, method string, args, reply any, opts []grpc.CallOption) error {
	var hdr, trl metadata.MD
	o := append(opts[:len(opts):len(opts)], grpc.Header(&hdr), grpc.Trailer(&trl))
	err := f.conns[i].Invoke(ctx, method, args, reply, o...)
	m := matcherOf(err, hdr, trl)
	if m == "" || strings.EqualFold(m, f.addrs[i]) {
		return err
	}
	mc, j, derr := f.connFor(m)
	if derr != nil {
		f.log.Warn("cannot dial the matcher an arbiter named", "arbiter", f.addrs[i], "matcher", m, "error", derr)
		return err
	}
	f.log.Info("call refused by a follower: retrying at the matcher", "method", method, "arbiter", f.addrs[i], "matcher", m)
	err = mc.Invoke(ctx, method, args, reply, opts...)
	if err == nil && j >= 0 {
		f.mu.Lock()
		f.setActive(j, "the matcher, as "+f.addrs[i]+" said")
		f.mu.Unlock()
	}
	return err
}

// matcherOf returns the matcher's address an error names, or "".
func matcherOf(err error, mds ...metadata.MD) string {
	if status.Code(err) == codes.OK {
		return ""
	}
	m := ""
	for _, md := range mds {
		if v := md.Get(MatcherKey); len(v) > 0 && v[0] != "" {
			m = v[0]
		}
	}
	if m == "" {
		if st, ok := status.FromError(err); ok {
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Metadata[MatcherKey] != "" {
					m = ei.Metadata[MatcherKey]
				}
			}
		}
	}
	if _, _, err := net.SplitHostPort(m); err != nil {
		return ""
	}
	return m
}

// connFor returns the channel to addr: a configured arbiter's (and its
// index), or one opened for it (index -1).
func (f *Failover) connFor(addr string) (*grpc.ClientConn, int, error) {
	for i, a := range f.addrs {
		if strings.EqualFold(a, addr) {
			return f.conns[i], i, nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, -1, errors.New("closed")
	}
	if c := f.extra[addr]; c != nil {
		return c, -1, nil
	}
	if len(f.extra) >= 4 {
		return nil, -1, errors.New("too many matcher addresses named")
	}
	c, err := f.dial(addr)
	if err != nil {
		return nil, -1, err
	}
	f.extra[addr] = c
	return c, -1, nil
}

// NewStream is grpc.ClientConnInterface's stream: opened on the current
// arbiter (or the next, if that one is away); an error from it marks its
// arbiter as a failed call does.
func (f *Failover) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	i := f.pick()
	s, err := f.conns[i].NewStream(ctx, desc, method, opts...)
	if err != nil && f.failed(i, err) && ctx.Err() == nil {
		if j := f.pick(); j != i {
			i = j
			if s, err = f.conns[i].NewStream(ctx, desc, method, opts...); err != nil {
				f.failed(i, err)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return &failoverStream{ClientStream: s, f: f, i: i}, nil
}

// StreamArbiter is the address of the arbiter a stream from NewStream
// is on (also through the generated clients' wrappers: their Context is
// ours).
func (f *Failover) StreamArbiter(s grpc.ClientStream) string {
	a, _ := s.Context().Value(streamArbiterKey{}).(string)
	return a
}

type streamArbiterKey struct{}

type failoverStream struct {
	grpc.ClientStream
	f *Failover
	i int
}

func (s *failoverStream) Context() context.Context {
	return context.WithValue(s.ClientStream.Context(), streamArbiterKey{}, s.f.addrs[s.i])
}

func (s *failoverStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.f.failed(s.i, err) // not a cancel: Canceled is no failure
	}
	return err
}

func (s *failoverStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.f.failed(s.i, err)
	}
	return err
}

var _ grpc.ClientConnInterface = (*Failover)(nil)
