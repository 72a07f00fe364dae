//go:build linux

package capture

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket/afpacket"
	"golang.org/x/net/bpf"

	"github.com/bwxchange/bwx/shared/clock"
)

// Defaults for Config.
const (
	DefaultSnapLen      = 128
	DefaultFrameSize    = 2048
	DefaultBlockSize    = 1 << 20
	DefaultNumBlocks    = 16
	DefaultBlockTimeout = 50 * time.Millisecond
	DefaultPollTimeout  = 100 * time.Millisecond
)

// Config sets up a live capture.
type Config struct {
	// Interfaces to capture outgoing frames on (at least one).
	Interfaces []string
	// Incoming also captures the frames addressed to this host on the same
	// interfaces (a seller's view of what buyers send it), through a second
	// socket per interface with its own ring. IncomingPaused opens those
	// sockets with nothing let through until SetIncoming(true).
	Incoming, IncomingPaused bool
	// Interval, SampleRate, TopAddresses: see MeterConfig.
	Interval     time.Duration
	SampleRate   int
	TopAddresses int
	// Grace: see MeterConfig; the default here is twice the block timeout
	// plus the poll timeout plus 200 ms, at most half the interval.
	Grace time.Duration
	// SnapLen is how many bytes of each frame are copied (DefaultSnapLen):
	// enough for Ethernet, two VLAN tags and an IPv6 header.
	SnapLen int
	// Ring, per interface: NumBlocks blocks of BlockSize bytes (a multiple
	// of the page size and of FrameSize). Defaults: 16 x 1 MiB, frames of 2 KiB.
	FrameSize, BlockSize, NumBlocks int
	// BlockTimeout is how long the kernel fills a block before handing it
	// over anyway (DefaultBlockTimeout).
	BlockTimeout time.Duration
	// PollTimeout bounds how long a reader waits for a block, and so how
	// long stopping takes (DefaultPollTimeout).
	PollTimeout time.Duration
}

func (c *Config) defaults() error {
	if len(c.Interfaces) == 0 {
		return errors.New("capture: no interfaces to capture on")
	}
	seen := map[string]bool{}
	for _, n := range c.Interfaces {
		if n == "" || seen[n] {
			return fmt.Errorf("capture: interfaces %q: empty or repeated name", c.Interfaces)
		}
		seen[n] = true
	}
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.SampleRate = cmp.Or(c.SampleRate, 1)
	c.SnapLen = cmp.Or(c.SnapLen, DefaultSnapLen)
	c.FrameSize = cmp.Or(c.FrameSize, DefaultFrameSize)
	c.BlockSize = cmp.Or(c.BlockSize, DefaultBlockSize)
	c.NumBlocks = cmp.Or(c.NumBlocks, DefaultNumBlocks)
	c.BlockTimeout = cmp.Or(c.BlockTimeout, DefaultBlockTimeout)
	c.PollTimeout = cmp.Or(c.PollTimeout, DefaultPollTimeout)
	if c.BlockTimeout < time.Millisecond || c.PollTimeout < time.Millisecond {
		return fmt.Errorf("capture: block timeout %v and poll timeout %v must be at least 1ms", c.BlockTimeout, c.PollTimeout)
	}
	if c.Grace == 0 {
		c.Grace = min(2*c.BlockTimeout+c.PollTimeout+200*time.Millisecond, c.Interval/2)
	}
	return nil
}

// Capture samples outgoing (and, if configured, incoming) frames on one or
// more interfaces into a Meter.
type Capture struct {
	cfg   Config
	meter *Meter
	socks []*socket
	ran   atomic.Bool
}

type socket struct {
	iface  string
	dir    Direction
	tp     *afpacket.TPacket
	shard  *Shard
	since  time.Time
	mu     sync.Mutex // guards closed against SetIncoming
	closed bool
	// Kernel counters, written by the reader, read by Stats.
	packets, drops, freezes atomic.Uint64
}

