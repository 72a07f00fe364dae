package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
)

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := daemon.LoadConfig("../../packaging/etc/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Arbiter.Address != "192.0.2.1:7443" || cfg.Bundle != "/etc/bwx/agent.pem" {
		t.Errorf("unexpected config %+v", cfg)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const routingBase = `arbiter:
  address: "192.0.2.1:7443"
bgp:
  route_servers: ["192.0.2.1", "2001:db8::1"]
  route_server_asn: 65000
  local_addresses: ["192.0.2.10", "2001:db8::a"]
fib:
  interface: eth1
`

func TestRoutingConfig(t *testing.T) {
	cfg, err := daemon.LoadConfig(writeConfig(t, routingBase+"  table: \"100\"\n  keep_routes_on_stop: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Routing() || cfg.BGP.GracefulRestartTime != 120*time.Second || cfg.BGP.Port != 179 || !cfg.FIB.KeepRoutesOnStop {
		t.Fatalf("unexpected config %+v", cfg)
	}
	if id, err := cfg.FIB.TableID(); err != nil || id != 100 {
		t.Fatalf("table %d, %v", id, err)
	}
	if got := cfg.SocketPath(); got != "/var/lib/bwx-agent/agent.sock" {
		t.Fatalf("socket %q", got)
	}
	// Without route servers the routing part is off and nothing else
	// about it is required.
	cfg, err = daemon.LoadConfig(writeConfig(t, "arbiter:\n  address: \"192.0.2.1:7443\"\n"))
	if err != nil || cfg.Routing() {
		t.Fatalf("routing %v, err %v", cfg.Routing(), err)
	}
}

func TestRoutingConfigErrorsNameKeyAndLine(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{strings.Replace(routingBase, `"2001:db8::1"`, `"2001:db8::zz"`, 1), `:4: bgp.route_servers[1]: not an IP address: "2001:db8::zz"`},
		{strings.Replace(routingBase, `"2001:db8::1"`, `"192.0.2.1"`, 1), `:4: bgp.route_servers[1]: 192.0.2.1 listed twice`},
		{strings.Replace(routingBase, `"2001:db8::1"`, `"fe80::1"`, 1), `:4: bgp.route_servers[1]: fe80::1: link-local addresses are not supported`},
		{strings.Replace(routingBase, "65000", "0", 1), `:5: bgp.route_server_asn: want the route server's AS number, got 0`},
		{strings.Replace(routingBase, `"192.0.2.10", `, "", 1), `bgp.router_id: required when bgp.local_addresses has no IPv4 address`},
		{strings.Replace(routingBase, "  interface: eth1\n", "", 1), `fib.interface: is required`},
		{routingBase + "  table: local\n", `:9: fib.table: want "main" or a table number, got "local"`},
		{routingBase + "  table: \"255\"\n", `:9: fib.table: table 255 is the kernel's local table`},
		{routingBase + "  neighbor_probe_interval: 10ms\n", `:9: fib.neighbor_probe_interval: want 100ms to 1h, got 10ms`},
		{routingBase + "  keep_routes: true\n", `:9: fib.keep_routes: unknown key`},
		{strings.Replace(routingBase, "fib:\n", "  member_router:\n    addresses: [\"127.0.0.2\", \"192.0.2.1\"]\nfib:\n", 1), `:8: bgp.member_router.addresses[1]: 192.0.2.1 is a route server or listed twice`},
		{strings.Replace(routingBase, "fib:\n", "fib:\n  table: main\n", 1) + "bgp2: {}\n", `bgp2: unknown key`},
		{routingBase + "  keep_routes_on_stop: true\nbgp:\n  hold_time: 1s\n", ``},
	} {
		p := writeConfig(t, c.body)
		_, err := daemon.LoadConfig(p)
		if c.want == "" {
			if err == nil {
				t.Errorf("accepted:\n%s", c.body)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config:\n%s\nerror %v, want it to contain %q", c.body, err, c.want)
		}
	}
	cfg, _ := daemon.LoadConfig(writeConfig(t, routingBase))
	cfg.BGP.HoldTime = time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "bgp.hold_time") {
		t.Errorf("hold time 1s: %v", err)
	}
	cfg.BGP.HoldTime = 90 * time.Second
	cfg.BGP.GracefulRestartTime = 5000 * time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "bgp.graceful_restart_time") {
		t.Errorf("graceful restart 5000s: %v", err)
	}
}

