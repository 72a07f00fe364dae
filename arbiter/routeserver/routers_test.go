package routeserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/bird"
)

// Real member routers for the lab tests: BIRD 2 and FRR (zebra + bgpd)
// in labnet hosts, configured for the route server at rs4/rs6.

func needBIRD(t testing.TB) {
	t.Helper()
	for _, p := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("BIRD 2 is needed (apt-get install bird2, services disabled): %v", err)
		}
	}
}

func needFRR(t testing.TB) {
	t.Helper()
	for _, p := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("FRR is needed (apt-get install frr, services disabled): %v", err)
		}
	}
	if _, err := user.Lookup("frr"); err != nil {
		t.Skipf("FRR runs as user frr: %v", err)
	}
}

// birdRouter is a BIRD 2 instance on a lab host with one session to the
// route server per address family (protocols rs4 and rs6).
type birdRouter struct {
	t    *testing.T
	host *labnet.Host
	cfg  birdConfig
	dir  string
	proc *labnet.Proc
}

type birdConfig struct {
	ASN       uint32
	RS4, RS6  netip.Addr // route server addresses; zero: no session
	Static    []string   // prefixes it announces (unreachable static routes)
	AddPathRx bool
	Password  string
	// NextHop4 and NextHop6, if set, are the next hops it announces its
	// routes with (set by the export filter) instead of its own address.
	NextHop4, NextHop6 netip.Addr
	// Kernel installs its best routes into the host's kernel table.
	Kernel bool
}

func newBIRD(t *testing.T, h *labnet.Host, cfg birdConfig) *birdRouter {
	t.Helper()
	b := &birdRouter{t: t, host: h, cfg: cfg, dir: t.TempDir()}
	b.writeConfig()
	b.start()
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(b.logPath()); err == nil {
				t.Logf("BIRD %s log:\n%s", h.Name, log)
			}
		}
	})
	return b
}

func (b *birdRouter) sock() string    { return filepath.Join(b.dir, "bird.ctl") }
func (b *birdRouter) conf() string    { return filepath.Join(b.dir, "bird.conf") }
func (b *birdRouter) logPath() string { return filepath.Join(b.dir, "bird.log") }

