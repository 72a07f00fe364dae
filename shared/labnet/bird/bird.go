// Package bird runs BIRD 2 as a member's router on a labnet host: static
// routes it announces, eBGP sessions (to the route server or to an agent's
// speaker), and its RIB read back through birdc. The lab and the tests that
// need a real member router share it.
package bird

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bwxchange/bwx/shared/labnet"
)

// Available says why BIRD cannot run here, or nil.
func Available() error {
	for _, p := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("BIRD 2 is needed (apt-get install bird2, its service disabled): %w", err)
		}
	}
	return nil
}

// Session is one eBGP session, a BIRD "protocol bgp".
type Session struct {
	// Name is the protocol name (shown by `birdc show protocols`).
	Name                  string
	Local, Neighbor       netip.Addr
	LocalASN, NeighborASN uint32
	// AddPathRx accepts several paths per prefix (several sellers).
	AddPathRx bool
	Password  string
	// Export is the BIRD export clause; empty: the static routes.
	Export string
}

// Config is what the router announces and to whom.
type Config struct {
	RouterID netip.Addr
	// Static prefixes are announced as unreachable static routes.
	Static   []netip.Prefix
	Sessions []Session
	// Kernel exports the BGP routes it learned into the host's main table.
	Kernel bool
}

// Router is a running BIRD.
type Router struct {
	Host *labnet.Host
	Dir  string
	cfg  Config
	proc *labnet.Proc
}

