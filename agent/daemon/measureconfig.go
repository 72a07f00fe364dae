package daemon

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/bwxchange/bwx/agent/capture"
	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/shared/config"
)

// Capture directions (capture.direction).
const (
	// DirectionAuto samples outgoing frames, and incoming ones while the
	// member has sold trades to report on.
	DirectionAuto = "auto"
	// DirectionOut samples outgoing frames only: no seller-side reports.
	DirectionOut = "out"
	// DirectionBoth always samples both.
	DirectionBoth = "both"
)

// CaptureConfig is the `capture:` section: sampling the member's traffic
// per destination prefix and seller (claim 7), and as a seller what each
// buyer sends it.
type CaptureConfig struct {
	// Interfaces to sample frames on (the exchange interface and any other
	// uplink); empty: no capture, no usage reports.
	Interfaces []string `yaml:"interfaces"`
	// Direction: auto (default), out or both; see DirectionAuto.
	Direction string `yaml:"direction"`
	// SampleRate N samples one frame in N, in the kernel.
	SampleRate int `yaml:"sample_rate"`
	// SnapLen is how many bytes of a sampled frame are copied.
	SnapLen int `yaml:"snaplen"`
	// Interval is the reporting interval: whole seconds dividing a day.
	Interval time.Duration `yaml:"interval"`
	// TopAddresses is how many of each prefix's most-seen destinations are
	// kept as probe targets.
	TopAddresses int `yaml:"top_addresses"`
	// Refresh is how often the registry's destinations and the member's
	// trades are re-read (trade events also trigger a re-read).
	Refresh time.Duration `yaml:"refresh"`
}

// ProbeConfig is the `probe:` section: measuring path quality through each
// seller (claim 6) for the arbiter's probe tasks.
type ProbeConfig struct {
	Enabled bool `yaml:"enabled"`
	// Interface is the exchange interface (default fib.interface).
	Interface string `yaml:"interface"`
	// TableBase and MarkBase: seller n gets routing table TableBase+n and
	// fwmark MarkBase+n; RulePriority is the fwmark rules' priority.
	TableBase    uint32 `yaml:"table_base"`
	MarkBase     uint32 `yaml:"mark_base"`
	RulePriority int    `yaml:"rule_priority"`
	// TargetsPerMinute bounds the probing rate.
	TargetsPerMinute int `yaml:"targets_per_minute"`
	// Count is the echo requests per target per round.
	Count int `yaml:"count"`
	// TargetsPerPrefix is how many addresses of a prefix are probed.
	TargetsPerPrefix int `yaml:"targets_per_prefix"`
	// Round is the longest a received task waits for its round.
	Round time.Duration `yaml:"round"`
	// Targets are configured probe targets per prefix; they come before
	// the addresses the capture saw and the arbiter's hints.
	Targets map[string][]string `yaml:"targets"`
}

// SpoolPath is the durable report queue.
func (c *Config) SpoolPath() string { return c.StateDir + "/reports.db" }

// Measuring tells whether capture or probing is configured.
func (c *Config) Measuring() bool { return len(c.Capture.Interfaces) > 0 || c.Probe.Enabled }

func defaultMeasure(c *Config) {
	c.Capture.SampleRate = 100
	c.Capture.Direction = DirectionAuto
	c.Capture.SnapLen = capture.DefaultSnapLen
	c.Capture.Interval = capture.DefaultInterval
	c.Capture.TopAddresses = 16
	c.Capture.Refresh = 5 * time.Minute
	c.Probe.TableBase = probe.DefaultTableBase
	c.Probe.MarkBase = probe.DefaultMarkBase
	c.Probe.RulePriority = probe.DefaultRulePriority
	c.Probe.TargetsPerMinute = 600
	c.Probe.Count = probe.DefaultCount
	c.Probe.TargetsPerPrefix = 2
	c.Probe.Round = 10 * time.Second
}

// probeLink is the exchange interface probes leave by.
func (c *Config) probeLink() string {
	if c.Probe.Interface != "" {
		return c.Probe.Interface
	}
	return c.FIB.Interface
}

