package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bwxchange/bwx/shared/clock"
)

// The writer sends route changes in batches: many RTM_NEWROUTE,
// RTM_DELROUTE and next-hop object (RTM_NEWNEXTHOP, RTM_DELNEXTHOP)
// messages per sendmsg, NLM_F_ACK on the last one only. The
// kernel handles a whole batch inside sendmsg, answers every failed
// message with an error (it does so without NLM_F_ACK) and the last one
// with an ack; so a batch costs two system calls instead of two per route,
// and each error still maps to its route by sequence number. netlink.Handle
// has no batching and allocates a 64 KiB receive buffer per request; see
// the benchmark for what this buys.

type opKind uint8

const (
	opAdd       opKind = iota // NLM_F_CREATE|NLM_F_EXCL: never overwrites a route
	opReplace                 // NLM_F_CREATE|NLM_F_REPLACE: change in place
	opDelete                  // the route (any next hops)
	opNHAdd                   // a next-hop object, never over an existing id
	opNHReplace               // a next-hop group's members, in place
	opNHDelete
)

func (k opKind) String() string {
	return [...]string{"add", "replace", "delete", "add next-hop object", "replace next-hop group", "delete next-hop object"}[k]
}

// op is one request: a route (r) or a next-hop object (nh).
type op struct {
	kind opKind
	r    kroute
	nh   nhObj
}

const (
	// batchBytes and maxBatchMsgs bound one sendmsg: below the default
	// socket send buffer, and few enough that every message's error reply
	// fits the receive buffer (a lost reply would leave a route's fate
	// unknown).
	batchBytes   = 64 << 10
	maxBatchMsgs = 1024
	rcvBufSize   = 8 << 20
	// replyTimeout bounds the wait for replies; the kernel has queued them
	// all by the time sendmsg returns, so it only guards against bugs.
	replyTimeout = 10 * time.Second
)

var errDumpInterrupted = errors.New("route dump interrupted by a concurrent change")

var errRepliesLost = errors.New("kernel replies lost (netlink receive buffer overrun): state unknown until the next sync")

// kernelError is an errno from the kernel with its extended-ack message.
type kernelError struct {
	errno unix.Errno
	msg   string
}

func (e *kernelError) Error() string {
	if e.msg != "" {
		return e.errno.Error() + ": " + e.msg
	}
	return e.errno.Error()
}

func (e *kernelError) Unwrap() error { return e.errno }

type writer struct {
	fd      int
	seq     uint32
	table   uint32
	proto   uint8
	maxMsgs int
	sbuf    []byte
	rbuf    []byte
}

