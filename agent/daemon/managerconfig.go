package daemon

import (
	"path/filepath"
	"time"

	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/shared/config"
)

// ManagerConfig is the `manager:` section: the access manager's policy
// (agent/manager.Policy, its keys inline) and how the daemon drives it.
type ManagerConfig struct {
	manager.Policy `yaml:",inline"`
	// Round is how often the manager decides; 0: every capture interval.
	Round time.Duration `yaml:"round"`
	// JournalSize is how many decisions are kept, in memory and in
	// <state_dir>/decisions.jsonl.
	JournalSize int `yaml:"journal_size"`
}

// defaultManager is shadow mode (manager.DefaultPolicy): it never trades,
// and shows what trading would be worth as soon as a budget is set. It
// only runs with capture configured: without demand it has nothing to
// decide from.
func defaultManager() ManagerConfig {
	return ManagerConfig{Policy: manager.DefaultPolicy(), JournalSize: 10000}
}

func (c *Config) validateManager() error {
	mc := &c.Manager
	if mc.Round != 0 && (mc.Round < time.Second || mc.Round > 24*time.Hour) {
		return config.Errorf("manager.round", "want 1s to 24h (or 0: the capture interval), got %v", mc.Round)
	}
	if mc.JournalSize < 1 || mc.JournalSize > 1000000 {
		return config.Errorf("manager.journal_size", "want 1 to 1000000, got %d", mc.JournalSize)
	}
	if err := mc.Policy.Validate(); err != nil {
		return config.Prefix("manager", err)
	}
	// The manager's probe tables and marks follow the measuring side's:
	// base+4096 (the default path) to base+8191.
	if c.Probe.Enabled && mc.Mode != manager.ModeOff {
		if uint64(c.Probe.TableBase)+2*probe.MaxSellerID+1 > 0xFFFFFFFF || uint64(c.Probe.MarkBase)+2*probe.MaxSellerID+1 > 0xFFFFFFFF {
			return config.Errorf("probe.table_base", "the access manager needs tables and marks up to base+%d: lower probe.table_base and probe.mark_base", 2*probe.MaxSellerID+1)
		}
		if c.Probe.TableBase <= 255 {
			return config.Errorf("probe.table_base", "the access manager's tables (base+%d..base+%d) would cross 253-255: use a base above 255", probe.MaxSellerID+1, 2*probe.MaxSellerID+1)
		}
	}
	if mc.Mode == manager.ModeTrade && len(c.Capture.Interfaces) == 0 && !mc.Sell.Enabled {
		return config.Errorf("manager.mode", "trade needs capture.interfaces (the demand it buys for) or sell.enabled")
	}
	return nil
}

// managerRuns tells whether the trading loop runs: not off, and with
// something to decide from (capture for buying, the sell policy).
func (c *Config) managerRuns() bool {
	return c.Manager.Mode != manager.ModeOff && (len(c.Capture.Interfaces) > 0 || c.Manager.Sell.Enabled)
}

// managerRound is the configured round, or the capture interval.
func (c *Config) managerRound() time.Duration {
	if c.Manager.Round > 0 {
		return c.Manager.Round
	}
	return c.Capture.Interval
}

func (c *Config) journalPath() string { return filepath.Join(c.StateDir, "decisions.jsonl") }
