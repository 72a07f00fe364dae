package api

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/quality"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// QualityServer serves the quality matrix and the probe task streams.
type QualityServer struct {
	pb.UnimplementedQualityServiceServer
	Matrix *quality.Matrix
	// Scheduler plans the probe tasks (route analysis and revalidation);
	// nil: StreamProbeTasks is unimplemented.
	Scheduler *quality.Scheduler
	// PollInterval is how often an open stream asks the scheduler for due
	// tasks besides Scheduler.Wake (default 30 s).
	PollInterval time.Duration
	// Stopping ends open streams when the arbiter shuts down.
	Stopping <-chan struct{}
	// Log receives breach reports (nil: slog.Default()).
	Log *slog.Logger
	// Trades finds a trade of a member, to check that a breach is reported
	// by the trade's buyer, about its seller and prefixes.
	Trades interface {
		Trade(ctx context.Context, asn uint32, id int64) (book.Trade, error)
	}
	// Standing refuses the reports of a suspended member (nil: no check):
	// its measurements would move the quality every buyer is offered and
	// the SLA credits of its trades, and a breach report is a claim
	// against a seller.
	Standing interface {
		CheckActive(ctx context.Context, asn uint32) error
	}
	now func() time.Time
}

// reporter is the calling member, if it may report.
func (s *QualityServer) reporter(ctx context.Context) (uint32, error) {
	asn, err := requireMember(ctx)
	if err != nil {
		return 0, err
	}
	if s.Standing != nil {
		if err := s.Standing.CheckActive(ctx, asn); err != nil {
			return 0, toStatus(err)
		}
	}
	return asn, nil
}

func (s *QualityServer) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return clock.Now()
}

func (s *QualityServer) ReportMeasurements(ctx context.Context, r *pb.ReportMeasurementsRequest) (*pb.ReportMeasurementsResponse, error) {
	asn, err := s.reporter(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := measurementsFromProto(asn, r)
	if err != nil {
		return nil, err
	}
	acc, dup, err := s.Matrix.Report(ctx, asn, ms)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReportMeasurementsResponse{Accepted: int32(acc), Duplicates: int32(dup)}, nil
}

// measurementsFromProto converts a member's report; the domain checks
// (quality.Measurement.Validate) come after.
func measurementsFromProto(asn uint32, r *pb.ReportMeasurementsRequest) ([]quality.Measurement, error) {
	ms := make([]quality.Measurement, 0, len(r.Measurements))
	for i, m := range r.Measurements {
		f := "measurements[" + strconv.Itoa(i) + "]."
		if m.VantageAsn != 0 && m.VantageAsn != asn {
			return nil, status.Errorf(codes.PermissionDenied, "%svantage_asn: AS%d may report only its own measurements, not AS%d's", f, asn, m.VantageAsn)
		}
		p, err := netip.ParsePrefix(m.DestinationPrefix)
		if err != nil {
			return nil, invalidArg(f+"destination_prefix", "%q is not a CIDR prefix", m.DestinationPrefix)
		}
		t, err := netip.ParseAddr(m.Target)
		if err != nil {
			return nil, invalidArg(f+"target", "%q is not an IP address", m.Target)
		}
		at, err := fromTS(f+"measured_at", m.MeasuredAt)
		if err != nil {
			return nil, err
		}
		ms = append(ms, quality.Measurement{IdempotencyKey: m.IdempotencyKey, ViaASN: m.ViaAsn, Prefix: p, Target: t, At: at,
			LatencyUs: m.LatencyUs, JitterUs: m.JitterUs, LossPPM: m.LossPpm, ASHops: m.AsHops, IPHops: m.IpHops, ProbesSent: m.ProbesSent})
	}
	return ms, nil
}

// DefaultMatrixAge is the window QueryMatrix uses when the caller gives none.
const DefaultMatrixAge = time.Hour

func (s *QualityServer) QueryMatrix(ctx context.Context, r *pb.QueryMatrixRequest) (*pb.QueryMatrixResponse, error) {
	var p netip.Prefix
	if r.DestinationPrefix != "" {
		var err error
		if p, err = netip.ParsePrefix(r.DestinationPrefix); err != nil {
			return nil, invalidArg("destination_prefix", "%q is not a CIDR prefix", r.DestinationPrefix)
		}
	}
	age := DefaultMatrixAge
	if r.MaxAge != nil {
		if err := r.MaxAge.CheckValid(); err != nil || r.MaxAge.AsDuration() < 0 {
			return nil, invalidArg("max_age", "must be a positive duration")
		}
		if d := r.MaxAge.AsDuration(); d > 0 {
			age = d
		}
	}
	es, err := s.Matrix.Query(ctx, r.ViaAsn, p, age)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.QueryMatrixResponse{}
	for _, e := range es {
		out.Entries = append(out.Entries, &pb.MatrixEntry{ViaAsn: e.ViaASN, DestinationPrefix: e.Prefix, LatencyUs: e.LatencyUs,
			JitterUs: e.JitterUs, LossPpm: e.LossPPM, AsHops: e.ASHops, Samples: int32(e.Samples), LastMeasuredAt: ts(e.Last), Vantages: int32(e.Vantages)})
	}
	return out, nil
}

// StreamProbeTasks sends the calling member's agent the paths due for
// measurement from its vantage: at once, whenever the scheduler is woken
// (a member or prefix was added), and every PollInterval.
func (s *QualityServer) StreamProbeTasks(_ *pb.StreamProbeTasksRequest, stream pb.QualityService_StreamProbeTasksServer) error {
	if s.Scheduler == nil {
		return status.Error(codes.Unimplemented, "probe scheduling (route analysis) is not enabled on this arbiter")
	}
	ctx := stream.Context()
	asn, err := requireMember(ctx)
	if err != nil {
		return err
	}
	every := s.PollInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		woken := s.Scheduler.Woken()
		tasks, err := s.Scheduler.Due(ctx, asn, s.clock())
		if err != nil {
			return toStatus(err)
		}
		for _, x := range tasks {
			pt := &pb.ProbeTask{Id: taskID(x), ViaAsn: x.Via, ViaNextHop: x.NextHop.String(), DestinationPrefix: x.Prefix.String(),
				Interval: durationpb.New(s.Scheduler.Revalidate), First: x.Never, AsHops: x.ASHops}
			for _, a := range x.Targets {
				pt.Targets = append(pt.Targets, a.String())
			}
			if err := stream.Send(pt); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.Stopping:
			return status.Error(codes.Unavailable, "arbiter is shutting down")
		case <-woken:
		case <-t.C:
		}
	}
}