// openWriter opens a NETLINK_ROUTE socket in ns (the current namespace if
// ns is not open).
func openWriter(ns netns.NsHandle, table uint32, proto uint8) (*writer, error) {
	var fd int
	err := inNetns(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	w := &writer{fd: fd, table: table, proto: proto, seq: uint32(clock.Now().UnixNano())}
	if err := w.setup(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return w, nil
}

func (w *writer) setup() error {
	if err := unix.Bind(w.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	// Error replies carry only the failed message's header (not the whole
	// request) plus the kernel's message text.
	if err := unix.SetsockoptInt(w.fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(w.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1); err != nil {
		return err
	}
	// Dumps filtered by the kernel (table and protocol) instead of every
	// route of every table filtered here.
	if err := unix.SetsockoptInt(w.fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return err
	}
	// FORCE needs CAP_NET_ADMIN, which route changes need anyway; without
	// it the buffer is capped by net.core.rmem_max and batches shrink.
	if err := unix.SetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufSize); err != nil {
		_ = unix.SetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufSize)
	}
	rcv, err := unix.GetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return err
	}
	// An error reply costs about 1 KiB of receive buffer (skb overhead).
	w.maxMsgs = min(maxBatchMsgs, max(8, rcv/2048))
	tv := unix.NsecToTimeval(replyTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(w.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	if err := unix.SetsockoptTimeval(w.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return err
	}
	w.sbuf = make([]byte, 0, batchBytes+4096)
	w.rbuf = make([]byte, 64<<10)
	return nil
}

func (w *writer) close() error { return unix.Close(w.fd) }

// run applies ops in order and returns one error per op (nil: done). The
// second result is set when the socket itself failed; ops not sent then
// carry that error.
func (w *writer) run(ops []op) ([]error, error) {
	errs := make([]error, len(ops))
	for start := 0; start < len(ops); {
		n, err := w.batch(ops[start:], errs[start:])
		if err != nil {
			for i := start; i < len(ops); i++ {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			return errs, err
		}
		start += n
	}
	return errs, nil
}

// batch sends as many of ops as fit one batch, fills their errors, and
// returns how many it sent.
func (w *writer) batch(ops []op, errs []error) (int, error) {
	b := w.sbuf[:0]
	first := w.seq + 1
	last := 0
	n := 0
	for n < len(ops) && n < w.maxMsgs && len(b) < batchBytes {
		w.seq++
		last = len(b)
		if ops[n].kind >= opNHAdd {
			b = appendNHMsg(b, ops[n], w.seq, w.proto)
		} else {
			b = appendRouteMsg(b, ops[n], w.seq, w.table, w.proto)
		}
		n++
	}
	// Ask for an ack on the last message only: it tells when the batch is
	// done; failures are answered anyway.
	flags := binary.NativeEndian.Uint16(b[last+6:])
	binary.NativeEndian.PutUint16(b[last+6:], flags|unix.NLM_F_ACK)
	w.sbuf = b
	lastSeq := w.seq

	for {
		err := unix.Sendto(w.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("netlink send: %w", err)
		}
		break
	}

	lost := false
	for done := false; !done; {
		m, _, err := unix.Recvfrom(w.fd, w.rbuf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ENOBUFS:
			lost = true
			continue
		case err == unix.EAGAIN:
			return n, fmt.Errorf("netlink: no reply within %v", replyTimeout)
		case err != nil:
			return n, fmt.Errorf("netlink receive: %w", err)
		}
		done = parseReplies(w.rbuf[:m], first, lastSeq, errs)
	}
	if lost {
		for i := range n {
			if errs[i] == nil {
				errs[i] = errRepliesLost
			}
		}
	}
	return n, nil
}

// parseReplies records the errors in buf for sequence numbers first..last
// and reports whether the reply to last was among them.
func parseReplies(buf []byte, first, last uint32, errs []error) bool {
	done := false
	for len(buf) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(buf))
		if l < unix.SizeofNlMsghdr || l > len(buf) {
			break
		}
		typ := binary.NativeEndian.Uint16(buf[4:])
		flags := binary.NativeEndian.Uint16(buf[6:])
		seq := binary.NativeEndian.Uint32(buf[8:])
		body := buf[unix.SizeofNlMsghdr:l]
		buf = buf[min(len(buf), nlmAlign(l)):]
		if typ != unix.NLMSG_ERROR || len(body) < 4 || seq-first > last-first {
			continue
		}
		if errno := -int32(binary.NativeEndian.Uint32(body)); errno != 0 {
			errs[seq-first] = &kernelError{errno: unix.Errno(errno), msg: extAckMsg(body, flags)}
		}
		if seq == last {
			done = true
		}
	}
	return done
}

// extAckMsg returns NLMSGERR_ATTR_MSG of an error reply, if any.
func extAckMsg(body []byte, flags uint16) string {
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(body) < 4+unix.SizeofNlMsghdr {
		return ""
	}
	off := 4 + unix.SizeofNlMsghdr
	if flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + nlmAlign(int(binary.NativeEndian.Uint32(body[4:])))
	}
	for off+4 <= len(body) {
		al := int(binary.NativeEndian.Uint16(body[off:]))
		at := binary.NativeEndian.Uint16(body[off+2:])
		if al < 4 || off+al > len(body) {
			break
		}
		if at == unix.NLMSGERR_ATTR_MSG {
			return unix.ByteSliceToString(body[off+4 : off+al])
		}
		off += nlmAlign(al)
	}
	return ""
}

func nlmAlign(n int) int { return (n + 3) &^ 3 }

// appendRouteMsg appends one route request for o with sequence number seq.
func appendRouteMsg(b []byte, o op, seq, table uint32, proto uint8) []byte {
	ne := binary.NativeEndian
	start := len(b)
	var typ, flags uint16
	scope, rtype := uint8(unix.RT_SCOPE_UNIVERSE), o.r.typ
	switch o.kind {
	case opAdd:
		typ, flags = unix.RTM_NEWROUTE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_EXCL
	case opReplace:
		typ, flags = unix.RTM_NEWROUTE, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_REPLACE
	case opDelete:
		// Match any scope and type; the protocol in the header makes the
		// kernel delete only a route of ours.
		typ, flags = unix.RTM_DELROUTE, unix.NLM_F_REQUEST
		scope, rtype = unix.RT_SCOPE_NOWHERE, unix.RTN_UNSPEC
	}
	b = ne.AppendUint32(b, 0) // length, set below
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, flags)
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // port id: the kernel fills it in

	dst := o.r.prefix.Addr()
	family := uint8(unix.AF_INET6)
	if dst.Is4() {
		family = unix.AF_INET
	}
	rtmTable := uint8(unix.RT_TABLE_UNSPEC) // RTA_TABLE carries it
	if table < 256 {
		rtmTable = uint8(table)
	}
	b = append(b, family, uint8(o.r.prefix.Bits()), 0, 0, rtmTable, proto, scope, rtype)
	b = ne.AppendUint32(b, 0) // rtm_flags

	b = appendAttrU32(b, unix.RTA_TABLE, table)
	b = appendAttr(b, unix.RTA_DST, dst.AsSlice())
	b = appendAttrU32(b, unix.RTA_PRIORITY, o.r.metric)
	if o.kind != opDelete && o.r.nhid != 0 {
		b = appendAttrU32(b, rtaNHID, o.r.nhid)
	} else if o.kind != opDelete {
		switch hops := o.r.hops; len(hops) {
		case 0:
		case 1:
			b = appendAttr(b, unix.RTA_GATEWAY, hops[0].gw.AsSlice())
			b = appendAttrU32(b, unix.RTA_OIF, uint32(hops[0].ifindex))
		default:
			mp := len(b)
			b = ne.AppendUint16(b, 0)
			b = ne.AppendUint16(b, unix.RTA_MULTIPATH)
			for _, h := range hops {
				nh := len(b)
				b = ne.AppendUint16(b, 0) // rtnh_len
				b = append(b, 0, h.weight)
				b = ne.AppendUint32(b, uint32(int32(h.ifindex)))
				b = appendAttr(b, unix.RTA_GATEWAY, h.gw.AsSlice())
				ne.PutUint16(b[nh:], uint16(len(b)-nh))
			}
			ne.PutUint16(b[mp:], uint16(len(b)-mp))
		}
	}
	ne.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for range nlmAlign(l) - l {
		b = append(b, 0)
	}
	return b
}

