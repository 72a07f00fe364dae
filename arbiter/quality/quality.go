// Package quality is the quality matrix: what agents measured through each
// seller toward each destination (claims 5, 6, 10, 18).
//
// It owns the measurements table; its SQL is in measurements_sql.go, and
// settlement's breach check reads it through MeasurementsVia.
package quality

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/invalid"
)

// Measurement is one reported probe result.
type Measurement struct {
	IdempotencyKey string
	ViaASN         uint32
	Prefix         netip.Prefix
	Target         netip.Addr
	At             time.Time
	LatencyUs      int64
	JitterUs       int64
	LossPPM        int32
	ASHops         int32
	IPHops         int32
	ProbesSent     int32
}

// Entry is the matrix cell for one path over a window: the pooled view
// (see Cell), each vantage weighted once.
type Entry struct {
	ViaASN    uint32
	Prefix    string
	LatencyUs int64
	JitterUs  int64
	LossPPM   int32
	ASHops    int32
	Samples   int
	Last      time.Time
	// Vantages is how many independent vantages the figures rest on (each
	// member's agent, each third-party source).
	Vantages int
}

// Matrix reads and writes measurements.
type Matrix struct {
	db  *store.DB
	now func() time.Time
	// Window is how old a member's measurement may be when reported (the
	// freshness window; DefaultWindow when 0).
	Window time.Duration
	// Bought reads the trades member buyerID bought from member sellerID,
	// not cancelled, in the reporting transaction q: the order book owns
	// them (book.BoughtTrades; the daemon wires it in). nil: none, and a
	// member may report only the paths the planner hands out.
	Bought func(ctx context.Context, q registry.Querier, buyerID, sellerID int64) ([]BoughtTrade, error)
	limits limiter
}

// BoughtTrade is a trade as admission reads it: the prefixes bought and
// when it stood (made to end).
type BoughtTrade struct {
	Prefixes  []netip.Prefix
	Made, End time.Time
}

// DefaultWindow is Window's default: the arbiter's default freshness.
const DefaultWindow = 2 * time.Hour

// New returns the matrix over db, reading now (clock.Now when nil) for
// what "recent" and "in the future" mean. Members' reports are limited to
// DefaultReportRate and DefaultReportBurst until Limit says otherwise.
func New(db *store.DB, now func() time.Time) *Matrix {
	if now == nil {
		now = clock.Now
	}
	return &Matrix{db: db, now: now, limits: limiter{rate: DefaultReportRate, burst: DefaultReportBurst}}
}

func (x *Matrix) window() time.Duration {
	if x.Window > 0 {
		return x.Window
	}
	return DefaultWindow
}

// MaxBatch bounds one report.
const MaxBatch = 10000

// MaxSkew is how far ahead of the arbiter's clock a reporter's clock may
// be: a time later than now plus MaxSkew is in the future.
const MaxSkew = 5 * time.Minute

// Validate checks one measurement; i is its index in the batch.
func (m Measurement) Validate(i int, now time.Time) error {
	f := func(name string) string { return fmt.Sprintf("measurements[%d].%s", i, name) }
	switch {
	case m.IdempotencyKey == "" || len(m.IdempotencyKey) > 128:
		return &invalid.Error{Field: f("idempotency_key"), Msg: "must be 1..128 characters"}
	case m.ViaASN == 0:
		return &invalid.Error{Field: f("via_asn"), Msg: "is required"}
	case !m.Prefix.IsValid() || m.Prefix.Addr().Is4In6() || m.Prefix.Addr().Zone() != "":
		return &invalid.Error{Field: f("destination_prefix"), Msg: "is not a CIDR prefix (IPv4 in dotted form)"}
	case m.Prefix != m.Prefix.Masked():
		// It would be stored masked: say so rather than guess what was meant.
		return &invalid.Error{Field: f("destination_prefix"), Msg: fmt.Sprintf("%v has host bits set; did you mean %v?", m.Prefix, m.Prefix.Masked())}
	case !m.Target.IsValid() || !m.Prefix.Contains(m.Target):
		return &invalid.Error{Field: f("target"), Msg: fmt.Sprintf("%v is not inside %v", m.Target, m.Prefix)}
	case m.At.IsZero() || m.At.After(now.Add(MaxSkew)):
		return &invalid.Error{Field: f("measured_at"), Msg: "missing or in the future"}
	case m.LatencyUs < 0 || m.JitterUs < 0 || m.ASHops < 0 || m.IPHops < 0 || m.ProbesSent < 0:
		return &invalid.Error{Field: f("latency_us"), Msg: "latency, jitter, hops and probe counts must not be negative"}
	case m.LossPPM < 0 || m.LossPPM > 1_000_000:
		return &invalid.Error{Field: f("loss_ppm"), Msg: "must be 0..1000000"}
	}
	return nil
}