// Start writes the config into dir and runs BIRD on h until the lab closes
// (or Stop), returning once birdc answers.
func Start(ctx context.Context, h *labnet.Host, dir string, cfg Config) (*Router, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	r := &Router{Host: h, Dir: dir, cfg: cfg}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := r.write(); err != nil {
		return nil, err
	}
	var err error
	r.proc, err = h.Start(context.Background(), r.LogPath(), "bird", "-f", "-c", r.confPath(), "-s", r.sock(), "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.Birdc("show status")
		if err == nil {
			return r, nil
		}
		if r.proc.Exited() || time.Now().After(deadline) {
			r.proc.Stop()
			b, _ := os.ReadFile(r.LogPath())
			return nil, fmt.Errorf("BIRD on %s did not start: %v\n%s", h.Name, err, b)
		}
		select {
		case <-ctx.Done():
			r.proc.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Router) sock() string     { return filepath.Join(r.Dir, "bird.ctl") }
func (r *Router) confPath() string { return filepath.Join(r.Dir, "bird.conf") }

// LogPath is BIRD's log (stderr, every message).
func (r *Router) LogPath() string { return filepath.Join(r.Dir, "bird.log") }

// Config returns the running configuration.
func (r *Router) Config() Config { return r.cfg }

// Render is the BIRD configuration for cfg.
func Render(cfg Config) string {
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr all;\nrouter id %s;\nprotocol device {}\n", cfg.RouterID)
	for _, fam := range []struct {
		name string
		v4   bool
	}{{"ipv4", true}, {"ipv6", false}} {
		fmt.Fprintf(&w, "protocol static st_%s { %s;\n", fam.name, fam.name)
		for _, p := range cfg.Static {
			if p.Addr().Is4() == fam.v4 {
				fmt.Fprintf(&w, "  route %s unreachable;\n", p)
			}
		}
		fmt.Fprintf(&w, "}\n")
		if cfg.Kernel {
			fmt.Fprintf(&w, "protocol kernel k_%s { %s { export where source = RTS_BGP; }; }\n", fam.name, fam.name)
		}
	}
	for _, s := range cfg.Sessions {
		ch := "ipv4"
		if s.Neighbor.Is6() {
			ch = "ipv6"
		}
		fmt.Fprintf(&w, "protocol bgp %s {\n  local %s as %d;\n  neighbor %s as %d;\n", s.Name, s.Local, s.LocalASN, s.Neighbor, s.NeighborASN)
		// Short timers: lab sessions come and go within a test.
		fmt.Fprintf(&w, "  hold time 9; keepalive time 3; connect retry time 1; error wait time 1,2;\n")
		if s.Password != "" {
			fmt.Fprintf(&w, "  password %q;\n", s.Password)
		}
		export := s.Export
		if export == "" {
			export = "where source = RTS_STATIC"
		}
		fmt.Fprintf(&w, "  %s { import all; export %s;", ch, export)
		if s.AddPathRx {
			fmt.Fprintf(&w, " add paths rx;")
		}
		fmt.Fprintf(&w, " };\n}\n")
	}
	return w.String()
}

func (r *Router) write() error {
	return os.WriteFile(r.confPath(), []byte(Render(r.cfg)), 0o644)
}

// Reconfigure applies a new configuration (birdc configure), e.g. to
// announce other prefixes.
func (r *Router) Reconfigure(cfg Config) error {
	r.cfg = cfg
	if err := r.write(); err != nil {
		return err
	}
	out, err := r.Birdc("configure")
	if err != nil || !strings.Contains(out, "Reconfigured") {
		return fmt.Errorf("birdc configure: %v\n%s", err, out)
	}
	return nil
}

// Announce replaces the static prefixes it announces.
func (r *Router) Announce(prefixes ...netip.Prefix) error {
	cfg := r.cfg
	cfg.Static = prefixes
	return r.Reconfigure(cfg)
}

// Stop stops BIRD; SIGTERM makes it close its sessions with a CEASE.
func (r *Router) Stop() error { return r.proc.Stop() }

// Birdc runs a birdc command against this BIRD.
func (r *Router) Birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", r.sock()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Established reports whether the named session is up.
func (r *Router) Established(name string) bool {
	out, err := r.Birdc("show", "protocols", name)
	return err == nil && strings.Contains(out, "Established")
}

// Route is a route in BIRD's table.
type Route struct {
	Prefix      netip.Prefix
	NextHop     netip.Addr
	Protocol    string
	ASPath      string
	Communities []string // "65535:65281"
	Large       []string // "65000:1:64502"
}

func (r Route) String() string {
	return fmt.Sprintf("%v via %v [%s %s] %v %v", r.Prefix, r.NextHop, r.Protocol, r.ASPath, r.Communities, r.Large)
}

// Routes returns the routes of the named protocols (every protocol if none).
func (r *Router) Routes(protocols ...string) ([]Route, error) {
	out, err := r.Birdc("show", "route", "all")
	if err != nil {
		return nil, err
	}
	return ParseRoutes(out, protocols...)
}

var (
	prefixLine = regexp.MustCompile(`^(\S+)\s+\S+\s+\[(\S+)\s`)
	nextLine   = regexp.MustCompile(`^\s+\S+\s+\[(\S+)\s`)
	tuple      = regexp.MustCompile(`\(([^)]*)\)`)
)

// ParseRoutes reads `birdc show route all`. A route starts with "<prefix>
// <type> [<proto> ..." or, for another route of the same prefix, with
// spaces and "<type> [<proto> ..."; its attributes follow on lines indented
// with a tab.
func ParseRoutes(out string, protocols ...string) ([]Route, error) {
	var (
		routes []Route
		cur    *Route
		prefix netip.Prefix
	)
	keep := func(p string) bool { return len(protocols) == 0 || slices.Contains(protocols, p) }
	flush := func() {
		if cur != nil {
			routes = append(routes, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table "):
			flush()
		case strings.HasPrefix(line, "\t"):
			if cur == nil {
				continue
			}
			f := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(f, "via "):
				a, err := netip.ParseAddr(strings.Fields(f)[1])
				if err != nil {
					return nil, fmt.Errorf("next hop in %q: %v", f, err)
				}
				cur.NextHop = a
			case strings.HasPrefix(f, "BGP.as_path:"):
				cur.ASPath = strings.TrimSpace(strings.TrimPrefix(f, "BGP.as_path:"))
			case strings.HasPrefix(f, "BGP.community:"):
				cur.Communities = append(cur.Communities, tuples(f)...)
			case strings.HasPrefix(f, "BGP.large_community:"):
				cur.Large = append(cur.Large, tuples(f)...)
			}
		case strings.HasPrefix(line, " "):
			flush()
			m := nextLine.FindStringSubmatch(line)
			if m == nil || !prefix.IsValid() {
				return nil, fmt.Errorf("unexpected line %q", line)
			}
			if keep(m[1]) {
				cur = &Route{Prefix: prefix, Protocol: m[1]}
			}
		default:
			flush()
			m := prefixLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("unexpected line %q", line)
			}
			p, err := netip.ParsePrefix(m[1])
			if err != nil {
				return nil, fmt.Errorf("prefix in %q: %v", line, err)
			}
			prefix = p
			if keep(m[2]) {
				cur = &Route{Prefix: prefix, Protocol: m[2]}
			}
		}
	}
	flush()
	slices.SortFunc(routes, func(a, b Route) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if c := a.Prefix.Bits() - b.Prefix.Bits(); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
	return routes, sc.Err()
}

// "(65000, 1, 64510) (65000, 2, 7)" -> ["65000:1:64510", "65000:2:7"]
func tuples(f string) []string {
	var out []string
	for _, m := range tuple.FindAllStringSubmatch(f, -1) {
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(m[1], " ", ""), ",", ":"))
	}
	return out
}
