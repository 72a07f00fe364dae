package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/agent/spool"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// sellerIDs gives each seller a small stable number for its probe table and
// mark (probe.Seller.ID), persisted in the state directory: the smallest
// free number at first sight. ASN mod 4096 would collide (64512 and 68608),
// and a restarted agent must find its own tables again.
type sellerIDs struct {
	path string
	mu   sync.Mutex
	ids  map[uint32]uint32 // ASN -> ID
}

func loadSellerIDs(path string) (*sellerIDs, error) {
	s := &sellerIDs{path: path, ids: map[uint32]uint32{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	var raw map[string]uint32
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it: the probe tables are renumbered)", path, err)
	}
	for k, v := range raw {
		asn, err := strconv.ParseUint(k, 10, 32)
		if err != nil || v < 1 || v > probe.MaxSellerID {
			return nil, fmt.Errorf("%s: bad entry %q: %d (delete it: the probe tables are renumbered)", path, k, v)
		}
		s.ids[uint32(asn)] = v
	}
	return s, nil
}

// get returns asn's ID, assigning and saving a new one if needed.
func (s *sellerIDs) get(asn uint32) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.ids[asn]; ok {
		return id, nil
	}
	used := map[uint32]bool{}
	for _, id := range s.ids {
		used[id] = true
	}
	var id uint32
	for n := uint32(1); n <= probe.MaxSellerID; n++ {
		if !used[n] {
			id = n
			break
		}
	}
	if id == 0 {
		return 0, fmt.Errorf("more than %d sellers to probe through", probe.MaxSellerID)
	}
	s.ids[asn] = id
	raw := map[string]uint32{}
	for a, v := range s.ids {
		raw[strconv.FormatUint(uint64(a), 10)] = v
	}
	b, _ := json.Marshal(raw)
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		delete(s.ids, asn)
		return 0, err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		delete(s.ids, asn)
		return 0, err
	}
	return id, nil
}

// taskLoop keeps the probe task stream open, like the trade event stream:
// reconnecting with jittered backoff whenever the arbiter goes away.
func (m *Measure) taskLoop(ctx context.Context) {
	delay := m.opt.MinBackoff
	for {
		start := clock.Now()
		err := m.streamTasks(ctx)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			m.log.Warn("the arbiter schedules no probe tasks", "error", err)
			delay = m.opt.MaxBackoff
		} else {
			m.log.Warn("probe task stream down", "error", err)
		}
		if clock.Since(start) > 2*m.opt.MaxBackoff {
			delay = m.opt.MinBackoff
		}
		if !m.backoff(ctx, &delay) {
			return
		}
	}
}

func (m *Measure) streamTasks(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := pb.NewQualityServiceClient(m.conn).StreamProbeTasks(ctx, &pb.StreamProbeTasksRequest{}, grpc.WaitForReady(false))
	if err != nil {
		return err
	}
	for {
		t, err := s.Recv()
		if err != nil {
			return err
		}
		p, err := netip.ParsePrefix(t.DestinationPrefix)
		if err != nil || t.ViaAsn == 0 {
			m.log.Warn("ignoring a malformed probe task", "task", t.Id, "prefix", t.DestinationPrefix)
			continue
		}
		m.mu.Lock()
		m.tasks[taskKey{t.ViaAsn, p.Masked()}] = t
		m.mu.Unlock()
		select {
		case m.tasksIn <- struct{}{}:
		default:
		}
	}
}

// probeLoop runs a round over the pending tasks shortly after tasks arrive
// (tasks coming in a burst share a round) and at least every probe.round.
func (m *Measure) probeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.tasksIn:
			select { // let the rest of a burst arrive
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		case <-time.After(m.cfg.Probe.Round):
		}
		if err := m.probeRound(ctx); err != nil && ctx.Err() == nil {
			m.setErr(err)
			m.log.Error("probe round failed; its tasks stay pending", "error", err)
		}
	}
}

