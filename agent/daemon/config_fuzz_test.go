package daemon_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/shared/config"
)

// FuzzAgentConfig: any bytes as /etc/bwx/agent.yaml. A file that is
// refused is refused with *config.Error naming the file; one that is
// accepted is valid, and written back out it reads the same.
func FuzzAgentConfig(f *testing.F) {
	shipped, err := os.ReadFile("../../packaging/etc/agent.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(shipped)
	f.Add([]byte(routingBase))
	f.Add([]byte("arbiter:\n  address: \"192.0.2.1:7443\"\nfib:\n  interface: eth1\ncapture:\n  interfaces: [eth1]\n  sample_rate: 2.5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := daemon.DefaultConfig()
		if err := config.Decode("agent.yaml", data, &c); err != nil {
			checkConfigError(t, "agent.yaml", err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted, but Validate: %v", err)
		}
		out, err := yaml.Marshal(&c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again := daemon.DefaultConfig()
		if err := config.Decode("again.yaml", out, &again); err != nil {
			t.Fatalf("accepted config, written out, is refused: %v\n%s", err, out)
		}
		// Equal up to nil and empty lists, which mean the same.
		if out2, _ := yaml.Marshal(&again); !bytes.Equal(out, out2) {
			t.Fatalf("accepted config reads differently written out:\n%s\n%s", out, out2)
		}
	})
}

// checkConfigError: every error the config package gives is *config.Error
// (or several joined) naming the file.
func checkConfigError(t *testing.T, name string, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var ce *config.Error
		if !errors.As(e, &ce) || ce.File != name || ce.Line < 0 {
			t.Fatalf("error %v (%T) is not a *config.Error about %s", e, e, name)
		}
	}
}
