package settle

import (
	"math"
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// SlotLength is the default usage interval billing works on: 5-minute
// samples, as carriers define the 95th percentile.
const SlotLength = 5 * time.Minute

// BasisPoints is the unit of ratios in Config: 10000 = 1x = 100 %.
const BasisPoints = 10_000

// Config holds the settlement terms of the exchange.
type Config struct {
	// OverageMultiplierBP prices overage at this multiple of the trade's
	// price, in basis points (15000 = 1.5x).
	OverageMultiplierBP int64 `yaml:"overage_multiplier_bp"`
	// SLACreditFactorBP scales the credit for breached time: 10000 gives
	// back exactly the committed charge for that time.
	SLACreditFactorBP int64 `yaml:"sla_credit_factor_bp"`
	// FeeBP is the exchange fee, charged to the buyer and to the seller
	// each, on the trade's amount.
	FeeBP int64 `yaml:"fee_bp"`
	// DisputeK is how many combined standard errors apart the buyer's and
	// the seller's figures may be before an interval is disputed.
	DisputeK float64 `yaml:"dispute_k"`
	// SamplingRate is the 1-in-N packet sampling members' agents are held
	// to (their capture.sample_rate must be N or smaller) and
	// MaxFrameBytes the largest frame the switch carries (MTU plus the
	// Ethernet header and a VLAN tag): together the facts a figure's error
	// bar rests on (Errors).
	SamplingRate  int64 `yaml:"sampling_rate"`
	MaxFrameBytes int64 `yaml:"max_frame_bytes"`
	// DefaultCreditLimitMicros is the credit limit of a member the operator
	// gave none; 0 means such members have no limit.
	DefaultCreditLimitMicros int64 `yaml:"default_credit_limit_micros"`
	// CreditWarnPercent of the limit is where a member is warned.
	CreditWarnPercent int64 `yaml:"credit_warn_percent"`
	// Slot is the interval usage is billed in: 5 minutes, as carriers
	// bill; shorter only where minutes matter more than custom (a lab).
	Slot time.Duration `yaml:"slot"`
	// CreditHorizonMonths is how much of a long commitment counts toward
	// a member's exposure: the calendar month it is in (the current one,
	// or its first if it starts later) and the months after it, this many
	// in all; 0 counts every commitment to its end.
	CreditHorizonMonths int `yaml:"credit_horizon_months"`
	// Use is the rule for sustained overuse and underuse (claim 16).
	Use UseRule `yaml:"use"`
}

// MaxCreditHorizonMonths bounds Config.CreditHorizonMonths: a century;
// use 0 for no horizon at all.
const MaxCreditHorizonMonths = 1200

// DefaultConfig is the exchange's default terms.
func DefaultConfig() Config {
	return Config{
		OverageMultiplierBP: 15_000,
		SLACreditFactorBP:   BasisPoints,
		FeeBP:               25,
		DisputeK:            3,
		SamplingRate:        100,
		MaxFrameBytes:       1518,
		CreditWarnPercent:   80,
		Slot:                SlotLength,
		CreditHorizonMonths: 12,
		Use:                 UseRule{OverPercent: 100, UnderPercent: 20, MinDuration: time.Hour},
	}
}

// Errors is the error model disputes are judged by.
func (c Config) Errors() Errors {
	return Errors{K: c.DisputeK, SamplingRate: c.SamplingRate, MaxFrameBits: 8 * c.MaxFrameBytes}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.OverageMultiplierBP < 0 || c.OverageMultiplierBP > 100*BasisPoints:
		return invalid.New("overage_multiplier_bp", "must be 0..%d (100x), got %d", 100*BasisPoints, c.OverageMultiplierBP)
	case c.SLACreditFactorBP < 0 || c.SLACreditFactorBP > 100*BasisPoints:
		return invalid.New("sla_credit_factor_bp", "must be 0..%d (100x), got %d", 100*BasisPoints, c.SLACreditFactorBP)
	case c.FeeBP < 0 || c.FeeBP > BasisPoints:
		return invalid.New("fee_bp", "must be 0..%d (100 %%), got %d", BasisPoints, c.FeeBP)
	case !(c.DisputeK > 0) || math.IsInf(c.DisputeK, 0):
		return invalid.New("dispute_k", "must be a positive number, got %v", c.DisputeK)
	case c.SamplingRate < 1 || c.SamplingRate > 1<<20:
		return invalid.New("sampling_rate", "want 1 (every packet) to %d, got %d", 1<<20, c.SamplingRate)
	case c.MaxFrameBytes < 64 || c.MaxFrameBytes > 65535:
		return invalid.New("max_frame_bytes", "want 64 to 65535, got %d", c.MaxFrameBytes)
	case c.DefaultCreditLimitMicros < 0:
		return invalid.New("default_credit_limit_micros", "must not be negative")
	case c.CreditWarnPercent < 1 || c.CreditWarnPercent > 100:
		return invalid.New("credit_warn_percent", "must be 1..100, got %d", c.CreditWarnPercent)
	case c.Slot < time.Second || c.Slot > time.Hour || c.Slot%time.Second != 0 || (24*time.Hour)%c.Slot != 0:
		return invalid.New("slot", "must be whole seconds from 1s to 1h that divide a day, got %s", c.Slot)
	case c.CreditHorizonMonths < 0 || c.CreditHorizonMonths > MaxCreditHorizonMonths:
		return invalid.New("credit_horizon_months", "must be 0 (every commitment to its end) or 1..%d months, got %d", MaxCreditHorizonMonths, c.CreditHorizonMonths)
	}
	return c.Use.Validate(c.Slot)
}
