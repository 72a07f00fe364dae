package routeserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
)

// rawPeer is a BGP speaker written for misbehaving: it writes whatever
// bytes the test gives it on an established session. It speaks IPv4
// unicast with four-octet ASNs, sends a KEEPALIVE every 3 s and reads
// (and drops) what the route server sends unless told to stop reading.
type rawPeer struct {
	t      *testing.T
	asn    uint32
	addr   netip.Addr
	conn   net.Conn
	done   chan struct{} // closed when the session is gone
	once   sync.Once
	mu     sync.Mutex
	reason string // why it is gone
	noRead chan struct{}
}

// dialRaw opens a session from h to the route server; rcvbuf > 0 sets
// the socket's receive buffer (a small TCP window).
func dialRaw(t *testing.T, h *labnet.Host, asn uint32, rcvbuf int) (*rawPeer, error) {
	var conn net.Conn
	err := h.Do(func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			if rcvbuf == 0 {
				return nil
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(rs4, 179).String())
		return err
	})
	if err != nil {
		return nil, err
	}
	p := &rawPeer{t: t, asn: asn, addr: h.Addr4(), conn: conn, done: make(chan struct{}), noRead: make(chan struct{})}
	open := bgp.NewBGPOpenMessage(uint16(min(asn, asTrans)), 9, p.addr.String(), []bgp.OptionParameterInterface{
		bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
			bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
			bgp.NewCapFourOctetASNumber(asn),
		}),
	})
	if err := p.sendMsg(open); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(clock.Now().Add(5 * time.Second))
	for gotOpen := false; ; {
		m, err := readMsg(conn)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		switch b := m.Body.(type) {
		case *bgp.BGPOpen:
			gotOpen = true
			if err := p.sendMsg(bgp.NewBGPKeepAliveMessage()); err != nil {
				conn.Close()
				return nil, err
			}
		case *bgp.BGPNotification:
			conn.Close()
			return nil, fmt.Errorf("handshake: notification %v", bgp.NewNotificationErrorCode(b.ErrorCode, b.ErrorSubcode))
		case *bgp.BGPKeepAlive:
			if gotOpen {
				conn.SetReadDeadline(time.Time{})
				go p.reader()
				go p.keepalive()
				t.Cleanup(p.close)
				return p, nil
			}
		}
	}
}

// mustDialRaw retries dialRaw until a session is up (GoBGP holds a
// session idle for 5 s after it went down).
func mustDialRaw(t *testing.T, h *labnet.Host, asn uint32, rcvbuf int) *rawPeer {
	t.Helper()
	var p *rawPeer
	eventually(t, waitBGP, fmt.Sprintf("AS%d's raw session up", asn), func() string {
		var err error
		if p, err = dialRaw(t, h, asn, rcvbuf); err != nil {
			time.Sleep(500 * time.Millisecond)
			return err.Error()
		}
		return ""
	})
	return p
}

func readMsg(r io.Reader) (*bgp.BGPMessage, error) {
	hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < bgp.BGP_HEADER_LENGTH {
		return nil, fmt.Errorf("message length %d", n)
	}
	buf := make([]byte, n)
	copy(buf, hdr)
	if _, err := io.ReadFull(r, buf[bgp.BGP_HEADER_LENGTH:]); err != nil {
		return nil, err
	}
	return bgp.ParseBGPMessage(buf)
}

func (p *rawPeer) sendMsg(m *bgp.BGPMessage) error {
	b, err := m.Serialize()
	if err != nil {
		return err
	}
	return p.send(b)
}

func (p *rawPeer) send(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conn.SetWriteDeadline(clock.Now().Add(5 * time.Second))
	_, err := p.conn.Write(b)
	return err
}

func (p *rawPeer) gone(reason string) {
	p.once.Do(func() {
		p.mu.Lock()
		p.reason = reason
		p.mu.Unlock()
		close(p.done)
		p.conn.Close()
	})
}

func (p *rawPeer) close() { p.gone("closed by the test") }

func (p *rawPeer) reader() {
	for {
		select {
		case <-p.noRead:
			return // the socket's buffer fills; keepalive notices the end
		default:
		}
		p.conn.SetReadDeadline(clock.Now().Add(200 * time.Millisecond))
		m, err := readMsg(p.conn)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			continue
		case err != nil:
			p.gone("read: " + err.Error())
			return
		}
		if n, ok := m.Body.(*bgp.BGPNotification); ok {
			p.gone("notification: " + bgp.NewNotificationErrorCode(n.ErrorCode, n.ErrorSubcode).String())
			return
		}
	}
}

