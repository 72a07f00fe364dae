// Package daemon wires the agent together: config, the connection to the
// arbiter, the trade event stream, the traded routes (Routing: the BGP
// speaker's routes into the FIB, with a neighbor watch that pulls a route
// whose seller's router stops answering) and the local status socket.
// Later parts (capture, probes, access manager) hang off the same Agent.
//
// Files by concern: config.go, measureconfig.go and managerconfig.go hold
// the YAML sections; routing.go and neighbors.go the traded routes and
// their next hops (agent/fib/neigh does the kernel's part); measure.go and
// probing.go the capture and probe tasks; trading.go the TradingLoop,
// which runs the access manager (agent/manager) each round, with
// tradingproto.go (proto <-> manager types) and tradingprobe.go (its own
// probe tables).
package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/agent/routecheck"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/logging"
)

// Config is /etc/bwx/agent.yaml.
type Config struct {
	Arbiter struct {
		// Addresses are the arbiters' gRPC host:port, in order of
		// preference: calls and the event stream use the first that
		// answers and move to the next when it does not (an arbiter pair).
		Addresses []string `yaml:"addresses"`
		// Address is the one-arbiter form: the same as a one-element
		// Addresses (not both).
		Address string `yaml:"address"`
		// ServerName is the name on the arbiters' certificates, when the
		// addresses are not on them.
		ServerName string `yaml:"server_name"`
	} `yaml:"arbiter"`
	// Bundle is the member's certificate bundle from `bwx-arbiter member add`.
	Bundle   string `yaml:"bundle"`
	StateDir string `yaml:"state_dir"`
	Log      struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	// BGP is the session to the route server; without route servers the
	// agent installs no routes.
	BGP BGPConfig `yaml:"bgp"`
	// FIB is where bought routes go in the kernel.
	FIB FIBConfig `yaml:"fib"`
	// Capture and Probe measure traffic and path quality (measureconfig.go).
	Capture CaptureConfig `yaml:"capture"`
	Probe   ProbeConfig   `yaml:"probe"`
	// Manager is the access manager (managerconfig.go; its loop, trading.go).
	Manager ManagerConfig `yaml:"manager"`
	// Metrics serves Prometheus /metrics and /healthz (metrics.go).
	Metrics struct {
		// Listen is host:port; "" disables it.
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`
	// Status is the local socket `bwx-agent status` reads.
	Status struct {
		// Socket is the unix socket path (mode 0600); default
		// <state_dir>/agent.sock.
		Socket string `yaml:"socket"`
	} `yaml:"status"`
}

// BGPConfig is the agent's side of the sessions to the route server.
type BGPConfig struct {
	// RouteServers are the route server's addresses on the exchange LAN,
	// IPv4 and IPv6: one session each.
	RouteServers []string `yaml:"route_servers"`
	// RouteServerASN is the route server's AS number. The agent's own ASN
	// is the one in its certificate.
	RouteServerASN uint32 `yaml:"route_server_asn"`
	// Port is the route server's BGP port.
	Port uint16 `yaml:"port"`
	// LocalAddresses are the agent's source addresses (one per family);
	// empty: the kernel chooses.
	LocalAddresses []string `yaml:"local_addresses"`
	// RouterID is the BGP identifier (IPv4); default: the first IPv4 local
	// address.
	RouterID string `yaml:"router_id"`
	// HoldTime is the BGP hold time offered.
	HoldTime time.Duration `yaml:"hold_time"`
	// GracefulRestartTime is the longest the agent keeps a departed route
	// server's routes (and the restart time it advertises).
	GracefulRestartTime time.Duration `yaml:"graceful_restart_time"`
	// ConnectRetry is the delay between connection attempts.
	ConnectRetry time.Duration `yaml:"connect_retry"`
	// TradeGrace is how long a learned path that no known trade of ours
	// justifies is held (not installed, not refused yet) while the trade
	// event may still be on its way, and the clock skew allowed at a
	// trade's start and end (agent/routecheck). 0: none.
	TradeGrace time.Duration `yaml:"trade_grace"`
	// MemberRouter, optional: the member's own routers, which get the
	// traded routes over iBGP (claim 15), so a BIRD, FRR or hardware
	// router can use them without the kernel part.
	MemberRouter struct {
		// Addresses of the member's routers (one iBGP session each,
		// carrying IPv4 and IPv6); empty: no re-announce.
		Addresses []string `yaml:"addresses"`
		// Port is their BGP port.
		Port uint16 `yaml:"port"`
		// LocalAddress is the agent's source address toward them.
		LocalAddress string `yaml:"local_address"`
		// AddPath offers ADD-PATH send: every seller of a prefix.
		AddPath bool `yaml:"add_path"`
	} `yaml:"member_router"`
}

// FIBConfig says where the traded routes go in the kernel.
type FIBConfig struct {
	// Table is "main" or a table number (1-4294967295, not 255: local).
	Table string `yaml:"table"`
	// Interface is the exchange interface: every next hop must be on-link
	// there. Required with bgp.route_servers.
	Interface string `yaml:"interface"`
	// KeepRoutesOnStop leaves the routes in the kernel when the agent
	// stops, so a restart causes no gap; otherwise they are removed and
	// traffic takes the member's normal path.
	KeepRoutesOnStop bool `yaml:"keep_routes_on_stop"`
	// NeighborProbeInterval is how often the kernel re-checks a seller's
	// router on the LAN (managed neighbor entries); a router that stops
	// answering loses its routes within about this plus 3 s.
	NeighborProbeInterval time.Duration `yaml:"neighbor_probe_interval"`
}

// Routing tells whether the BGP/FIB part is configured.
func (c *Config) Routing() bool { return len(c.BGP.RouteServers) > 0 }

// TableID is FIB.Table as a number.
func (c *FIBConfig) TableID() (int, error) {
	if c.Table == "" || c.Table == "main" {
		return 254, nil
	}
	n, err := strconv.ParseUint(c.Table, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("want \"main\" or a table number, got %q", c.Table)
	}
	if n == 255 {
		return 0, fmt.Errorf("table 255 is the kernel's local table")
	}
	return int(n), nil
}

// SocketPath is where the status socket is.
func (c *Config) SocketPath() string {
	if c.Status.Socket != "" {
		return c.Status.Socket
	}
	return filepath.Join(c.StateDir, "agent.sock")
}

func parseAddrs(key string, ss []string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for i, s := range ss {
		a, err := netip.ParseAddr(s)
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case err != nil:
			return nil, config.Errorf(k, "not an IP address: %q", s)
		case a.Is4In6():
			return nil, config.Errorf(k, "%v: use plain IPv4, not IPv4-mapped IPv6", a)
		case a.Zone() != "" || a.IsLinkLocalUnicast():
			return nil, config.Errorf(k, "%v: link-local addresses are not supported", a)
		case a.IsUnspecified() || a.IsMulticast():
			return nil, config.Errorf(k, "%v: not a unicast address", a)
		case seen[a]:
			return nil, config.Errorf(k, "%v listed twice", a)
		}
		seen[a] = true
		out = append(out, a)
	}
	return out, nil
}

// parseMemberRouters checks bgp.member_router.addresses: unicast, not a
// route server's address (loopback is fine: the router may be on this host).
func parseMemberRouters(b *BGPConfig) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[string]bool{}
	for _, r := range b.RouteServers {
		seen[r] = true
	}
	for i, s := range b.MemberRouter.Addresses {
		k := fmt.Sprintf("bgp.member_router.addresses[%d]", i)
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			return nil, config.Errorf(k, "not an IP address: %q", s)
		case a.Zone() != "" || a.IsLinkLocalUnicast() || a.IsUnspecified() || a.IsMulticast() || a.Is4In6():
			return nil, config.Errorf(k, "%v: want a unicast address (not link-local or IPv4-mapped)", a)
		case seen[a.String()]:
			return nil, config.Errorf(k, "%v is a route server or listed twice", a)
		}
		seen[a.String()] = true
		out = append(out, a)
	}
	return out, nil
}

// routerID returns bgp.router_id or the first IPv4 local address.
func (b *BGPConfig) routerID() (netip.Addr, error) {
	if b.RouterID != "" {
		a, err := netip.ParseAddr(b.RouterID)
		if err != nil || !a.Is4() || a.IsUnspecified() {
			return netip.Addr{}, config.Errorf("bgp.router_id", "want a non-zero IPv4 address, got %q", b.RouterID)
		}
		return a, nil
	}
	for _, s := range b.LocalAddresses {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a, nil
		}
	}
	return netip.Addr{}, config.Errorf("bgp.router_id", "required when bgp.local_addresses has no IPv4 address")
}

func (c *Config) validateRouting() error {
	b, f := &c.BGP, &c.FIB
	if _, err := f.TableID(); err != nil {
		return config.Errorf("fib.table", "%v", err)
	}
	if f.NeighborProbeInterval < 100*time.Millisecond || f.NeighborProbeInterval > time.Hour {
		return config.Errorf("fib.neighbor_probe_interval", "want 100ms to 1h, got %v", f.NeighborProbeInterval)
	}
	if !c.Routing() {
		return nil
	}
	if _, err := parseAddrs("bgp.route_servers", b.RouteServers); err != nil {
		return err
	}
	if _, err := parseAddrs("bgp.local_addresses", b.LocalAddresses); err != nil {
		return err
	}
	if b.RouteServerASN == 0 || b.RouteServerASN == 23456 {
		return config.Errorf("bgp.route_server_asn", "want the route server's AS number, got %d", b.RouteServerASN)
	}
	if _, err := b.routerID(); err != nil {
		return err
	}
	if _, err := parseMemberRouters(b); err != nil {
		return err
	}
	if s := b.MemberRouter.LocalAddress; s != "" {
		if a, err := netip.ParseAddr(s); err != nil || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			return config.Errorf("bgp.member_router.local_address", "want a unicast IP address, got %q", s)
		}
	}
	if b.HoldTime < 3*time.Second || b.HoldTime > 65535*time.Second {
		return config.Errorf("bgp.hold_time", "want 3s to 65535s, got %v", b.HoldTime)
	}
	if b.GracefulRestartTime < time.Second || b.GracefulRestartTime > 4095*time.Second || b.GracefulRestartTime%time.Second != 0 {
		return config.Errorf("bgp.graceful_restart_time", "want whole seconds from 1s to 4095s, got %v", b.GracefulRestartTime)
	}
	if b.ConnectRetry < time.Second || b.ConnectRetry%time.Second != 0 {
		return config.Errorf("bgp.connect_retry", "want whole seconds, at least 1s, got %v", b.ConnectRetry)
	}
	if b.TradeGrace < 0 || b.TradeGrace > 10*time.Minute {
		return config.Errorf("bgp.trade_grace", "want 0 to 10m, got %v", b.TradeGrace)
	}
	if f.Interface == "" {
		return config.Required("fib.interface")
	}
	if len(f.Interface) > 15 {
		return config.Errorf("fib.interface", "%q is longer than an interface name can be (15)", f.Interface)
	}
	if c.Status.Socket != "" && !filepath.IsAbs(c.Status.Socket) {
		return config.Errorf("status.socket", "must be an absolute path, got %q", c.Status.Socket)
	}
	return nil
}

// DefaultConfig is what an empty file means.
func DefaultConfig() Config {
	var c Config
	c.Bundle = "/etc/bwx/agent.pem"
	c.StateDir = "/var/lib/bwx-agent"
	c.Log.Level = "info"
	c.Log.Format = "auto"
	c.BGP.Port = 179
	c.BGP.HoldTime = 90 * time.Second
	c.BGP.GracefulRestartTime = 120 * time.Second
	c.BGP.ConnectRetry = 5 * time.Second
	c.BGP.TradeGrace = routecheck.DefaultGrace
	c.BGP.MemberRouter.Port = 179
	c.FIB.Table = "main"
	c.FIB.NeighborProbeInterval = time.Second
	defaultMeasure(&c)
	c.Metrics.Listen = "127.0.0.1:9480"
	c.Manager = defaultManager()
	return c
}

// LoadConfig reads path over the defaults, strictly.
func LoadConfig(path string) (Config, error) { return LoadConfigThen(path, nil) }

// LoadConfigThen is LoadConfig with override applied before validation
// (command-line flags that replace a key); with an override, a missing
// file is fine if the flags and defaults give every required key.
func LoadConfigThen(path string, override func(*Config)) (Config, error) {
	c := DefaultConfig()
	var then func()
	if override != nil {
		then = func() { override(&c) }
	}
	return c, config.LoadThen(path, &c, then)
}

// ArbiterAddresses are arbiter.addresses, or arbiter.address as a list
// of one.
func (c *Config) ArbiterAddresses() []string {
	if len(c.Arbiter.Addresses) > 0 {
		return c.Arbiter.Addresses
	}
	if c.Arbiter.Address != "" {
		return []string{c.Arbiter.Address}
	}
	return nil
}

// validateArbiter checks arbiter.address(es): host:port each (IPv6 in
// brackets), a port number, no address twice, not both keys.
func (c *Config) validateArbiter() error {
	a := &c.Arbiter
	switch {
	case a.Address != "" && len(a.Addresses) > 0:
		return config.Errorf("arbiter.addresses", "give arbiter.addresses or arbiter.address, not both")
	case a.Address == "" && len(a.Addresses) == 0:
		return config.Required("arbiter.addresses")
	}
	key := func(i int) string { return fmt.Sprintf("arbiter.addresses[%d]", i) }
	if len(a.Addresses) == 0 {
		key = func(int) string { return "arbiter.address" }
	}
	seen := map[string]bool{}
	for i, s := range c.ArbiterAddresses() {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return config.Errorf(key(i), "want host:port (an IPv6 address in brackets: \"[2001:db8::1]:7443\"), got %q", s)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return config.Errorf(key(i), "want a port number from 1 to 65535, got %q in %q", port, s)
		}
		if ip, err := netip.ParseAddr(host); err == nil && (ip.IsUnspecified() || ip.IsMulticast()) {
			return config.Errorf(key(i), "%v: not a unicast address", ip)
		}
		if seen[strings.ToLower(s)] {
			return config.Errorf(key(i), "%s listed twice", s)
		}
		seen[strings.ToLower(s)] = true
	}
	return nil
}

// Validate names the key of the first bad value.
func (c *Config) Validate() error {
	if err := c.validateArbiter(); err != nil {
		return err
	}
	if c.Bundle == "" {
		return config.Required("bundle")
	}
	if !filepath.IsAbs(c.StateDir) {
		return config.Errorf("state_dir", "must be an absolute path, got %q", c.StateDir)
	}
	if _, err := logging.New(nil, c.Log.Level, "json"); err != nil {
		return config.Errorf("log.level", "%v", err)
	}
	if _, err := logging.New(nil, "", c.Log.Format); err != nil {
		return config.Errorf("log.format", "%v", err)
	}
	if err := validateMetricsListen(c.Metrics.Listen); err != nil {
		return err
	}
	if err := c.validateMeasure(); err != nil {
		return err
	}
	if err := c.validateManager(); err != nil {
		return err
	}
	return c.validateRouting()
}
