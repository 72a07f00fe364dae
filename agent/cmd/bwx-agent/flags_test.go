package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every flag whose help says it replaces a config key does: the file need
// not hold the key (or exist at all), and the flag's value is the one in
// use; what no flag gives is still required, by its key.
func TestFlagsReplaceConfigKeys(t *testing.T) {
	dir := t.TempDir()
	noAddress := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(noAddress, []byte("bundle: /etc/bwx/agent.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name                  string
		config, arbiter, bund string
		wantAddr, wantBundle  string
		wantErr               string
	}{
		{"--arbiter replaces arbiter.address", noAddress, "192.0.2.1:7443", "", "192.0.2.1:7443", "/etc/bwx/agent.pem", ""},
		{"--bundle replaces bundle", noAddress, "192.0.2.1:7443", "/tmp/m.pem", "192.0.2.1:7443", "/tmp/m.pem", ""},
		{"no config file, flags give it all", filepath.Join(dir, "none.yaml"), "[2001:db8::1]:7443", "/tmp/m.pem", "[2001:db8::1]:7443", "/tmp/m.pem", ""},
		{"--arbiter gives a pair", noAddress, "192.0.2.1:7443,[2001:db8::2]:7443", "", "192.0.2.1:7443,[2001:db8::2]:7443", "/etc/bwx/agent.pem", ""},
		{"--arbiter entries are checked", noAddress, "192.0.2.1:7443,2001:db8::2:7443", "", "", "", `arbiter.addresses[1]: want host:port (an IPv6 address in brackets: "[2001:db8::1]:7443"), got "2001:db8::2:7443"`},
		{"no flag, no key", noAddress, "", "", "", "", "arbiter.addresses: is required"},
		{"no config file, no flag", filepath.Join(dir, "none.yaml"), "", "", "", "", "none.yaml"},
	} {
		g := &globals{configPath: c.config, arbiter: c.arbiter, bundle: c.bund}
		cfg, err := g.config()
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want one saying %q", c.name, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case strings.Join(cfg.ArbiterAddresses(), ",") != c.wantAddr || cfg.Bundle != c.wantBundle:
			t.Errorf("%s: addresses %q bundle %q, want %q %q", c.name, cfg.ArbiterAddresses(), cfg.Bundle, c.wantAddr, c.wantBundle)
		}
	}
}
