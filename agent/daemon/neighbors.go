package daemon

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

	"github.com/bwxchange/bwx/agent/fib"
	"golang.org/x/sys/unix"
)

// Seller's routers are watched through their neighbor entries on the
// exchange interface. The agent makes each next hop in use a "managed"
// entry (NTF_EXT_MANAGED, Linux >= 5.16): the kernel keeps resolving it,
// also when no traffic flows, and re-probes a FAILED one. With the
// interface's neighbor timers shortened (tuneNeighbors) a router that stops
// answering ARP/ND goes FAILED within a few seconds; the watch then marks
// it down in the FIB (its routes go, traffic takes the normal path), and up
// again when it answers.

// tuneNeighbors shortens the exchange interface's neighbor timers so that a
// dead next hop is found within seconds: reachable for about 2 intervals,
// one interval before the first probe, probes every half interval, a
// FAILED entry re-probed every interval.
func tuneNeighbors(iface string, interval time.Duration) error {
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

func nudName(s int) string {
	switch {
	case s&netlink.NUD_FAILED != 0:
		return "failed"
	case s&netlink.NUD_REACHABLE != 0:
		return "reachable"
	case s&netlink.NUD_STALE != 0:
		return "stale"
	case s&netlink.NUD_DELAY != 0:
		return "delay"
	case s&netlink.NUD_PROBE != 0:
		return "probe"
	case s&netlink.NUD_INCOMPLETE != 0:
		return "incomplete"
	case s&netlink.NUD_PERMANENT != 0:
		return "permanent"
	case s&netlink.NUD_NOARP != 0:
		return "noarp"
	}
	return "none"
}

// answering tells whether a state shows the router answered (or is
// configured so); FAILED says it did not; others tell nothing yet.
func answering(s int) (up, known bool) {
	switch {
	case s&netlink.NUD_FAILED != 0:
		return false, true
	case s&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0:
		return true, true
	}
	return false, false
}

func (r *Routing) link() (netlink.Link, error) {
	l, err := netlink.LinkByName(r.cfg.FIB.Interface)
	if err != nil {
		return nil, fmt.Errorf("exchange interface %q: %w", r.cfg.FIB.Interface, err)
	}
	return l, nil
}

// ensureNeighbors makes a managed neighbor entry for every next hop in use
// that has none yet, and removes the managed entries it made for next hops
// no longer in use (the kernel would keep probing them).
func (r *Routing) ensureNeighbors(inUse map[netip.Addr]bool) {
	l, err := r.link()
	if err != nil {
		r.log.Warn("neighbor entries", "error", err)
		return
	}
	r.mu.Lock()
	var unused []netip.Addr
	for a := range r.nbrState {
		if !inUse[a] {
			unused = append(unused, a)
			delete(r.nbrState, a)
			delete(r.down, a)
		}
	}
	r.mu.Unlock()
	for _, a := range unused {
		r.forgetNeighbor(l, a)
		// A mark of ours must not outlive the next hop's use: a later
		// trade through the same router starts afresh.
		r.fib.SetNextHopDown(a, false)
	}
	for a := range inUse {
		r.mu.Lock()
		_, known := r.nbrState[a]
		r.mu.Unlock()
		if known {
			continue
		}
		fam := netlink.FAMILY_V4
		if a.Is6() {
			fam = netlink.FAMILY_V6
		}
		existing, _ := netlink.NeighList(l.Attrs().Index, fam)
		managed := false
		for _, n := range existing {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a && n.FlagsExt&netlink.NTF_EXT_MANAGED != 0 {
				managed = true
			}
		}
		if !managed {
			err := netlink.NeighSet(&netlink.Neigh{
				LinkIndex: l.Attrs().Index,
				Family:    fam,
				IP:        net.IP(a.AsSlice()),
				State:     netlink.NUD_NONE,
				FlagsExt:  netlink.NTF_EXT_MANAGED,
			})
			if err != nil {
				r.log.Warn("cannot make a managed neighbor entry; a dead next hop is noticed only when traffic flows", "next_hop", a, "error", err)
			}
		}
		r.mu.Lock()
		if _, ok := r.nbrState[a]; !ok {
			r.nbrState[a] = "none"
		}
		r.mu.Unlock()
	}
}

// forgetNeighbor deletes a managed entry the agent made; the kernel makes
// an ordinary one again if traffic needs it.
func (r *Routing) forgetNeighbor(l netlink.Link, a netip.Addr) {
	fam := netlink.FAMILY_V4
	if a.Is6() {
		fam = netlink.FAMILY_V6
	}
	err := netlink.NeighDel(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: fam, IP: net.IP(a.AsSlice())})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		r.log.Debug("delete managed neighbor entry", "next_hop", a, "error", err)
	}
}

