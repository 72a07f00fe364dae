package settle_test

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
)

// measure stores one measurement by reporter (0: a third party, RIPE
// Atlas) via the seller toward prefix. It writes the store directly: these
// tests are about reading breaches, and their measurements are weeks old
// (what the matrix admits from members is arbiter/quality's and the API's
// test).
func measure(t *testing.T, l *ledger, reporter, via uint32, prefix string, at time.Time, latencyMs int64, lossPPM int32) {
	t.Helper()
	measureN(t, l, reporter, via, prefix, at, latencyMs, lossPPM, 200)
}

// measureN is measure with the number of probes the measurement sent.
func measureN(t *testing.T, l *ledger, reporter, via uint32, prefix string, at time.Time, latencyMs int64, lossPPM int32, probes int32) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	var who any
	source := quality.SourceAtlas
	if reporter != 0 {
		who, source = l.ids[reporter], quality.SourceAgent
	}
	if _, err := l.db.Exec(`INSERT INTO measurements (source, reporter_id, idempotency_key, via_id, prefix, target, measured_us, latency_us, jitter_us,
		loss_ppm, as_hops, ip_hops, probes_sent) VALUES (?,?,?,?,?,?,?,?,0,?,1,3,?)`, source, who, fmt.Sprintf("%d-%d-%s-%d", reporter, via, prefix, at.UnixMicro()),
		l.ids[via], p.Masked().String(), p.Addr().Next().String(), store.Micros(at), latencyMs*1000, lossPPM, probes); err != nil {
		t.Fatal(err)
	}
}

