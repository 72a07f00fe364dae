package measurelab

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

// BenchmarkLiveCapture: a member host sends small UDP datagrams as fast as
// two sockets can out of its exchange interface (veth) while the agent's
// capture samples 1 in 100 of them (AF_PACKET, TPACKET_V3, the BPF filter):
// frames/s sent and the kernel's drops, beside the same send without a
// capture as the baseline. The rate the capture keeps up with is the sent
// rate of a run without drops (on this VM the sender, not the capture, is
// the limit at 1 in 100).
//
//	go test -run '^$' -bench LiveCapture -benchtime 2000000x ./agent/daemon/measurelab
func BenchmarkLiveCapture(b *testing.B) {
	lab := labtest.New(b, "bench")
	h := labtest.AddHost(b, lab, "b", "192.0.2.10/24", "2001:db8::10/64")
	labtest.AddHost(b, lab, "s1", "192.0.2.1/24", "2001:db8::1/64")
	ipcmd(b, h, "route", "add", "198.51.100.0/24", "via", "192.0.2.1")
	table, err := capture.NewTable([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	if err != nil {
		b.Fatal(err)
	}
	for _, rate := range []int{0, 100} {
		name := "baseline-no-capture"
		if rate > 0 {
			name = "capture-1in100"
		}
		b.Run(name, func(b *testing.B) {
			var c *capture.Capture
			var sampled atomic.Int64
			var drops atomic.Uint64
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			if rate > 0 {
				err := h.Do(func() (err error) {
					c, err = capture.Open(capture.Config{Interfaces: []string{"eth0"}, SampleRate: rate, Interval: time.Second})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				c.SetTable(table)
				go func() {
					done <- c.Run(ctx, func(iv capture.Interval) {
						drops.Add(iv.KernelDrops)
						for _, f := range iv.Figures {
							sampled.Add(f.Samples)
						}
					})
				}()
			} else {
				close(done)
			}
			const senders = 2
			conns := make([]*net.UDPConn, senders)
			for i := range conns {
				if err := h.Do(func() (err error) { conns[i], err = net.ListenUDP("udp", nil); return err }); err != nil {
					b.Fatal(err)
				}
			}
			to := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 9)
			payload := make([]byte, 18) // 64-byte frames
			var next atomic.Int64
			b.ResetTimer()
			start := clock.Now()
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						c.WriteToUDPAddrPort(payload, to)
					}
				})
			}
			wg.Wait()
			el := clock.Since(start)
			b.StopTimer()
			for _, c := range conns {
				c.Close()
			}
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
			if rate > 0 {
				var kd uint64
				for _, s := range c.KernelStats() {
					kd += s.Drops
				}
				b.ReportMetric(float64(max(kd, drops.Load())), "kernel-drops")
				b.ReportMetric(float64(sampled.Load()), "sampled")
			}
		})
	}
}
