// Package daemon wires the agent together: config, the connection to the
// arbiter, and the trade event stream. Later parts (BGP speaker, FIB,
// capture, probes, access manager) hang off the same Agent.
package daemon

import (
	"net"
	"path/filepath"

	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/logging"
)

// Config is /etc/bwx/agent.yaml.
type Config struct {
	Arbiter struct {
		// Address is the arbiter's gRPC host:port.
		Address string `yaml:"address"`
		// ServerName is the name on the arbiter's certificate, when the
		// address is not on it.
		ServerName string `yaml:"server_name"`
	} `yaml:"arbiter"`
	// Bundle is the member's certificate bundle from `bwx-arbiter member add`.
	Bundle   string `yaml:"bundle"`
	StateDir string `yaml:"state_dir"`
	Log      struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
}

// DefaultConfig is what an empty file means.
func DefaultConfig() Config {
	var c Config
	c.Bundle = "/etc/bwx/agent.pem"
	c.StateDir = "/var/lib/bwx-agent"
	c.Log.Level = "info"
	c.Log.Format = "auto"
	return c
}

// LoadConfig reads path over the defaults, strictly.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	return c, config.Load(path, &c)
}

// Validate names the key of the first bad value.
func (c *Config) Validate() error {
	if c.Arbiter.Address == "" {
		return config.Required("arbiter.address")
	}
	if _, _, err := net.SplitHostPort(c.Arbiter.Address); err != nil {
		return config.Errorf("arbiter.address", "want host:port, got %q", c.Arbiter.Address)
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
	return nil
}
