package measurelab

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

type flow struct {
	dst    netip.Addr
	prefix netip.Prefix
	pps    int
	size   int // UDP payload bytes
	seller string
	trade  uint64
}

// wireBits is the flow's true rate on the wire: Ethernet, IP and UDP
// headers plus the payload, per datagram (no FCS: AF_PACKET does not see it).
func (f flow) wireBits() float64 {
	hdr := 14 + 20 + 8
	if f.dst.Is6() {
		hdr = 14 + 40 + 8
	}
	return float64(f.pps * (f.size + hdr) * 8)
}

// TestLabUsageFromCapturedTraffic: a buyer sends UDP at known rates toward
// three prefixes (IPv4 and IPv6) through two sellers. The agent's capture
// (AF_PACKET, 1 in 4 sampled in the kernel, 1 s intervals) finds each
// prefix's rate through the right seller's MAC within 3 standard errors of
// its sample count, and each interval's usage sample per trade reaches the
// arbiter with the same figure. Then the arbiter is down for a while: the
// spool keeps the samples, and after it returns they all arrive, none twice.
func TestLabUsageFromCapturedTraffic(t *testing.T) {
	t.Parallel()
	lab := labtest.New(t, "usage")
	b := labtest.AddHost(t, lab, "b", "192.0.2.10/24", "2001:db8::10/64")
	s1 := labtest.AddHost(t, lab, "s1", "192.0.2.1/24", "2001:db8::1/64")
	s2 := labtest.AddHost(t, lab, "s2", "192.0.2.2/24", "2001:db8::2/64")
	ipcmd(t, b, "route", "add", "198.51.100.0/24", "via", "192.0.2.1")
	ipcmd(t, b, "route", "add", "203.0.113.0/24", "via", "192.0.2.2")
	ipcmd(t, b, "-6", "route", "add", "2001:db8:100::/48", "via", "2001:db8::1")

	x := startArbiter(t, nil)
	bundle, buyer := x.member(buyerASN, "192.0.2.10", "2001:db8::10")
	_, c1 := x.member(s1ASN, "192.0.2.1", "2001:db8::1")
	_, c2 := x.member(s2ASN, "192.0.2.2", "2001:db8::2")
	x.addPrefix(s1ASN, "198.51.100.0/24")
	x.addPrefix(s1ASN, "2001:db8:100::/48")
	x.addPrefix(s2ASN, "203.0.113.0/24")
	flows := []flow{
		{dst: netip.MustParseAddr("198.51.100.7"), prefix: netip.MustParsePrefix("198.51.100.0/24"), pps: 1500, size: 200, seller: "s1"},
		{dst: netip.MustParseAddr("203.0.113.7"), prefix: netip.MustParsePrefix("203.0.113.0/24"), pps: 800, size: 1000, seller: "s2"},
		{dst: netip.MustParseAddr("2001:db8:100::7"), prefix: netip.MustParsePrefix("2001:db8:100::/48"), pps: 600, size: 500, seller: "s1"},
	}
	flows[0].trade = trade(t, c1, buyer, flows[0].prefix.String())
	flows[1].trade = trade(t, c2, buyer, flows[1].prefix.String())
	flows[2].trade = trade(t, c1, buyer, flows[2].prefix.String())
	macs := map[string][]byte{"s1": macOf(t, s1), "s2": macOf(t, s2)}

	cfg := agentConfig(t, x, bundle)
	cfg.Capture.Interfaces = []string{"eth0"}
	cfg.Capture.SampleRate = 4
	cfg.Capture.Interval = time.Second
	cfg.Capture.Refresh = time.Second
	var mu sync.Mutex
	var ivs []capture.Interval
	m := runMeasure(t, cfg, buyerASN, buyer, b, daemon.MeasureOptions{OnInterval: func(iv capture.Interval) {
		mu.Lock()
		ivs = append(ivs, iv)
		mu.Unlock()
	}})
	eventually(t, 10*time.Second, "the agent knows its 3 trades and the 3 prefixes", func() string {
		if st := m.Status(); st.TradesBought != 3 || st.Destinations != 3 {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})

	stop := make(chan struct{})
	start := clock.Now()
	var sent []<-chan int
	for _, f := range flows {
		sent = append(sent, sender(t, b, f.dst, f.pps, f.size, stop))
	}
	time.Sleep(4500 * time.Millisecond) // the traffic's duration, not a synchronization
	close(stop)
	end := clock.Now()
	for i, c := range sent {
		n := <-c
		if want := float64(flows[i].pps) * end.Sub(start).Seconds(); math.Abs(float64(n)-want) > 0.02*want+20 {
			t.Fatalf("flow %d sent %d datagrams, want about %.0f: the sender did not keep its rate", i, n, want)
		}
	}
	eventually(t, 10*time.Second, "an interval after the traffic", func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(ivs) == 0 || !ivs[len(ivs)-1].Start.After(end) {
			return fmt.Sprintf("%d intervals", len(ivs))
		}
		return ""
	})

	// Whole intervals inside the traffic's time.
	mu.Lock()
	var full []capture.Interval
	for _, iv := range ivs {
		if !iv.Partial() && !iv.Start.Before(start) && !iv.End.After(end) {
			full = append(full, iv)
		}
	}
	mu.Unlock()
	if len(full) < 3 {
		t.Fatalf("%d whole intervals inside the traffic, want at least 3", len(full))
	}
	for _, iv := range full {
		if iv.KernelDrops != 0 {
			t.Errorf("interval %v: %d kernel drops", iv.Start, iv.KernelDrops)
		}
	}
	perTrade := map[uint64]map[time.Time]int64{} // trade -> interval start -> bps
	for _, f := range flows {
		var bytesSum, samples int64
		perTrade[f.trade] = map[time.Time]int64{}
		for _, iv := range full {
			for _, fig := range iv.Figures {
				if fig.Prefix != f.prefix {
					continue
				}
				if !bytes.Equal(fig.NextHop, macs[f.seller]) {
					t.Errorf("%v: traffic counted via %v, want %s's %v", f.prefix, fig.NextHop, f.seller, hw(macs[f.seller]))
					continue
				}
				bytesSum += fig.Bytes
				samples += fig.Samples
				perTrade[f.trade][iv.Start] += fig.BitsPerSecond
			}
		}
		got := float64(bytesSum*8) / float64(len(full))
		// 1-in-N random sampling: the relative standard error is about
		// 1/sqrt(samples); allow 3 of them, plus 1 % for the sender's pacing.
		tol := 3/math.Sqrt(float64(samples)) + 0.01
		t.Logf("%v via %s: measured %.0f bit/s from %d samples, true %.0f bit/s (%.1f %%, tolerance %.1f %%)",
			f.prefix, f.seller, got, samples, f.wireBits(), 100*(got/f.wireBits()-1), 100*tol)
		if samples < 100 {
			t.Errorf("%v: only %d samples", f.prefix, samples)
		}
		if math.Abs(got/f.wireBits()-1) > tol {
			t.Errorf("%v: measured %.0f bit/s, true %.0f: off by more than %.1f %%", f.prefix, got, f.wireBits(), 100*tol)
		}
	}

	// The arbiter has each interval's usage sample per trade, equal to
	// the capture's figure.
	db := x.db()
	eventually(t, 10*time.Second, "the usage samples of the traffic at the arbiter", func() string {
		for _, f := range flows {
			for at, want := range perTrade[f.trade] {
				var got int64
				err := db.QueryRow(`SELECT bps FROM usage_samples WHERE trade_id = ? AND start_us = ? AND role = 1`, f.trade, at.UnixMicro()).Scan(&got)
				if err != nil {
					return fmt.Sprintf("trade %d at %v: %v", f.trade, at, err)
				}
				if got != want {
					t.Fatalf("trade %d at %v: arbiter has %d bit/s, capture said %d", f.trade, at, got, want)
				}
			}
		}
		return ""
	})

	// The arbiter goes away for a while; the samples wait in the spool.
	x.stop()
	spooled, _, _, _ := m.Counts()
	eventually(t, 15*time.Second, "3 more intervals spooled while the arbiter is down", func() string {
		if n, _, _, _ := m.Counts(); n < spooled+9 {
			return fmt.Sprintf("%d spooled, was %d", n, spooled)
		}
		return ""
	})
	if n := m.Spool().Len(daemon.KindUsage); n < 9 {
		t.Fatalf("spool backlog %d while the arbiter is down, want >= 9", n)
	}
	x.start()
	before, _, _, _ := m.Counts()
	eventually(t, 20*time.Second, "every spooled sample at the arbiter", func() string {
		var n int64
		if err := db.QueryRow(`SELECT count(*) FROM usage_samples`).Scan(&n); err != nil {
			return err.Error()
		}
		if n < before {
			return fmt.Sprintf("arbiter has %d of %d", n, before)
		}
		return ""
	})
	var dups int
	if err := db.QueryRow(`SELECT count(*) FROM (SELECT 1 FROM usage_samples GROUP BY trade_id, role, start_us, end_us HAVING count(*) > 1)`).Scan(&dups); err != nil {
		t.Fatal(err)
	}
	if dups != 0 {
		t.Errorf("%d intervals stored twice", dups)
	}
	if p := m.Spool().ParkedLen(daemon.KindUsage); p != 0 {
		t.Errorf("%d usage samples refused by the arbiter", p)
	}
}

func hw(b []byte) string { return fmt.Sprintf("%x", b) }
