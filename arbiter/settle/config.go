package settle

import (
	"fmt"
	"math"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
)

// SlotLength is the usage interval billing works on: 5-minute samples, as
// the 95th percentile is defined by carriers.
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
	// DefaultCreditLimitMicros is the credit limit of a member the operator
	// gave none; 0 means such members have no limit.
	DefaultCreditLimitMicros int64 `yaml:"default_credit_limit_micros"`
	// CreditWarnPercent of the limit is where a member is warned.
	CreditWarnPercent int64 `yaml:"credit_warn_percent"`
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
		CreditWarnPercent:   80,
		CreditHorizonMonths: 12,
		Use:                 UseRule{OverPercent: 100, UnderPercent: 20, MinDuration: time.Hour},
	}
}

func invalid(field, format string, args ...any) error {
	return &registry.InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.OverageMultiplierBP < 0 || c.OverageMultiplierBP > 100*BasisPoints:
		return invalid("overage_multiplier_bp", "must be 0..%d (100x), got %d", 100*BasisPoints, c.OverageMultiplierBP)
	case c.SLACreditFactorBP < 0 || c.SLACreditFactorBP > 100*BasisPoints:
		return invalid("sla_credit_factor_bp", "must be 0..%d (100x), got %d", 100*BasisPoints, c.SLACreditFactorBP)
	case c.FeeBP < 0 || c.FeeBP > BasisPoints:
		return invalid("fee_bp", "must be 0..%d (100 %%), got %d", BasisPoints, c.FeeBP)
	case !(c.DisputeK > 0) || math.IsInf(c.DisputeK, 0):
		return invalid("dispute_k", "must be a positive number, got %v", c.DisputeK)
	case c.DefaultCreditLimitMicros < 0:
		return invalid("default_credit_limit_micros", "must not be negative")
	case c.CreditWarnPercent < 1 || c.CreditWarnPercent > 100:
		return invalid("credit_warn_percent", "must be 1..100, got %d", c.CreditWarnPercent)
	case c.CreditHorizonMonths < 0 || c.CreditHorizonMonths > MaxCreditHorizonMonths:
		return invalid("credit_horizon_months", "must be 0 (every commitment to its end) or 1..%d months, got %d", MaxCreditHorizonMonths, c.CreditHorizonMonths)
	}
	return c.Use.Validate()
}
