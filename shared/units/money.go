package units

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// MicrosPerUnit is the number of Money micro-units in one currency unit.
const MicrosPerUnit = 1_000_000

// moneyDecimals is the number of decimal places Money can represent.
const moneyDecimals = 6

// Money is an amount in micro-units of the exchange currency
// (1 unit = MicrosPerUnit). Prices are Money per Mbps per month.
type Money int64

// ParseMoney parses a decimal amount such as "12", "12.5", "0.000001" or
// "-3.25" with at most 6 decimals. Surrounding white space is ignored.
func ParseMoney(s string) (Money, error) {
	fail := func(reason string) (Money, error) {
		return 0, fmt.Errorf("invalid amount %q: %s", s, reason)
	}
	str := strings.TrimSpace(s)
	if str == "" {
		return fail("empty")
	}
	neg := false
	if str[0] == '-' {
		neg = true
		str = str[1:]
	}
	intPart, frac, rest, ok := splitDecimal(str)
	if !ok || rest != "" {
		return fail("want a decimal number like 12, 12.5 or -3.25")
	}
	if len(frac) > moneyDecimals {
		return fail(fmt.Sprintf("more than %d decimals", moneyDecimals))
	}
	v, err := scaleDecimal(intPart, frac, moneyDecimals)
	if err != nil {
		return fail(err.Error())
	}
	switch {
	case !neg && v > math.MaxInt64:
		return fail("too large")
	case neg && v > 1<<63:
		return fail("too small")
	case neg:
		return Money(-v), nil // two's complement; correct for 1<<63 too
	default:
		return Money(v), nil
	}
}

// String formats m with as few decimals as needed: "12.5", "0.000001",
// "-3.25", "0". ParseMoney accepts the result.
func (m Money) String() string {
	u := uint64(m)
	sign := ""
	if m < 0 {
		u = -u
		sign = "-"
	}
	s := sign + strconv.FormatUint(u/MicrosPerUnit, 10)
	if f := u % MicrosPerUnit; f != 0 {
		fs := strconv.FormatUint(f, 10)
		fs = strings.Repeat("0", moneyDecimals-len(fs)) + fs
		s += "." + strings.TrimRight(fs, "0")
	}
	return s
}

// Exact formats m with all six decimals, the way an invoice shows money:
// "-1234.500000". ParseMoney accepts the result.
func (m Money) Exact() string {
	u := uint64(m)
	sign := ""
	if m < 0 {
		u = -u // -MinInt64 wraps to itself, which read as uint64 is right
		sign = "-"
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/MicrosPerUnit, u%MicrosPerUnit)
}

// Set parses s into m; with Type it makes *Money a pflag.Value.
func (m *Money) Set(s string) error {
	v, err := ParseMoney(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Type returns "money", the flag value type name for pflag.
func (*Money) Type() string { return "money" }

// ErrOverflow is returned by PriceFor when the result does not fit in Money.
var ErrOverflow = errors.New("units: price overflows")

// PriceFor returns the price of bandwidth bw at pricePerMbps (Money per
// Mbps, e.g. per month): pricePerMbps * bw / 1_000_000, computed exactly and
// truncated toward zero. Negative bandwidth is rejected.
func PriceFor(pricePerMbps Money, bw Bandwidth) (Money, error) {
	if bw < 0 {
		return 0, fmt.Errorf("units: price for negative bandwidth %s", bw)
	}
	neg := pricePerMbps < 0
	p := uint64(pricePerMbps)
	if neg {
		p = -p
	}
	hi, lo := bits.Mul64(p, uint64(bw))
	if hi >= uint64(Mbps) { // quotient would not fit in 64 bits
		return 0, fmt.Errorf("%w: %s per Mbps for %s", ErrOverflow, pricePerMbps, bw)
	}
	q, _ := bits.Div64(hi, lo, uint64(Mbps))
	switch {
	case !neg && q > math.MaxInt64, neg && q > 1<<63:
		return 0, fmt.Errorf("%w: %s per Mbps for %s", ErrOverflow, pricePerMbps, bw)
	case neg:
		return Money(-q), nil
	default:
		return Money(q), nil
	}
}
