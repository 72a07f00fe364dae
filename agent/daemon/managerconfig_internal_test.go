package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/manager"
)

func TestManagerConfigDefaultsAndErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "agent.yaml")
		if err := os.WriteFile(p, []byte("arbiter:\n  address: \"192.0.2.1:7443\"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write(""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Manager.Mode != manager.ModeShadow || cfg.managerRuns() {
		t.Errorf("empty section: mode %q, runs %v; want shadow, not running without capture", cfg.Manager.Mode, cfg.managerRuns())
	}
	cfg, err = LoadConfig(write("capture:\n  interfaces: [eth1]\n  interval: 10s\nmanager:\n  mode: trade\n  buy:\n    budget: \"100\"\n    max_price: \"2.5\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.managerRuns() || cfg.managerRound() != 10*time.Second || cfg.Manager.Buy.MaxPrice != 2_500_000 || cfg.Manager.Demand.Top != 20 {
		t.Errorf("trade section: %+v, round %v", cfg.Manager, cfg.managerRound())
	}
	for _, c := range []struct{ body, want string }{
		{"manager:\n  buy:\n    ranking: cheapest\n", "manager.buy.ranking"},
		{"manager:\n  bogus: 1\n", "bogus"},
		{"manager:\n  mode: trade\n", "manager.mode"},
		{"manager:\n  round: 10ms\n", "manager.round"},
		{"manager:\n  journal_size: 0\n", "manager.journal_size"},
		{"manager:\n  sell:\n    enabled: true\n    destinations: [10.0.0.1/8]\n    price: 1\n    min_block: 1M\n", "manager.sell.destinations[0]"},
	} {
		_, err := LoadConfig(write(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to name %s", c.body, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "agent.yaml:") {
			t.Errorf("%q: error %v does not give the file and line", c.body, err)
		}
	}
}