func taskID(t quality.Task) string {
	return "AS" + strconv.FormatUint(uint64(t.Vantage), 10) + "/AS" + strconv.FormatUint(uint64(t.Via), 10) + "/" + t.Prefix.String()
}

// ListDestinations gives a member every seller's registered prefixes and
// routers (what its agent classifies traffic by and probes through).
func (s *QualityServer) ListDestinations(ctx context.Context, r *pb.ListDestinationsRequest) (*pb.ListDestinationsResponse, error) {
	if _, err := requireMember(ctx); err != nil {
		if c := callerFrom(ctx); !c.IsOperator() {
			return nil, err
		}
	}
	if s.Scheduler == nil || s.Scheduler.Sellers == nil {
		return nil, status.Error(codes.Unimplemented, "destinations are not served by this arbiter")
	}
	pg, err := pageOf(ctx, "destinations", r.PageSize, r.PageToken)
	if err != nil {
		return nil, err
	}
	sellers, err := s.Scheduler.Sellers(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListDestinationsResponse{}
	for _, x := range sellers {
		d := &pb.SellerDestinations{SellerAsn: x.ASN}
		for _, a := range []netip.Addr{x.NextHop4, x.NextHop6} {
			if a.IsValid() {
				d.RouterAddresses = append(d.RouterAddresses, a.String())
			}
		}
		for _, p := range x.Prefixes {
			d.Prefixes = append(d.Prefixes, p.String())
		}
		out.Sellers = append(out.Sellers, d)
	}
	out.Sellers, out.NextPageToken, err = cutAt(pg, out.Sellers, func(x *pb.SellerDestinations) string { return idKey(int64(x.SellerAsn)) })
	return out, err
}

// ReportBreach records a buyer's report that a traded path broke its
// quality limits. It is logged (and counted per method by the
// authenticator's request metric); settlement's SLA credits rest on the
// measurements themselves, not on this report.
func (s *QualityServer) ReportBreach(ctx context.Context, r *pb.ReportBreachRequest) (*pb.ReportBreachResponse, error) {
	asn, err := s.reporter(ctx)
	if err != nil {
		return nil, err
	}
	if r.TradeId == 0 {
		return nil, invalidArg("trade_id", "is required")
	}
	if r.SellerAsn == 0 || r.SellerAsn == asn {
		return nil, invalidArg("seller_asn", "want the trade's seller, got %d", r.SellerAsn)
	}
	p, err := netip.ParsePrefix(r.DestinationPrefix)
	if err != nil {
		return nil, invalidArg("destination_prefix", "%q is not a CIDR prefix", r.DestinationPrefix)
	}
	if r.ObservedAt == nil {
		return nil, invalidArg("observed_at", "is required")
	}
	at, err := fromTS("observed_at", r.ObservedAt)
	if err != nil {
		return nil, err
	}
	if at.After(s.clock().Add(quality.MaxSkew)) {
		return nil, invalidArg("observed_at", "%s is in the future", at.UTC().Format(time.RFC3339))
	}
	if err := s.breachParty(ctx, asn, r.TradeId, r.SellerAsn, p); err != nil {
		return nil, err
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	lim := r.GetLimits()
	log.Warn("SLA breach reported", "buyer", asn, "seller", r.SellerAsn, "trade", r.TradeId, "prefix", p.Masked().String(),
		"observed_at", at.UTC().Format(time.RFC3339), "latency_us", r.LatencyUs, "jitter_us", r.JitterUs, "loss_ppm", r.LossPpm,
		"max_latency_us", lim.GetMaxLatencyUs(), "max_jitter_us", lim.GetMaxJitterUs(), "max_loss_ppm", lim.GetMaxLossPpm())
	return &pb.ReportBreachResponse{}, nil
}

// breachParty checks that asn bought trade id from seller, toward p: a
// member reports breaches of its own purchases only.
func (s *QualityServer) breachParty(ctx context.Context, asn uint32, id uint64, seller uint32, p netip.Prefix) error {
	if s.Trades == nil {
		return nil
	}
	t, err := s.Trades.Trade(ctx, asn, int64(id))
	if err != nil && !errors.Is(err, book.ErrNotFound) {
		return toStatus(err)
	}
	if err == nil && t.BuyerASN == asn {
		if t.SellerASN != seller {
			return invalidArg("seller_asn", "trade %d's seller is AS%d, not AS%d", id, t.SellerASN, seller)
		}
		for _, tp := range t.Prefixes {
			if tp.Overlaps(p) && tp.Bits() <= p.Bits() {
				return nil
			}
		}
		return invalidArg("destination_prefix", "%s is not within trade %d's prefixes", p.Masked(), id)
	}
	// The same answer for "no such trade" and "not yours".
	return invalidArg("trade_id", "AS%d is not the buyer of a trade %d", asn, id)
}
