// Package api serves the gRPC contract over the domain packages: it learns
// who calls from the TLS certificate (or the operator socket), authorizes
// every call against that identity, and converts between proto and domain.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

type callerKey struct{}

// Caller is who makes a call.
type Caller struct {
	pki.Identity
}

// ASN is the book's view of the caller: the member's ASN, or
// book.Operator (0) for the operator. A caller that is neither gets an ASN
// that is reserved and so owns nothing, never the operator's scope.
func (c Caller) ASN() uint32 {
	switch {
	case c.IsOperator():
		return 0
	case c.IsMember():
		return c.Identity.ASN
	}
	return math.MaxUint32
}

func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// Authenticator resolves the caller of each call. On the TLS listener the
// identity is the client certificate's; on the operator socket (file mode
// 0600) every caller is the local operator.
type Authenticator struct {
	Local    bool
	Registry *registry.Registry
	Log      *slog.Logger
	Metrics  *Metrics
	// Fairness bounds each caller's calls (nil: no bound).
	Fairness *Fairness
}

// public methods need no identity: health checks and reflection.
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

// identify tells who calls from the certificate alone, with no lookup:
// what Fairness keys on before any work.
func (a *Authenticator) identify(ctx context.Context) (pki.Identity, *credentials.TLSInfo, error) {
	if a.Local {
		return pki.OperatorIdentity("local"), nil, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, nil, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return pki.Identity{}, nil, status.Error(codes.Unauthenticated, "a client certificate is required")
	}
	id, err := pki.PeerIdentity(&ti.State)
	if err != nil {
		return pki.Identity{}, nil, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	return id, &ti, nil
}

// admit identifies the caller and takes a Fairness slot for its call; the
// release is never nil. A refused call's context names the caller as its
// certificate does, for the metrics and the log.
func (a *Authenticator) admit(ctx context.Context, method string, stream bool) (context.Context, func(), error) {
	none := func() {}
	if a.Fairness == nil || public(method) {
		return ctx, none, nil
	}
	id, _, err := a.identify(ctx)
	if err != nil {
		return ctx, none, err
	}
	release, err := a.Fairness.admit(id.String(), stream)
	if err != nil {
		return context.WithValue(ctx, callerKey{}, Caller{id}), none, err
	}
	return ctx, release, nil
}

func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if public(method) {
		return ctx, nil
	}
	id, ti, err := a.identify(ctx)
	if err != nil {
		return nil, err
	}
	if a.Local {
		return context.WithValue(ctx, callerKey{}, Caller{id}), nil
	}
	if !id.IsMember() && !id.IsOperator() {
		// An exchange's certificate is for the federation listener only; here
		// its ASN 0 would read as the operator's scope.
		return nil, status.Errorf(codes.PermissionDenied, "%s may not use the member and operator API", id)
	}
	serial := pki.Serial(ti.State.PeerCertificates[0])
	switch revoked, err := a.Registry.Revoked(ctx, serial); {
	case err != nil:
		return nil, status.Errorf(codes.Internal, "looking up certificate: %v", err)
	case revoked:
		return nil, status.Errorf(codes.Unauthenticated, "client certificate %s (%s) was revoked", serial, id)
	}
	if id.IsMember() {
		// A certificate outlives nothing: the member must be registered.
		m, err := a.Registry.MemberID(ctx, id.ASN)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "looking up member: %v", err)
		}
		if m == 0 {
			return nil, status.Errorf(codes.PermissionDenied, "certificate names AS%d, which is not a registered member", id.ASN)
		}
		// Removal revoked the certificates the registry knows of; a
		// member certificate made from the CA's files is refused here.
		var st *registry.StandingError
		switch err := a.Registry.CheckActive(ctx, id.ASN); {
		case errors.As(err, &st) && st.Status == registry.Removed:
			return nil, status.Error(codes.PermissionDenied, st.Error())
		case err != nil && !errors.As(err, &st):
			return nil, status.Errorf(codes.Internal, "looking up member: %v", err)
		}
	}
	return context.WithValue(ctx, callerKey{}, Caller{id}), nil
}

