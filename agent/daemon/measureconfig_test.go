package daemon_test

import (
	"strings"
	"testing"

	"github.com/bwxchange/bwx/agent/daemon"
)

func TestCaptureDirectionConfig(t *testing.T) {
	base := "arbiter:\n  address: \"192.0.2.1:7443\"\n"
	cfg, err := daemon.LoadConfig(writeConfig(t, base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Capture.Direction != daemon.DirectionAuto {
		t.Errorf("default capture.direction %q, want auto", cfg.Capture.Direction)
	}
	for _, d := range []string{"auto", "out", "both"} {
		cfg, err := daemon.LoadConfig(writeConfig(t, base+"capture:\n  interfaces: [eth1]\n  direction: "+d+"\n"))
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil || cfg.Capture.Direction != d {
			t.Errorf("direction %s: %v, %q", d, err, cfg.Capture.Direction)
		}
	}
	cfg, err = daemon.LoadConfig(writeConfig(t, base+"capture:\n  direction: in\n"))
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "capture.direction") || !strings.Contains(err.Error(), `"in"`) {
		t.Errorf("direction in: %v, want an error naming capture.direction and the value", err)
	}
}
