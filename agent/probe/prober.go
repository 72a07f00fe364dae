package probe

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/netx"
)

// Defaults for Config.
const (
	DefaultCount            = 5
	DefaultSpacing          = 200 * time.Millisecond
	DefaultTimeout          = 2 * time.Second
	DefaultTargetsPerMinute = 6000
	// payload: 8 bytes round token, 8 bytes send time (for debugging with
	// tcpdump; RTTs come from our own table).
	payloadLen = 16
)

// Target is one address to probe through one seller.
type Target struct {
	// Addr is the probed address (IPv4 or IPv6).
	Addr netip.Addr
	// Prefix is the destination prefix Addr stands for.
	Prefix netip.Prefix
	// Seller is the path: its name, ASN and the mark that steers through it
	// (PathsConfig.Mark; 0 probes along the main table).
	Seller string
	ASN    uint32
	Mark   uint32
	// ASHops is the AS path length of the route toward Prefix via this
	// seller, if known (0: unknown); it is copied into the Measurement.
	ASHops int32
}

// Config sets up a Prober.
type Config struct {
	// Count is how many echo requests each target gets per round
	// (DefaultCount), Spacing the time between them (DefaultSpacing).
	Count   int
	Spacing time.Duration
	// Timeout is how long a request may wait for its reply (DefaultTimeout);
	// later replies count as lost.
	Timeout time.Duration
	// TargetsPerMinute bounds the rate at which targets are started
	// (DefaultTargetsPerMinute): one every minute/TargetsPerMinute, so a
	// round of N targets takes at least N/TargetsPerMinute minutes and the
	// packet rate stays at TargetsPerMinute*Count/60 per second.
	TargetsPerMinute int
	// Do runs fn where the sockets must be opened (in tests, inside a
	// network namespace: labnet.Host.Do). nil runs it here.
	Do func(fn func() error) error
}

func (c *Config) defaults() error {
	c.Count = cmp.Or(c.Count, DefaultCount)
	c.Spacing = cmp.Or(c.Spacing, DefaultSpacing)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.TargetsPerMinute = cmp.Or(c.TargetsPerMinute, DefaultTargetsPerMinute)
	switch {
	case c.Count < 1 || c.Count > 1000:
		return fmt.Errorf("probe: count %d: want 1-1000 probes per target", c.Count)
	case c.Spacing < 0:
		return fmt.Errorf("probe: spacing %v is negative", c.Spacing)
	case c.Timeout <= 0:
		return fmt.Errorf("probe: timeout %v: want > 0", c.Timeout)
	case c.TargetsPerMinute < 1 || c.TargetsPerMinute > 6_000_000:
		return fmt.Errorf("probe: targets per minute %d: want 1-6000000", c.TargetsPerMinute)
	}
	// Requests are told apart by a 16-bit sequence number: those sent
	// within one timeout (packet rate x timeout) must fit.
	if inflight := float64(c.TargetsPerMinute) / 60 * float64(c.Count) * c.Timeout.Seconds(); inflight > 60000 {
		return fmt.Errorf("probe: %d targets per minute x %d probes with a %v timeout keep about %.0f requests waiting, more than the 60000 the sequence space allows: lower the rate or the timeout",
			c.TargetsPerMinute, c.Count, c.Timeout, inflight)
	}
	if c.Do == nil {
		c.Do = func(fn func() error) error { return fn() }
	}
	return nil
}

// Prober sends ICMP echo requests through chosen sellers. It owns one raw
// ICMP socket per family and steers each request with a per-packet SO_MARK
// control message (Linux >= 5.9, CAP_NET_RAW and CAP_NET_ADMIN): one socket
// sees each reply once, where a Pinger per target (pro-bing) makes every
// raw socket see every reply, O(N^2) (see the benchmark).
type Prober struct {
	cfg   Config
	id    uint16
	conns [2]*net.IPConn // 0: IPv4, 1: IPv6

	roundMu sync.Mutex // one round at a time

	mu  sync.Mutex // guards below
	cur *round
	seq uint16

	wg sync.WaitGroup
}