func (p *rawPeer) keepalive() {
	tk := time.NewTicker(3 * time.Second)
	defer tk.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tk.C:
		}
		if err := p.sendMsg(bgp.NewBGPKeepAliveMessage()); err != nil {
			p.gone("write: " + err.Error())
			return
		}
	}
}

func (p *rawPeer) stopReading() { close(p.noRead) }

// waitGone waits until the route server ends the session.
func (p *rawPeer) waitGone(timeout time.Duration) string {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("AS%d's session still up after %v", p.asn, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason
}

// Hand-made UPDATE parts.
func rawAttr(flags bgp.BGPAttrFlag, typ bgp.BGPAttrType, v []byte) []byte {
	if len(v) > 255 {
		flags |= bgp.BGP_ATTR_FLAG_EXTENDED_LENGTH
		return append([]byte{byte(flags), byte(typ), byte(len(v) >> 8), byte(len(v))}, v...)
	}
	return append([]byte{byte(flags), byte(typ), byte(len(v))}, v...)
}

func rawASPath(asns ...uint32) []byte {
	var v []byte
	for len(asns) > 0 {
		n := min(len(asns), 255)
		v = append(v, bgp.BGP_ASPATH_ATTR_TYPE_SEQ, byte(n))
		for _, a := range asns[:n] {
			v = binary.BigEndian.AppendUint32(v, a)
		}
		asns = asns[n:]
	}
	return rawAttr(bgp.BGP_ATTR_FLAG_TRANSITIVE, bgp.BGP_ATTR_TYPE_AS_PATH, v)
}

func (p *rawPeer) baseAttrs(path ...uint32) []byte {
	b := rawAttr(bgp.BGP_ATTR_FLAG_TRANSITIVE, bgp.BGP_ATTR_TYPE_ORIGIN, []byte{0})
	b = append(b, rawASPath(path...)...)
	a := p.addr.As4()
	return append(b, rawAttr(bgp.BGP_ATTR_FLAG_TRANSITIVE, bgp.BGP_ATTR_TYPE_NEXT_HOP, a[:])...)
}

func rawNLRI(ps ...string) []byte {
	var b []byte
	for _, s := range ps {
		pfx := netip.MustParsePrefix(s)
		a := pfx.Addr().As4()
		b = append(b, byte(pfx.Bits()))
		b = append(b, a[:(pfx.Bits()+7)/8]...)
	}
	return b
}

// rawUpdate frames an UPDATE; it fails the test if it exceeds 4096 bytes.
func rawUpdate(t *testing.T, withdrawn, attrs, nlri []byte) []byte {
	t.Helper()
	body := binary.BigEndian.AppendUint16(nil, uint16(len(withdrawn)))
	body = append(body, withdrawn...)
	body = binary.BigEndian.AppendUint16(body, uint16(len(attrs)))
	body = append(body, attrs...)
	body = append(body, nlri...)
	n := bgp.BGP_HEADER_LENGTH + len(body)
	if n > bgp.BGP_MAX_MESSAGE_LENGTH {
		t.Fatalf("UPDATE of %d bytes", n)
	}
	msg := bytes.Repeat([]byte{0xff}, 16)
	msg = binary.BigEndian.AppendUint16(msg, uint16(n))
	msg = append(msg, bgp.BGP_MSG_UPDATE)
	return append(msg, body...)
}

// syncBuffer is a log sink the test reads while the route server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A member's router misbehaves in every way we know while two others
// (a seller and a BIRD buyer with a trade) are served: malformed
// UPDATEs, a huge AS_PATH, an attribute flood, a prefix flood, a session
// that stops reading and one that flaps every second.
func TestLabMisbehavingPeer(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	var logs syncBuffer
	l := newRSLab(t)
	l.config = func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		// The bad member's three closes below may dampen it too; the
		// flapper's are 6 s apart (GoBGP's idle hold and 1 s up).
		c.FlapLimit, c.FlapWindow, c.FlapDamp = 3, 30*time.Second, 15*time.Second
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("route server log:\n%s", logs.String())
		}
	})
	const sellerASN, buyerASN, badASN, flapASN = 64501, 64502, 64666, 64667
	sh, bh, xh, fh := l.host("seller", 11), l.host("buyer", 12), l.host("bad", 66), l.host("flapper", 67)
	l.checker.register(sellerASN, "198.51.100.0/24", "198.51.101.0/24", "10.20.0.0/16")
	l.checker.register(badASN, "203.0.113.0/24", "203.0.113.128/25")
	l.member(sellerASN, sh, Member{MaxPrefixes: 100})
	l.member(buyerASN, bh, Member{MaxPrefixes: 100})
	l.member(badASN, xh, Member{MaxPrefixes: 10})
	l.member(flapASN, fh, Member{MaxPrefixes: 10})
	// Small TCP buffers on the route server's side, so a peer that does
	// not read fills them with a few kilobytes.
	if err := l.rsHost.SetSysctl("net.ipv4.tcp_wmem", "4096 8192 16384"); err != nil {
		t.Fatal(err)
	}
	trade1 := Trade{ID: 1, BuyerASN: buyerASN, SellerASN: sellerASN, Prefixes: pfxs("198.51.100.0/24"), NextHop4: sh.Addr4()}
	l.startRS([]Trade{trade1})
	l.bird(sh, sellerASN, false, "198.51.100.0/24", "198.51.101.0/24", "10.20.0.0/16")
	buyer := l.bird(bh, buyerASN, false)
	waitAccepted(t, l.rs, sellerASN, 3)
	routerHas(t, "buyer", buyer.routes, "198.51.100.0/24", sh.Addr4())
	ctx := context.Background()

	// healthy: the good members' four sessions are up, never went down,
	// and the buyer has its trade.
	healthy := func(what string) {
		t.Helper()
		ss, err := l.rs.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if (s.ASN == sellerASN || s.ASN == buyerASN) && !s.Established() {
				t.Errorf("%s: AS%d %v is %s", what, s.ASN, s.Address, s.State)
			}
		}
		for _, c := range l.rs.SessionsClosed() {
			if c.ASN == sellerASN || c.ASN == buyerASN {
				t.Errorf("%s: a good member's session closed: %+v", what, c)
			}
		}
		routerHas(t, "buyer", buyer.routes, "198.51.100.0/24", sh.Addr4())
		if !strings.Contains(buyer.protocolInfo("rs4"), "Established") {
			t.Errorf("%s: buyer's BIRD session: %s", what, buyer.protocolInfo("rs4"))
		}
	}
	received := func(p string) (ReceivedRoute, bool) {
		for _, r := range l.rs.Received(badASN) {
			if r.Prefix.String() == p {
				return r, true
			}
		}
		return ReceivedRoute{}, false
	}
	closedFor := func(asn uint32, reason string) uint64 {
		var n uint64
		for _, c := range l.rs.SessionsClosed() {
			if c.ASN == asn && strings.Contains(c.Reason, reason) {
				n += c.Count
			}
		}
		return n
	}
	waitLog := func(what, substr string) {
		t.Helper()
		eventually(t, waitBGP, what, func() string {
			if !strings.Contains(logs.String(), substr) {
				return "no log line with " + substr
			}
			return ""
		})
	}

	bad := mustDialRaw(t, xh, badASN, 0)
	send := func(b []byte) {
		t.Helper()
		if err := bad.send(b); err != nil {
			t.Fatal(err)
		}
	}
	send(rawUpdate(t, nil, bad.baseAttrs(badASN), rawNLRI("203.0.113.0/24")))
	eventually(t, waitBGP, "the bad member's good route", func() string {
		if r, ok := received("203.0.113.0/24"); !ok || !r.Accepted {
			return fmt.Sprintf("%+v", l.rs.Received(badASN))
		}
		return ""
	})

	t.Run("attribute length", func(t *testing.T) {
		// ORIGIN of length 2: RFC 7606 says treat-as-withdraw, and GoBGP
		// does so (it sets treat-as-withdraw on peers added by API): the
		// route goes, the session stays.
		attrs := append(rawAttr(bgp.BGP_ATTR_FLAG_TRANSITIVE, bgp.BGP_ATTR_TYPE_ORIGIN, []byte{0, 0}), bad.baseAttrs(badASN)[4:]...)
		send(rawUpdate(t, nil, attrs, rawNLRI("203.0.113.0/24")))
		eventually(t, waitBGP, "treated as withdraw", func() string {
			if r, ok := received("203.0.113.0/24"); ok {
				return fmt.Sprintf("still has %+v", r)
			}
			return ""
		})
		waitLog("GoBGP's log of it", "treated as withdraw")
		select {
		case <-bad.done:
			t.Fatalf("session closed: %s", bad.reason)
		case <-time.After(time.Second):
		}
		healthy("after a bad attribute length")
	})

	t.Run("huge AS path", func(t *testing.T) {
		// 1,000 ASNs (2,000 four-octet ASNs do not fit in a 4,096-byte
		// UPDATE): GoBGP takes it, our import rejects it.
		path := make([]uint32, 1000)
		for i := range path {
			path[i] = badASN
		}
		send(rawUpdate(t, nil, bad.baseAttrs(path...), rawNLRI("203.0.113.0/24")))
		eventually(t, waitBGP, "the long AS path rejected", func() string {
			if r, ok := received("203.0.113.0/24"); !ok || r.Accepted || r.Reason != ReasonASPathTooLong || len(r.ASPath) != 1000 {
				return fmt.Sprintf("%+v", l.rs.Received(badASN))
			}
			return ""
		})
		// One ASN under the limit is fine.
		send(rawUpdate(t, nil, bad.baseAttrs(path[:MaxASPathLen]...), rawNLRI("203.0.113.0/24")))
		eventually(t, waitBGP, "a 64-ASN path accepted", func() string {
			if r, ok := received("203.0.113.0/24"); !ok || !r.Accepted {
				return fmt.Sprintf("%+v", l.rs.Received(badASN))
			}
			return ""
		})
		healthy("after a huge AS path")
	})

	t.Run("attribute flood", func(t *testing.T) {
		// 120 unknown optional transitive attributes and 600 communities:
		// GoBGP keeps them in its Adj-RIB-In (at most 4,096 bytes a route,
		// times max-prefixes); nothing of them leaves the route server.
		attrs := bad.baseAttrs(badASN)
		for typ := 100; typ < 220; typ++ {
			attrs = append(attrs, rawAttr(bgp.BGP_ATTR_FLAG_OPTIONAL|bgp.BGP_ATTR_FLAG_TRANSITIVE, bgp.BGPAttrType(typ), []byte{1, 2, 3, 4})...)
		}
		var comms []byte
		for i := range 600 {
			comms = binary.BigEndian.AppendUint32(comms, badASN<<16|uint32(i))
		}
		attrs = append(attrs, rawAttr(bgp.BGP_ATTR_FLAG_OPTIONAL|bgp.BGP_ATTR_FLAG_TRANSITIVE, bgp.BGP_ATTR_TYPE_COMMUNITIES, comms)...)
		send(rawUpdate(t, nil, attrs, rawNLRI("203.0.113.128/25")))
		eventually(t, waitBGP, "the flooded route read", func() string {
			if r, ok := received("203.0.113.128/25"); !ok || !r.Accepted {
				return fmt.Sprintf("%+v", l.rs.Received(badASN))
			}
			return ""
		})
		healthy("after an attribute flood")
		for _, r := range buyer.routes() {
			if len(r.Communities) > 1 {
				t.Errorf("the buyer got foreign communities: %v", r)
			}
		}
	})

	t.Run("NLRI length", func(t *testing.T) {
		// A /33 in IPv4 NLRI: RFC 7606 resets the session, and so does
		// GoBGP (NOTIFICATION UPDATE error / malformed attribute list).
		send(rawUpdate(t, nil, bad.baseAttrs(badASN), []byte{33, 203, 0, 113, 0, 0}))
		why := bad.waitGone(waitBGP)
		if !strings.Contains(why, "notification") {
			t.Errorf("session ended by %q, want a NOTIFICATION", why)
		}
		eventually(t, waitBGP, "the close counted", func() string {
			if closedFor(badASN, "notification-sent") == 0 {
				return fmt.Sprintf("%+v", l.rs.SessionsClosed())
			}
			return ""
		})
		waitLog("the close logged", `msg="member session closed" asn=64666`)
		if _, ok := received("203.0.113.0/24"); ok {
			t.Errorf("routes of the reset session kept")
		}
		healthy("after a malformed NLRI")
	})

	t.Run("prefix flood", func(t *testing.T) {
		bad = mustDialRaw(t, xh, badASN, 0)
		var nlri []string
		for i := range 50 {
			nlri = append(nlri, fmt.Sprintf("10.66.%d.0/24", i))
		}
		send(rawUpdate(t, nil, bad.baseAttrs(badASN), rawNLRI(nlri...)))
		why := bad.waitGone(waitBGP)
		if !strings.Contains(why, "Maximum number of prefixes") && !strings.Contains(strings.ToLower(why), "prefix") {
			t.Errorf("session ended by %q, want CEASE max prefixes", why)
		}
		eventually(t, waitBGP, "held down", func() string {
			ss, _ := l.rs.Sessions(ctx)
			for _, s := range ss {
				if s.Address == xh.Addr4() && s.State == "Idle (max prefix)" {
					return ""
				}
			}
			return fmt.Sprintf("%+v", ss)
		})
		if closedFor(badASN, "prefix") == 0 {
			t.Errorf("max-prefix close not counted: %+v", l.rs.SessionsClosed())
		}
		healthy("after a prefix flood")
		if err := l.rs.ResetMember(ctx, badASN); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stops reading", func(t *testing.T) {
		bad = mustDialRaw(t, xh, badASN, 2048)
		bad.stopReading()
		// 600 trades to the member that does not read, one UPDATE each.
		trades := []Trade{trade1}
		for i := range 600 {
			trades = append(trades, Trade{ID: uint64(100 + i), BuyerASN: badASN, SellerASN: sellerASN,
				Prefixes: pfxs(fmt.Sprintf("10.20.%d.%d/30", i/64, i%64*4)), NextHop4: sh.Addr4()})
		}
		start := clock.Now()
		if err := l.rs.SetActive(ctx, trades); err != nil {
			t.Fatal(err)
		}
		// The others are served meanwhile: a new trade reaches the buyer.
		trade2 := Trade{ID: 2, BuyerASN: buyerASN, SellerASN: sellerASN, Prefixes: pfxs("198.51.101.0/24"), NextHop4: sh.Addr4()}
		if err := l.rs.AnnounceTrade(ctx, trade2); err != nil {
			t.Fatal(err)
		}
		routerHas(t, "buyer", buyer.routes, "198.51.101.0/24", sh.Addr4())
		// ... while the stuck session was still open, its writes blocked.
		ss, err := l.rs.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Address == xh.Addr4() && !s.Established() {
				t.Errorf("the stuck session closed before the buyer got its trade (%s): nothing shown", s.State)
			}
		}
		t.Logf("a new trade reached the buyer %v after the stuck session was sent 600 paths", clock.Since(start).Round(time.Millisecond))
		eventually(t, 3*waitBGP, "the stuck session closed", func() string {
			ss, _ := l.rs.Sessions(ctx)
			for _, s := range ss {
				if s.Address == xh.Addr4() && s.Established() {
					return "still established"
				}
			}
			return ""
		})
		t.Logf("stuck session closed after %v; closes: %+v", clock.Since(start).Round(time.Millisecond), l.rs.SessionsClosed())
		if closedFor(badASN, "write-failed")+closedFor(badASN, "hold timer") == 0 {
			t.Errorf("no write-failed or hold-timer close counted: %+v", l.rs.SessionsClosed())
		}
		healthy("after a session that stopped reading")
		bad.close()
		if err := l.rs.SetActive(ctx, []Trade{trade1, trade2}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("flapping", func(t *testing.T) {
		// Up one second, down, again, as fast as GoBGP lets it back in
		// (5 s idle hold): the third drop within 30 s holds it down 15 s.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p, err := dialRaw(t, fh, flapASN, 0)
				if err != nil {
					time.Sleep(time.Second)
					continue
				}
				time.Sleep(time.Second)
				p.close()
			}
		})
		eventually(t, 3*waitBGP, "the flapping session dampened", func() string {
			if closedFor(flapASN, ReasonFlapping) == 0 {
				return fmt.Sprintf("%+v", l.rs.SessionsClosed())
			}
			return ""
		})
		dampedAt := clock.Now()
		waitLog("the damping logged", `msg="member session dampened: flapping" asn=64667`)
		eventually(t, waitBGP, "held down", func() string {
			ss, _ := l.rs.Sessions(ctx)
			for _, s := range ss {
				if s.Address == fh.Addr4() && s.State != "Idle (dampened)" {
					return "dampened session is " + s.State
				}
			}
			return ""
		})
		close(stop)
		wg.Wait()
		healthy("after a flapping session")
		// Let in again after the damping time.
		time.Sleep(clock.Until(dampedAt.Add(10 * time.Second)))
		if _, err := dialRaw(t, fh, flapASN, 0); err == nil {
			t.Errorf("dampened session came up within 10 s")
		}
		p := mustDialRaw(t, fh, flapASN, 0)
		t.Logf("flapping session back after %v", clock.Since(dampedAt).Round(time.Second))
		p.close()
	})
	healthy("at the end")
	t.Logf("closes: %+v", l.rs.SessionsClosed())
}
