// Package neigh is the kernel side of the agent's watch on the sellers'
// routers: their neighbor entries on the exchange interface (netlink) and
// the interface's neighbor timers (sysctl). It decides nothing; the
// daemon's Routing marks a next hop down in the FIB (agent/fib) when its
// entry is FAILED, and up again when it resolves.
//
// The agent makes each next hop in use a "managed" entry (NTF_EXT_MANAGED,
// Linux >= 5.16): the kernel keeps resolving it, also when no traffic
// flows, and re-probes a FAILED one. With the interface's neighbor timers
// shortened (Tune) a router that stops answering ARP/ND goes FAILED within
// a few seconds.
package neigh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Tune shortens the interface's neighbor timers so that a dead next hop is
// found within seconds: reachable for about 2 intervals, one interval
// before the first probe, probes every half interval, a FAILED entry
// re-probed every interval.
func Tune(iface string, interval time.Duration) error {
	ms := interval.Milliseconds()
	vals := map[string]string{
		"base_reachable_time_ms": strconv.FormatInt(2*ms, 10),
		"retrans_time_ms":        strconv.FormatInt(max(ms/2, 100), 10),
		"delay_first_probe_time": strconv.FormatInt(max((ms+999)/1000, 1), 10),
		"interval_probe_time_ms": strconv.FormatInt(ms, 10),
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		for k, v := range vals {
			p := filepath.Join("/proc/sys/net", fam, "neigh", iface, k)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("set %s: %w", p, err)
			}
		}
	}
	return nil
}

// stateNames names the NUD states, the first set bit winning.
var stateNames = []struct {
	bit  int
	name string
}{
	{netlink.NUD_FAILED, "failed"},
	{netlink.NUD_REACHABLE, "reachable"},
	{netlink.NUD_STALE, "stale"},
	{netlink.NUD_DELAY, "delay"},
	{netlink.NUD_PROBE, "probe"},
	{netlink.NUD_INCOMPLETE, "incomplete"},
	{netlink.NUD_PERMANENT, "permanent"},
	{netlink.NUD_NOARP, "noarp"},
}

// StateName names a neighbor state (NUD_*) for status and logs.
func StateName(s int) string {
	for _, n := range stateNames {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return "none"
}

// Answering tells whether a state shows the router answered (or is
// configured so); FAILED says it did not; others tell nothing yet.
func Answering(s int) (up, known bool) {
	switch {
	case s&netlink.NUD_FAILED != 0:
		return false, true
	case s&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0:
		return true, true
	}
	return false, false
}

func family(a netip.Addr) int {
	if a.Is6() {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

// Manage makes a a managed entry on link ifindex, unless it is one
// already.
func Manage(ifindex int, a netip.Addr) error {
	fam := family(a)
	existing, _ := netlink.NeighList(ifindex, fam)
	for _, n := range existing {
		if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a && n.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
			return nil
		}
	}
	return netlink.NeighSet(&netlink.Neigh{
		LinkIndex: ifindex,
		Family:    fam,
		IP:        net.IP(a.AsSlice()),
		State:     netlink.NUD_NONE,
		FlagsExt:  netlink.NTF_EXT_MANAGED,
	})
}

// Forget deletes a's entry on link ifindex (the kernel makes an ordinary
// one again if traffic needs it); none there is no error.
func Forget(ifindex int, a netip.Addr) error {
	err := netlink.NeighDel(&netlink.Neigh{LinkIndex: ifindex, Family: family(a), IP: net.IP(a.AsSlice())})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// Subscription is a netlink subscription to the neighbor entries,
// existing ones first.
type Subscription struct {
	ch   chan netlink.NeighUpdate
	done chan struct{}
	errc chan error
}

// Subscribe starts a subscription; Close ends it.
func Subscribe() (*Subscription, error) {
	s := &Subscription{ch: make(chan netlink.NeighUpdate, 256), done: make(chan struct{}), errc: make(chan error, 1)}
	err := netlink.NeighSubscribeWithOptions(s.ch, s.done, netlink.NeighSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(e error) {
			select {
			case s.errc <- e:
			default:
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Follow calls f with each new state of an address on link ifindex until
// ctx ends or the subscription stops; it returns the subscription's error
// if it failed (resubscribe then).
func (s *Subscription) Follow(ctx context.Context, ifindex int, f func(a netip.Addr, state int)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.errc:
			return err
		case u, ok := <-s.ch:
			if !ok {
				return nil
			}
			if u.LinkIndex != ifindex || u.Type != unix.RTM_NEWNEIGH {
				continue
			}
			a, ok := netip.AddrFromSlice(u.IP)
			if !ok {
				continue
			}
			f(a.Unmap(), u.State)
		}
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	close(s.done)
	for range s.ch { // drain until the subscription closes it
	}
}
