package capture

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// Defaults for MeterConfig.
const (
	DefaultInterval = 5 * time.Minute
	DefaultGrace    = time.Second
)

// MeterConfig sets up a Meter.
type MeterConfig struct {
	// Interval is the length of a measuring interval (DefaultInterval if
	// zero): whole seconds, at least 1 s, dividing a day, so intervals start
	// at the same UTC times on every agent (00:00, 00:05, ...).
	Interval time.Duration
	// SampleRate N: one frame in N was sampled, so figures are scaled up by
	// N (1 if zero: every frame).
	SampleRate int
	// Grace is how long after an interval's end Flush still waits for its
	// frames (DefaultGrace if zero): a frame reaches user space up to a
	// block timeout after the kernel stamped it.
	Grace time.Duration
	// Since is when measuring began (the zero time: when NewMeter ran). The
	// interval holding it is partial.
	Since time.Time
	// TopAddresses, if above zero, also keeps for each destination prefix
	// about that many of its most sampled destination addresses (bounded
	// memory per prefix; see Meter.TopAddresses). Zero keeps none.
	TopAddresses int
}

// Figure is the traffic of one interval toward one destination prefix
// through one next hop (outgoing) or from one previous hop (incoming).
type Figure struct {
	// Direction: Outgoing (the zero value) or Incoming frames.
	Direction Direction
	// Prefix is the destination prefix; the zero Prefix stands for
	// destinations in no prefix of the table ("unmatched").
	Prefix netip.Prefix
	// NextHop is the router on the other side of the link: for outgoing
	// frames their destination MAC, the router they were handed to (the
	// seller's, for traded prefixes); for incoming frames their source
	// MAC, the router that handed them over (the buyer's, on a seller).
	NextHop net.HardwareAddr
	// Start and End bound the interval (UTC, aligned).
	Start, End time.Time
	// Bytes is the estimated number of bytes on the wire (Ethernet header
	// included, FCS not): sampled wire bytes times the sample rate.
	Bytes int64
	// BitsPerSecond is Bytes*8 over the time measured in the interval
	// (the whole interval unless it is partial).
	BitsPerSecond int64
	// Samples is how many frames were sampled for this figure.
	Samples int64
}

// RelativeError95 is the 95 % bound on the relative error of the figure
// due to sampling (see RelativeError95).
func (f Figure) RelativeError95() float64 { return RelativeError95(f.Samples) }

// RelativeError95 bounds, at 95 % confidence, the relative error of a
// figure estimated from c random samples: 1.96*sqrt(1/c) (sFlow's bound;
// c=100: 19.6 %, c=1000: 6.2 %). It is +Inf for c <= 0.
func RelativeError95(c int64) float64 {
	if c <= 0 {
		return math.Inf(1)
	}
	return 1.96 * math.Sqrt(1/float64(c))
}

// Interval is what a Meter emits for one interval: every figure, and how
// much of the interval was measured.
type Interval struct {
	// Start and End are the interval's bounds (UTC, aligned).
	Start, End time.Time
	// From and To are the part that was measured: Start and End unless
	// measuring began or stopped inside the interval.
	From, To time.Time
	// SampleRate is N of 1-in-N sampling.
	SampleRate int
	// Figures, sorted by direction (outgoing first), prefix and next hop;
	// unmatched traffic has the zero Prefix. Empty when no frame was sampled.
	Figures []Figure
	// KernelDrops is how many frames the kernel dropped for want of room
	// in the ring while this interval was being read: if not zero the
	// figures are too low.
	KernelDrops uint64
	// Late is how many frames of this interval's figures arrived after
	// their own interval had been emitted.
	Late int64
}

// Partial tells whether only part of the interval was measured.
func (iv Interval) Partial() bool { return iv.From.After(iv.Start) || iv.To.Before(iv.End) }