// Open opens one AF_PACKET socket per interface and direction, in the network namespace
// of the calling thread, with the sampling filter attached. Measuring
// starts when Open returns; nothing is read until Run.
func Open(cfg Config) (_ *Capture, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := checkInterval(cfg.Interval); err != nil {
		return nil, err
	}
	dirs := []Direction{Outgoing}
	if cfg.Incoming {
		dirs = append(dirs, Incoming)
	}
	c := &Capture{cfg: cfg}
	defer func() {
		if err != nil {
			c.closeAll()
		}
	}()
	for _, name := range cfg.Interfaces {
		for _, dir := range dirs {
			filter, err := DirectionFilter(dir, cfg.SampleRate, cfg.SnapLen)
			if dir == Incoming && cfg.IncomingPaused {
				filter, err = dropAll()
			}
			if err != nil {
				return nil, err
			}
			tp, err := afpacket.NewTPacket(
				afpacket.OptInterface(name),
				afpacket.TPacketVersion3,
				afpacket.OptFrameSize(cfg.FrameSize),
				afpacket.OptBlockSize(cfg.BlockSize),
				afpacket.OptNumBlocks(cfg.NumBlocks),
				afpacket.OptBlockTimeout(cfg.BlockTimeout),
				afpacket.OptPollTimeout(cfg.PollTimeout),
			)
			if err != nil {
				return nil, fmt.Errorf("capture: open AF_PACKET socket on %s: %w", name, err)
			}
			s := &socket{iface: name, dir: dir, tp: tp}
			c.socks = append(c.socks, s)
			if err := tp.SetBPF(filter); err != nil {
				return nil, fmt.Errorf("capture: attach filter on %s: %w", name, err)
			}
		}
	}
	// Frames that reached a ring before its filter was attached were
	// stamped before now: the readers skip them, and measuring starts now.
	since := clock.Now()
	c.meter, err = NewMeter(MeterConfig{Interval: cfg.Interval, SampleRate: cfg.SampleRate, Grace: cfg.Grace, Since: since, TopAddresses: cfg.TopAddresses})
	if err != nil {
		return nil, err
	}
	for _, s := range c.socks {
		s.shard = c.meter.NewShardFor(s.dir)
		s.since = since
	}
	return c, nil
}

// SetIncoming starts (on) or pauses the sampling of incoming frames by
// replacing the filter of the incoming sockets (the kernel swaps it
// atomically; the rings stay). It fails if Config.Incoming was not set.
// Frames already in the rings are still counted.
func (c *Capture) SetIncoming(on bool) error {
	if !c.cfg.Incoming {
		return errors.New("capture: SetIncoming: incoming frames were not configured (Config.Incoming)")
	}
	filter, err := DirectionFilter(Incoming, c.cfg.SampleRate, c.cfg.SnapLen)
	if !on {
		filter, err = dropAll()
	}
	if err != nil {
		return err
	}
	for _, s := range c.socks {
		if s.dir == Incoming {
			if err := s.setBPF(filter); err != nil {
				return err
			}
		}
	}
	return nil
}

// setBPF replaces the socket's filter unless it was closed (its fd number
// may belong to another file by now).
func (s *socket) setBPF(filter []bpf.RawInstruction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("capture: %s: the capture has stopped", s.iface)
	}
	if err := s.tp.SetBPF(filter); err != nil {
		return fmt.Errorf("capture: attach filter on %s: %w", s.iface, err)
	}
	return nil
}

// close closes the socket once.
func (s *socket) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.tp.Close()
	}
}

// SetTable replaces the destination prefixes (safe at any time).
func (c *Capture) SetTable(t *Table) { c.meter.SetTable(t) }

// Meter is the accumulator behind the capture.
func (c *Capture) Meter() *Meter { return c.meter }

// Close releases the sockets of a Capture that was never Run (Run closes
// them itself when it ends).
func (c *Capture) Close() error {
	if c.ran.Load() {
		return errors.New("capture: Close after Run: Run closes the sockets when it ends")
	}
	c.closeAll()
	return nil
}

func (c *Capture) closeAll() {
	for _, s := range c.socks {
		s.close()
	}
}