func (b *birdRouter) writeConfig() {
	b.t.Helper()
	c := b.cfg
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr all;\nrouter id %s;\nprotocol device {}\n", b.host.Addr4())
	var s4, s6 []string
	for _, p := range c.Static {
		if netip.MustParsePrefix(p).Addr().Is4() {
			s4 = append(s4, p)
		} else {
			s6 = append(s6, p)
		}
	}
	fmt.Fprintf(&w, "protocol static st4 { ipv4;\n")
	for _, p := range s4 {
		fmt.Fprintf(&w, "  route %s unreachable;\n", p)
	}
	fmt.Fprintf(&w, "}\nprotocol static st6 { ipv6;\n")
	for _, p := range s6 {
		fmt.Fprintf(&w, "  route %s unreachable;\n", p)
	}
	fmt.Fprintf(&w, "}\n")
	if c.Kernel {
		fmt.Fprintf(&w, "protocol kernel k4 { ipv4 { export where source = RTS_BGP; }; }\nprotocol kernel k6 { ipv6 { export where source = RTS_BGP; }; }\n")
	}
	for _, s := range []struct {
		name          string
		local, rs, nh netip.Addr
		ch            string
	}{{"rs4", b.host.Addr4(), c.RS4, c.NextHop4, "ipv4"}, {"rs6", b.host.Addr6(), c.RS6, c.NextHop6, "ipv6"}} {
		if !s.rs.IsValid() {
			continue
		}
		fmt.Fprintf(&w, "protocol bgp %s {\n  local %s as %d;\n  neighbor %s as %d;\n", s.name, s.local, c.ASN, s.rs, rsASN)
		fmt.Fprintf(&w, "  hold time 9; keepalive time 3; connect retry time 1; error wait time 1,2;\n")
		if c.Password != "" {
			fmt.Fprintf(&w, "  password %q;\n", c.Password)
		}
		export := "export where source = RTS_STATIC;"
		if s.nh.IsValid() {
			export = fmt.Sprintf("export filter { if source = RTS_STATIC then { bgp_next_hop = %s; accept; } reject; };", s.nh)
		}
		fmt.Fprintf(&w, "  %s { import all; %s", s.ch, export)
		if c.AddPathRx {
			fmt.Fprintf(&w, " add paths rx;")
		}
		fmt.Fprintf(&w, " };\n}\n")
	}
	if err := os.WriteFile(b.conf(), []byte(w.String()), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *birdRouter) start() {
	b.t.Helper()
	p, err := b.host.Start(b.t.Context(), b.logPath(), "bird", "-f", "-c", b.conf(), "-s", b.sock(), "-P", filepath.Join(b.dir, "bird.pid"))
	if err != nil {
		b.t.Fatal(err)
	}
	b.proc = p
	eventually(b.t, 10*time.Second, "BIRD on "+b.host.Name+" answers", func() string {
		if _, err := b.birdc("show status"); err != nil {
			return err.Error()
		}
		return ""
	})
}

// stop stops BIRD (SIGTERM: it closes its sessions with a CEASE).
func (b *birdRouter) stop() {
	b.t.Helper()
	if err := b.proc.Stop(); err != nil {
		b.t.Fatal(err)
	}
}

// announce changes the static routes it announces (birdc configure).
func (b *birdRouter) announce(prefixes ...string) {
	b.t.Helper()
	b.cfg.Static = prefixes
	b.writeConfig()
	if out, err := b.birdc("configure"); err != nil || !strings.Contains(out, "Reconfigured") {
		b.t.Fatalf("birdc configure: %v\n%s", err, out)
	}
}

func (b *birdRouter) birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.sock()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// routes returns the routes BIRD learned from the route server.
func (b *birdRouter) routes() []ribRoute {
	b.t.Helper()
	out, err := b.birdc("show", "route", "all")
	if err != nil {
		b.t.Fatal(err)
	}
	rs, err := parseBIRDRoutes(out, "rs4", "rs6")
	if err != nil {
		b.t.Fatalf("%v in:\n%s", err, out)
	}
	return rs
}

// parseBIRDRoutes reads `birdc show route all` (shared/labnet/bird) and
// keeps the routes of the named protocols.
func parseBIRDRoutes(out string, protos ...string) ([]ribRoute, error) {
	rs, err := bird.ParseRoutes(out, protos...)
	if err != nil {
		return nil, err
	}
	out2 := make([]ribRoute, len(rs))
	for i, r := range rs {
		out2[i] = ribRoute{Prefix: r.Prefix, NextHop: r.NextHop, ASPath: r.ASPath, Communities: r.Communities, Large: r.Large}
	}
	sortRIB(out2)
	return out2, nil
}

// protocolInfo returns `birdc show protocols all <name>`.
func (b *birdRouter) protocolInfo(name string) string {
	out, _ := b.birdc("show", "protocols", "all", name)
	return out
}

// importCounts sums, over a BIRD protocol's channels (`show protocols
// all`), the UPDATEs' announcements and withdrawals it received.
func importCounts(info string) (updates, withdraws int) {
	for _, l := range strings.Split(info, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "Import" {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		switch f[1] {
		case "updates:":
			updates += n
		case "withdraws:":
			withdraws += n
		}
	}
	return updates, withdraws
}

// frrRouter is FRR (zebra and bgpd, as user frr) on a lab host with one
// session to the route server per address family.
type frrRouter struct {
	t    *testing.T
	host *labnet.Host
	dir  string
}

func newFRR(t *testing.T, h *labnet.Host, asn uint32, rs4, rs6 netip.Addr) *frrRouter {
	t.Helper()
	// FRR drops to user frr: its directory must be reachable by it,
	// which t.TempDir (under a 0700 directory) is not.
	dir, err := os.MkdirTemp("", "bwx-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &frrRouter{t: t, host: h, dir: dir}
	conf := fmt.Sprintf(`frr defaults traditional
hostname %[1]s
log stdout informational
router bgp %[2]d
 bgp router-id %[3]s
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor %[4]s remote-as %[6]d
 neighbor %[4]s timers 3 9
 neighbor %[4]s timers connect 1
 neighbor %[5]s remote-as %[6]d
 neighbor %[5]s timers 3 9
 neighbor %[5]s timers connect 1
 address-family ipv4 unicast
  neighbor %[4]s activate
 exit-address-family
 address-family ipv6 unicast
  neighbor %[5]s activate
 exit-address-family
`, h.Name, asn, h.Addr4(), rs4, rs6, rsASN)
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for name, text := range map[string]string{"bgpd.conf": conf, "zebra.conf": "hostname " + h.Name + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	zsock := filepath.Join(dir, "zserv.api")
	for _, d := range []string{"zebra", "bgpd"} {
		_, err := h.Start(t.Context(), filepath.Join(dir, d+".log"), "/usr/lib/frr/"+d,
			"-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"), "-z", zsock, "--vty_socket", dir)
		if err != nil {
			t.Fatal(err)
		}
		if d == "zebra" {
			eventually(t, 10*time.Second, "zebra socket", func() string {
				if _, err := os.Stat(zsock); err != nil {
					return err.Error()
				}
				return ""
			})
		}
	}
	eventually(t, 10*time.Second, "bgpd answers", func() string {
		if _, err := f.vtysh("show bgp summary json"); err != nil {
			return err.Error()
		}
		return ""
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []string{"zebra", "bgpd"} {
				if log, err := os.ReadFile(filepath.Join(dir, d+".log")); err == nil {
					t.Logf("FRR %s %s log:\n%s", h.Name, d, log)
				}
			}
		}
	})
	return f
}

func (f *frrRouter) vtysh(cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "--vty_socket", f.dir, "-c", cmd).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("vtysh -c %q: %v: %s", cmd, err, out)
	}
	return out, nil
}

