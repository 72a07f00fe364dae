package probe

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	probing "github.com/prometheus-community/pro-bing"
)

// benchLab: prober P, two plain forwarding sellers, and D answering for
// every address of 198.51.100.0/24 and 2001:db8:100::/64 (local routes on
// lo), so thousands of targets answer.
func benchLab(b *testing.B) (p *labnet.Host, marks []uint32, targets func(n int) []Target) {
	lab := labtest.New(b, "probe-bench")
	p = labtest.AddHost(b, lab, "p", "192.0.2.10/24", "2001:db8::10/64")
	d := labtest.AddHost(b, lab, "d", "192.0.2.100/24", "2001:db8::100/64")
	ipcmd(b, d, "ip", "route", "add", "local", "198.51.100.0/24", "dev", "lo")
	ipcmd(b, d, "ip", "-6", "route", "add", "local", "2001:db8:100::/64", "dev", "lo")
	var sellers []Seller
	for i, name := range []string{"s1", "s2"} {
		a4, a6 := fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("2001:db8::%d", i+1)
		s := labtest.AddHost(b, lab, name, a4+"/24", a6+"/64")
		sysctl(b, s, "net.ipv4.ip_forward", "1", "net.ipv6.conf.all.forwarding", "1",
			"net.ipv4.conf.all.send_redirects", "0", "net.ipv4.conf.eth0.send_redirects", "0")
		ipcmd(b, s, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.100")
		ipcmd(b, s, "ip", "-6", "route", "add", "2001:db8:100::/64", "via", "2001:db8::100")
		sellers = append(sellers, Seller{Name: name, ID: uint32(i + 1), NextHop4: netip.MustParseAddr(a4), NextHop6: netip.MustParseAddr(a6)})
	}
	sysctl(b, p, "net.ipv4.conf.all.accept_redirects", "0", "net.ipv4.conf.eth0.accept_redirects", "0", "net.ipv6.conf.eth0.accept_redirects", "0")
	paths, err := NewPaths(handleIn(b, p), PathsConfig{Link: "eth0", Sysctl: p})
	if err != nil {
		b.Fatal(err)
	}
	if err := paths.Reconcile(sellers); err != nil {
		b.Fatal(err)
	}
	for _, s := range sellers {
		marks = append(marks, paths.Config().Mark(s))
	}
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/64")
	targets = func(n int) []Target {
		ts := make([]Target, 0, n)
		for i := 0; len(ts) < n; i++ {
			// Each address through both sellers; IPv4 and IPv6 alternate.
			a, pfx := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + (i/2)%254)}), p4
			if i%2 == 1 {
				a6 := p6.Addr().As16()
				a6[14], a6[15] = byte(i>>8), byte(i)
				a, pfx = netip.AddrFrom16(a6), p6
			}
			for j, s := range sellers {
				if len(ts) < n {
					ts = append(ts, Target{Addr: a, Prefix: pfx, Seller: s.Name, Mark: marks[j]})
				}
			}
		}
		return ts
	}
	return p, marks, targets
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report states the rate reached and the CPU used (of this process:
// prober, the pinged namespaces' kernel work it triggers in its own
// context, and the Go runtime), as a share of one core over the run, and
// per 1000 targets (a target = one address through one seller, 5 probes).
func report(b *testing.B, n int, wall, cpu time.Duration, sent, recv int) {
	b.ReportMetric(float64(n)/wall.Minutes(), "targets/min")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
	b.ReportMetric(cpu.Seconds()*1000/float64(n), "cpu-s/1k-targets")
	if sent > 0 {
		b.ReportMetric(100*float64(sent-recv)/float64(sent), "%loss")
	}
}

// BenchmarkProber: b.N targets (address x seller, 5 probes 200 ms apart)
// at a bound of targets per minute, through the project's prober (one raw
// socket per family, per-packet SO_MARK).
//
//	go test -run '^$' -bench Prober -benchtime 2000x ./agent/probe
func BenchmarkProber(b *testing.B) {
	for _, tpm := range []int{10_000, 60_000} {
		b.Run(fmt.Sprintf("bound=%d", tpm), func(b *testing.B) {
			p, _, targets := benchLab(b)
			pr, err := New(Config{TargetsPerMinute: tpm, Do: p.Do})
			if err != nil {
				b.Fatal(err)
			}
			defer pr.Close()
			ts := targets(b.N)
			b.ResetTimer()
			start, cpu0 := clock.Now(), cpuTime()
			ms, err := pr.Round(context.Background(), ts)
			wall, cpu := clock.Since(start), cpuTime()-cpu0
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			var sent, recv int
			for _, m := range ms {
				sent += int(m.Sent)
				recv += int(m.Received)
			}
			report(b, b.N, wall, cpu, sent, recv)
		})
	}
}

// BenchmarkProBing is the baseline: one plain pro-bing Pinger per target
// (privileged raw socket with SO_MARK), started at the same bound, so
// about bound/60 * 1 s of them run at once and every socket sees every
// reply.
//
//	go test -run '^$' -bench ProBing -benchtime 2000x ./agent/probe
func BenchmarkProBing(b *testing.B) {
	for _, tpm := range []int{10_000} {
		b.Run(fmt.Sprintf("bound=%d", tpm), func(b *testing.B) {
			p, _, targets := benchLab(b)
			ts := targets(b.N)
			gap := time.Minute / time.Duration(tpm)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var sent, recv int
			var firstErr error
			b.ResetTimer()
			start, cpu0 := clock.Now(), cpuTime()
			for i, t := range ts {
				time.Sleep(clock.Until(start.Add(time.Duration(i) * gap)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					pg := probing.New(t.Addr.String())
					pg.SetPrivileged(true)
					pg.SetMark(uint(t.Mark))
					pg.Count, pg.Interval, pg.Timeout = DefaultCount, DefaultSpacing, DefaultCount*DefaultSpacing+DefaultTimeout
					err := p.Do(pg.Run)
					st := pg.Statistics()
					mu.Lock()
					sent += st.PacketsSent
					recv += st.PacketsRecv
					if err != nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			wall, cpu := clock.Since(start), cpuTime()-cpu0
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			report(b, b.N, wall, cpu, sent, recv)
		})
	}
}