// Report stores a batch from reporter, all or nothing; a key seen before is
// counted as a duplicate and ignored. Every row must be one the member may
// report (see admit), and the batch within the member's allowance (see
// Limit): otherwise nothing is stored.
func (x *Matrix) Report(ctx context.Context, reporter uint32, ms []Measurement) (accepted, duplicates int, err error) {
	if len(ms) > MaxBatch {
		return 0, 0, &invalid.Error{Field: "measurements", Msg: fmt.Sprintf("at most %d per report", MaxBatch)}
	}
	if err := x.limits.take(reporter, len(ms), x.now()); err != nil {
		return 0, 0, err
	}
	accepted, duplicates, err = x.store(ctx, ms, insertMeasurement,
		func(tx *sql.Tx, now time.Time) (any, error) {
			r, err := registry.GetMember(ctx, tx, reporter)
			if err != nil {
				return nil, err
			}
			return r.ID, x.admit(ctx, tx, r, ms, now)
		})
	if err != nil {
		x.limits.give(reporter, len(ms)) // nothing stored: nothing spent
	}
	return accepted, duplicates, err
}

// Cell is a path's measured quality: the average of the fresh measurements.
type Cell struct {
	LatencyUs int64
	JitterUs  int64
	LossPPM   int32
	ASHops    int32
	Samples   int
	// Probes is how many echo requests the measurements sent (the loss's
	// sample size); 0 when one of them does not say.
	Probes int64
	// LatencyErrUs and JitterErrUs are the standard errors of the means:
	// the measurements' spread over the square root of their number (one
	// measurement: its jitter over the square root of its probes).
	LatencyErrUs int64
	JitterErrUs  int64
	// LossDispersion is how much more the loss varied between the
	// measurements than independent probes would (at least 1).
	LossDispersion float64
	// Vantage is the member whose agent measured it, or 0 when the cell
	// pools every vantage (the exchange's view).
	Vantage uint32
	// Vantages is how many independent vantages the figures rest on: 1
	// for a member's own, each reporting member and each third-party
	// source for the pooled view.
	Vantages int
}

// A round with every probe lost has no latency: it counts in the loss
// average but not in the latency and jitter ones, where its 0 would make a
// blackholing path look fast.

// PathQuality answers the matching engine's question: how good is the path
// through via toward prefixes, seen from vantage. The vantage's own fresh
// measurements win, because they are its traffic's real path; without them
// it pools every reporter's (the exchange's view). nil means nothing fresh,
// which fails any quality limit.
func (x *Matrix) PathQuality(ctx context.Context, vantage, via uint32, prefixes []netip.Prefix, since time.Time) (*Cell, error) {
	c, _, err := x.pathQuality(ctx, vantage, via, prefixes, store.Micros(since))
	return c, err
}

// pathQuality is PathQuality that also says when the oldest measurement it
// averaged was taken (unix µs): the answer holds for a later since up to
// that time.
func (x *Matrix) pathQuality(ctx context.Context, vantage, via uint32, prefixes []netip.Prefix, since int64) (*Cell, int64, error) {
	if vantage != 0 {
		c, oldest, err := x.cell(ctx, vantage, via, prefixes, since)
		if err != nil || c != nil {
			return c, oldest, err
		}
	}
	return x.cell(ctx, 0, via, prefixes, since)
}

// vantageCell is one vantage's averages, with how many of its rounds were
// answered (the ones its latency and jitter average).
type vantageCell struct {
	Cell
	answered int64
}

// pool is the pooled view of the vantages' cells (see cell).
func pool(cs []vantageCell) *Cell {
	if len(cs) == 1 {
		c := cs[0].Cell
		c.Vantages = 1
		return &c
	}
	var c Cell
	var lat, jit, latErr, jitErr, loss, hops, probes []int64
	var disp []float64
	everyProbe := true
	for _, v := range cs {
		c.Samples += v.Samples
		loss, hops = append(loss, int64(v.LossPPM)), append(hops, int64(v.ASHops))
		if v.answered > 0 {
			lat, jit = append(lat, v.LatencyUs), append(jit, v.JitterUs)
			latErr, jitErr = append(latErr, v.LatencyErrUs), append(jitErr, v.JitterErrUs)
		}
		everyProbe = everyProbe && v.Probes > 0
		probes, disp = append(probes, v.Probes), append(disp, v.LossDispersion)
	}
	c.LatencyUs, c.JitterUs = median(lat), median(jit)
	c.LatencyErrUs, c.JitterErrUs = median(latErr), median(jitErr)
	c.LossPPM, c.ASHops = int32(median(loss)), int32(median(hops))
	if everyProbe {
		c.Probes = median(probes)
		slices.Sort(disp)
		n := len(disp)
		c.LossDispersion = (disp[(n-1)/2] + disp[n/2]) / 2
	}
	c.Vantages = len(cs)
	return &c
}

// median of vs (the mean of the middle two for an even count, rounded
// down); 0 for none. It sorts vs.
func median(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	n := len(vs)
	a, b := vs[(n-1)/2], vs[n/2]
	return a + (b-a)/2
}

// stdErr is the standard error of the mean of n values with mean m and
// mean square m2 (0 for fewer than two).
func stdErr(n int64, m, m2 float64) int64 {
	if n < 2 {
		return 0
	}
	v := max(0, m2-m*m) * float64(n) / float64(n-1)
	return int64(math.Round(math.Sqrt(v / float64(n))))
}
