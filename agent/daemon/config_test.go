package daemon_test

import (
	"testing"

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