// Unary is the unary interceptor: authentication, metrics and a log line
// for failures.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := clock.Now()
	ctx, release, err := a.admit(ctx, info.FullMethod, false)
	defer release()
	if err == nil {
		ctx, err = a.authenticate(ctx, info.FullMethod)
	}
	var resp any
	if err == nil {
		resp, err = h(ctx, req)
	}
	a.observe(ctx, info.FullMethod, start, err)
	return resp, err
}

// Stream is the stream interceptor.
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := clock.Now()
	ctx, release, err := a.admit(ss.Context(), info.FullMethod, true)
	defer release()
	if err == nil {
		ctx, err = a.authenticate(ctx, info.FullMethod)
	}
	if err == nil {
		err = h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
	a.observe(ctx, info.FullMethod, start, err)
	return err
}

func (a *Authenticator) observe(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	who := "unauthenticated"
	if ctx != nil {
		if c := callerFrom(ctx); c.Kind != 0 {
			who = c.String()
		}
	}
	if a.Metrics != nil {
		a.Metrics.Requests.WithLabelValues(method, code.String()).Inc()
		a.Metrics.Latency.WithLabelValues(method).Observe(clock.Since(start).Seconds())
		if refusal(code) {
			a.Metrics.Refusals.WithLabelValues(who, code.String()).Inc()
		}
	}
	if err != nil && code != codes.Canceled {
		lvl := slog.LevelInfo
		switch code {
		case codes.Internal, codes.Unknown:
			lvl = slog.LevelError
		case codes.ResourceExhausted:
			// A flood pushed back would flood the log: the
			// metrics count each refusal by caller.
			lvl = slog.LevelDebug
		}
		a.Log.Log(context.Background(), lvl, "call failed", "method", method, "caller", who, "code", code.String(), "error", status.Convert(err).Message())
	}
}

// refusal tells the codes that refuse what a call asked or who asked,
// as opposed to the arbiter failing or the caller giving up.
func refusal(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.PermissionDenied, codes.NotFound, codes.FailedPrecondition,
		codes.OutOfRange, codes.Unauthenticated, codes.AlreadyExists, codes.ResourceExhausted:
		return true
	}
	return false
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// Metrics are the API's Prometheus series.
type Metrics struct {
	Requests *prometheus.CounterVec
	// Refusals counts, per caller (a member, the operator or
	// "unauthenticated"), the calls refused for what they asked or who
	// asked: a member probing or lying shows here by name.
	Refusals    *prometheus.CounterVec
	Latency     *prometheus.HistogramVec
	Subscribers prometheus.Gauge
	book        bookMetrics // metrics.go
}

// NewMetrics registers the API metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bwx_arbiter_grpc_requests_total", Help: "gRPC calls by method and status code.",
		}, []string{"method", "code"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bwx_arbiter_grpc_refusals_total", Help: "gRPC calls refused (invalid argument, permission, not found, precondition, authentication), by caller and code.",
		}, []string{"caller", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bwx_arbiter_grpc_request_duration_seconds", Help: "gRPC call latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"method"}),
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bwx_arbiter_event_streams", Help: "Open trade event streams.",
		}),
	}
	reg.MustRegister(m.Requests, m.Refusals, m.Latency, m.Subscribers)
	m.book = newBookMetrics(reg)
	return m
}

func requireOperator(ctx context.Context) error {
	if c := callerFrom(ctx); !c.IsOperator() {
		return status.Errorf(codes.PermissionDenied, "%s: only the exchange operator may do this", c)
	}
	return nil
}

func requireMember(ctx context.Context) (uint32, error) {
	c := callerFrom(ctx)
	if !c.IsMember() {
		return 0, status.Errorf(codes.PermissionDenied, "%s: only a member may do this (use the member's certificate)", c)
	}
	return c.Identity.ASN, nil
}

// scope returns the ASN whose records the caller may see: its own for a
// member; the requested one (0: all) for the operator. A member asking for
// another member's records is refused.
func scope(ctx context.Context, requested uint32) (uint32, error) {
	c := callerFrom(ctx)
	if c.IsOperator() {
		return requested, nil
	}
	if requested != 0 && requested != c.Identity.ASN {
		return 0, status.Errorf(codes.PermissionDenied, "%s may not read AS%d's records", c, requested)
	}
	return c.Identity.ASN, nil
}

func invalidArg(field, format string, args ...any) error {
	return fieldError(field, fmt.Sprintf(format, args...))
}
