//go:build linux

package capture_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

type flow struct {
	dst     string // destination IP
	prefix  string // the table prefix it must land in
	via     *labnet.Host
	payload int // UDP payload bytes
}

// wire is the frame's length on the veth (no FCS): Ethernet + IP + UDP.
func (f flow) wire() int64 {
	if netip.MustParseAddr(f.dst).Is4() {
		return int64(14 + 20 + 8 + f.payload)
	}
	return int64(14 + 40 + 8 + f.payload)
}

type figKey struct {
	prefix string
	mac    string
}

// TestLiveCapture sends UDP from a member toward two sellers' prefixes
// (IPv4 and IPv6, one nested prefix) in rounds, each inside one 1-second
// interval, and captures the member's eth0 with 1-in-1 and 1-in-10
// sampling at once. 1-in-1 must give the exact bytes per interval, prefix
// and next hop; 1-in-10 must be within its stated error.
func TestLiveCapture(t *testing.T) {
	lab := labtest.New(t, "capture")
	m := labtest.AddHost(t, lab, "member", "192.0.2.1/24", "2001:db8::1/64")
	s1 := labtest.AddHost(t, lab, "seller1", "192.0.2.2/24", "2001:db8::2/64")
	s2 := labtest.AddHost(t, lab, "seller2", "192.0.2.3/24", "2001:db8::3/64")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Static routes via the sellers' LAN addresses, as a bought trade
	// installs them, and permanent neighbours so that no frame waits for
	// (or is lost to) address resolution.
	for _, args := range [][]string{
		{"route", "add", "198.51.100.0/24", "via", "192.0.2.2"},
		{"route", "add", "198.51.100.128/25", "via", "192.0.2.3"},
		{"route", "add", "203.0.113.0/24", "via", "192.0.2.3"},
		{"-6", "route", "add", "2001:db8:a::/48", "via", "2001:db8::2"},
		{"-6", "route", "add", "2001:db8:b::/48", "via", "2001:db8::3"},
		{"neigh", "replace", "192.0.2.2", "lladdr", s1.MAC.String(), "dev", "eth0", "nud", "permanent"},
		{"neigh", "replace", "192.0.2.3", "lladdr", s2.MAC.String(), "dev", "eth0", "nud", "permanent"},
		{"-6", "neigh", "replace", "2001:db8::2", "lladdr", s1.MAC.String(), "dev", "eth0", "nud", "permanent"},
		{"-6", "neigh", "replace", "2001:db8::3", "lladdr", s2.MAC.String(), "dev", "eth0", "nud", "permanent"},
	} {
		if out, err := m.Command(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	flows := []flow{
		{"198.51.100.10", "198.51.100.0/24", s1, 1000},
		{"198.51.100.200", "198.51.100.128/25", s2, 300},
		{"203.0.113.10", "203.0.113.0/24", s2, 400},
		{"2001:db8:a::10", "2001:db8:a::/48", s1, 700},
		{"2001:db8:b::10", "2001:db8:b::/48", s2, 200},
	}
	var prefixes []netip.Prefix
	for _, f := range flows {
		prefixes = append(prefixes, netip.MustParsePrefix(f.prefix))
	}
	table, err := capture.NewTable(prefixes)
	if err != nil {
		t.Fatal(err)
	}

	// Two captures on the same interface, opened inside the member's
	// namespace.
	type run struct {
		rate int
		c    *capture.Capture
		mu   sync.Mutex
		ivs  []capture.Interval
		done chan error
	}
	runs := []*run{{rate: 1}, {rate: 10}}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	for _, r := range runs {
		err := m.Do(func() (err error) {
			r.c, err = capture.Open(capture.Config{Interfaces: []string{"eth0"}, Interval: time.Second, SampleRate: r.rate,
				// A loaded test machine may be slow to schedule the reader.
				Grace: 900 * time.Millisecond})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		r.c.SetTable(table)
		r.done = make(chan error, 1)
		go func() {
			r.done <- r.c.Run(rctx, func(iv capture.Interval) {
				r.mu.Lock()
				r.ivs = append(r.ivs, iv)
				r.mu.Unlock()
			})
		}()
	}
	var stopOnce sync.Once
	stopAll := func() {
		stopOnce.Do(func() {
			stop()
			for _, r := range runs {
				if err := <-r.done; err != nil {
					t.Errorf("1-in-%d: Run: %v", r.rate, err)
				}
			}
		})
	}
	// Stop the readers before the lab's namespaces go.
	t.Cleanup(stopAll)

	conns := make([]net.Conn, len(flows))
	for i, f := range flows {
		c, err := m.DialContext(ctx, "udp", net.JoinHostPort(f.dst, "9"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	// Incoming traffic must not be counted: seller1 sends to the member
	// while the member sends (to a socket, so no ICMP errors come back).
	sink, err := m.ListenPacket("udp", "192.0.2.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	in, err := s1.DialContext(ctx, "udp", "192.0.2.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	// Rounds of known sizes, each sent within one interval, away from its
	// edges: 300, 500 and 700 packets per flow.
	truth := map[time.Time]map[figKey]int64{}
	total := map[figKey]int64{}
	var packets int64
	var last time.Time
	rounds := []int{300, 500, 700}
	for _, n := range rounds {
		start := clock.Now().Truncate(time.Second).Add(time.Second + 150*time.Millisecond)
		time.Sleep(clock.Until(start))
		for range n {
			for i, f := range flows {
				if _, err := conns[i].Write(make([]byte, f.payload)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := in.Write(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
		}
		end := clock.Now()
		iv := start.Truncate(time.Second).UTC()
		if !end.Truncate(time.Second).Equal(start.Truncate(time.Second)) {
			// The machine stalled past the interval's end: only the
			// totals can be checked.
			t.Logf("round of %d packets per flow ran %v..%v, across an interval boundary", n, start, end)
			iv = time.Time{}
		}
		for _, f := range flows {
			k := figKey{f.prefix, f.via.MAC.String()}
			if !iv.IsZero() {
				if truth[iv] == nil {
					truth[iv] = map[figKey]int64{}
				}
				truth[iv][k] += int64(n) * f.wire()
			}
			total[k] += int64(n) * f.wire()
			packets += int64(n)
		}
		last = end
	}

	// Wait until both captures emitted the interval of the last round.
	deadline := clock.Now().Add(10 * time.Second)
	for _, r := range runs {
		for {
			r.mu.Lock()
			n := len(r.ivs)
			ok := n > 0 && !r.ivs[n-1].End.Before(last)
			r.mu.Unlock()
			if ok {
				break
			}
			if clock.Now().After(deadline) {
				t.Fatalf("1-in-%d: no interval emitted past %v", r.rate, last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopAll()

	for _, r := range runs {
		got := map[figKey]int64{}
		samples := map[figKey]int64{}
		var allSamples int64
		checked := 0
		for i, iv := range r.ivs {
			if i > 0 && !iv.Start.Equal(r.ivs[i-1].End) {
				t.Errorf("1-in-%d: interval %d starts at %v, previous ended at %v", r.rate, i, iv.Start, r.ivs[i-1].End)
			}
			if iv.End.Sub(iv.Start) != time.Second || !iv.Start.Equal(iv.Start.Truncate(time.Second)) || iv.Start.Location() != time.UTC {
				t.Errorf("1-in-%d: interval %v..%v is not a UTC-aligned second", r.rate, iv.Start, iv.End)
			}
			if iv.KernelDrops != 0 || iv.Late != 0 {
				t.Errorf("1-in-%d: interval %v: %d kernel drops, %d late frames", r.rate, iv.Start, iv.KernelDrops, iv.Late)
			}
			ivGot := map[figKey]int64{}
			for _, f := range iv.Figures {
				if f.NextHop.String() == m.MAC.String() || f.Direction != capture.Outgoing {
					t.Errorf("1-in-%d: incoming frames counted: %+v", r.rate, f)
				}
				if !f.Prefix.IsValid() {
					continue // the member's own neighbour discovery and such
				}
				k := figKey{f.Prefix.String(), f.NextHop.String()}
				got[k] += f.Bytes
				ivGot[k] += f.Bytes
				samples[k] += f.Samples
				allSamples += f.Samples
				if !iv.Partial() && f.BitsPerSecond != f.Bytes*8 {
					t.Errorf("1-in-%d: %v: %d bit/s for %d bytes in 1 s", r.rate, k, f.BitsPerSecond, f.Bytes)
				}
			}
			if want, ok := truth[iv.Start]; ok && r.rate == 1 {
				checked++
				if fmt.Sprint(ivGot) != fmt.Sprint(want) {
					t.Errorf("1-in-1: interval %v: got %v, want %v", iv.Start, ivGot, want)
				}
			}
		}
		if r.rate == 1 && checked != len(truth) {
			t.Errorf("1-in-1: %d intervals with a whole round emitted, want %d", checked, len(truth))
		}
		for k, want := range total {
			if r.rate == 1 {
				if got[k] != want {
					t.Errorf("1-in-1: %v: %d bytes, want exactly %d", k, got[k], want)
				}
				continue
			}
			// The 95 % bound is 1.96 sigma; allow 2.5 times it (4.9 sigma)
			// so that the test fails for a wrong estimator, not by chance
			// (about once in a million runs per flow).
			bound := capture.RelativeError95(samples[k])
			rel := math.Abs(float64(got[k]-want)) / float64(want)
			t.Logf("1-in-%d: %v: %d bytes from %d samples, true %d: error %.1f %%, 95 %% bound %.1f %%",
				r.rate, k, got[k], samples[k], want, 100*rel, 100*bound)
			if rel > 2.5*bound {
				t.Errorf("1-in-%d: %v: estimate %d off the true %d by %.1f %%, beyond 2.5x the 95 %% bound %.1f %%",
					r.rate, k, got[k], want, 100*rel, 100*bound)
			}
		}
		if len(got) != len(total) {
			t.Errorf("1-in-%d: figures for %v, want %v", r.rate, got, total)
		}
		if r.rate > 1 {
			// The kernel filter samples: about 1 in N frames.
			exp := float64(packets) / float64(r.rate)
			sd := math.Sqrt(exp * (1 - 1/float64(r.rate)))
			if math.Abs(float64(allSamples)-exp) > 5*sd {
				t.Errorf("1-in-%d: %d frames sampled of %d sent, want about %.0f", r.rate, allSamples, packets, exp)
			}
		}
		ks := r.c.KernelStats()
		if len(ks) != 1 || ks[0].Interface != "eth0" || ks[0].Packets == 0 || ks[0].Drops != 0 {
			t.Errorf("1-in-%d: kernel stats %+v", r.rate, ks)
		}
		st := r.c.Meter().Stats()
		// The Prometheus collector shows the same counters.
		reg := prometheus.NewRegistry()
		reg.MustRegister(r.c.Collector())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]float64{}
		for _, mf := range mfs {
			for _, mt := range mf.GetMetric() {
				name := mf.GetName()
				for _, l := range mt.GetLabel() {
					name += "," + l.GetValue()
				}
				seen[name] = mt.GetCounter().GetValue()
			}
		}
		if seen["bwx_agent_capture_kernel_packets_total,out,eth0"] != float64(ks[0].Packets) ||
			seen["bwx_agent_capture_frames_total,matched"] != float64(st.Frames[capture.Matched]) ||
			seen["bwx_agent_capture_kernel_drops_total,out,eth0"] != 0 {
			t.Errorf("1-in-%d: metrics %v", r.rate, seen)
		}
		t.Logf("1-in-%d: %d intervals; frames matched %d, unmatched %d, not IP %d; kernel %+v",
			r.rate, len(r.ivs), st.Frames[capture.Matched], st.Frames[capture.Unmatched], st.Frames[capture.NotIP], ks)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := capture.Open(capture.Config{}); err == nil || !strings.Contains(err.Error(), "no interfaces") {
		t.Errorf("Open without interfaces = %v", err)
	}
	if _, err := capture.Open(capture.Config{Interfaces: []string{"eth0", "eth0"}}); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Errorf("Open with a repeated interface = %v", err)
	}
	if _, err := capture.Open(capture.Config{Interfaces: []string{"x"}, Interval: 3 * time.Millisecond}); err == nil {
		t.Error("Open with a 3ms interval succeeded")
	}
	lab := labtest.New(t, "capture-open")
	h := labtest.AddHost(t, lab, "h", "192.0.2.1/24")
	err := h.Do(func() error {
		_, err := capture.Open(capture.Config{Interfaces: []string{"nosuch0"}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("Open on a missing interface = %v, want an error naming it", err)
	}
	var c *capture.Capture
	if err := h.Do(func() (err error) { c, err = capture.Open(capture.Config{Interfaces: []string{"eth0"}}); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetIncoming(true); err == nil || !strings.Contains(err.Error(), "Config.Incoming") {
		t.Errorf("SetIncoming on a capture of outgoing frames only = %v", err)
	}
	if ks := c.KernelStats(); len(ks) != 1 || ks[0].Direction != capture.Outgoing {
		t.Errorf("kernel stats %+v, want one outgoing socket", ks)
	}
}

// TestLiveCaptureIncoming is a seller's view: a buyer sends UDP toward the
// seller's prefixes (IPv4 and IPv6) and the seller captures its eth0 with
// incoming frames on, every frame sampled. Sent while incoming capture is
// paused, nothing is counted; after SetIncoming(true), every byte is,
// under the buyer's source MAC and the Incoming direction, while the
// seller's own outgoing frames stay outgoing under their destination MAC.
func TestLiveCaptureIncoming(t *testing.T) {
	lab := labtest.New(t, "capture-in")
	b := labtest.AddHost(t, lab, "buyer", "192.0.2.1/24", "2001:db8::1/64")
	s := labtest.AddHost(t, lab, "seller", "192.0.2.2/24", "2001:db8::2/64")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		h    *labnet.Host
		args []string
	}{
		{b, []string{"route", "add", "198.51.100.0/24", "via", "192.0.2.2"}},
		{b, []string{"-6", "route", "add", "2001:db8:a::/48", "via", "2001:db8::2"}},
		{b, []string{"neigh", "replace", "192.0.2.2", "lladdr", s.MAC.String(), "dev", "eth0", "nud", "permanent"}},
		{b, []string{"-6", "neigh", "replace", "2001:db8::2", "lladdr", s.MAC.String(), "dev", "eth0", "nud", "permanent"}},
		{s, []string{"neigh", "replace", "192.0.2.1", "lladdr", b.MAC.String(), "dev", "eth0", "nud", "permanent"}},
		// The seller's network: here a hole, so nothing is sent back.
		{s, []string{"route", "add", "blackhole", "198.51.100.0/24"}},
		{s, []string{"-6", "route", "add", "blackhole", "2001:db8:a::/48"}},
	} {
		if out, err := c.h.Command(ctx, "ip", c.args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: ip %s: %v: %s", c.h.Name, strings.Join(c.args, " "), err, out)
		}
	}
	table, err := capture.NewTable([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:a::/48"),
		netip.MustParsePrefix("192.0.2.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	var c *capture.Capture
	err = s.Do(func() (err error) {
		c, err = capture.Open(capture.Config{Interfaces: []string{"eth0"}, Interval: time.Second, SampleRate: 1,
			Incoming: true, IncomingPaused: true, Grace: 900 * time.Millisecond})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetTable(table)
	var mu sync.Mutex
	var ivs []capture.Interval
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(rctx, func(iv capture.Interval) {
			mu.Lock()
			ivs = append(ivs, iv)
			mu.Unlock()
		})
	}()
	var stopOnce sync.Once
	stopRun := func() {
		stopOnce.Do(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stopRun)

	flows := []flow{{"198.51.100.10", "198.51.100.0/24", s, 900}, {"2001:db8:a::10", "2001:db8:a::/48", s, 400}}
	conns := make([]net.Conn, len(flows))
	for i, f := range flows {
		conn, err := b.DialContext(ctx, "udp", net.JoinHostPort(f.dst, "9"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[i] = conn
	}
	// The seller sends too: outgoing, toward the buyer's LAN address.
	sink, err := b.ListenPacket("udp", "192.0.2.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	back, err := s.DialContext(ctx, "udp", "192.0.2.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	send := func(n int) {
		t.Helper()
		for range n {
			for i, f := range flows {
				if _, err := conns[i].Write(make([]byte, f.payload)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := back.Write(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(200) // paused: not counted
	if err := c.SetIncoming(true); err != nil {
		t.Fatal(err)
	}
	const n = 500
	send(n)
	last := clock.Now()
	deadline := clock.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := len(ivs) > 0 && !ivs[len(ivs)-1].End.Before(last)
		mu.Unlock()
		if ok {
			break
		}
		if clock.Now().After(deadline) {
			t.Fatalf("no interval emitted past %v", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopRun()

	in := map[string]int64{}
	var outBytes int64
	for _, iv := range ivs {
		for _, f := range iv.Figures {
			switch {
			case f.Direction == capture.Incoming && f.Prefix.IsValid() && f.Prefix.String() != "192.0.2.0/24":
				if f.NextHop.String() != b.MAC.String() {
					t.Errorf("incoming %v counted from %v, want the buyer's %v", f.Prefix, f.NextHop, b.MAC)
				}
				in[f.Prefix.String()] += f.Bytes
			case f.Direction == capture.Outgoing && f.Prefix.String() == "192.0.2.0/24":
				if f.NextHop.String() != b.MAC.String() {
					t.Errorf("outgoing %v counted via %v, want the buyer's %v", f.Prefix, f.NextHop, b.MAC)
				}
				outBytes += f.Bytes
			case f.Direction == capture.Outgoing && f.Prefix.IsValid():
				t.Errorf("the buyer's frames counted as outgoing: %+v", f)
			}
		}
	}
	for _, f := range flows {
		if want := n * f.wire(); in[f.prefix] != want {
			t.Errorf("incoming %s: %d bytes, want exactly %d (the %d datagrams sent after SetIncoming(true))", f.prefix, in[f.prefix], want, n)
		}
	}
	if want := int64(700) * (14 + 20 + 8 + 100); outBytes != want {
		t.Errorf("outgoing toward the buyer: %d bytes, want %d", outBytes, want)
	}
	ks := c.KernelStats()
	if len(ks) != 2 || ks[0].Direction != capture.Outgoing || ks[1].Direction != capture.Incoming || ks[1].Drops != 0 {
		t.Errorf("kernel stats %+v, want one outgoing and one incoming socket", ks)
	}
	if err := c.SetIncoming(false); err == nil {
		t.Error("SetIncoming after Run ended succeeded")
	}
}