// Meter accumulates classified frames per interval. Readers each take a
// Shard; Flush, SetTable and Stats may be called from any goroutine.
type Meter struct {
	ivNs  int64
	rate  int64
	grace time.Duration
	since time.Time
	topN  int

	table atomic.Pointer[Table]
	// watermark: intervals with index below it have been emitted.
	watermark atomic.Int64

	mu     sync.Mutex // guards below
	shards []*Shard
	next   int64  // first interval index not yet emitted
	drops  uint64 // kernel drops not yet attributed to an interval
	stopAt time.Time
}

// NewMeter returns a Meter.
func NewMeter(cfg MeterConfig) (*Meter, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if err := checkInterval(cfg.Interval); err != nil {
		return nil, err
	}
	if cfg.SampleRate == 0 {
		cfg.SampleRate = 1
	}
	if cfg.SampleRate < 1 || cfg.SampleRate > math.MaxInt32 {
		return nil, fmt.Errorf("capture: sample rate %d: want 1-in-N with N >= 1", cfg.SampleRate)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Grace < 0 || cfg.Grace >= cfg.Interval {
		return nil, fmt.Errorf("capture: grace %v must be positive and shorter than the interval %v", cfg.Grace, cfg.Interval)
	}
	if cfg.Since.IsZero() {
		cfg.Since = clock.Now()
	}
	if cfg.TopAddresses < 0 || cfg.TopAddresses > 1024 {
		return nil, fmt.Errorf("capture: top addresses %d: want 0-1024 per prefix", cfg.TopAddresses)
	}
	m := &Meter{ivNs: int64(cfg.Interval), rate: int64(cfg.SampleRate), grace: cfg.Grace, since: cfg.Since, topN: cfg.TopAddresses}
	m.next = m.index(cfg.Since.UnixNano())
	m.watermark.Store(m.next)
	return m, nil
}

func checkInterval(d time.Duration) error {
	switch {
	case d < time.Second:
		return fmt.Errorf("capture: interval %v is shorter than 1s", d)
	case d%time.Second != 0:
		return fmt.Errorf("capture: interval %v is not a whole number of seconds", d)
	case (24*time.Hour)%d != 0:
		return fmt.Errorf("capture: interval %v does not divide a day, so intervals would not align to the clock", d)
	}
	return nil
}

// index is the number of the interval holding unix time ns (floor).
func (m *Meter) index(ns int64) int64 {
	i := ns / m.ivNs
	if ns%m.ivNs < 0 {
		i--
	}
	return i
}

// Interval is the interval length.
func (m *Meter) Interval() time.Duration { return time.Duration(m.ivNs) }

// SampleRate is N of 1-in-N sampling.
func (m *Meter) SampleRate() int { return int(m.rate) }

// SetTable replaces the destination prefixes; frames classified from now
// on use t. A nil table makes every IP frame unmatched.
func (m *Meter) SetTable(t *Table) { m.table.Store(t) }

// AddKernelDrops records frames the kernel dropped; they are reported with
// the next interval emitted.
func (m *Meter) AddKernelDrops(n uint64) {
	m.mu.Lock()
	m.drops += n
	m.mu.Unlock()
}

// Stats counts frames by what they were, over the Meter's life.
type Stats struct {
	Frames [4]int64 // indexed by Class
	// Bytes is the wire bytes of the frames counted (matched or not).
	Bytes int64
	// Late frames arrived after their interval was emitted.
	Late int64
}

// Stats adds up the shards' counters.
func (m *Meter) Stats() Stats {
	m.mu.Lock()
	shards := slices.Clone(m.shards)
	m.mu.Unlock()
	var st Stats
	for _, s := range shards {
		s.mu.Lock()
		for i := range st.Frames {
			st.Frames[i] += s.stats.Frames[i]
		}
		st.Bytes += s.stats.Bytes
		st.Late += s.stats.Late
		s.mu.Unlock()
	}
	return st
}

// Shard is one reader's accumulator: Count is called by one goroutine at a
// time; Flush (on the Meter) may run concurrently.
type Shard struct {
	m   *Meter
	dec *Decoder
	dir Direction

	mu      sync.Mutex // guards below
	buckets map[int64]*bucket
	cur     int64
	curB    *bucket
	last    flowKey
	lastI   int // index in curB.flows of last, or -1
	stats   Stats
	top     map[netip.Prefix]*topK // nil unless the Meter keeps top addresses
}

// flowKey names a prefix by its table and index (tables are swapped while
// counting; Flush merges by prefix).
type flowKey struct {
	t   *Table
	i   uint32
	mac [6]byte
}

func (k flowKey) prefix() netip.Prefix {
	if k.t == nil || k.i == noPrefix {
		return netip.Prefix{}
	}
	return k.t.prefixes[k.i]
}

type counts struct{ bytes, samples int64 }

type flowCount struct {
	key flowKey
	counts
}

type bucket struct {
	// The counters sit in one slice, found through the map: denser in
	// the cache than a map of pointers.
	index map[flowKey]int32
	flows []flowCount
	late  int64 // frames counted here because their own interval was gone
}

// NewShard returns a new accumulator for one reader of outgoing frames.
func (m *Meter) NewShard() *Shard { return m.NewShardFor(Outgoing) }

// NewShardFor returns a new accumulator for one reader of frames of
// direction dir (a reader sees one direction: its socket's filter keeps
// only that one). Top addresses are kept for outgoing frames only: they
// are probe targets.
func (m *Meter) NewShardFor(dir Direction) *Shard {
	s := &Shard{m: m, dec: NewDecoderFor(dir), dir: dir, buckets: map[int64]*bucket{}, cur: math.MinInt64, lastI: -1}
	if m.topN > 0 && dir == Outgoing {
		s.top = map[netip.Prefix]*topK{}
	}
	m.mu.Lock()
	m.shards = append(m.shards, s)
	m.mu.Unlock()
	return s
}

// Count classifies one sampled frame stamped at ts whose length on the
// wire was wireLen (CaptureInfo.Length, not the captured length), and
// accounts it to its interval. It returns the frame's class.
func (s *Shard) Count(frame []byte, ts time.Time, wireLen int) Class {
	t := s.m.table.Load()
	c, mac, i := s.dec.classify(frame, t)
	ns := ts.UnixNano()
	s.mu.Lock()
	s.stats.Frames[c]++
	if c < Unmatched {
		s.mu.Unlock()
		return c
	}
	s.stats.Bytes += int64(wireLen)
	idx := s.m.index(ns)
	late := false
	if wm := s.m.watermark.Load(); idx < wm {
		// Its interval is gone: count it in the oldest open one.
		idx, late = wm, true
		s.stats.Late++
	}
	if idx != s.cur {
		b, ok := s.buckets[idx]
		if !ok {
			b = &bucket{index: map[flowKey]int32{}}
			s.buckets[idx] = b
		}
		s.cur, s.curB, s.lastI = idx, b, -1
	}
	if late {
		s.curB.late++
	}
	k := flowKey{t, i, mac}
	if i == noPrefix {
		k.t = nil
	}
	fi := s.lastI
	if fi < 0 || k != s.last {
		j, ok := s.curB.index[k]
		if !ok {
			j = int32(len(s.curB.flows))
			s.curB.flows = append(s.curB.flows, flowCount{key: k})
			s.curB.index[k] = j
		}
		fi = int(j)
		s.last, s.lastI = k, fi
	}
	cn := &s.curB.flows[fi]
	cn.bytes += int64(wireLen)
	cn.samples++
	if s.top != nil && c == Matched {
		s.countTop(t.prefixes[i], s.dec.dst)
	}
	s.mu.Unlock()
	return c
}

// Flush emits every interval that ended at least the grace period before
// now and was not emitted yet, oldest first, including intervals without
// traffic.
func (m *Meter) Flush(now time.Time) []Interval {
	return m.flush(m.index(now.Add(-m.grace).UnixNano()), time.Time{})
}

// Stop emits every interval not emitted yet, up to and including the one
// holding now, which is partial: measuring stopped at now. Frames counted
// afterwards are late and never emitted.
func (m *Meter) Stop(now time.Time) []Interval {
	return m.flush(m.index(now.UnixNano())+1, now)
}

func (m *Meter) flush(cutoff int64, stop time.Time) []Interval {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopAt.IsZero() || cutoff <= m.next {
		return nil
	}
	if !stop.IsZero() {
		m.stopAt = stop
	}
	// Raise the watermark before taking the buckets: a Count that runs
	// after a shard was emptied sees it and counts as late.
	m.watermark.Store(cutoff)
	// Table versions have their own entries: merge by prefix.
	type figKey struct {
		dir    Direction
		prefix netip.Prefix
		mac    [6]byte
	}
	merged := map[int64]map[figKey]counts{}
	late := map[int64]int64{}
	for _, s := range m.shards {
		s.mu.Lock()
		for idx, b := range s.buckets {
			if idx >= cutoff {
				continue
			}
			mm := merged[idx]
			if mm == nil {
				mm = map[figKey]counts{}
				merged[idx] = mm
			}
			for _, c := range b.flows {
				k := c.key
				k2 := figKey{s.dir, k.prefix(), k.mac}
				sum := mm[k2]
				sum.bytes += c.bytes
				sum.samples += c.samples
				mm[k2] = sum
			}
			late[idx] += b.late
			delete(s.buckets, idx)
			if idx == s.cur {
				s.cur, s.curB, s.lastI = math.MinInt64, nil, -1
			}
		}
		s.mu.Unlock()
	}
	out := make([]Interval, 0, cutoff-m.next)
	for idx := m.next; idx < cutoff; idx++ {
		iv := Interval{
			Start:      time.Unix(0, idx*m.ivNs).UTC(),
			End:        time.Unix(0, (idx+1)*m.ivNs).UTC(),
			SampleRate: int(m.rate),
			Late:       late[idx],
		}
		iv.From, iv.To = iv.Start, iv.End
		if m.since.After(iv.From) {
			iv.From = m.since.UTC()
		}
		if !stop.IsZero() && stop.Before(iv.To) {
			iv.To = stop.UTC()
		}
		span := iv.To.Sub(iv.From)
		for k, c := range merged[idx] {
			f := Figure{
				Direction: k.dir,
				Prefix:    k.prefix,
				NextHop:   net.HardwareAddr(slices.Clone(k.mac[:])),
				Start:     iv.Start, End: iv.End,
				Bytes:   c.bytes * m.rate,
				Samples: c.samples,
			}
			f.BitsPerSecond = bitsPerSecond(f.Bytes, span)
			iv.Figures = append(iv.Figures, f)
		}
		slices.SortFunc(iv.Figures, compareFigures)
		out = append(out, iv)
	}
	// Drops go with the newest interval emitted: they were noticed while
	// reading it.
	out[len(out)-1].KernelDrops, m.drops = m.drops, 0
	m.next = cutoff
	return out
}

// compareFigures orders by direction (outgoing first), prefix (IPv4
// first, then by address and length; unmatched last) and next hop.
func compareFigures(a, b Figure) int {
	if c := cmp.Compare(a.Direction, b.Direction); c != 0 {
		return c
	}
	if av, bv := a.Prefix.IsValid(), b.Prefix.IsValid(); av != bv {
		if av {
			return -1
		}
		return 1
	}
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()); c != 0 {
		return c
	}
	return bytes.Compare(a.NextHop, b.NextHop)
}

// bitsPerSecond is bytes*8 per span, rounded down, without overflow for
// any byte count a link can carry.
func bitsPerSecond(b int64, span time.Duration) int64 {
	if span <= 0 || b <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(b)*8, uint64(time.Second))
	if hi >= uint64(span) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(span))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}
