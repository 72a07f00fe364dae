package capture

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A wall-clock aligned base time for the tests.
var base = time.Unix(1_700_000_000, 0).Truncate(time.Minute)

func at(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }

func figStr(f Figure) string {
	p := "unmatched"
	if f.Prefix.IsValid() {
		p = f.Prefix.String()
	}
	return fmt.Sprintf("%s via %s: %d B, %d bit/s, %d samples", p, f.NextHop, f.Bytes, f.BitsPerSecond, f.Samples)
}

func ivStr(iv Interval) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s..%s) measured %s..%s late %d drops %d\n", iv.Start.Format("15:04:05"), iv.End.Format("15:04:05"),
		iv.From.Format("15:04:05.000"), iv.To.Format("15:04:05.000"), iv.Late, iv.KernelDrops)
	for _, f := range iv.Figures {
		b.WriteString("  " + figStr(f) + "\n")
	}
	return b.String()
}

// TestMeterIntervals feeds frames cut to 128 bytes with larger wire
// lengths (the meter must count CaptureInfo.Length, not the captured
// bytes) and checks what each interval emits.
func TestMeterIntervals(t *testing.T) {
	m, err := NewMeter(MeterConfig{Interval: 10 * time.Second, Grace: time.Second, Since: at(3)})
	if err != nil {
		t.Fatal(err)
	}
	m.SetTable(mustTable(t, "198.51.100.0/24", "203.0.113.0/24", "2001:db8:a::/48"))
	s := m.NewShard()
	count := func(ts float64, dst string, mac []byte, wire int) {
		t.Helper()
		f := frame(t, frameOpts{dst: dst, mac: mac})
		s.Count(f[:min(len(f), 128)], at(ts), wire)
	}
	count(4, "198.51.100.5", macA, 1000)
	count(5, "198.51.100.6", macA, 500)
	count(6, "203.0.113.1", macB, 200)
	count(7, "198.51.100.5", macB, 100)
	count(8, "", macA, 60) // ARP: not counted
	count(12, "2001:db8:a::1", macA, 300)
	count(12.5, "192.0.2.7", macA, 50)

	if got := m.Flush(at(10.999)); len(got) != 0 {
		t.Fatalf("flushed before the grace period ended: %v", got)
	}
	got := m.Flush(at(11))
	if len(got) != 1 {
		t.Fatalf("Flush(11s) = %d intervals, want 1", len(got))
	}
	want := `[22:13:00..22:13:10) measured 22:13:03.000..22:13:10.000 late 0 drops 0
  198.51.100.0/24 via 02:00:00:00:00:0a: 1500 B, 1714 bit/s, 2 samples
  198.51.100.0/24 via 02:00:00:00:00:0b: 100 B, 114 bit/s, 1 samples
  203.0.113.0/24 via 02:00:00:00:00:0b: 200 B, 228 bit/s, 1 samples
`
	if s := ivStr(got[0]); s != want {
		t.Fatalf("first interval:\n%s\nwant:\n%s", s, want)
	}
	if !got[0].Partial() || got[0].Start.Location() != time.UTC {
		t.Fatal("first interval should be partial (measuring began at 3s) and in UTC")
	}

	m.AddKernelDrops(5)
	got = m.Flush(at(35))
	if len(got) != 2 {
		t.Fatalf("Flush(35s) = %d intervals, want 2 (one of them empty)", len(got))
	}
	want = `[22:13:10..22:13:20) measured 22:13:10.000..22:13:20.000 late 0 drops 0
  2001:db8:a::/48 via 02:00:00:00:00:0a: 300 B, 240 bit/s, 1 samples
  unmatched via 02:00:00:00:00:0a: 50 B, 40 bit/s, 1 samples
[22:13:20..22:13:30) measured 22:13:20.000..22:13:30.000 late 0 drops 5
`
	if s := ivStr(got[0]) + ivStr(got[1]); s != want {
		t.Fatalf("intervals 2-3:\n%s\nwant:\n%s", s, want)
	}
	if got[0].Partial() {
		t.Fatal("a whole interval is partial")
	}

	// A frame for an interval already emitted is counted in the oldest
	// open one, and reported.
	count(15, "203.0.113.1", macA, 80)
	got = m.Stop(at(34))
	want = `[22:13:30..22:13:40) measured 22:13:30.000..22:13:34.000 late 1 drops 0
  203.0.113.0/24 via 02:00:00:00:00:0a: 80 B, 160 bit/s, 1 samples
`
	if len(got) != 1 || ivStr(got[0]) != want {
		t.Fatalf("Stop = %v, want:\n%s", got, want)
	}
	if got := m.Flush(at(100)); got != nil {
		t.Fatalf("Flush after Stop = %v", got)
	}
	st := m.Stats()
	if st.Frames[Matched] != 6 || st.Frames[Unmatched] != 1 || st.Frames[NotIP] != 1 || st.Late != 1 || st.Bytes != 2230 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestMeterSampleRateScales(t *testing.T) {
	m, err := NewMeter(MeterConfig{Interval: time.Second, SampleRate: 100, Grace: 100 * time.Millisecond, Since: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	m.SetTable(mustTable(t, "198.51.100.0/24"))
	s := m.NewShard()
	f := frame(t, frameOpts{dst: "198.51.100.1", payload: 100})
	for i := range 400 {
		s.Count(f, at(float64(i)/1000), 1500)
	}
	got := m.Flush(at(2.1))
	if len(got) != 2 || len(got[0].Figures) != 1 || len(got[1].Figures) != 0 {
		t.Fatalf("got %v", got)
	}
	fg := got[0].Figures[0]
	// 400 samples of 1500 B, each standing for 100 frames.
	if fg.Bytes != 400*1500*100 || fg.BitsPerSecond != 400*1500*100*8 || fg.Samples != 400 || got[0].SampleRate != 100 {
		t.Fatalf("figure = %s", figStr(fg))
	}
	if e := fg.RelativeError95(); math.Abs(e-0.098) > 1e-9 {
		t.Fatalf("relative error = %v, want 1.96/sqrt(400) = 0.098", e)
	}
}

func TestRelativeError95(t *testing.T) {
	for _, tc := range []struct {
		c    int64
		want float64
	}{{100, 0.196}, {1000, 0.0619806}, {1, 1.96}} {
		if got := RelativeError95(tc.c); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("RelativeError95(%d) = %v, want %v", tc.c, got, tc.want)
		}
	}
	if !math.IsInf(RelativeError95(0), 1) {
		t.Error("RelativeError95(0) is not +Inf")
	}
}

func TestBitsPerSecond(t *testing.T) {
	for _, tc := range []struct {
		bytes int64
		span  time.Duration
		want  int64
	}{
		{125, time.Second, 1000},
		{3_750_000_000_000, 5 * time.Minute, 100_000_000_000}, // 100 Gbit/s for 5 minutes
		{1, 3 * time.Second, 2},
		{0, time.Second, 0},
		{100, 0, 0},
		{math.MaxInt64 / 8, time.Nanosecond, math.MaxInt64},
	} {
		if got := bitsPerSecond(tc.bytes, tc.span); got != tc.want {
			t.Errorf("bitsPerSecond(%d, %v) = %d, want %d", tc.bytes, tc.span, got, tc.want)
		}
	}
}

func TestMeterTableSwapMergesPrefixes(t *testing.T) {
	m, _ := NewMeter(MeterConfig{Interval: time.Minute, Since: at(0)})
	s := m.NewShard()
	f := frame(t, frameOpts{dst: "198.51.100.1"})
	m.SetTable(mustTable(t, "198.51.100.0/24"))
	s.Count(f, at(1), 100)
	m.SetTable(mustTable(t, "198.51.100.0/24", "203.0.113.0/24")) // routes changed
	s.Count(f, at(2), 100)
	got := m.Flush(at(70))
	if len(got) != 1 || len(got[0].Figures) != 1 || got[0].Figures[0].Bytes != 200 || got[0].Figures[0].Samples != 2 {
		t.Fatalf("got %v, want one figure of 200 B", got)
	}
}

func TestMeterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  MeterConfig
		want string
	}{
		{MeterConfig{Interval: 500 * time.Millisecond}, "shorter than 1s"},
		{MeterConfig{Interval: 1500 * time.Millisecond}, "whole number of seconds"},
		{MeterConfig{Interval: 7 * time.Second}, "does not divide a day"},
		{MeterConfig{Interval: time.Second, Grace: time.Second}, "shorter than the interval"},
		{MeterConfig{SampleRate: -1}, "sample rate -1"},
	} {
		if _, err := NewMeter(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewMeter(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	m, err := NewMeter(MeterConfig{})
	if err != nil || m.Interval() != DefaultInterval || m.SampleRate() != 1 {
		t.Fatalf("defaults: %v %v %v", m, err, m.Interval())
	}
}

// Shards counting while another goroutine flushes: every counted byte is
// emitted exactly once.
func TestMeterConcurrentCountAndFlush(t *testing.T) {
	m, _ := NewMeter(MeterConfig{Interval: time.Second, Grace: 100 * time.Millisecond, Since: at(0)})
	m.SetTable(mustTable(t, "198.51.100.0/24", "2001:db8:a::/48"))
	var clock atomic.Int64 // ms since base
	fr := [][]byte{frame(t, frameOpts{dst: "198.51.100.1"}), frame(t, frameOpts{dst: "2001:db8:a::1", mac: macB}), frame(t, frameOpts{dst: "192.0.2.1"})}
	const readers, each = 4, 5000
	var wg sync.WaitGroup
	for r := range readers {
		s := m.NewShard()
		wg.Go(func() {
			for i := range each {
				ms := clock.Add(1)
				// Some frames are stamped a little in the past, as
				// frames sitting in the ring are.
				ts := base.Add(time.Duration(ms-int64(i%300)) * time.Millisecond)
				s.Count(fr[(r+i)%len(fr)], ts, 100)
			}
		})
	}
	var emitted []Interval
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
		}
		emitted = append(emitted, m.Flush(base.Add(time.Duration(clock.Load())*time.Millisecond))...)
	}
	emitted = append(emitted, m.Stop(base.Add(time.Duration(clock.Load())*time.Millisecond))...)
	var total, samples, late int64
	for i, iv := range emitted {
		if i > 0 && !iv.Start.Equal(emitted[i-1].End) {
			t.Fatalf("interval %d starts at %v, the previous ended at %v", i, iv.Start, emitted[i-1].End)
		}
		for _, f := range iv.Figures {
			total += f.Bytes
			samples += f.Samples
		}
		late += iv.Late
	}
	if total != readers*each*100 || samples != readers*each {
		t.Fatalf("emitted %d bytes in %d samples, want %d in %d", total, samples, readers*each*100, readers*each)
	}
	if st := m.Stats(); st.Late != late {
		t.Fatalf("late frames: stats %d, intervals %d", st.Late, late)
	}
	t.Logf("%d intervals, %d late frames", len(emitted), late)
}

func TestFilter(t *testing.T) {
	for _, n := range []int{1, 10} {
		raw, err := Filter(n, 128)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) < 4 {
			t.Fatalf("filter for 1-in-%d has %d instructions", n, len(raw))
		}
	}
	if _, err := Filter(0, 128); err == nil {
		t.Error("Filter(0) succeeded")
	}
	if _, err := Filter(1, 20); err == nil {
		t.Error("Filter with snap length 20 succeeded")
	}
}