func TestQualityBreachesFromTheBuyersMeasurements(t *testing.T) {
	l := newLedger(t, settle.DefaultConfig())
	tr := settle.Trade{BuyerASN: asA, SellerASN: asB, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000, Start: nov.Start, End: nov.End}
	id := l.addTrade(t, tr)
	free := l.addTrade(t, settle.Trade{BuyerASN: asC, SellerASN: asB, CapacityBps: 1000 * mbps, PriceMicros: 2_000_000, Start: nov.Start, End: nov.End})
	// The trade carries an IPv4 and an IPv6 prefix; its buy order limits
	// latency to 20 ms and loss to 0.1 %.
	if _, err := l.db.Exec(`UPDATE trades SET prefixes = '198.51.100.0/24,2001:db8:100::/48' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := l.db.Exec(`UPDATE orders SET max_latency_us = 20000, max_loss_ppm = 1000 WHERE id = (SELECT buy_order_id FROM trades WHERE id = ?)`, id); err != nil {
		t.Fatal(err)
	}
	t0 := nov.Start.Add(24 * time.Hour)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	v4, v6 := "198.51.100.0/24", "2001:db8:100::/48"
	measure(t, l, asA, asB, v4, at(0), 10, 0)
	measure(t, l, asA, asB, v4, at(5), 30, 0) // too slow until the good one at 15
	measure(t, l, asA, asB, v4, at(10), 31, 0)
	measure(t, l, asA, asB, v4, at(15), 12, 0)
	measure(t, l, asA, asB, v6, at(12), 40, 0)             // nothing after: counts for the 5-minute gap, to 17
	measure(t, l, asA, asB, v4, at(60), 10, 50_000)        // 5 % loss of 200 probes, then nothing: 60..65
	measureN(t, l, asA, asB, v6, at(80), 10, 166_667, 6)   // 1 lost of 6: too few probes to prove a breach
	measureN(t, l, asA, asB, v6, at(90), 10, 500_000, 0)   // loss without a probe count proves nothing
	measureN(t, l, asA, asB, v6, at(100), 10, 2_000, 1000) // 0.2 % of 1000: within the error of 0.1 %
	// Rounds of 5 probes, 2 lost each, pool with the path's earlier ones:
	// the fourth round makes 20 probes (8 lost), a breach from then on.
	for i := range 5 {
		measureN(t, l, asA, asB, v6, at(200+i), 10, 400_000, 5)
	}
	// Rounds 20 minutes apart never pool: no breach, however lossy.
	for i := range 4 {
		measureN(t, l, asA, asB, v6, at(300+20*i), 10, 400_000, 5)
	}
	// Another member's vantage sees the IPv4 path slow at 30: it
	// corroborates the buyer's IPv4 breaches within an hour of it (5..15,
	// 60..65), not the IPv6 ones; a third party sees the IPv6 path slow at
	// 205, which corroborates 203..209. The IPv6 breach 12..17 has no
	// corroboration: disputed where not credited already (15..17).
	measure(t, l, asC, asB, v4, at(30), 90, 0)
	measure(t, l, 0, asB, v6, at(205), 90, 0)
	measure(t, l, asC, asB, v6, at(100), 10, 0)              // fine: corroborates nothing
	measure(t, l, asA, asD, v4, at(40), 90, 0)               // another seller
	measure(t, l, asA, asB, "203.0.113.0/24", at(50), 90, 0) // not a traded prefix

	bs := settle.NewQualityBreaches(l.db)
	ctx := context.Background()
	got, err := bs.Breaches(ctx, id, nov.Start, nov.End)
	if err != nil {
		t.Fatal(err)
	}
	want := settle.BreachTimes{Credited: []settle.Interval{{Start: at(5), End: at(15)}, {Start: at(60), End: at(65)}, {Start: at(203), End: at(209)}},
		Disputed: []settle.Interval{{Start: at(15), End: at(17)}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("breaches = %v, want %v", got, want)
	}
	// Clipped to the asked window, including a breach that began before it.
	got, _ = bs.Breaches(ctx, id, at(8), at(62))
	if want := (settle.BreachTimes{Credited: []settle.Interval{{Start: at(8), End: at(15)}, {Start: at(60), End: at(62)}},
		Disputed: []settle.Interval{{Start: at(15), End: at(17)}}}); !reflect.DeepEqual(got, want) {
		t.Errorf("clipped breaches = %v, want %v", got, want)
	}
	// A buy without quality limits never breaches, however bad the path.
	measure(t, l, asC, asB, v4, at(100), 500, 500_000)
	if got, err := bs.Breaches(ctx, free, nov.Start, nov.End); err != nil || len(got.Credited)+len(got.Disputed) != 0 {
		t.Errorf("trade without limits: %v %v, want no breach", got, err)
	}
	if _, err := bs.Breaches(ctx, 9999, nov.Start, nov.End); err == nil {
		t.Error("an unknown trade gave no error")
	}

	// Settlement credits the corroborated 21 minutes on the trade's invoice
	// line and shows the 2 disputed ones.
	s, err := settle.NewSettlement(l.db, settle.Options{Config: settle.DefaultConfig(), Now: func() time.Time { return l.now }, Breaches: bs})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(ctx, nov, settle.BuyerFigure)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := s.Invoice(ctx, asA, nov)
	if err != nil {
		t.Fatal(err)
	}
	var line *settle.Line
	for i := range inv.Lines {
		if inv.Lines[i].TradeID == id {
			line = &inv.Lines[i]
		}
	}
	if line == nil || line.BreachedSeconds != 21*60 || line.DisputedBreachSeconds != 2*60 || line.Credit <= 0 {
		t.Fatalf("buyer's line = %+v, want 1260 breached seconds, a credit and 120 disputed seconds", line)
	}
	// credit = C x R x B / (1e6 x P): 1 Gbps at 2.00 for 21 minutes of
	// November, rounded to the nearest micro-unit.
	if want := int64((1000*2_000_000*21*60 + 30*24*3600/2) / (30 * 24 * 3600)); line.Credit != want {
		t.Errorf("SLA credit = %d, want %d", line.Credit, want)
	}
	if res.Exchange.Balance != 0 {
		t.Errorf("exchange balance %d", res.Exchange.Balance)
	}
}
