package daemon

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/bwxchange/bwx/agent/fib"
	"github.com/bwxchange/bwx/agent/fib/neigh"
)

// Seller's routers are watched through their neighbor entries on the
// exchange interface (agent/fib/neigh: managed entries, short timers): a
// router that stops answering ARP/ND goes FAILED within a few seconds; the
// watch then marks it down in the FIB (its routes go, traffic takes the
// normal path), and up again when it answers.

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
		if err := neigh.Manage(l.Attrs().Index, a); err != nil {
			r.log.Warn("cannot make a managed neighbor entry; a dead next hop is noticed only when traffic flows", "next_hop", a, "error", err)
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
	if err := neigh.Forget(l.Attrs().Index, a); err != nil {
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
	if err := neigh.Tune(r.cfg.FIB.Interface, r.cfg.FIB.NeighborProbeInterval); err != nil {
		r.log.Warn("cannot shorten the neighbor timers of the exchange interface; a dead next hop is noticed later", "error", err)
	}
	for ctx.Err() == nil {
		l, err := r.link()
		if err != nil {
			return err
		}
		sub, err := neigh.Subscribe()
		if err != nil {
			return err
		}
		if err := sub.Follow(ctx, l.Attrs().Index, r.neighbor); err != nil {
			r.log.Warn("neighbor watch failed; resubscribing", "error", err)
		}
		sub.Close()
	}
	return nil
}

// neighbor applies one neighbor state of a next hop.
func (r *Routing) neighbor(a netip.Addr, state int) {
	r.mu.Lock()
	if !r.inUse[a] {
		r.mu.Unlock()
		return
	}
	r.nbrState[a] = neigh.StateName(state)
	up, known := neigh.Answering(state)
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