// TestMeterIncomingBySourceMAC: a reader of incoming frames counts them by
// destination prefix and source MAC (the router that sent them), apart
// from outgoing frames of the same prefix and MAC, and the figures say
// which direction they are.
func TestMeterIncomingBySourceMAC(t *testing.T) {
	m, err := NewMeter(MeterConfig{Interval: 10 * time.Second, Grace: time.Second, Since: at(0), TopAddresses: 4})
	if err != nil {
		t.Fatal(err)
	}
	m.SetTable(mustTable(t, "198.51.100.0/24", "2001:db8:a::/48"))
	out, in := m.NewShard(), m.NewShardFor(Incoming)
	// frame() sends from macM to the given MAC.
	f4 := frame(t, frameOpts{dst: "198.51.100.5", mac: macA})
	f6 := frame(t, frameOpts{dst: "2001:db8:a::5", mac: macA})
	out.Count(f4, at(1), 1000)
	in.Count(f4, at(2), 700)
	in.Count(f4, at(3), 300)
	in.Count(f6, at(4), 200)
	// Truncated to the snap length: the wire length counts.
	in.Count(frame(t, frameOpts{dst: "198.51.100.9", mac: macB, payload: 500})[:128], at(5), 100)
	ivs := m.Flush(at(11))
	if len(ivs) != 1 {
		t.Fatalf("%d intervals", len(ivs))
	}
	var got []string
	for _, f := range ivs[0].Figures {
		got = append(got, f.Direction.String()+" "+figStr(f))
	}
	want := []string{
		"out 198.51.100.0/24 via 02:00:00:00:00:0a: 1000 B, 800 bit/s, 1 samples",
		"in 198.51.100.0/24 via 02:00:00:00:00:01: 1100 B, 880 bit/s, 3 samples",
		"in 2001:db8:a::/48 via 02:00:00:00:00:01: 200 B, 160 bit/s, 1 samples",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("figures:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Top addresses are the outgoing destinations only (probe targets).
	if top := m.TopAddresses(4); len(top) != 1 || len(top[netip.MustParsePrefix("198.51.100.0/24")]) != 1 {
		t.Errorf("top addresses %v, want only the outgoing prefix's", top)
	}
}

func TestDirectionFilter(t *testing.T) {
	for _, d := range []Direction{Outgoing, Incoming} {
		raw, err := DirectionFilter(d, 10, 128)
		if err != nil || len(raw) != 7 {
			t.Fatalf("%v: %d instructions, %v", d, len(raw), err)
		}
	}
	out, _ := DirectionFilter(Outgoing, 1, 128)
	in, _ := DirectionFilter(Incoming, 1, 128)
	if fmt.Sprint(out) == fmt.Sprint(in) {
		t.Error("the incoming and outgoing filters are the same program")
	}
	if _, err := DirectionFilter(Direction(7), 1, 128); err == nil || !strings.Contains(err.Error(), "direction") {
		t.Errorf("unknown direction: %v", err)
	}
}
