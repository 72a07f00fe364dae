package fib

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// repairDelay gathers a burst of events (a flush, a script) into one
	// reconciliation.
	repairDelay = 50 * time.Millisecond
	// resubscribeDelay paces resubscribing after the event socket failed
	// (usually an overrun during a large change).
	resubscribeDelay = 100 * time.Millisecond
	eventBufSize     = 8 << 20
)

// Watch repairs our routes until ctx is done or the FIB is closed: it
// listens to route, next-hop object, link and address events in the FIB's
// namespace and, shortly after someone deletes or changes one of our
// routes or deletes a next-hop object one uses, adds a route for a prefix
// we want, or the exchange interface or an address changes, it reconciles
// with the last desired state. It also reconciles every
// ResyncInterval. Nothing is repaired before the first Sync. It returns
// nil when ctx is done or the FIB is closed, and an error only if it
// cannot subscribe at all.
func (f *FIB) Watch(ctx context.Context) error {
	force := true
	sub, err := f.subscribe(&force)
	if err != nil {
		return err
	}
	defer func() { sub.close() }()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	arm := func() {
		if !armed {
			timer.Reset(repairDelay)
			armed = true
		}
	}
	// What changed before we listened is checked once.
	arm()
	ticker := time.NewTicker(f.cfg.ResyncInterval)
	defer ticker.Stop()
	var retry <-chan time.Time
	lost := func() {
		// Events may have been lost: resubscribe, then check.
		sub.close()
		retry = time.After(resubscribeDelay)
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.done:
			return nil
		case u, ok := <-sub.routes:
			if !ok {
				lost()
			} else if f.relevant(u) {
				arm()
			}
		case l, ok := <-sub.links:
			if !ok {
				lost()
			} else if l.Attrs() != nil && l.Attrs().Name == f.cfg.Interface {
				arm()
			}
		case _, ok := <-sub.addrs:
			if !ok {
				lost()
			} else {
				arm() // rare, and cheap to check
			}
		case id, ok := <-sub.nhDeleted:
			if !ok {
				lost()
			} else if _, used := slices.BinarySearch(f.snap.Load().objs, id); used {
				arm()
			}
		case <-retry:
			retry = nil
			if sub, err = f.subscribe(&force); err != nil {
				if errors.Is(err, ErrClosed) {
					return nil
				}
				f.log.Warn("fib: resubscribing to route events", "err", err)
				retry = time.After(time.Second)
				continue
			}
			arm()
		case <-timer.C:
			armed = false
			f.repair("repair")
		case <-ticker.C:
			f.repair("resync")
		}
	}
}

// subscription is the event channels of one Watch socket set. Nil
// channels (after close) block forever in a select.
type subscription struct {
	stop      chan struct{}
	routes    chan netlink.RouteUpdate
	links     chan netlink.LinkUpdate
	addrs     chan netlink.AddrUpdate
	nhDeleted chan uint32 // ids of our next-hop objects deleted; nil without them
}

// subscribe opens the event sockets in the FIB's namespace. force asks for
// a receive buffer above rmem_max; it is cleared when not permitted.
func (f *FIB) subscribe(force *bool) (*subscription, error) {
	// Under mu: Close must not release the namespace handle meanwhile.
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &subscription{}, ErrClosed
	}
	s := &subscription{
		stop:   make(chan struct{}),
		routes: make(chan netlink.RouteUpdate, 1024),
		links:  make(chan netlink.LinkUpdate, 64),
		addrs:  make(chan netlink.AddrUpdate, 64),
	}
	cb := func(err error) {
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			f.log.Debug("fib: event subscription ended", "err", err)
		}
	}
	opts := netlink.RouteSubscribeOptions{
		Namespace: &f.ns, ErrorCallback: cb,
		ReceiveBufferSize: eventBufSize, ReceiveBufferForceSize: *force,
	}
	err := netlink.RouteSubscribeWithOptions(s.routes, s.stop, opts)
	if *force && errors.Is(err, unix.EPERM) {
		// No CAP_NET_ADMIN for a buffer above rmem_max: take what we
		// may have. (The library leaks the failed socket: try once.)
		*force = false
		opts.ReceiveBufferForceSize = false
		err = netlink.RouteSubscribeWithOptions(s.routes, s.stop, opts)
	}
	if err != nil {
		close(s.stop)
		return &subscription{}, err
	}
	// On failure the library closes nothing it did not start: close the
	// channels it will never close, so close() can drain them all.
	if err := netlink.LinkSubscribeWithOptions(s.links, s.stop, netlink.LinkSubscribeOptions{
		Namespace: &f.ns, ErrorCallback: cb,
	}); err != nil {
		close(s.links)
		close(s.addrs)
		s.close()
		return &subscription{}, err
	}
	if err := netlink.AddrSubscribeWithOptions(s.addrs, s.stop, netlink.AddrSubscribeOptions{
		Namespace: &f.ns, ErrorCallback: cb,
	}); err != nil {
		close(s.addrs)
		s.close()
		return &subscription{}, err
	}
	if f.nh6 {
		nh := make(chan uint32, 1024)
		if err := subscribeNexthops(f.ns, uint8(f.cfg.Protocol), nh, s.stop, *force); err != nil {
			s.close()
			return &subscription{}, err
		}
		s.nhDeleted = nh
	}
	return s, nil
}

