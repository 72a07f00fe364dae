// Package delayline adds delay and loss on a lab host's forwarding path in
// user space: netem's job, for kernels without sch_netem (and without dummy
// links). The host routes the chosen destinations into a TUN device; a
// reader holds each packet for the delay, drops a share of them, and writes
// the rest back, and a rule sends what comes back out of the host's LAN
// interface (eth0) toward the destination.
package delayline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/bwxchange/bwx/shared/labnet"
)

// Line is one delay line on a host.
type Line struct {
	f  *os.File
	wg sync.WaitGroup
}

// Add makes h forward traffic toward dsts through a delay line named dev
// (e.g. "dl0") that holds each packet for delay and drops a share loss
// (0..1) of them, chosen by a generator seeded with seed. h's eth0 must
// reach the destinations on-link. The routes use table 100 and rule
// preference 100 in h's namespace.
func Add(h *labnet.Host, dev string, delay time.Duration, loss float64, seed uint64, dsts ...netip.Prefix) (*Line, error) {
	if loss < 0 || loss > 1 {
		return nil, fmt.Errorf("delayline: loss %v is not within 0..1", loss)
	}
	tun := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: dev}, Mode: netlink.TUNTAP_MODE_TUN,
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_ONE_QUEUE, Queues: 1, NonPersist: true}
	if err := h.Do(func() error { return netlink.LinkAdd(tun) }); err != nil {
		return nil, fmt.Errorf("delayline: %s: tun %s: %w", h.Name, dev, err)
	}
	l := &Line{f: tun.Fds[0]}
	fail := func(err error) (*Line, error) { l.f.Close(); return nil, err }
	for _, kv := range [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.ipv6.conf.all.forwarding", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"}, {"net.ipv4.conf.default.rp_filter", "0"}, {"net.ipv4.conf.eth0.rp_filter", "0"},
		{"net.ipv4.conf." + dev + ".rp_filter", "0"}, {"net.ipv4.conf.all.send_redirects", "0"}, {"net.ipv4.conf.eth0.send_redirects", "0"}} {
		if err := h.SetSysctl(kv[0], kv[1]); err != nil {
			return fail(fmt.Errorf("delayline: %s: sysctl %s: %w", h.Name, kv[0], err))
		}
	}
	cmds := [][]string{{"link", "set", dev, "up"}}
	fams := map[string]bool{}
	for _, d := range dsts {
		fam := "-4"
		if d.Addr().Is6() {
			fam = "-6"
		}
		fams[fam] = true
		cmds = append(cmds, []string{fam, "route", "add", d.String(), "dev", dev},
			[]string{fam, "route", "add", d.String(), "dev", "eth0", "table", "100"})
	}
	for fam := range fams {
		cmds = append(cmds, []string{fam, "rule", "add", "iif", dev, "lookup", "100", "pref", "100"})
	}
	for _, c := range cmds {
		if out, err := h.Command(context.Background(), "ip", c...).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("delayline: %s: ip %s: %v: %s", h.Name, strings.Join(c, " "), err, out))
		}
	}
	type pkt struct {
		b   []byte
		due time.Time
	}
	q := make(chan pkt, 4096)
	rng := rand.New(rand.NewPCG(seed, uint64(delay)))
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		defer close(q)
		for {
			b := make([]byte, 2048)
			n, err := l.f.Read(b)
			if err != nil {
				return
			}
			if rng.Float64() < loss {
				continue
			}
			q <- pkt{b[:n], time.Now().Add(delay)}
		}
	}()
	go func() {
		defer l.wg.Done()
		for p := range q {
			time.Sleep(time.Until(p.due))
			if _, err := l.f.Write(p.b); err != nil && !errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	return l, nil
}

// Close stops the line (the TUN device goes with its file).
func (l *Line) Close() {
	l.f.Close()
	l.wg.Wait()
}