// New opens the sockets (through cfg.Do) and starts reading replies.
func New(cfg Config) (*Prober, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	p := &Prober{cfg: cfg, id: uint16(rand.Uint32())}
	err := cfg.Do(func() error {
		c4, err := listen("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		p.conns[0] = c4
		c6, err := listen("ip6:ipv6-icmp", "::")
		if errors.Is(err, unix.EAFNOSUPPORT) {
			return nil // IPv6 disabled: IPv6 targets fail (and count as lost)
		}
		if err != nil {
			return err
		}
		p.conns[1] = c6
		return nil
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	for i, c := range p.conns {
		if c != nil {
			p.wg.Add(1)
			go p.read(c, i == 1)
		}
	}
	return p, nil
}

func listen(network, addr string) (*net.IPConn, error) {
	c, err := net.ListenIP(network, &net.IPAddr{IP: net.ParseIP(addr)})
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("probe: open raw %s socket: %w (needs CAP_NET_RAW)", network, err)
		}
		return nil, fmt.Errorf("probe: open raw %s socket: %w", network, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if serr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); serr != nil {
			return
		}
		if network == "ip4:icmp" {
			// Pass only echo replies up (ICMP_FILTER: a set bit blocks a type).
			serr = unix.SetsockoptInt(s, unix.SOL_RAW, unix.ICMP_FILTER, int(^uint32(1<<0)))
			return
		}
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = ^uint32(0)
		}
		f.Data[129>>5] &^= 1 << (129 & 31)
		if serr = unix.SetsockoptICMPv6Filter(s, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(s, unix.SOL_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("probe: set up %s socket: %w", network, err)
	}
	return c, nil
}

// Close closes the sockets and waits for the readers.
func (p *Prober) Close() error {
	var errs []error
	for _, c := range p.conns {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	p.wg.Wait()
	return errors.Join(errs...)
}

// Config returns the configuration with defaults filled in.
func (p *Prober) Config() Config { return p.cfg }

type sent struct {
	target int   // index into round.targets
	n      int   // probe number within the target
	at     int64 // monotonic ns since round start
}

type round struct {
	start   time.Time
	token   uint64
	targets []Target
	// rtts[target][n]: -1 not answered (yet)
	rtts [][]time.Duration
	ttls [][]uint8
	sent []int32
	// inflight by ICMP sequence number
	inflight map[uint16]sent
	pending  int
	done     chan struct{} // closed when the last send is out and nothing is inflight
	allSent  bool
}

// Round probes every target Count times at the configured rate and
// returns one Measurement per (seller, prefix), sorted by seller and prefix.
// It returns early with what it has (and ctx's error) if ctx ends.
func (p *Prober) Round(ctx context.Context, targets []Target) ([]Measurement, error) {
	if err := CheckTargets(targets); err != nil {
		return nil, err
	}
	p.roundMu.Lock()
	defer p.roundMu.Unlock()

	r := &round{
		start:    clock.Now(),
		token:    rand.Uint64(),
		targets:  targets,
		rtts:     make([][]time.Duration, len(targets)),
		ttls:     make([][]uint8, len(targets)),
		sent:     make([]int32, len(targets)),
		inflight: map[uint16]sent{},
		done:     make(chan struct{}),
	}
	for i := range targets {
		r.rtts[i] = make([]time.Duration, p.cfg.Count)
		for j := range r.rtts[i] {
			r.rtts[i][j] = -1
		}
		r.ttls[i] = make([]uint8, p.cfg.Count)
	}
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cur = nil
		p.mu.Unlock()
	}()

	err := p.send(ctx, r)
	p.mu.Lock()
	r.allSent = true
	if r.pending == 0 {
		close(r.done)
	}
	p.mu.Unlock()
	if err == nil {
		t := time.NewTimer(p.cfg.Timeout)
		select {
		case <-r.done:
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
	}
	p.mu.Lock()
	ms := summarize(r, p.cfg.Count)
	p.mu.Unlock()
	return ms, err
}

// send paces the requests: target i starts at i*gap, its probe n at
// i*gap + n*Spacing.
func (p *Prober) send(ctx context.Context, r *round) error {
	gap := time.Minute / time.Duration(p.cfg.TargetsPerMinute)
	type ev struct {
		at     time.Duration
		target int
		n      int
	}
	evs := make([]ev, 0, len(r.targets)*p.cfg.Count)
	for i := range r.targets {
		for n := 0; n < p.cfg.Count; n++ {
			evs = append(evs, ev{time.Duration(i)*gap + time.Duration(n)*p.cfg.Spacing, i, n})
		}
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return int(a.at - b.at) })
	buf := make([]byte, 8+payloadLen)
	oob := make([]byte, unix.CmsgSpace(4))
	var timer *time.Timer
	for _, e := range evs {
		if wait := clock.Until(r.start.Add(e.at)); wait > 50*time.Microsecond {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		t := r.targets[e.target]
		p.mu.Lock()
		p.seq++
		seq := p.seq
		if _, ok := r.inflight[seq]; ok {
			// Wrapped onto a request still waiting: that one is lost.
			r.pending--
		}
		now := clock.Since(r.start)
		r.inflight[seq] = sent{target: e.target, n: e.n, at: int64(now)}
		r.pending++
		r.sent[e.target]++
		p.mu.Unlock()
		if err := p.write(t, seq, r.token, buf, oob); err != nil {
			p.mu.Lock()
			if _, ok := r.inflight[seq]; ok {
				delete(r.inflight, seq)
				r.pending--
			}
			p.mu.Unlock()
			// A route missing for one seller is that path's loss; a
			// refused mark is everyone's problem.
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
				return err
			}
		}
	}
	return nil
}

func (p *Prober) write(t Target, seq uint16, token uint64, buf, oob []byte) error {
	v6 := t.Addr.Is6()
	if v6 {
		buf[0] = 128 // echo request; the kernel computes the ICMPv6 checksum
	} else {
		buf[0] = 8
	}
	buf[1] = 0
	buf[2], buf[3] = 0, 0
	binary.BigEndian.PutUint16(buf[4:], p.id)
	binary.BigEndian.PutUint16(buf[6:], seq)
	binary.BigEndian.PutUint64(buf[8:], token)
	binary.BigEndian.PutUint64(buf[16:], uint64(clock.Now().UnixNano()))
	if !v6 {
		binary.BigEndian.PutUint16(buf[2:], netx.Checksum(buf))
	}
	var sa unix.Sockaddr
	conn := p.conns[0]
	if v6 {
		conn = p.conns[1]
		if conn == nil {
			return fmt.Errorf("probe: send to %v: IPv6 is disabled on this host", t.Addr)
		}
		sa = &unix.SockaddrInet6{Addr: t.Addr.As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: t.Addr.As4()}
	}
	var cmsg []byte
	if t.Mark != 0 {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.SOL_SOCKET, unix.SO_MARK
		h.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], t.Mark)
		cmsg = oob
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), buf, cmsg, sa, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if errors.Is(err, unix.EINVAL) && t.Mark != 0 {
			return fmt.Errorf("probe: send to %v with mark %#x: %w (per-packet SO_MARK needs Linux >= 5.9)", t.Addr, t.Mark, err)
		}
		return fmt.Errorf("probe: send to %v via %s: %w", t.Addr, t.Seller, err)
	}
	return nil
}

