package routeserver

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

func TestGracefulRestartConfig(t *testing.T) {
	base := Config{ASN: rsASN, RouterID: rs4, Checker: newFakeChecker(), ListenPort: -1}
	for _, c := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {7 * time.Second, true}, {4095 * time.Second, true}, {4096 * time.Second, false}, {-time.Second, false}, {1500 * time.Millisecond, false}} {
		cfg := base
		cfg.GracefulRestartTime = c.d
		_, err := New(cfg)
		if (err == nil) != c.ok {
			t.Errorf("graceful restart time %v: error %v", c.d, err)
		}
		if err != nil && !strings.Contains(err.Error(), "graceful restart time") {
			t.Errorf("error %q does not name the setting", err)
		}
	}
	s, _ := New(base)
	p := s.peerConfig(&member{Member{ASN: 64501, AddPathReceive: true}}, rs6)
	if gr := p.GracefulRestart; !gr.Enabled || gr.RestartTime != 120 || !gr.NotificationEnabled || gr.HelperOnly {
		t.Errorf("default graceful restart %+v", gr)
	}
	if mp := p.AfiSafis[0].MpGracefulRestart; mp == nil || !mp.Config.Enabled {
		t.Errorf("family without graceful restart: %+v", p.AfiSafis[0])
	}
}

// A buyer's BIRD (graceful restart "aware", its default: the helper role)
// sees the route server's graceful restart capability and keeps a trade's
// route while the arbiter is gone, for the restart time only.
func TestLabGracefulRestart(t *testing.T) {
	if !isolate(t) {
		return
	}
	needBIRD(t)
	const grTime = 6 * time.Second
	l := newRSLab(t)
	sh, bh := l.host("seller", 11), l.host("buyer", 12)
	l.checker.register(64501, "198.51.100.0/24", "2001:db8:100::/48")
	l.member(64501, sh, Member{})
	l.member(64502, bh, Member{})
	v4, v6 := "198.51.100.0/24", "2001:db8:100::/48"
	tr := Trade{ID: 1, BuyerASN: 64502, SellerASN: 64501, Prefixes: pfxs(v4, v6), NextHop4: sh.Addr4(), NextHop6: sh.Addr6()}
	start := func() {
		rs, err := New(Config{
			ASN: rsASN, RouterID: rs4, ListenAddrs: []string{rs4.String(), rs6.String()},
			Log: testLog(t), Checker: l.checker, HoldTime: 9 * time.Second, GracefulRestartTime: grTime,
			Passive: true, RunIn: l.rsHost.Do,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rs.Stop)
		ctx := context.Background()
		for _, m := range l.members {
			if err := rs.AddMember(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := rs.SetActive(ctx, []Trade{tr}); err != nil {
			t.Fatal(err)
		}
		if err := rs.Start(ctx); err != nil {
			t.Fatal(err)
		}
		l.rs = rs
	}
	start()
	l.bird(sh, 64501, false, v4, v6)
	b := l.bird(bh, 64502, false)
	routerHas(t, "buyer", b.routes, v4, sh.Addr4())
	routerHas(t, "buyer", b.routes, v6, sh.Addr6())

	// BIRD shows the capability the route server sent.
	for _, proto := range []string{"rs4", "rs6"} {
		info := b.protocolInfo(proto)
		nb := info[strings.Index(info, "Neighbor capabilities"):]
		if !regexp.MustCompile(`Graceful restart\s+Restart time: 6\s`).MatchString(nb) {
			t.Fatalf("BIRD %s does not show the route server's graceful restart (6 s):\n%s", proto, info)
		}
	}

	// The arbiter crashes (connections reset, no NOTIFICATION): the
	// buyer keeps the routes, stale, for the restart time, then drops them.
	// The buyer's sessions first: a process that dies closes every socket
	// at once, while a running route server would withdraw the trade of a
	// seller whose session it sees reset first.
	out, err := exec.Command("ip", "netns", "exec", l.rsHost.Netns, "ss", "-K", "-t", "-n",
		"(", "dst", bh.Addr4().String(), "or", "dst", "["+bh.Addr6().String()+"]", ")").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ESTAB") {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	l.rs.Stop()
	crashed := clock.Now()
	eventually(t, 3*time.Second, "BIRD's session down", func() string {
		if info := b.protocolInfo("rs4"); !strings.Contains(info, "Connect") && !strings.Contains(info, "Active") && !strings.Contains(info, "Idle") {
			return info
		}
		return ""
	})
	if got := routesFor(b.routes(), v4); len(got) != 1 || clock.Since(crashed) > grTime-time.Second {
		t.Fatalf("buyer's route %s after the crash (%v): %v", v4, clock.Since(crashed), got)
	}
	routerHas(t, "buyer", b.routes, v4)
	if d := clock.Since(crashed); d < grTime-time.Second {
		t.Fatalf("buyer dropped the route %v after the crash, before the restart time %v", d, grTime)
	}
}
