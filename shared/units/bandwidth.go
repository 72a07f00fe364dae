package units

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Bandwidth is a data rate in bits per second.
type Bandwidth int64

// Common bandwidth units (decimal, 1000-based).
const (
	BitPerSecond Bandwidth = 1
	Kbps                   = 1000 * BitPerSecond
	Mbps                   = 1000 * Kbps
	Gbps                   = 1000 * Mbps
	Tbps                   = 1000 * Gbps
)

var bandwidthUnits = []struct {
	prefix string
	value  Bandwidth
	exp    int // power of ten
}{
	{"T", Tbps, 12},
	{"G", Gbps, 9},
	{"M", Mbps, 6},
	{"k", Kbps, 3},
}

// ParseBandwidth parses a data rate such as "7", "64k", "1500M", "10G",
// "1.5Gbps" or "100 Mbit/s".
//
// The number is a non-negative decimal, optionally followed by a prefix
// k, M, G or T (1000-based, case-insensitive) and optionally by "bps" or
// "bit/s". A plain number is bits per second. Decimals are allowed as long
// as the result is a whole number of bits per second. "Bps" (bytes) is
// rejected. Surrounding white space and white space between number and
// unit are allowed.
func ParseBandwidth(s string) (Bandwidth, error) {
	fail := func(reason string) (Bandwidth, error) {
		return 0, fmt.Errorf("invalid bandwidth %q: %s", s, reason)
	}
	str := strings.TrimSpace(s)
	if str == "" {
		return fail("empty")
	}
	if str[0] == '-' {
		return fail("must not be negative")
	}
	intPart, frac, rest, ok := splitDecimal(str)
	if !ok {
		return fail("want a number optionally followed by k, M, G or T and \"bps\"")
	}
	unit := strings.TrimLeft(rest, " \t")

	exp := 0
	if unit != "" {
		switch unit[0] {
		case 'k', 'K':
			exp = 3
		case 'm', 'M':
			exp = 6
		case 'g', 'G':
			exp = 9
		case 't', 'T':
			exp = 12
		}
		if exp != 0 {
			unit = unit[1:]
		}
	}
	switch {
	case unit == "", unit == "bps", strings.EqualFold(unit, "bit/s"):
	case strings.EqualFold(unit, "bps"):
		return fail(`"Bps" would mean bytes per second; use "bps" (bits)`)
	default:
		return fail("unknown unit; want k, M, G or T optionally followed by \"bps\" or \"bit/s\"")
	}

	v, err := scaleDecimal(intPart, frac, exp)
	if err != nil {
		return fail(err.Error())
	}
	if v > math.MaxInt64 {
		return fail("too large")
	}
	return Bandwidth(v), nil
}

// String formats b with the largest unit that divides it exactly, e.g.
// "10Gbps", "1500Mbps", "64kbps", "7bps". ParseBandwidth accepts the result.
func (b Bandwidth) String() string {
	if b != 0 {
		for _, u := range bandwidthUnits {
			if b%u.value == 0 {
				return fmt.Sprintf("%d%sbps", int64(b/u.value), u.prefix)
			}
		}
	}
	return fmt.Sprintf("%dbps", int64(b))
}

// Set parses s into b; with Type it makes *Bandwidth a pflag.Value.
func (b *Bandwidth) Set(s string) error {
	v, err := ParseBandwidth(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type returns "bandwidth", the flag value type name for pflag.
func (*Bandwidth) Type() string { return "bandwidth" }

// splitDecimal splits s into the digits before and after an optional
// decimal point and the remaining text. Both digit runs must be non-empty
// when a point is present.
func splitDecimal(s string) (intPart, frac, rest string, ok bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return "", "", "", false
	}
	intPart, rest = s[:i], s[i:]
	if rest != "" && rest[0] == '.' {
		j := 1
		for j < len(rest) && isDigit(rest[j]) {
			j++
		}
		if j == 1 {
			return "", "", "", false
		}
		frac, rest = rest[1:j], rest[j:]
	}
	return intPart, frac, rest, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scaleDecimal returns intPart.frac * 10^exp as an exact uint64. It fails if
// the result is not an integer or does not fit in 64 bits.
func scaleDecimal(intPart, frac string, exp int) (uint64, error) {
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp {
		return 0, fmt.Errorf("not a whole number of units (at most %d decimals allowed here)", exp)
	}
	// Concatenating the digits and padding with zeros gives the value.
	digits := intPart + frac + strings.Repeat("0", exp-len(frac))
	var v uint64
	for i := 0; i < len(digits); i++ {
		hi, lo := bits.Mul64(v, 10)
		sum, carry := bits.Add64(lo, uint64(digits[i]-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, fmt.Errorf("too large")
		}
		v = sum
	}
	return v, nil
}

// Approx formats b to three significant digits in the largest unit it
// reaches, e.g. "812kbps", "1.23Gbps", "7bps": for reading, not parsing.
func (b Bandwidth) Approx() string { return b.Round(3) + "bps" }

// Round is b to the given significant digits (at least 3) in the largest
// decimal unit it reaches, without "bps": "812.3M" (4 digits), "1.23G" (3);
// under 1000, the integer. Rounding never shows 1000 of a unit: 999,960 to
// 4 digits is "1.000M".
func (b Bandwidth) Round(digits int) string {
	if b < 1000 {
		return strconv.FormatInt(int64(b), 10)
	}
	// Below lim(n) a figure rounds to fewer than n+1 integer digits.
	lim := func(n int) float64 { return math.Pow10(n) - 0.5*math.Pow10(n-digits) }
	v, unit := float64(b), ""
	for _, u := range []string{"k", "M", "G", "T", "P", "E"} {
		if v < lim(3) {
			break
		}
		v, unit = v/1000, u
	}
	decimals := digits - 1
	switch {
	case v >= lim(2):
		decimals = digits - 3
	case v >= lim(1):
		decimals = digits - 2
	}
	return strconv.FormatFloat(v, 'f', decimals, 64) + unit
}
