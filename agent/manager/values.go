package manager

import (
	"fmt"
	"strings"

	"github.com/bwxchange/bwx/shared/units"
)

// Money is units.Money written in YAML as a decimal amount ("2.5").
type Money units.Money

// UnmarshalText parses a decimal amount.
func (m *Money) UnmarshalText(b []byte) error {
	v, err := units.ParseMoney(string(b))
	if err != nil {
		return err
	}
	*m = Money(v)
	return nil
}

// MarshalText writes the amount as UnmarshalText reads it.
func (m Money) MarshalText() ([]byte, error) { return []byte(units.Money(m).String()), nil }

func (m Money) String() string { return units.Money(m).String() }

// Bandwidth is units.Bandwidth written in YAML as "10G", "500M".
type Bandwidth units.Bandwidth

// UnmarshalText parses a data rate.
func (b *Bandwidth) UnmarshalText(t []byte) error {
	v, err := units.ParseBandwidth(string(t))
	if err != nil {
		return err
	}
	*b = Bandwidth(v)
	return nil
}

// MarshalText writes the rate as UnmarshalText reads it.
func (b Bandwidth) MarshalText() ([]byte, error) { return []byte(units.Bandwidth(b).String()), nil }

func (b Bandwidth) String() string { return units.Bandwidth(b).String() }

// Percent is a share in parts per million, written "0.5%" (or "0.5").
type Percent int32

// UnmarshalText parses a percentage with up to 4 decimals, 0 to 100.
func (p *Percent) UnmarshalText(t []byte) error {
	s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(t)), "%"))
	// ParseMoney gives exact decimals: 1 percent is 10_000 ppm.
	v, err := units.ParseMoney(s)
	if err != nil || v < 0 || v > 100*units.MicrosPerUnit || v%100 != 0 {
		return fmt.Errorf("invalid percentage %q: want 0 to 100 with at most 4 decimals, e.g. \"0.5%%\"", string(t))
	}
	*p = Percent(v / 100)
	return nil
}

// MarshalText writes the percentage as UnmarshalText reads it.
func (p Percent) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p Percent) String() string { return units.Money(int64(p)*100).String() + "%" }

// monthly is the monthly cost of bw at pricePerMbps, saturating instead of
// overflowing (a cost that does not fit never fits a budget either).
func monthly(pricePerMbps int64, bw int64) int64 {
	m, err := units.PriceFor(units.Money(pricePerMbps), units.Bandwidth(bw))
	if err != nil {
		return 1<<63 - 1
	}
	return int64(m)
}
