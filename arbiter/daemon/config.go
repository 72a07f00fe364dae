// Package daemon wires the arbiter together: config, store, domain
// packages, the gRPC API on its TLS and operator listeners, metrics, and
// the process lifecycle (readiness, reload, graceful stop).
package daemon

import (
	"net"
	"path/filepath"

	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/logging"
)

// Config is /etc/bwx/arbiter.yaml.
type Config struct {
	// StateDir holds the database and, unless ca.dir says otherwise, the CA.
	StateDir string `yaml:"state_dir"`
	GRPC     struct {
		// Listen is where members' agents connect (mTLS).
		Listen string `yaml:"listen"`
	} `yaml:"grpc"`
	Operator struct {
		// Socket is the local operator socket (mode 0600); "" disables it.
		Socket string `yaml:"socket"`
	} `yaml:"operator"`
	Metrics struct {
		// Listen serves /metrics and /healthz over HTTP; "" disables it.
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`
	CA struct {
		Dir string `yaml:"dir"`
	} `yaml:"ca"`
	Store struct {
		Path string `yaml:"path"`
	} `yaml:"store"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
}

// DefaultConfig is what an empty file means.
func DefaultConfig() Config {
	var c Config
	c.StateDir = "/var/lib/bwx-arbiter"
	c.GRPC.Listen = "[::]:7443"
	c.Operator.Socket = "/run/bwx-arbiter/operator.sock"
	c.Metrics.Listen = "127.0.0.1:9470"
	c.Log.Level = "info"
	c.Log.Format = "auto"
	return c
}

// LoadConfig reads path over the defaults, strictly.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	err := config.Load(path, &c)
	return c, err
}

// CADir is where the CA lives.
func (c *Config) CADir() string {
	if c.CA.Dir != "" {
		return c.CA.Dir
	}
	return filepath.Join(c.StateDir, "ca")
}

// StorePath is the database file.
func (c *Config) StorePath() string {
	if c.Store.Path != "" {
		return c.Store.Path
	}
	return filepath.Join(c.StateDir, "bwx.db")
}

// Validate names the key of the first bad value.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		return config.Required("state_dir")
	}
	if !filepath.IsAbs(c.StateDir) {
		return config.Errorf("state_dir", "must be an absolute path, got %q", c.StateDir)
	}
	if _, _, err := net.SplitHostPort(c.GRPC.Listen); err != nil {
		return config.Errorf("grpc.listen", "want host:port, got %q", c.GRPC.Listen)
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return config.Errorf("metrics.listen", "want host:port, got %q", c.Metrics.Listen)
		}
	}
	if c.Operator.Socket != "" && !filepath.IsAbs(c.Operator.Socket) {
		return config.Errorf("operator.socket", "must be an absolute path, got %q", c.Operator.Socket)
	}
	if _, err := logging.ParseLevel(c.Log.Level); err != nil {
		return config.Errorf("log.level", "%v", err)
	}
	if _, err := logging.New(nil, c.Log.Level, c.Log.Format); err != nil {
		return config.Errorf("log.format", "%v", err)
	}
	return nil
}