// read takes replies until the socket is closed.
func (p *Prober) read(c *net.IPConn, v6 bool) {
	defer p.wg.Done()
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 1500)
	oob := make([]byte, 256)
	for {
		var n, oobn int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			continue
		}
		rx := clock.Now()
		ttl := -1
		var src netip.Addr
		msg := buf[:n]
		if v6 {
			if sa, ok := from.(*unix.SockaddrInet6); ok {
				src = netip.AddrFrom16(sa.Addr)
			}
		} else {
			if n < 20 {
				continue
			}
			ihl := int(msg[0]&0x0f) * 4
			if ihl < 20 || n < ihl {
				continue
			}
			ttl = int(msg[8])
			src = netip.AddrFrom4([4]byte(msg[12:16]))
			msg = msg[ihl:]
		}
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, cm := range cms {
				switch {
				case cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SCM_TIMESTAMPNS && len(cm.Data) >= 16:
					ts := (*unix.Timespec)(unsafe.Pointer(&cm.Data[0]))
					rx = clock.FromKernel(time.Unix(ts.Unix()))
				case cm.Header.Level == unix.SOL_IPV6 && cm.Header.Type == unix.IPV6_HOPLIMIT && len(cm.Data) >= 4:
					ttl = int(binary.NativeEndian.Uint32(cm.Data))
				}
			}
		}
		if len(msg) < 8+payloadLen {
			continue
		}
		want := byte(0)
		if v6 {
			want = 129
		}
		if msg[0] != want || msg[1] != 0 || binary.BigEndian.Uint16(msg[4:]) != p.id {
			continue
		}
		p.deliver(binary.BigEndian.Uint16(msg[6:]), binary.BigEndian.Uint64(msg[8:]), src, rx, ttl)
	}
}

func (p *Prober) deliver(seq uint16, token uint64, src netip.Addr, rx time.Time, ttl int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.cur
	if r == nil || r.token != token {
		return
	}
	s, ok := r.inflight[seq]
	if !ok || r.targets[s.target].Addr != src.Unmap() {
		return
	}
	delete(r.inflight, seq)
	rtt := rx.Sub(r.start) - time.Duration(s.at)
	if rtt > p.cfg.Timeout {
		rtt = -1 // too late: lost
	} else if rtt < 0 {
		rtt = 0
	}
	r.rtts[s.target][s.n] = rtt
	if ttl >= 0 && ttl <= 255 {
		r.ttls[s.target][s.n] = uint8(ttl)
	}
	r.pending--
	if r.pending == 0 && r.allSent {
		close(r.done)
	}
}

// CheckTargets refuses targets that cannot be probed, naming the first.
func CheckTargets(ts []Target) error {
	for i, t := range ts {
		switch {
		case !t.Addr.IsValid():
			return fmt.Errorf("probe: target %d: no address", i)
		case t.Addr.Zone() != "":
			return fmt.Errorf("probe: target %v: zoned addresses are not probed", t.Addr)
		case t.Addr.Is4In6():
			return fmt.Errorf("probe: target %v: IPv4-mapped: give it as IPv4", t.Addr)
		case !t.Prefix.IsValid():
			return fmt.Errorf("probe: target %v: no prefix", t.Addr)
		case !t.Prefix.Contains(t.Addr):
			return fmt.Errorf("probe: target %v is not in its prefix %v", t.Addr, t.Prefix)
		case t.Seller == "":
			return fmt.Errorf("probe: target %v: no seller", t.Addr)
		case t.ASHops < 0:
			return fmt.Errorf("probe: target %v: negative AS hops %d", t.Addr, t.ASHops)
		}
	}
	return nil
}
