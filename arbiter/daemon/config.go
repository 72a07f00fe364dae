// Package daemon wires the arbiter together: config, store, domain
// packages, the gRPC API on its TLS and operator listeners, metrics, and
// the process lifecycle (readiness, reload, graceful stop).
package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/api"
	"github.com/bwxchange/bwx/arbiter/federation"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
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
		// PerCaller bounds what one member (or the operator) may have
		// the arbiter do at once (api.Fairness): past a bound a call is
		// refused with ResourceExhausted and a retry hint.
		PerCaller struct {
			InFlight    int     `yaml:"in_flight"`
			Streams     int     `yaml:"streams"`
			CallsPerSec float64 `yaml:"calls_per_second"`
			Burst       int     `yaml:"burst"`
		} `yaml:"per_caller"`
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
		// Driver is sqlite (the default: one file) or postgres.
		Driver string `yaml:"driver"`
		// Path is sqlite's database file (default <state_dir>/bwx.db).
		Path string `yaml:"path"`
		// DSN is PostgreSQL's connection string or URL; a host list with
		// target_session_attrs=read-write finds the primary.
		DSN string `yaml:"dsn"`
	} `yaml:"store"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	BGP BGPConfig `yaml:"bgp"`
	// Dashboard is the web dashboard (dashboard.go).
	Dashboard DashboardConfig `yaml:"dashboard"`
	// Quality is the quality matrix's probe scheduling (quality.go).
	Quality QualityConfig `yaml:"quality"`
	// Settle is the settlement terms (settle.go).
	Settle settle.Config `yaml:"settle"`
	// Federation is the peering with other exchanges (claim 26).
	Federation federation.Config `yaml:"federation"`
}

// BGPConfig is the route server (arbiter/routeserver). Members and their
// router addresses come from the registry; only what the registry does not
// hold is here.
type BGPConfig struct {
	// Enabled starts the route server; off, the arbiter delivers no trades
	// over BGP (existing setups keep working).
	Enabled bool `yaml:"enabled"`
	// ASN is the route server's AS number.
	ASN uint32 `yaml:"asn"`
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID string `yaml:"router_id"`
	// Listen are the addresses to accept sessions on; empty means all.
	Listen []string `yaml:"listen"`
	// Port is the TCP port (179).
	Port int `yaml:"port"`
	// HoldTime is offered to members; keepalives go every third of it.
	HoldTime time.Duration `yaml:"hold_time"`
	// Passive only accepts sessions: members' routers connect.
	Passive bool `yaml:"passive"`
	// MaxPrefixes is the per-session, per-family limit for every member
	// (0: none); above it the session closes until `bwx-arbiter bgp reset`.
	MaxPrefixes uint32 `yaml:"max_prefixes"`
	// AddPath offers ADD-PATH send to every member, so a router that
	// negotiates receive gets every seller's path for a prefix.
	AddPath bool `yaml:"add_path"`
	// RequireIRR rejects a route without a matching IRR route object.
	RequireIRR bool `yaml:"require_irr"`
	// IRRMaxLength4 and IRRMaxLength6 let a route object cover more
	// specifics up to these lengths; 0 means the exact prefix only.
	IRRMaxLength4 int `yaml:"irr_max_length4"`
	IRRMaxLength6 int `yaml:"irr_max_length6"`
	// RecheckInterval is how often the arbiter looks for registry, IRR or
	// RPKI changes made by other processes (`bwx-arbiter import`) and
	// re-checks the received routes.
	RecheckInterval time.Duration `yaml:"recheck_interval"`
	// GracefulRestartTime is offered to members (RFC 4724): a member that
	// helps keeps the trades it has, marked stale, this long after the
	// route server goes away.
	GracefulRestartTime time.Duration `yaml:"graceful_restart_time"`
	// GracefulStop leaves the sessions to close with the process on a stop
	// (SIGTERM, systemctl restart), without a NOTIFICATION, so helping
	// members keep the trades for GracefulRestartTime; false sends CEASE,
	// and members drop the trades at once.
	GracefulStop bool `yaml:"graceful_stop"`
	// Members override the defaults per member.
	Members []BGPMember `yaml:"members"`
}

// BGPMember is one member's session settings. They live here, not in the
// registry, because the MD5 password is a secret: the config file is
// readable by the daemon only, the database is copied and served.
type BGPMember struct {
	ASN         uint32  `yaml:"asn"`
	Password    string  `yaml:"password"`
	MaxPrefixes *uint32 `yaml:"max_prefixes"`
	AddPath     *bool   `yaml:"add_path"`
}

// Bounds of the gRPC listeners, so that no client holds more of the
// arbiter than a member's work needs. MaxRecvMsgSize is the largest
// request: a full report (10,000 measurements or usage samples, each with
// a key of up to 128 characters) is under 3 MiB; a larger one is refused
// with ResourceExhausted before it is decoded. MaxConcurrentStreams bounds
// the calls one connection has open at once (an agent holds two streams
// and a few calls); more wait in the client until one ends.
const (
	MaxRecvMsgSize       = 4 << 20
	MaxConcurrentStreams = 32
)

// DefaultConfig is what an empty file means.
func DefaultConfig() Config {
	var c Config
	c.StateDir = "/var/lib/bwx-arbiter"
	c.GRPC.Listen = "[::]:7443"
	c.GRPC.PerCaller.InFlight = api.DefaultMaxInFlight
	c.GRPC.PerCaller.Streams = api.DefaultMaxStreams
	c.GRPC.PerCaller.CallsPerSec = api.DefaultCallRate
	c.GRPC.PerCaller.Burst = api.DefaultCallBurst
	c.Operator.Socket = "/run/bwx-arbiter/operator.sock"
	c.Metrics.Listen = "127.0.0.1:9470"
	c.Log.Level = "info"
	c.Log.Format = "auto"
	c.BGP.Port = 179
	c.BGP.HoldTime = 90 * time.Second
	c.BGP.Passive = true
	c.BGP.MaxPrefixes = 1000
	c.BGP.RequireIRR = true
	c.BGP.RecheckInterval = 30 * time.Second
	c.BGP.GracefulRestartTime = 120 * time.Second
	c.BGP.GracefulStop = true
	c.Quality = DefaultQualityConfig()
	c.Settle = settle.DefaultConfig()
	c.Federation = federation.DefaultConfig()
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

// StoreConfig is the database to open.
func (c *Config) StoreConfig() store.Config {
	d := store.Dialect(c.Store.Driver)
	if d == "" {
		d = store.SQLite
	}
	if d == store.Postgres {
		return store.Config{Driver: d, DSN: c.Store.DSN}
	}
	return store.Config{Driver: d, Path: c.StorePath()}
}

func (c *Config) validateStore() error {
	d := store.SQLite
	if c.Store.Driver != "" {
		var err error
		if d, err = store.ParseDialect(c.Store.Driver); err != nil {
			return config.Errorf("store.driver", "want sqlite or postgres, got %q", c.Store.Driver)
		}
	}
	switch d {
	case store.Postgres:
		if c.Store.DSN == "" {
			return config.Errorf("store.dsn", "required when store.driver is postgres")
		}
		if c.Store.Path != "" {
			return config.Errorf("store.path", "is sqlite's file; store.driver is postgres (set store.dsn)")
		}
		if err := store.CheckDSN(c.Store.DSN); err != nil {
			return config.Errorf("store.dsn", "%v", err)
		}
	default:
		if c.Store.DSN != "" {
			return config.Errorf("store.dsn", "is PostgreSQL's; set store.driver: postgres to use it")
		}
	}
	return nil
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
	if pc := c.GRPC.PerCaller; pc.InFlight < 1 || pc.InFlight > 10_000 {
		return config.Errorf("grpc.per_caller.in_flight", "want 1 to 10000 calls, got %d", pc.InFlight)
	} else if pc.Streams < 1 || pc.Streams > 10_000 {
		return config.Errorf("grpc.per_caller.streams", "want 1 to 10000 streams, got %d", pc.Streams)
	} else if !(pc.CallsPerSec >= 1 && pc.CallsPerSec <= 1e6) {
		return config.Errorf("grpc.per_caller.calls_per_second", "want 1 to 1000000, got %v", pc.CallsPerSec)
	} else if pc.Burst < 1 || pc.Burst > 1_000_000 {
		return config.Errorf("grpc.per_caller.burst", "want 1 to 1000000 calls, got %d", pc.Burst)
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return config.Errorf("metrics.listen", "want host:port, got %q", c.Metrics.Listen)
		}
	}
	if c.Operator.Socket != "" && !filepath.IsAbs(c.Operator.Socket) {
		return config.Errorf("operator.socket", "must be an absolute path, got %q", c.Operator.Socket)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if _, err := logging.ParseLevel(c.Log.Level); err != nil {
		return config.Errorf("log.level", "%v", err)
	}
	if _, err := logging.New(nil, c.Log.Level, c.Log.Format); err != nil {
		return config.Errorf("log.format", "%v", err)
	}
	if err := c.Quality.validate(); err != nil {
		return err
	}
	if err := c.validateSettle(); err != nil {
		return err
	}
	if err := c.Dashboard.validate(); err != nil {
		return err
	}
	if err := c.Federation.Validate(); err != nil {
		return err
	}
	return c.BGP.validate()
}

func (b *BGPConfig) validate() error {
	if !b.Enabled {
		return nil
	}
	if b.ASN == 0 {
		return config.Errorf("bgp.asn", "required when bgp.enabled is true")
	}
	if b.ASN == 23456 || b.ASN == 4294967295 {
		return config.Errorf("bgp.asn", "%d is reserved", b.ASN)
	}
	if b.RouterID == "" {
		return config.Errorf("bgp.router_id", "required when bgp.enabled is true (an IPv4 address)")
	}
	if a, err := netip.ParseAddr(b.RouterID); err != nil || !a.Is4() || a.IsUnspecified() {
		return config.Errorf("bgp.router_id", "want a non-zero IPv4 address, got %q", b.RouterID)
	}
	for i, s := range b.Listen {
		if _, err := netip.ParseAddr(s); err != nil {
			return config.Errorf(fmt.Sprintf("bgp.listen[%d]", i), "want an IP address, got %q", s)
		}
	}
	if b.Port < 1 || b.Port > 65535 {
		return config.Errorf("bgp.port", "want 1 to 65535, got %d", b.Port)
	}
	if b.HoldTime < 3*time.Second || b.HoldTime > 65535*time.Second {
		return config.Errorf("bgp.hold_time", "want 3s to 65535s, got %v", b.HoldTime)
	}
	if b.IRRMaxLength4 < 0 || b.IRRMaxLength4 > 32 {
		return config.Errorf("bgp.irr_max_length4", "want 0 (exact) to 32, got %d", b.IRRMaxLength4)
	}
	if b.IRRMaxLength6 < 0 || b.IRRMaxLength6 > 128 {
		return config.Errorf("bgp.irr_max_length6", "want 0 (exact) to 128, got %d", b.IRRMaxLength6)
	}
	if b.GracefulRestartTime < time.Second || b.GracefulRestartTime > 4095*time.Second || b.GracefulRestartTime%time.Second != 0 {
		return config.Errorf("bgp.graceful_restart_time", "want whole seconds from 1s to 4095s, got %v", b.GracefulRestartTime)
	}
	if b.RecheckInterval < time.Second {
		return config.Errorf("bgp.recheck_interval", "want at least 1s, got %v", b.RecheckInterval)
	}
	seen := map[uint32]bool{}
	for i, m := range b.Members {
		k := fmt.Sprintf("bgp.members[%d]", i)
		switch {
		case m.ASN == 0:
			return config.Errorf(k+".asn", "required")
		case m.ASN == b.ASN:
			return config.Errorf(k+".asn", "AS%d is the route server's own ASN", m.ASN)
		case seen[m.ASN]:
			return config.Errorf(k+".asn", "AS%d is listed twice", m.ASN)
		case len(m.Password) > 80:
			return config.Errorf(k+".password", "longer than 80 bytes (the TCP MD5 key limit)")
		case strings.ContainsRune(m.Password, 0):
			return config.Errorf(k+".password", "contains a NUL byte")
		}
		seen[m.ASN] = true
	}
	return nil
}

// member returns the session settings for asn.
func (b *BGPConfig) member(asn uint32) BGPMember {
	m := BGPMember{ASN: asn}
	for _, o := range b.Members {
		if o.ASN == asn {
			m = o
		}
	}
	if m.MaxPrefixes == nil {
		m.MaxPrefixes = &b.MaxPrefixes
	}
	if m.AddPath == nil {
		m.AddPath = &b.AddPath
	}
	return m
}