// probeTargets parses probe.targets.
func (c *Config) probeTargets() (map[netip.Prefix][]netip.Addr, error) {
	out := map[netip.Prefix][]netip.Addr{}
	keys := make([]string, 0, len(c.Probe.Targets))
	for k := range c.Probe.Targets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, err := netip.ParsePrefix(k)
		if err != nil || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return nil, config.Errorf("probe.targets", "%q is not a CIDR prefix without host bits", k)
		}
		for i, s := range c.Probe.Targets[k] {
			a, err := netip.ParseAddr(s)
			if err != nil || !p.Contains(a) {
				return nil, config.Errorf(fmt.Sprintf("probe.targets[%s][%d]", k, i), "%q is not an address inside %v", s, p)
			}
			out[p] = append(out[p], a)
		}
	}
	return out, nil
}

func (c *Config) validateMeasure() error {
	cp, pr := &c.Capture, &c.Probe
	seen := map[string]bool{}
	for i, name := range cp.Interfaces {
		if name == "" || len(name) > 15 || seen[name] {
			return config.Errorf(fmt.Sprintf("capture.interfaces[%d]", i), "%q: want a distinct interface name of 1-15 characters", name)
		}
		seen[name] = true
	}
	switch cp.Direction {
	case DirectionAuto, DirectionOut, DirectionBoth:
	default:
		return config.Errorf("capture.direction", "want auto, out or both, got %q", cp.Direction)
	}
	if cp.SampleRate < 1 || cp.SampleRate > 1<<20 {
		return config.Errorf("capture.sample_rate", "want 1 (every frame) to %d, got %d", 1<<20, cp.SampleRate)
	}
	if cp.SnapLen < 64 || cp.SnapLen > 65535 {
		return config.Errorf("capture.snaplen", "want 64 to 65535 bytes, got %d", cp.SnapLen)
	}
	if _, err := capture.NewMeter(capture.MeterConfig{Interval: cp.Interval, SampleRate: cp.SampleRate, Grace: max(cp.Interval/2, time.Nanosecond)}); err != nil {
		return config.Errorf("capture.interval", "%v", err)
	}
	if cp.TopAddresses < 0 || cp.TopAddresses > 1024 {
		return config.Errorf("capture.top_addresses", "want 0 to 1024, got %d", cp.TopAddresses)
	}
	if cp.Refresh < time.Second || cp.Refresh > 24*time.Hour {
		return config.Errorf("capture.refresh", "want 1s to 24h, got %v", cp.Refresh)
	}
	if !pr.Enabled {
		return nil
	}
	if l := c.probeLink(); l == "" || len(l) > 15 {
		return config.Errorf("probe.interface", "want the exchange interface (or set fib.interface), got %q", l)
	}
	if pr.TableBase == 0 || uint64(pr.TableBase)+probe.MaxSellerID > 0xFFFFFFFF ||
		(pr.TableBase <= 255 && pr.TableBase+probe.MaxSellerID >= 253) {
		return config.Errorf("probe.table_base", "%d: tables base..base+%d must avoid 253-255 (default, main, local)", pr.TableBase, probe.MaxSellerID)
	}
	if pr.MarkBase == 0 || uint64(pr.MarkBase)+probe.MaxSellerID > 0xFFFFFFFF {
		return config.Errorf("probe.mark_base", "want a non-zero mark with room for %d sellers, got %d", probe.MaxSellerID, pr.MarkBase)
	}
	if pr.RulePriority < 1 || pr.RulePriority >= 32766 {
		return config.Errorf("probe.rule_priority", "want 1 to 32765 (before the main table's rule), got %d", pr.RulePriority)
	}
	if pr.TargetsPerMinute < 1 || pr.TargetsPerMinute > 600000 {
		return config.Errorf("probe.targets_per_minute", "want 1 to 600000, got %d", pr.TargetsPerMinute)
	}
	if pr.Count < 1 || pr.Count > 100 {
		return config.Errorf("probe.count", "want 1 to 100, got %d", pr.Count)
	}
	if pr.TargetsPerPrefix < 1 || pr.TargetsPerPrefix > 64 {
		return config.Errorf("probe.targets_per_prefix", "want 1 to 64, got %d", pr.TargetsPerPrefix)
	}
	if pr.Round < 100*time.Millisecond || pr.Round > time.Hour {
		return config.Errorf("probe.round", "want 100ms to 1h, got %v", pr.Round)
	}
	_, err := c.probeTargets()
	return err
}