func appendAttrU32(b []byte, typ uint16, v uint32) []byte {
	b = binary.NativeEndian.AppendUint16(b, 8)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.NativeEndian.AppendUint32(b, v)
}

// inNetns runs fn on an OS thread inside ns (or the current namespace if
// ns is not open), so sockets fn opens belong to ns. A thread that cannot
// be moved back is not unlocked, so the runtime discards it.
func inNetns(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("leave network namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// dump lists the routes of our protocol in our table of one family. The
// library's RouteListFiltered does the same request but builds a large
// netlink.Route per route; this parses only what a kroute holds.
func (w *writer) dump(family uint8, fn func(kroute)) error {
	ne := binary.NativeEndian
	w.seq++
	b := w.sbuf[:0]
	b = ne.AppendUint32(b, 0)
	b = ne.AppendUint16(b, unix.RTM_GETROUTE)
	b = ne.AppendUint16(b, unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	b = ne.AppendUint32(b, w.seq)
	b = ne.AppendUint32(b, 0)
	rtmTable := uint8(unix.RT_TABLE_UNSPEC)
	if w.table < 256 {
		rtmTable = uint8(w.table)
	}
	b = append(b, family, 0, 0, 0, rtmTable, w.proto, 0, 0)
	b = ne.AppendUint32(b, 0)
	b = appendAttrU32(b, unix.RTA_TABLE, w.table)
	ne.PutUint32(b, uint32(len(b)))
	w.sbuf = b
	return w.dumpReq(b, w.seq, func(typ uint16, body []byte) {
		if typ != unix.RTM_NEWROUTE {
			return
		}
		if kr, ok := parseRoute(body, w.table, w.proto); ok {
			fn(kr)
		}
	})
}

// dumpReq sends the dump request b (sequence number seq) and hands every
// message of the answer to fn.
func (w *writer) dumpReq(b []byte, seq uint32, fn func(typ uint16, body []byte)) error {
	ne := binary.NativeEndian
	for {
		err := unix.Sendto(w.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink send: %w", err)
		}
		break
	}
	intr := false
	for {
		n, _, err := unix.Recvfrom(w.fd, w.rbuf, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return fmt.Errorf("netlink: no reply within %v", replyTimeout)
		case err != nil:
			return fmt.Errorf("netlink receive: %w", err)
		}
		buf := w.rbuf[:n]
		for len(buf) >= unix.SizeofNlMsghdr {
			l := int(ne.Uint32(buf))
			if l < unix.SizeofNlMsghdr || l > len(buf) {
				return errors.New("netlink: malformed reply")
			}
			typ, flags := ne.Uint16(buf[4:]), ne.Uint16(buf[6:])
			mseq := ne.Uint32(buf[8:])
			body := buf[unix.SizeofNlMsghdr:l]
			buf = buf[min(len(buf), nlmAlign(l)):]
			if mseq != seq {
				continue // a late reply to something else
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				intr = true
			}
			switch typ {
			case unix.NLMSG_DONE:
				if intr {
					return errDumpInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return errors.New("netlink: malformed error reply")
				}
				errno := unix.Errno(-int32(ne.Uint32(body)))
				if errno == 0 {
					continue
				}
				if errno == unix.ENOENT {
					return nil // the table does not exist (yet): nothing of ours
				}
				return &kernelError{errno: errno, msg: extAckMsg(body, flags)}
			default:
				fn(typ, body)
			}
		}
	}
}

// parseRoute decodes an RTM_NEWROUTE body, and reports whether it is a
// route of ours (the kernel filters, this makes sure).
func parseRoute(b []byte, table uint32, proto uint8) (kroute, bool) {
	ne := binary.NativeEndian
	if len(b) < unix.SizeofRtMsg {
		return kroute{}, false
	}
	family, dstLen, rtmTable, rtmProto, rtype := b[0], int(b[1]), uint32(b[4]), b[5], b[7]
	if ne.Uint32(b[8:])&unix.RTM_F_CLONED != 0 || rtmProto != proto {
		return kroute{}, false
	}
	kr := kroute{typ: rtype}
	var dst netip.Addr
	var gw netip.Addr
	oif := 0
	tbl := rtmTable
	for a := b[unix.SizeofRtMsg:]; len(a) >= 4; {
		al := int(ne.Uint16(a))
		at := ne.Uint16(a[2:]) &^ unix.NLA_F_NESTED
		if al < 4 || al > len(a) {
			return kroute{}, false
		}
		v := a[4:al]
		a = a[min(len(a), nlmAlign(al)):]
		switch at {
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(v)
		case unix.RTA_GATEWAY:
			gw, _ = netip.AddrFromSlice(v)
		case unix.RTA_OIF:
			if len(v) == 4 {
				oif = int(int32(ne.Uint32(v)))
			}
		case unix.RTA_PRIORITY:
			if len(v) == 4 {
				kr.metric = ne.Uint32(v)
			}
		case rtaNHID:
			if len(v) == 4 {
				kr.nhid = ne.Uint32(v)
			}
		case unix.RTA_TABLE:
			if len(v) == 4 {
				tbl = ne.Uint32(v)
			}
		case unix.RTA_MULTIPATH:
			for len(v) >= unix.SizeofRtNexthop {
				nl := int(ne.Uint16(v))
				if nl < unix.SizeofRtNexthop || nl > len(v) {
					break
				}
				h := khop{weight: v[3], ifindex: int(int32(ne.Uint32(v[4:])))}
				for na := v[unix.SizeofRtNexthop:nl]; len(na) >= 4; {
					nal := int(ne.Uint16(na))
					if nal < 4 || nal > len(na) {
						break
					}
					if ne.Uint16(na[2:]) == unix.RTA_GATEWAY {
						h.gw, _ = netip.AddrFromSlice(na[4:nal])
					}
					na = na[min(len(na), nlmAlign(nal)):]
				}
				kr.hops = append(kr.hops, h)
				v = v[min(len(v), nlmAlign(nl)):]
			}
		}
	}
	if tbl != table {
		return kroute{}, false
	}
	switch family {
	case unix.AF_INET:
		if !dst.IsValid() {
			dst = netip.IPv4Unspecified()
		}
	case unix.AF_INET6:
		if !dst.IsValid() {
			dst = netip.IPv6Unspecified()
		}
	default:
		return kroute{}, false
	}
	pfx, err := dst.Prefix(dstLen)
	if err != nil {
		return kroute{}, false
	}
	kr.prefix = pfx
	if kr.hops == nil && (gw.IsValid() || oif != 0) {
		kr.hops = []khop{{gw: gw, ifindex: oif}}
	}
	sortHops(kr.hops)
	return kr, true
}