// subscribeNexthops sends the ids of next-hop objects of protocol proto
// that are deleted in ns to out, until stop is closed; then, or when the
// socket fails (an overrun: events were lost), it closes out. The library
// has no subscription to these events.
func subscribeNexthops(ns netns.NsHandle, proto uint8, out chan<- uint32, stop <-chan struct{}, force bool) error {
	var fd int
	err := inNetns(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return fmt.Errorf("next-hop events: %w", err)
	}
	err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.RTNLGRP_NEXTHOP)
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("next-hop events: %w", err)
	}
	if !force || unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, eventBufSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, eventBufSize)
	}
	// Through the runtime's poller, so that Close ends a pending Read.
	file := os.NewFile(uintptr(fd), "netlink-nexthop")
	go func() {
		<-stop
		file.Close()
	}()
	go func() {
		defer close(out)
		ne := binary.NativeEndian
		buf := make([]byte, 64<<10)
		for {
			n, err := file.Read(buf)
			if err != nil {
				return // closed, or ENOBUFS: the caller resubscribes
			}
			for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
				l := int(ne.Uint32(b))
				if l < unix.SizeofNlMsghdr || l > len(b) {
					break
				}
				typ, body := ne.Uint16(b[4:]), b[unix.SizeofNlMsghdr:l]
				b = b[min(len(b), nlmAlign(l)):]
				if typ != unix.RTM_DELNEXTHOP {
					continue
				}
				if o, ok := parseNexthop(body); ok && o.proto == proto {
					select {
					case out <- o.id:
					case <-stop:
						return
					}
				}
			}
		}
	}()
	return nil
}

// close stops the sockets. The library's readers block on full channels,
// so drain each until its reader closes it.
func (s *subscription) close() {
	if s.stop == nil {
		return
	}
	close(s.stop)
	for range s.routes {
	}
	for range s.links {
	}
	for range s.addrs {
	}
	if s.nhDeleted != nil {
		for range s.nhDeleted {
		}
	}
	*s = subscription{}
}

// relevant tells whether a route event may concern one of our routes.
func (f *FIB) relevant(u netlink.RouteUpdate) bool {
	if u.Table != f.cfg.Table {
		return false
	}
	kr, ok := fromNetlink(u.Route)
	if !ok {
		return false
	}
	s := f.snap.Load()
	if int(u.Protocol) != f.cfg.Protocol {
		// Another protocol's route for a prefix we want may have
		// replaced ours, or (deleted) may free a key we were refused.
		return s.isDesired(kr.prefix)
	}
	w, ok := s.wanted(kr.prefix)
	if u.Type == unix.RTM_DELROUTE {
		return ok
	}
	// Our own changes match what we want; anything else is someone else's.
	return !ok || !w.equal(kr)
}

// repair reconciles with the last desired state, if any.
func (f *FIB) repair(why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.desired == nil {
		return
	}
	// Someone else changed the table, or may have without an event:
	// read it again.
	f.known = false
	res, err := f.syncLocked(why)
	if res.Changes() > 0 {
		f.stats.repairs.Add(1)
	}
	if err != nil {
		f.log.Error("fib: "+why+" failed", "err", err)
	}
}