// probeRound measures every pending task's path through its seller and
// spools one measurement per (seller, prefix).
func (m *Measure) probeRound(ctx context.Context) error {
	m.mu.Lock()
	tasks := make([]*pb.ProbeTask, 0, len(m.tasks))
	for _, t := range m.tasks {
		tasks = append(tasks, t)
	}
	m.mu.Unlock()
	if len(tasks) == 0 {
		return nil
	}
	// The sellers: the task's next hop, else the registry's routers.
	m.mu.Lock()
	for _, t := range tasks {
		s, ok := m.sellers[t.ViaAsn]
		if !ok {
			id, err := m.ids.get(t.ViaAsn)
			if err != nil {
				m.mu.Unlock()
				return err
			}
			s = probe.Seller{Name: "AS" + strconv.FormatUint(uint64(t.ViaAsn), 10), ASN: t.ViaAsn, ID: id}
		}
		hops := m.routers[t.ViaAsn]
		if a, err := netip.ParseAddr(t.ViaNextHop); err == nil {
			hops = append([]netip.Addr{a}, hops...)
		}
		for _, a := range hops {
			if a.Is4() && (!s.NextHop4.IsValid() || a.String() == t.ViaNextHop) {
				s.NextHop4 = a
			} else if a.Is6() && (!s.NextHop6.IsValid() || a.String() == t.ViaNextHop) {
				s.NextHop6 = a
			}
		}
		m.sellers[t.ViaAsn] = s
	}
	// A member gone from the registry loses its table and rule (once the
	// registry was read at all).
	if m.table != nil {
		for asn := range m.sellers {
			if _, ok := m.routers[asn]; !ok && !slices.ContainsFunc(tasks, func(t *pb.ProbeTask) bool { return t.ViaAsn == asn }) {
				delete(m.sellers, asn)
			}
		}
	}
	sellers := make([]probe.Seller, 0, len(m.sellers))
	for _, s := range m.sellers {
		if s.NextHop4.IsValid() || s.NextHop6.IsValid() {
			sellers = append(sellers, s)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(sellers, func(a, b probe.Seller) int { return int(a.ID) - int(b.ID) })
	if err := m.paths.Reconcile(sellers); err != nil {
		return fmt.Errorf("probe paths: %w", err)
	}
	byASN := map[uint32]probe.Seller{}
	for _, s := range sellers {
		byASN[s.ASN] = s
	}
	// Targets: configured, then what the capture saw most, then the
	// arbiter's hints.
	seen := m.seenTargets()
	var paths []probe.Path
	for _, t := range tasks {
		s, ok := byASN[t.ViaAsn]
		if !ok {
			continue
		}
		p, _ := netip.ParsePrefix(t.DestinationPrefix)
		p = p.Masked()
		paths = append(paths, probe.Path{Prefix: p, Seller: s, ASHops: t.AsHops})
		for _, h := range t.Targets {
			if a, err := netip.ParseAddr(h); err == nil && p.Contains(a) && !slices.Contains(seen[p], a) {
				seen[p] = append(seen[p], a)
			}
		}
	}
	targets, err := m.cfg.selectTargets(m.log, "prefixes", paths, seen, m.paths.Config())
	if err != nil {
		return err
	}
	ms, err := m.prober.Round(ctx, targets)
	if err != nil {
		return err
	}
	if m.opt.OnMeasurements != nil {
		m.opt.OnMeasurements(ms)
	}
	recs := make([]spool.Record, 0, len(ms))
	for _, x := range ms {
		if len(x.Targets) == 0 {
			continue
		}
		rec, err := measurementRecord(x, m.asn)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	if err := m.sp.PutAll(ctx, KindMeasurement, recs); err != nil {
		return fmt.Errorf("spool measurements: %w", err)
	}
	m.measSpooled.Add(int64(len(recs)))
	// Done: the arbiter sends them again when they are due.
	m.mu.Lock()
	for _, t := range tasks {
		p, _ := netip.ParsePrefix(t.DestinationPrefix)
		k := taskKey{t.ViaAsn, p.Masked()}
		if m.tasks[k] == t {
			delete(m.tasks, k)
		}
	}
	m.mu.Unlock()
	return nil
}

// seenTargets is what the capture saw most per destination prefix: probe
// targets after the configured ones.
func (m *Measure) seenTargets() map[netip.Prefix][]netip.Addr {
	seen := map[netip.Prefix][]netip.Addr{}
	if m.cap != nil {
		for p, as := range m.cap.Meter().TopAddresses(m.cfg.Probe.TargetsPerPrefix) {
			for _, a := range as {
				seen[p] = append(seen[p], a.Addr)
			}
		}
	}
	return seen
}

// selectTargets picks the paths' probe targets, the configured ones
// first, then seen; it warns of the destinations (noun) left without one.
func (c *Config) selectTargets(log *slog.Logger, noun string, paths []probe.Path, seen map[netip.Prefix][]netip.Addr, pc probe.PathsConfig) ([]probe.Target, error) {
	configured, _ := c.probeTargets()
	ts, missing, err := probe.SelectTargets(paths, configured, seen, c.Probe.TargetsPerPrefix, pc)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		log.Warn("no probe target known for some "+noun+": configure probe.targets", "prefixes", fmt.Sprint(missing))
	}
	return ts, nil
}

// measurementRecord is a probe round as the arbiter takes it, keyed for
// the spool (vantage: our ASN).
func measurementRecord(x probe.Measurement, vantage uint32) (spool.Record, error) {
	key := fmt.Sprintf("meas:%d:%s:%d", x.ASN, x.Prefix, x.At.UnixNano())
	pm := &pb.Measurement{IdempotencyKey: key, ViaAsn: x.ASN, DestinationPrefix: x.Prefix.String(), Target: x.Targets[0].String(),
		MeasuredAt: timestamppb.New(x.At), LatencyUs: x.LatencyUs, JitterUs: x.JitterUs, LossPpm: x.LossPPM,
		AsHops: x.ASHops, IpHops: x.IPHops, ProbesSent: x.Sent, VantageAsn: vantage}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pm)
	if err != nil {
		return spool.Record{}, err
	}
	return spool.Record{Key: key, Payload: b}, nil
}
