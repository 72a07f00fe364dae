package quality

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestThirdPartyPooledNeverAVantage: Atlas measurements count in the
// pooled view, never as a member's own vantage, are not seen by the
// planner (Latest), and are deduplicated by their own keys.
func TestThirdPartyPooledNeverAVantage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := netip.MustParsePrefix("198.51.100.0/24")
	a := meas("atlas:1:2:3")
	a.LatencyUs = 90_000
	for i, want := range []int{1, 0} {
		acc, dup, err := f.mx.ReportThirdParty(ctx, SourceAtlas, []Measurement{a})
		if err != nil || acc != want || dup != 1-want {
			t.Fatalf("atlas import %d: %d accepted, %d duplicates, %v", i+1, acc, dup, err)
		}
	}
	// The same key from an agent is a different measurement.
	m := meas("atlas:1:2:3")
	m.LatencyUs = 10_000
	if acc, _, err := f.mx.Report(ctx, reporter, []Measurement{m}); err != nil || acc != 1 {
		t.Fatalf("agent report: %d, %v", acc, err)
	}
	since := now.Add(-time.Hour)
	own, err := f.mx.PathQuality(ctx, reporter, via, []netip.Prefix{p}, since)
	if err != nil || own == nil || own.Vantage != reporter || own.LatencyUs != 10_000 || own.Samples != 1 {
		t.Fatalf("the reporter's own view: %+v %v, want its 10 ms alone", own, err)
	}
	pooled, err := f.mx.PathQuality(ctx, via2, via, []netip.Prefix{p}, since)
	if err != nil || pooled == nil || pooled.Vantage != 0 || pooled.Samples != 2 || pooled.LatencyUs != 50_000 {
		t.Fatalf("another member's (pooled) view: %+v %v, want both, 50 ms", pooled, err)
	}
	latest, err := f.mx.Latest(ctx, since)
	if err != nil || len(latest) != 1 {
		t.Fatalf("Latest: %v %v, want the agent's path only", latest, err)
	}
	counts, err := f.mx.Counts(ctx)
	if err != nil || counts[SourceAgent] != 1 || counts[SourceAtlas] != 1 {
		t.Fatalf("counts %v %v", counts, err)
	}
	bad := a
	bad.IdempotencyKey = "atlas:9"
	bad.ViaASN = 64999
	if _, _, err := f.mx.ReportThirdParty(ctx, SourceAtlas, []Measurement{bad}); err == nil {
		t.Fatal("a third-party measurement through a non-member was stored")
	}
	if _, _, err := f.mx.ReportThirdParty(ctx, "agent", []Measurement{a}); err == nil {
		t.Fatal("source agent accepted as third party")
	}
}

// TestSchedulerPerVantage: each vantage has its own planner; Wake closes
// the channel streams wait on.
func TestSchedulerPerVantage(t *testing.T) {
	s := &Scheduler{Revalidate: time.Hour, Retry: time.Minute, MaxPerRound: 10,
		Sellers: func(context.Context) ([]Seller, error) {
			return []Seller{{ASN: via, NextHop4: netip.MustParseAddr("192.0.2.1"), Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}, nil
		},
		Latest: func(context.Context, time.Time) (map[Path]time.Time, error) { return nil, nil }}
	ctx := context.Background()
	for _, v := range []uint32{reporter, via2} {
		ts, err := s.Due(ctx, v, now)
		if err != nil || len(ts) != 1 || ts[0].Vantage != v || !ts[0].Never {
			t.Fatalf("vantage %d: %+v %v", v, ts, err)
		}
		if ts, _ := s.Due(ctx, v, now.Add(time.Second)); len(ts) != 0 {
			t.Fatalf("vantage %d asked again before Retry: %+v", v, ts)
		}
	}
	if ts, _ := s.Due(ctx, via, now); len(ts) != 0 {
		t.Fatalf("a seller got tasks through itself: %+v", ts)
	}
	w := s.Woken()
	s.Wake()
	select {
	case <-w:
	default:
		t.Fatal("Wake did not close the channel")
	}
}

// TestTotalLossHasNoLatency: a round that lost every probe raises the
// loss but does not pull the latency toward zero.
func TestTotalLossHasNoLatency(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := meas("a"), meas("b")
	a.LatencyUs, a.LossPPM = 40_000, 0
	b.LatencyUs, b.JitterUs, b.LossPPM = 0, 0, 1_000_000
	if _, _, err := f.mx.Report(ctx, reporter, []Measurement{a, b}); err != nil {
		t.Fatal(err)
	}
	c, err := f.mx.PathQuality(ctx, reporter, via, []netip.Prefix{a.Prefix}, now.Add(-time.Hour))
	if err != nil || c == nil || c.LatencyUs != 40_000 || c.LossPPM != 500_000 || c.Samples != 2 {
		t.Fatalf("cell %+v %v, want 40 ms, 50 %% loss, 2 samples", c, err)
	}
	es, err := f.mx.Query(ctx, via, a.Prefix, time.Hour)
	if err != nil || len(es) != 1 || es[0].LatencyUs != 40_000 || es[0].LossPPM != 500_000 {
		t.Fatalf("query %+v %v", es, err)
	}
	// Nothing but total loss: no latency at all, and full loss.
	f2 := newFixture(t)
	if _, _, err := f2.mx.Report(ctx, reporter, []Measurement{b}); err != nil {
		t.Fatal(err)
	}
	if es, err := f2.mx.Query(ctx, via, a.Prefix, time.Hour); err != nil || len(es) != 1 || es[0].LossPPM != 1_000_000 {
		t.Fatalf("query of a dead path %+v %v", es, err)
	}
}
