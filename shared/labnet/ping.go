package labnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/shared/netx"
)

// DefaultPingTimeout bounds Ping when its context has no deadline.
const DefaultPingTimeout = 2 * time.Second

const pingInterval = 200 * time.Millisecond

// Ping checks that dst answers ICMP (v4 or v6) echo requests sent from the
// host. It sends a request every 200ms until a reply arrives, ctx is done,
// or, if ctx has no deadline, DefaultPingTimeout has passed. It needs no
// ping binary: it uses a raw socket inside the host's namespace.
func (h *Host) Ping(ctx context.Context, dst netip.Addr) error {
	if !dst.IsValid() {
		return fmt.Errorf("labnet: %s: ping: invalid address", h.Name)
	}
	dst = dst.Unmap()
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	fail := func(err error) error { return fmt.Errorf("labnet: %s: ping %s: %w", h.Name, dst, err) }

	c, err := h.ListenPacket(network, "")
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultPingTimeout)
	}
	defer context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })()

	var token [10]byte // id (2), then 8 bytes of payload
	if _, err := rand.Read(token[:]); err != nil {
		return fail(err)
	}
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	buf := make([]byte, 1500)
	for seq := uint16(1); ; seq++ {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if !time.Now().Before(deadline) {
			return fail(errors.New("no echo reply"))
		}
		msg := make([]byte, 8, 16)
		msg[0] = reqType
		copy(msg[4:6], token[:2])
		binary.BigEndian.PutUint16(msg[6:8], seq)
		msg = append(msg, token[2:]...)
		if !dst.Is6() { // the kernel computes ICMPv6 checksums
			binary.BigEndian.PutUint16(msg[2:4], netx.Checksum(msg))
		}
		if _, err := c.WriteTo(msg, to); err != nil {
			return fail(err)
		}
		next := time.Now().Add(pingInterval)
		if deadline.Before(next) {
			next = deadline
		}
		c.SetReadDeadline(next)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // send the next request
				}
				return fail(err)
			}
			b := buf[:n] // IPv4 headers are stripped by net.IPConn
			ip, _ := from.(*net.IPAddr)
			if ip == nil || len(b) != 16 || b[0] != replyType || b[1] != 0 ||
				!bytes.Equal(b[4:6], token[:2]) || !bytes.Equal(b[8:], token[2:]) {
				continue
			}
			if src, ok := netip.AddrFromSlice(ip.IP); ok && src.Unmap() == dst.WithZone("") {
				return nil
			}
		}
	}
}