func TestMeasureConfig(t *testing.T) {
	base := "arbiter:\n  address: \"192.0.2.1:7443\"\nfib:\n  interface: eth1\n"
	cfg, err := daemon.LoadConfig(writeConfig(t, base+`capture:
  interfaces: [eth1]
  sample_rate: 10
  interval: 30s
probe:
  enabled: true
  targets:
    "198.51.100.0/24": ["198.51.100.1"]
    "2001:db8:100::/48": ["2001:db8:100::1"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.Measuring() || cfg.Capture.SnapLen != 128 || cfg.Capture.Interval != 30*time.Second || cfg.Probe.Count != 5 || cfg.Probe.TableBase != 20000 {
		t.Errorf("unexpected config %+v %+v", cfg.Capture, cfg.Probe)
	}
	for _, c := range []struct{ body, key string }{
		{"capture:\n  sample_rate: 0\n", "capture.sample_rate"},
		{"capture:\n  interval: 7s\n", "capture.interval"},
		{"capture:\n  interval: 1500ms\n", "capture.interval"},
		{"capture:\n  snaplen: 20\n", "capture.snaplen"},
		{"capture:\n  interfaces: [eth1, eth1]\n", "capture.interfaces[1]"},
		{"probe:\n  enabled: true\n  count: 0\n", "probe.count"},
		{"probe:\n  enabled: true\n  table_base: 250\n", "probe.table_base"},
		{"probe:\n  enabled: true\n  rule_priority: 32766\n", "probe.rule_priority"},
		{"probe:\n  enabled: true\n  targets:\n    \"198.51.100.0/24\": [\"203.0.113.1\"]\n", "probe.targets[198.51.100.0/24][0]"},
		{"probe:\n  enabled: true\n  targets:\n    \"198.51.100.1/24\": []\n", "probe.targets"},
		{"probe:\n  enabled: true\n  bogus: 1\n", "bogus"},
		// yaml alone truncated a fraction into an integer key.
		{"capture:\n  sample_rate: 2.5\n", ":6: capture.sample_rate: expected an integer, got 2.5"},
		{"probe:\n  enabled: true\n  table_base: 2e4\n", ":7: probe.table_base: expected an integer, got 2e4"},
	} {
		cfg, err := daemon.LoadConfig(writeConfig(t, base+c.body))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: err = %v, want one naming %s", c.body, err, c.key)
		}
	}
}

// arbiter.addresses lists an arbiter pair (IPv4 and IPv6); the one-arbiter
// arbiter.address is a list of one; bad entries are named by key and line.
func TestArbiterAddresses(t *testing.T) {
	cfg, err := daemon.LoadConfig(writeConfig(t, "arbiter:\n  addresses: [\"192.0.2.1:7443\", \"[2001:db8::2]:7443\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.ArbiterAddresses(), " "); got != "192.0.2.1:7443 [2001:db8::2]:7443" {
		t.Fatalf("addresses %q", got)
	}
	cfg, err = daemon.LoadConfig(writeConfig(t, "arbiter:\n  address: \"arbiter.ix.example:7443\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.ArbiterAddresses(), " "); got != "arbiter.ix.example:7443" {
		t.Fatalf("address as a list: %q", got)
	}
	for _, c := range []struct{ body, want string }{
		{"arbiter:\n  address: \"192.0.2.1:7443\"\n  addresses: [\"192.0.2.2:7443\"]\n", `:3: arbiter.addresses: give arbiter.addresses or arbiter.address, not both`},
		{"arbiter:\n  addresses:\n    - \"192.0.2.1:7443\"\n    - \"2001:db8::2:7443\"\n", `:4: arbiter.addresses[1]: want host:port (an IPv6 address in brackets: "[2001:db8::1]:7443"), got "2001:db8::2:7443"`},
		{"arbiter:\n  addresses:\n    - \"192.0.2.1:7443\"\n    - \"192.0.2.2\"\n", `:4: arbiter.addresses[1]: want host:port`},
		{"arbiter:\n  addresses:\n    - \"192.0.2.1:7443\"\n    - \"192.0.2.2:http\"\n", `:4: arbiter.addresses[1]: want a port number from 1 to 65535, got "http" in "192.0.2.2:http"`},
		{"arbiter:\n  addresses:\n    - \"192.0.2.1:7443\"\n    - \"192.0.2.1:7443\"\n", `:4: arbiter.addresses[1]: 192.0.2.1:7443 listed twice`},
		{"arbiter:\n  addresses:\n    - \"[::]:7443\"\n", `:3: arbiter.addresses[0]: ::: not a unicast address`},
		{"arbiter:\n  addresses: []\n", `arbiter.addresses: is required`},
		{"arbiter:\n  address: \":7443\"\n", `:2: arbiter.address: want host:port`},
		{"arbiter:\n  addresses: \"192.0.2.1:7443\"\n", `:2: arbiter.addresses:`},
	} {
		_, err := daemon.LoadConfig(writeConfig(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.body, err, c.want)
		}
	}
}
