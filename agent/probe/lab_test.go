package probe

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ipcmd runs ip(8) (or another command) inside h and fails the test on error.
func ipcmd(t testing.TB, h *labnet.Host, prog string, args ...string) {
	t.Helper()
	out, err := h.Command(context.Background(), prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s %s: %v: %s", h.Name, prog, strings.Join(args, " "), err, out)
	}
}

func sysctl(t testing.TB, h *labnet.Host, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := h.SetSysctl(kv[i], kv[i+1]); err != nil {
			t.Fatalf("%s: sysctl %s=%s: %v", h.Name, kv[i], kv[i+1], err)
		}
	}
}

// handleIn returns a netlink handle inside h's namespace.
func handleIn(t testing.TB, h *labnet.Host) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(h.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// delayLine makes seller s forward traffic toward dst through a TUN device
// whose reader holds each packet for delay and drops a share loss of them:
// netem's job, done in user space because this kernel has no sch_netem.
// Packets written back come in on the TUN device, and a rule sends those
// out of eth0.
func delayLine(t *testing.T, s *labnet.Host, delay time.Duration, loss float64, dst4, dst6 string) {
	t.Helper()
	tun := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "dl0"}, Mode: netlink.TUNTAP_MODE_TUN,
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE, Queues: 1, NonPersist: true}
	if err := s.Do(func() error { return netlink.LinkAdd(tun) }); err != nil {
		t.Fatalf("%s: tun: %v", s.Name, err)
	}
	f := tun.Fds[0]
	sysctl(t, s, "net.ipv4.ip_forward", "1", "net.ipv6.conf.all.forwarding", "1",
		"net.ipv4.conf.all.rp_filter", "0", "net.ipv4.conf.default.rp_filter", "0", "net.ipv4.conf.eth0.rp_filter", "0",
		"net.ipv4.conf.dl0.rp_filter", "0", "net.ipv4.conf.all.send_redirects", "0")
	ipcmd(t, s, "ip", "link", "set", "dl0", "up")
	ipcmd(t, s, "ip", "route", "add", dst4, "dev", "dl0")
	ipcmd(t, s, "ip", "-6", "route", "add", dst6, "dev", "dl0")
	ipcmd(t, s, "ip", "route", "add", dst4, "dev", "eth0", "table", "100")
	ipcmd(t, s, "ip", "-6", "route", "add", dst6, "dev", "eth0", "table", "100")
	ipcmd(t, s, "ip", "rule", "add", "iif", "dl0", "lookup", "100", "pref", "100")
	ipcmd(t, s, "ip", "-6", "rule", "add", "iif", "dl0", "lookup", "100", "pref", "100")

	type pkt struct {
		b   []byte
		due time.Time
	}
	q := make(chan pkt, 4096)
	var wg sync.WaitGroup
	wg.Add(2)
	rng := rand.New(rand.NewPCG(uint64(len(s.Name)), uint64(delay)))
	go func() {
		defer wg.Done()
		defer close(q)
		for {
			b := make([]byte, 2048)
			n, err := f.Read(b)
			if err != nil {
				return
			}
			if rng.Float64() < loss {
				continue
			}
			q <- pkt{b[:n], clock.Now().Add(delay)}
		}
	}()
	go func() {
		defer wg.Done()
		for p := range q {
			time.Sleep(clock.Until(p.due))
			if _, err := f.Write(p.b); err != nil && !errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	t.Cleanup(func() { f.Close(); wg.Wait() })
}

// probeLab: a prober host P with an exchange interface eth0 and its own
// upstream (up0, where its main table's default routes point), two sellers
// S1 (20 ms) and S2 (2 ms, 30 % loss) on the exchange LAN, and a
// destination D reached through either. D answers P directly over the LAN.
type probeLab struct {
	p, s1, s2, d *labnet.Host
	sellers      []Seller
	paths        *Paths
	dst4, dst6   netip.Addr
}

func newProbeLab(t *testing.T) *probeLab {
	lab := labtest.New(t, "probe")
	l := &probeLab{
		p:    labtest.AddHost(t, lab, "p", "192.0.2.10/24", "2001:db8::10/64"),
		s1:   labtest.AddHost(t, lab, "s1", "192.0.2.1/24", "2001:db8::1/64"),
		s2:   labtest.AddHost(t, lab, "s2", "192.0.2.2/24", "2001:db8::2/64"),
		d:    labtest.AddHost(t, lab, "d", "198.51.100.1/24", "2001:db8:100::1/64"),
		dst4: netip.MustParseAddr("198.51.100.1"),
		dst6: netip.MustParseAddr("2001:db8:100::1"),
	}
	// D: the prober's LAN is on-link, so replies skip the sellers.
	ipcmd(t, l.d, "ip", "route", "add", "192.0.2.0/24", "dev", "eth0")
	ipcmd(t, l.d, "ip", "-6", "route", "add", "2001:db8::/64", "dev", "eth0")
	delayLine(t, l.s1, 20*time.Millisecond, 0, "198.51.100.0/24", "2001:db8:100::/64")
	delayLine(t, l.s2, 2*time.Millisecond, 0.3, "198.51.100.0/24", "2001:db8:100::/64")
	// P: its main table sends everything to its upstream, not the LAN.
	ipcmd(t, l.p, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	ipcmd(t, l.p, "ip", "link", "set", "up0", "up")
	ipcmd(t, l.p, "ip", "link", "set", "up1", "up")
	ipcmd(t, l.p, "ip", "addr", "add", "203.0.113.10/24", "dev", "up0")
	ipcmd(t, l.p, "ip", "addr", "add", "2001:db8:ffff::10/64", "dev", "up0", "nodad")
	ipcmd(t, l.p, "ip", "route", "add", "default", "via", "203.0.113.1", "dev", "up0")
	ipcmd(t, l.p, "ip", "-6", "route", "add", "default", "via", "2001:db8:ffff::1", "dev", "up0")
	sysctl(t, l.p, "net.ipv4.conf.all.accept_redirects", "0", "net.ipv4.conf.eth0.accept_redirects", "0",
		"net.ipv6.conf.eth0.accept_redirects", "0", "net.ipv4.conf.all.rp_filter", "0", "net.ipv4.conf.eth0.rp_filter", "0")

	l.sellers = []Seller{
		{Name: "s1", ASN: 64501, ID: 1, NextHop4: netip.MustParseAddr("192.0.2.1"), NextHop6: netip.MustParseAddr("2001:db8::1")},
		{Name: "s2", ASN: 64502, ID: 2, NextHop4: netip.MustParseAddr("192.0.2.2"), NextHop6: netip.MustParseAddr("2001:db8::2")},
	}
	var err error
	l.paths, err = NewPaths(handleIn(t, l.p), PathsConfig{Link: "eth0", Sysctl: l.p})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *probeLab) targets() []Target {
	var ts []Target
	for _, s := range l.sellers {
		for _, a := range []netip.Addr{l.dst4, l.dst6} {
			pfx := netip.MustParsePrefix("198.51.100.0/24")
			if a.Is6() {
				pfx = netip.MustParsePrefix("2001:db8:100::/48")
			}
			ts = append(ts, Target{Addr: a, Prefix: pfx, Seller: s.Name, ASN: s.ASN, Mark: l.paths.Config().Mark(s), ASHops: 1})
		}
	}
	return ts
}

func find(t *testing.T, ms []Measurement, seller string, v6 bool) Measurement {
	t.Helper()
	for _, m := range ms {
		if m.Seller == seller && m.Prefix.Addr().Is6() == v6 {
			return m
		}
	}
	t.Fatalf("no measurement for %s (v6=%v) in %+v", seller, v6, ms)
	return Measurement{}
}

// TestProbeThroughSellers: probes through S1 see its 20 ms, probes through
// S2 its 30 % loss, in both families; with strict rp_filter every IPv4
// reply is dropped and CheckRPFilter says why; Reconcile loosens it.
func TestProbeThroughSellers(t *testing.T) {
	t.Parallel()
	l := newProbeLab(t)
	if err := l.paths.Reconcile(l.sellers); err != nil {
		t.Fatal(err)
	}
	pr, err := New(Config{Count: 40, Spacing: 5 * time.Millisecond, Timeout: time.Second, TargetsPerMinute: 6000, Do: l.p.Do})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx := context.Background()

	// Without a mark the probes follow the main table to the upstream: lost.
	plain := l.targets()[:2]
	for i := range plain {
		plain[i].Mark = 0
	}
	ms, err := pr.Round(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Received != 0 {
			t.Errorf("unmarked probes came back via %s: %+v", m.Seller, m)
		}
	}

	ms, err = pr.Round(ctx, l.targets())
	if err != nil {
		t.Fatal(err)
	}
	for _, v6 := range []bool{false, true} {
		m1, m2 := find(t, ms, "s1", v6), find(t, ms, "s2", v6)
		t.Logf("v6=%v s1: %+v", v6, m1)
		t.Logf("v6=%v s2: %+v", v6, m2)
		if m1.Sent != 40 || m2.Sent != 40 {
			t.Errorf("sent %d/%d, want 40 each", m1.Sent, m2.Sent)
		}
		if m1.LossPPM != 0 {
			t.Errorf("v6=%v: s1 loss %d ppm, want 0", v6, m1.LossPPM)
		}
		if m1.LatencyUs < 20_000 || m1.LatencyUs > 45_000 {
			t.Errorf("v6=%v: s1 latency %d us, want 20-45 ms", v6, m1.LatencyUs)
		}
		if m2.LatencyUs < 2_000 || m2.LatencyUs > 15_000 {
			t.Errorf("v6=%v: s2 latency %d us, want 2-15 ms", v6, m2.LatencyUs)
		}
		if m1.LatencyUs-m2.LatencyUs < 12_000 {
			t.Errorf("v6=%v: s1-s2 latency %d us, want >= 12 ms", v6, m1.LatencyUs-m2.LatencyUs)
		}
		// 30 % of 40: 12 expected; 3 sigma is about 8.7.
		if m2.LossPPM < 80_000 || m2.LossPPM > 550_000 {
			t.Errorf("v6=%v: s2 loss %d ppm, want 8-55 %%", v6, m2.LossPPM)
		}
		// D is on P's LAN: its replies come straight back, one hop.
		if m1.IPHops != 1 || m2.IPHops != 1 {
			t.Errorf("v6=%v: IP hops %d/%d, want 1", v6, m1.IPHops, m2.IPHops)
		}
		if m1.ASHops != 1 || len(m1.Targets) != 1 || m1.At.Location() != time.UTC {
			t.Errorf("v6=%v: s1 measurement %+v", v6, m1)
		}
	}

	// Strict rp_filter: IPv4 replies arrive on eth0 while the main table
	// routes D to up0, so the kernel drops them all.
	sysctl(t, l.p, "net.ipv4.conf.eth0.rp_filter", "1")
	if _, err := CheckRPFilter(l.p, "eth0"); !errors.Is(err, ErrStrictRPFilter) {
		t.Fatalf("CheckRPFilter with strict eth0: %v", err)
	}
	v4 := []Target{l.targets()[2]} // s2 v4: fast
	ms, err = pr.Round(ctx, v4)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Received != 0 {
		t.Errorf("strict rp_filter: %d replies got through, want none", ms[0].Received)
	}
	// LeaveRPFilter reports it; the default loosens it.
	check, err := NewPaths(handleIn(t, l.p), PathsConfig{Link: "eth0", Sysctl: l.p, LeaveRPFilter: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := check.Reconcile(l.sellers); !errors.Is(err, ErrStrictRPFilter) {
		t.Fatalf("Reconcile with LeaveRPFilter: %v, want ErrStrictRPFilter", err)
	}
	if err := l.paths.Reconcile(l.sellers); err != nil {
		t.Fatal(err)
	}
	if v, _ := l.p.Sysctl("net.ipv4.conf.eth0.rp_filter"); v != "2" {
		t.Fatalf("rp_filter on eth0 after Reconcile: %q, want 2", v)
	}
	ms, err = pr.Round(ctx, v4)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Received == 0 {
		t.Errorf("loose rp_filter: no replies: %+v", ms[0])
	}

	// The bound: at 600 targets per minute, 5 targets start 100 ms apart,
	// so the round cannot end before 400 ms.
	slow, err := New(Config{Count: 1, Timeout: time.Second, TargetsPerMinute: 600, Do: l.p.Do})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	five := slices.Repeat([]Target{l.targets()[2]}, 5)
	start := clock.Now()
	ms, err = slow.Round(ctx, five)
	if el := clock.Since(start); err != nil || el < 400*time.Millisecond || ms[0].Sent != 5 {
		t.Errorf("5 targets at 600/min: %v after %v (%+v), want >= 400ms", err, el, ms)
	}
}