// forgetNeighbors deletes every managed entry the agent made (on stop,
// when the routes go too).
func (r *Routing) forgetNeighbors() {
	l, err := r.link()
	if err != nil {
		return
	}
	r.mu.Lock()
	var all []netip.Addr
	for a := range r.nbrState {
		all = append(all, a)
	}
	r.mu.Unlock()
	for _, a := range all {
		r.forgetNeighbor(l, a)
	}
}

// watchNeighbors follows the neighbor entries of the exchange interface
// and marks next hops in use down when their entry is FAILED and up when
// it is resolved again.
func (r *Routing) watchNeighbors(ctx context.Context) error {
	if err := tuneNeighbors(r.cfg.FIB.Interface, r.cfg.FIB.NeighborProbeInterval); err != nil {
		r.log.Warn("cannot shorten the neighbor timers of the exchange interface; a dead next hop is noticed later", "error", err)
	}
	for ctx.Err() == nil {
		l, err := r.link()
		if err != nil {
			return err
		}
		ch := make(chan netlink.NeighUpdate, 256)
		done := make(chan struct{})
		errc := make(chan error, 1)
		err = netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
			ListExisting: true,
			ErrorCallback: func(e error) {
				select {
				case errc <- e:
				default:
				}
			},
		})
		if err != nil {
			return err
		}
		r.followNeighbors(ctx, l.Attrs().Index, ch, errc)
		close(done)
		for range ch { // drain until the subscription closes it
		}
	}
	return nil
}

func (r *Routing) followNeighbors(ctx context.Context, ifindex int, ch <-chan netlink.NeighUpdate, errc <-chan error) {
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-errc:
			r.log.Warn("neighbor watch failed; resubscribing", "error", err)
			return
		case u, ok := <-ch:
			if !ok {
				return
			}
			if u.LinkIndex != ifindex || u.Type != unix.RTM_NEWNEIGH {
				continue
			}
			a, ok := netip.AddrFromSlice(u.IP)
			if !ok {
				continue
			}
			r.neighbor(a.Unmap(), u.State)
		}
	}
}

// neighbor applies one neighbor state of a next hop.
func (r *Routing) neighbor(a netip.Addr, state int) {
	r.mu.Lock()
	if !r.inUse[a] {
		r.mu.Unlock()
		return
	}
	r.nbrState[a] = nudName(state)
	up, known := answering(state)
	wasDown := r.down[a]
	if !known || up == !wasDown {
		// The FIB refuses a FAILED next hop by itself at a Sync; a
		// recovery must bring it back even if we never marked it.
		refused := false
		for _, f := range r.result.Refused {
			refused = refused || f.NextHop == a && f.Reason == fib.ReasonNeighborFailed
		}
		r.mu.Unlock()
		if known && up && refused {
			r.kick()
		}
		return
	}
	if up {
		delete(r.down, a)
	} else {
		r.down[a] = true
	}
	r.mu.Unlock()
	if up {
		r.log.Info("seller's router answers again on the LAN; its routes come back", "next_hop", a)
	} else {
		r.log.Warn("seller's router stopped answering on the LAN (neighbor FAILED); its routes are pulled", "next_hop", a)
	}
	res, err := r.fib.SetNextHopDown(a, !up)
	if err != nil {
		r.log.Error("fib: next hop change", "next_hop", a, "error", err)
	}
	if n := res.Changes(); n > 0 {
		r.log.Info("traded routes changed for a next hop", "next_hop", a, "added", len(res.Added), "changed", len(res.Changed), "removed", len(res.Removed))
	}
	// A sync brings the routes back when up, and refreshes what status and
	// metrics show as refused either way.
	r.kick()
}