// routes returns the BGP routes FRR learned, with their attributes (one
// detail query per prefix: the table JSON has no communities).
func (f *frrRouter) routes() []ribRoute {
	f.t.Helper()
	var out []ribRoute
	for _, fam := range []string{"ipv4", "ipv6"} {
		js, err := f.vtysh("show bgp " + fam + " unicast json")
		if err != nil {
			f.t.Fatal(err)
		}
		var table struct {
			Routes map[string]json.RawMessage `json:"routes"`
		}
		if err := json.Unmarshal(js, &table); err != nil {
			f.t.Fatalf("show bgp %s unicast json: %v\n%s", fam, err, js)
		}
		for p := range table.Routes {
			js, err := f.vtysh("show bgp " + fam + " unicast " + p + " json")
			if err != nil {
				f.t.Fatal(err)
			}
			var d struct {
				Paths []struct {
					ASPath struct {
						String string `json:"string"`
					} `json:"aspath"`
					Community *struct {
						List []string `json:"list"`
					} `json:"community"`
					LargeCommunity *struct {
						String string `json:"string"`
					} `json:"largeCommunity"`
					Nexthops []struct {
						IP    string `json:"ip"`
						Scope string `json:"scope"`
					} `json:"nexthops"`
					Valid bool `json:"valid"`
				} `json:"paths"`
			}
			if err := json.Unmarshal(js, &d); err != nil {
				f.t.Fatalf("show bgp %s unicast %s json: %v\n%s", fam, p, err, js)
			}
			pfx := netip.MustParsePrefix(p)
			for _, path := range d.Paths {
				r := ribRoute{Prefix: pfx, ASPath: path.ASPath.String}
				for _, nh := range path.Nexthops {
					if nh.Scope != "link-local" {
						r.NextHop, _ = netip.ParseAddr(nh.IP)
						break
					}
				}
				if path.Community != nil {
					for _, c := range path.Community.List {
						if c == "noExport" {
							c = "65535:65281"
						}
						r.Communities = append(r.Communities, c)
					}
				}
				if path.LargeCommunity != nil {
					r.Large = strings.Fields(path.LargeCommunity.String)
				}
				out = append(out, r)
			}
		}
	}
	sortRIB(out)
	return out
}

// kernelRoute returns the gateway of the host's kernel route for p, or
// the zero Addr.
func kernelRoute(t *testing.T, h *labnet.Host, p string) netip.Addr {
	t.Helper()
	fam := "-4"
	if netip.MustParsePrefix(p).Addr().Is6() {
		fam = "-6"
	}
	out, err := exec.Command("ip", "-n", h.Netns, "-j", fam, "route", "show", "exact", p).Output()
	if err != nil {
		t.Fatalf("ip route show %s: %v", p, err)
	}
	var rs []struct {
		Gateway string `json:"gateway"`
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("ip -j route: %v\n%s", err, out)
	}
	if len(rs) == 0 {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(rs[0].Gateway)
	return a
}
