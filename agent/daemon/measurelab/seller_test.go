package measurelab

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// pair is one (trade, interval) as both parties reported it.
type pair struct {
	start, end     int64 // µs
	buyer, seller  settle.Figure
	buyerKey, sKey string
}

// pairs reads the whole intervals in [from, to] of trade that both the
// buyer and the seller reported.
func pairs(t *testing.T, db *store.DB, trade uint64, from, to time.Time) []pair {
	t.Helper()
	rows, err := db.Query(`SELECT role, start_us, end_us, bps, sample_count, idempotency_key FROM usage_samples
		WHERE trade_id = ? AND start_us >= ? AND end_us <= ? ORDER BY start_us, role`, trade, from.UnixMicro(), to.UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byStart := map[int64]*pair{}
	var out []*pair
	for rows.Next() {
		var role int
		var st, en, bps, n int64
		var key string
		if err := rows.Scan(&role, &st, &en, &bps, &n, &key); err != nil {
			t.Fatal(err)
		}
		if en-st != int64(time.Second/time.Microsecond) {
			continue // a partial interval (an agent's first)
		}
		p := byStart[st]
		if p == nil {
			p = &pair{start: st, end: en}
			byStart[st] = p
			out = append(out, p)
		}
		f := settle.Figure{Bps: bps, Samples: n, Micros: en - st, OK: true}
		if settle.Role(role) == settle.BuyerRole {
			p.buyer, p.buyerKey = f, key
		} else {
			p.seller, p.sKey = f, key
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var both []pair
	for _, p := range out {
		if p.buyer.OK && p.seller.OK {
			both = append(both, *p)
		}
	}
	return both
}

// wholeSeconds is how many whole 1 s intervals lie in [from, to].
func wholeSeconds(from, to time.Time) int {
	first := from.Truncate(time.Second)
	if first.Before(from) {
		first = first.Add(time.Second)
	}
	return max(0, int(to.Truncate(time.Second).Sub(first)/time.Second))
}

// TestLabSellerUsageCrossCheck: a buyer sends UDP at known rates toward a
// seller's IPv4 and IPv6 prefixes through two trades. Both agents capture
// (1 in 2 sampled in the kernel, 1 s intervals): the buyer its outgoing
// frames by the seller router's MAC, the seller its incoming frames by the
// buyer router's MAC (turned on by itself, capture.direction auto, once it
// has sold trades; the buyer's agent does not sample incoming frames). For
// every (trade, interval) both reports reach the arbiter, under keys naming
// the trade, the interval and the role, and the figures agree within their
// sampling error: settle.Disputed is false for each interval and for the
// settlement slot they make up. Then the switch drops most of the traffic
// before the seller (a token bucket on the seller's port): the buyer still
// reports what it sent, the seller what it got, and every interval and the
// slot are disputed.
func TestLabSellerUsageCrossCheck(t *testing.T) {
	t.Parallel()
	lab := labtest.New(t, "sellerusage")
	b := labtest.AddHost(t, lab, "b", "192.0.2.10/24", "2001:db8::10/64")
	s1 := labtest.AddHost(t, lab, "s1", "192.0.2.1/24", "2001:db8::1/64")
	ipcmd(t, b, "route", "add", "198.51.100.0/24", "via", "192.0.2.1")
	ipcmd(t, b, "-6", "route", "add", "2001:db8:100::/48", "via", "2001:db8::1")
	// The seller's network behind its router: a hole here, so nothing
	// comes back.
	ipcmd(t, s1, "route", "add", "blackhole", "198.51.100.0/24")
	ipcmd(t, s1, "-6", "route", "add", "blackhole", "2001:db8:100::/48")

	x := startArbiter(t, nil)
	db := x.db()
	bBundle, buyer := x.member(buyerASN, "192.0.2.10", "2001:db8::10")
	sBundle, c1 := x.member(s1ASN, "192.0.2.1", "2001:db8::1")
	x.addPrefix(s1ASN, "198.51.100.0/24")
	x.addPrefix(s1ASN, "2001:db8:100::/48")
	// The buyer registers no prefix: the seller learns its routers from
	// the trade itself.
	flows := []flow{
		{dst: netip.MustParseAddr("198.51.100.7"), prefix: netip.MustParsePrefix("198.51.100.0/24"), pps: 1500, size: 200, seller: "s1"},
		{dst: netip.MustParseAddr("2001:db8:100::7"), prefix: netip.MustParsePrefix("2001:db8:100::/48"), pps: 700, size: 500, seller: "s1"},
	}
	for i := range flows {
		flows[i].trade = trade(t, c1, buyer, flows[i].prefix.String())
	}

	capCfg := func(bundle string) daemon.Config {
		cfg := agentConfig(t, x, bundle)
		cfg.Capture.Interfaces = []string{"eth0"}
		cfg.Capture.SampleRate = 2
		cfg.Capture.Interval = time.Second
		cfg.Capture.Refresh = time.Second
		return cfg
	}
	mb := runMeasure(t, capCfg(bBundle), buyerASN, buyer, b, daemon.MeasureOptions{})
	ms := runMeasure(t, capCfg(sBundle), s1ASN, c1, s1, daemon.MeasureOptions{})
	eventually(t, 10*time.Second, "both agents know their trades; the seller samples incoming frames", func() string {
		bs, ss := mb.Status(), ms.Status()
		if bs.TradesBought != 2 || bs.TradesSold != 0 || ss.TradesSold != 2 || ss.TradesBought != 0 || !ss.CapturingIncoming {
			return fmt.Sprintf("buyer %+v; seller %+v", bs, ss)
		}
		return ""
	})
	if mb.Status().CapturingIncoming {
		t.Error("the buyer's agent samples incoming frames though it sold nothing")
	}

	// send runs the flows for d and returns when they ran.
	send := func(d time.Duration) (time.Time, time.Time) {
		stop := make(chan struct{})
		start := clock.Now()
		var sent []<-chan int
		for _, f := range flows {
			sent = append(sent, sender(t, b, f.dst, f.pps, f.size, stop))
		}
		time.Sleep(d) // the traffic's duration, not a synchronization
		close(stop)
		for _, c := range sent {
			<-c
		}
		return start, clock.Now()
	}
	// wait returns each trade's pairs once every whole interval of
	// [from, to] has both reports at the arbiter.
	wait := func(from, to time.Time) map[uint64][]pair {
		t.Helper()
		want := wholeSeconds(from, to)
		if want < 2 {
			t.Fatalf("only %d whole intervals in %v..%v: the machine is too slow for this test", want, from, to)
		}
		got := map[uint64][]pair{}
		eventually(t, 20*time.Second, "both parties' reports of every whole interval at the arbiter", func() string {
			for _, f := range flows {
				got[f.trade] = pairs(t, db, f.trade, from, to)
				if n := len(got[f.trade]); n < want {
					return fmt.Sprintf("trade %d: %d intervals with both reports, want %d", f.trade, n, want)
				}
			}
			return ""
		})
		return got
	}
	// slots is what settlement makes of the pairs: 5-minute slots (one,
	// or two if the traffic straddles a boundary) with both parties'
	// time-weighted means and their sample counts added.
	slots := func(trade uint64, ps []pair) []settle.Slot {
		var ss []settle.Sample
		for _, p := range ps {
			for _, r := range []struct {
				role settle.Role
				f    settle.Figure
			}{{settle.BuyerRole, p.buyer}, {settle.SellerRole, p.seller}} {
				ss = append(ss, settle.Sample{TradeID: int64(trade), Role: r.role, Start: time.UnixMicro(p.start), End: time.UnixMicro(p.end),
					Bps: r.f.Bps, SampleCount: r.f.Samples})
			}
		}
		return settle.Slots(ss, settle.SlotLength, time.UnixMicro(ps[0].start), time.UnixMicro(ps[len(ps)-1].end))
	}
	// The exchange's error model with the lab's 1-in-2 sampling.
	cfg := settle.DefaultConfig()
	cfg.SamplingRate = 2
	errs := cfg.Errors()

	// Phase 1: the seller receives everything the buyer sent.
	from, to := send(4500 * time.Millisecond)
	agree := wait(from, to)
	for _, f := range flows {
		ps := agree[f.trade]
		for _, p := range ps {
			// The key names the trade, the interval and the role: a repeat
			// is a duplicate at the arbiter.
			if want := fmt.Sprintf("usage:%d:%d:%d:seller", f.trade, p.start, p.end); p.sKey != want {
				t.Errorf("seller's key %q, want %q", p.sKey, want)
			}
			rel := float64(p.seller.Bps)/float64(p.buyer.Bps) - 1
			t.Logf("trade %d (%v) at %v: buyer %d bit/s (%d samples), seller %d bit/s (%d samples): %+.1f %%",
				f.trade, f.prefix, time.UnixMicro(p.start).UTC().Format("15:04:05"), p.buyer.Bps, p.buyer.Samples, p.seller.Bps, p.seller.Samples, 100*rel)
			if p.seller.Samples < 100 || p.buyer.Samples < 100 {
				t.Errorf("trade %d at %d: %d and %d samples, want at least 100 each", f.trade, p.start, p.buyer.Samples, p.seller.Samples)
			}
			// Both sample 1 in 2 independently: each figure's true relative
			// variance is (1-1/2)/n, half what Disputed assumes, and n is at
			// least what Errors assumes (1518-byte frames), so k=3 of its
			// errors is at least 4.2 true ones.
			if errs.Disputed(p.buyer, p.seller) {
				t.Errorf("trade %d at %v: buyer %+v and seller %+v disputed, though the seller got every frame", f.trade, time.UnixMicro(p.start), p.buyer, p.seller)
			}
			// And both are near the truth.
			if d := math.Abs(float64(p.buyer.Bps)/f.wireBits() - 1); d > 5/math.Sqrt(float64(p.buyer.Samples))+0.05 {
				t.Errorf("trade %d at %d: buyer's %d bit/s is %.1f %% off the %.0f sent", f.trade, p.start, p.buyer.Bps, 100*d, f.wireBits())
			}
		}
		for _, s := range slots(f.trade, ps) {
			if !s.Buyer.OK || !s.Seller.OK || errs.Disputed(s.Buyer, s.Seller) {
				t.Errorf("trade %d: settlement slot %v is disputed or incomplete: buyer %+v, seller %+v", f.trade, s.Start, s.Buyer, s.Seller)
			}
		}
	}

	// Phase 2: the switch passes at most 1 Mbit/s of the flows' ~5.8 to
	// the seller.
	out, err := lab.Switch().Command(context.Background(), "tc", "qdisc", "add", "dev", s1.Port, "root", "tbf",
		"rate", "1mbit", "burst", "4kb", "latency", "5ms").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "unknown") {
			t.Skipf("tc tbf is not available: %s", out)
		}
		t.Fatalf("tc: %v: %s", err, out)
	}
	from, to = send(3500 * time.Millisecond)
	differ := wait(from, to)
	for _, f := range flows {
		ps := differ[f.trade]
		for _, p := range ps {
			t.Logf("trade %d (%v) at %v, most dropped before the seller: buyer %d bit/s (%d samples), seller %d bit/s (%d samples)",
				f.trade, f.prefix, time.UnixMicro(p.start).UTC().Format("15:04:05"), p.buyer.Bps, p.buyer.Samples, p.seller.Bps, p.seller.Samples)
			if !errs.Disputed(p.buyer, p.seller) {
				t.Errorf("trade %d at %v: buyer %+v and seller %+v not disputed, though most frames never reached the seller",
					f.trade, time.UnixMicro(p.start), p.buyer, p.seller)
			}
		}
		for _, s := range slots(f.trade, ps) {
			if !errs.Disputed(s.Buyer, s.Seller) {
				t.Errorf("trade %d: settlement slot %v is not disputed: buyer %+v, seller %+v", f.trade, s.Start, s.Buyer, s.Seller)
			}
		}
	}
	if st := ms.Status(); st.SellerSpooled == 0 || st.SellerUnresolved != 0 {
		t.Errorf("seller's status %+v: want seller reports and none unresolved", st)
	}
	if p := ms.Spool().ParkedLen(daemon.KindUsage); p != 0 {
		t.Errorf("%d of the seller's usage samples refused by the arbiter", p)
	}
}