// Run reads the sockets until ctx is done, calling emit (from Run's
// goroutine) with each interval once it is complete, and at the end with
// what is left, the last interval partial. It closes the sockets before it
// returns. It returns nil when ctx ends, or the first read error of any
// interface (after stopping the others). Run may be called once.
func (c *Capture) Run(ctx context.Context, emit func(Interval)) error {
	if emit == nil {
		return errors.New("capture: Run: nil emit function")
	}
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("capture: Run called twice")
	}
	var stop atomic.Bool
	errc := make(chan error, len(c.socks))
	var wg sync.WaitGroup
	for _, s := range c.socks {
		wg.Go(func() { errc <- s.read(&stop, c.meter) })
	}
	var runErr error
	timer := time.NewTimer(c.untilFlush(clock.Now()))
	defer timer.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			if err != nil {
				runErr = err
				break loop
			}
		case <-timer.C:
			for _, iv := range c.meter.Flush(clock.Now()) {
				emit(iv)
			}
			timer.Reset(c.untilFlush(clock.Now()))
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		if runErr == nil {
			runErr = err
		}
	}
	for _, iv := range c.meter.Stop(clock.Now()) {
		emit(iv)
	}
	return runErr
}

// untilFlush is the wait until the current interval's end plus grace.
func (c *Capture) untilFlush(now time.Time) time.Duration {
	iv := c.cfg.Interval
	next := now.Add(-c.cfg.Grace).Truncate(iv).Add(iv + c.cfg.Grace)
	return max(next.Sub(now), time.Millisecond)
}

// read is one interface's reader. It alone touches the socket, and closes
// it: closing while another goroutine is inside ZeroCopyReadPacketData can
// crash (gopacket #717, #894), so stopping goes through the poll timeout.
func (s *socket) read(stop *atomic.Bool, m *Meter) error {
	defer s.close()
	lastStats := clock.Now()
	var dropsSeen uint64
	for n := 0; !stop.Load(); n++ {
		data, ci, err := s.tp.ZeroCopyReadPacketData()
		switch {
		case err == nil:
			if at := clock.FromKernel(ci.Timestamp); !at.Before(s.since) {
				s.shard.Count(data, at, ci.Length)
			}
			if n&63 != 0 {
				continue
			}
		case errors.Is(err, afpacket.ErrTimeout):
		case errors.Is(err, afpacket.ErrPoll):
			return fmt.Errorf("capture: %s: poll error (is the interface gone?)", s.iface)
		default:
			return fmt.Errorf("capture: read %s: %w", s.iface, err)
		}
		if now := clock.Now(); now.Sub(lastStats) >= 500*time.Millisecond {
			lastStats = now
			dropsSeen = s.pollStats(m, dropsSeen)
		}
	}
	s.pollStats(m, dropsSeen)
	return nil
}

// pollStats reads the kernel's counters and passes new drops to m.
func (s *socket) pollStats(m *Meter, seen uint64) uint64 {
	_, v3, err := s.tp.SocketStats()
	if err != nil {
		return seen
	}
	drops := uint64(v3.Drops())
	s.packets.Store(uint64(v3.Packets()))
	s.drops.Store(drops)
	s.freezes.Store(uint64(v3.QueueFreezes()))
	if drops > seen {
		m.AddKernelDrops(drops - seen)
	}
	return drops
}

// KernelStats are one socket's counters since Open: an interface's
// outgoing or incoming frames.
type KernelStats struct {
	Interface string
	Direction Direction
	// Packets the filter passed (drops included), Drops of those for want
	// of ring room,
	// QueueFreezes: times the ring was full.
	Packets, Drops, QueueFreezes uint64
}

// KernelStats returns each interface's counters, as of the last time its
// reader polled them (every half second or so).
func (c *Capture) KernelStats() []KernelStats {
	out := make([]KernelStats, len(c.socks))
	for i, s := range c.socks {
		out[i] = KernelStats{Interface: s.iface, Direction: s.dir, Packets: s.packets.Load(), Drops: s.drops.Load(), QueueFreezes: s.freezes.Load()}
	}
	return out
}
