package units

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseBandwidth(t *testing.T) {
	tests := []struct {
		in   string
		want Bandwidth
	}{
		{"0", 0},
		{"7", 7},
		{"7bps", 7},
		{"007", 7},
		{"64k", 64_000},
		{"64K", 64_000},
		{"64kbps", 64_000},
		{"64Kbps", 64_000},
		{"64kbit/s", 64_000},
		{"1500M", 1_500_000_000},
		{"1500m", 1_500_000_000},
		{"100Mbps", 100 * Mbps},
		{"100 Mbps", 100 * Mbps},
		{" 100Mbit/s ", 100 * Mbps},
		{"100MBIT/S", 100 * Mbps},
		{"10G", 10 * Gbps},
		{"10g", 10 * Gbps},
		{"10Gbps", 10 * Gbps},
		{"1.5G", 1_500_000_000},
		{"1.5Gbps", 1_500_000_000},
		{"1.500000000G", 1_500_000_000},
		{"0.001k", 1},
		{"2.5k", 2500},
		{"1.0", 1},
		{"3T", 3 * Tbps},
		{"3t", 3 * Tbps},
		{"1.000000000001T", Tbps + 1},
		{"9223372036854775807", math.MaxInt64},
		{"9223372036854775807bps", math.MaxInt64},
		{"9223372.036854775807T", math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBandwidth(tt.in)
			if err != nil {
				t.Fatalf("ParseBandwidth(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseBandwidth(%q) = %d, want %d", tt.in, int64(got), int64(tt.want))
			}
		})
	}
}

func TestParseBandwidthErrors(t *testing.T) {
	tests := []struct {
		in, why string
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"-1", "negative"},
		{"-1G", "negative"},
		{"+1G", "want a number"},
		{"G", "want a number"},
		{"bps", "want a number"},
		{"1.5", "whole number"},
		{"1.5bps", "whole number"},
		{"0.0001k", "whole number"},
		{"1.0000000001G", "whole number"},
		{".5G", "want a number"},
		{"1.G", "want a number"},
		{"1..5G", "want a number"},
		{"1e9", "unknown unit"},
		{"0x10", "unknown unit"},
		{"1_000", "unknown unit"},
		{"1,000", "unknown unit"},
		{"10Gb", "unknown unit"},
		{"10GBps", "bytes"},
		{"10Bps", "bytes"},
		{"10P", "unknown unit"},
		{"10 G bps", "unknown unit"},
		{"10Gbpsx", "unknown unit"},
		{"1G1", "unknown unit"},
		{"NaN", "want a number"},
		{"9223372036854775808", "too large"},
		{"9223373T", "too large"},
		{"99999999999999999999999", "too large"},
		{"18446744073709551616", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBandwidth(tt.in)
			if err == nil {
				t.Fatalf("ParseBandwidth(%q) = %d, want error", tt.in, int64(got))
			}
			if !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("error %q does not quote the input", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not mention %q", err, tt.why)
			}
		})
	}
}

func TestBandwidthString(t *testing.T) {
	tests := []struct {
		in   Bandwidth
		want string
	}{
		{0, "0bps"},
		{7, "7bps"},
		{1001, "1001bps"},
		{64 * Kbps, "64kbps"},
		{1500 * Mbps, "1500Mbps"},
		{10 * Gbps, "10Gbps"},
		{1_500_000, "1500kbps"},
		{2 * Tbps, "2Tbps"},
		{1000 * Tbps, "1000Tbps"},
		{Tbps + 1, "1000000000001bps"},
		{math.MaxInt64, "9223372036854775807bps"},
		{-10 * Gbps, "-10Gbps"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Bandwidth(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
			}
			if tt.in < 0 {
				return
			}
			back, err := ParseBandwidth(tt.want)
			if err != nil || back != tt.in {
				t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", tt.want, int64(back), err, int64(tt.in))
			}
		})
	}
}

func TestBandwidthRoundTrip(t *testing.T) {
	vals := []Bandwidth{0, 1, 999, 1000, 1234567, 10 * Gbps, 400 * Gbps, 123 * Tbps, math.MaxInt64, math.MaxInt64 - 1}
	for v := Bandwidth(1); v < math.MaxInt64/7; v *= 7 {
		vals = append(vals, v)
		if v <= math.MaxInt64/1000 {
			vals = append(vals, v*1000)
		}
	}
	for _, v := range vals {
		got, err := ParseBandwidth(v.String())
		if err != nil || got != v {
			t.Errorf("round trip %d -> %q -> %d, %v", int64(v), v.String(), int64(got), err)
		}
	}
}

func TestParseMoney(t *testing.T) {
	tests := []struct {
		in   string
		want Money
	}{
		{"0", 0},
		{"-0", 0},
		{"0.0", 0},
		{"12", 12_000_000},
		{"12.5", 12_500_000},
		{"12.500000", 12_500_000},
		{"0.000001", 1},
		{"-0.000001", -1},
		{"-3.25", -3_250_000},
		{" 7.1 ", 7_100_000},
		{"007.010", 7_010_000},
		{"9223372036854.775807", math.MaxInt64},
		{"-9223372036854.775808", math.MinInt64},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMoney(tt.in)
			if err != nil {
				t.Fatalf("ParseMoney(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseMoney(%q) = %d, want %d", tt.in, int64(got), int64(tt.want))
			}
		})
	}
}

func TestParseMoneyErrors(t *testing.T) {
	tests := []struct {
		in, why string
	}{
		{"", "empty"},
		{"-", "want a decimal"},
		{"--1", "want a decimal"},
		{"+1", "want a decimal"},
		{"- 1", "want a decimal"},
		{"1.", "want a decimal"},
		{".5", "want a decimal"},
		{"1.2.3", "want a decimal"},
		{"1,5", "want a decimal"},
		{"1e3", "want a decimal"},
		{"12 EUR", "want a decimal"},
		{"abc", "want a decimal"},
		{"0.0000001", "more than 6 decimals"},
		{"1.0000000", "more than 6 decimals"},
		{"9223372036854.775808", "too large"},
		{"-9223372036854.775809", "too small"},
		{"99999999999999999999", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMoney(tt.in)
			if err == nil {
				t.Fatalf("ParseMoney(%q) = %d, want error", tt.in, int64(got))
			}
			if !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("error %q does not quote the input", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not mention %q", err, tt.why)
			}
		})
	}
}

func TestMoneyString(t *testing.T) {
	tests := []struct {
		in   Money
		want string
	}{
		{0, "0"},
		{1, "0.000001"},
		{-1, "-0.000001"},
		{10, "0.00001"},
		{12_500_000, "12.5"},
		{12_000_000, "12"},
		{-3_250_000, "-3.25"},
		{1_234_567, "1.234567"},
		{-1_000_000, "-1"},
		{math.MaxInt64, "9223372036854.775807"},
		{math.MinInt64, "-9223372036854.775808"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Money(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
			}
			back, err := ParseMoney(tt.want)
			if err != nil || back != tt.in {
				t.Errorf("ParseMoney(%q) = %d, %v; want %d", tt.want, int64(back), err, int64(tt.in))
			}
		})
	}
}

func TestMoneyRoundTrip(t *testing.T) {
	vals := []Money{0, 1, -1, 999_999, 1_000_001, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for v := Money(1); v < math.MaxInt64/3; v *= 3 {
		vals = append(vals, v, -v, v+7)
	}
	for _, v := range vals {
		got, err := ParseMoney(v.String())
		if err != nil || got != v {
			t.Errorf("round trip %d -> %q -> %d, %v", int64(v), v.String(), int64(got), err)
		}
	}
}

func TestPriceFor(t *testing.T) {
	unit := Money(MicrosPerUnit)
	tests := []struct {
		name  string
		price Money
		bw    Bandwidth
		want  Money
	}{
		{"zero bandwidth", 5 * unit, 0, 0},
		{"zero price", 0, 10 * Gbps, 0},
		{"1 Mbps", 5 * unit, Mbps, 5 * unit},
		{"10G at 0.25", unit / 4, 10 * Gbps, 2500 * unit},
		{"1.5G at 0.1", unit / 10, 1500 * Mbps, 150 * unit},
		{"truncates", 1, 999_999, 0},
		{"truncates 2", 3, 500_000, 1}, // 1.5 micro -> 1
		{"negative truncates toward zero", -3, 500_000, -1},
		{"negative price", -2 * unit, 100 * Mbps, -200 * unit},
		{"large intermediate", math.MaxInt64, Mbps, math.MaxInt64},
		{"large intermediate 2", math.MaxInt64 / 1000, Gbps, math.MaxInt64 / 1000 * 1000},
		{"min", math.MinInt64, Mbps, math.MinInt64},
		{"max bandwidth", 1, math.MaxInt64, math.MaxInt64 / 1_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PriceFor(tt.price, tt.bw)
			if err != nil {
				t.Fatalf("PriceFor(%s, %s): %v", tt.price, tt.bw, err)
			}
			if got != tt.want {
				t.Errorf("PriceFor(%s, %s) = %s, want %s", tt.price, tt.bw, got, tt.want)
			}
		})
	}
}

func TestPriceForErrors(t *testing.T) {
	tests := []struct {
		name     string
		price    Money
		bw       Bandwidth
		overflow bool
	}{
		{"overflow", math.MaxInt64, Mbps + 1, true},
		{"overflow huge", math.MaxInt64, math.MaxInt64, true},
		{"negative overflow", math.MinInt64, Mbps + 1, true},
		{"negative overflow huge", math.MinInt64, math.MaxInt64, true},
		{"negative bandwidth", Money(MicrosPerUnit), -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PriceFor(tt.price, tt.bw)
			if err == nil {
				t.Fatalf("PriceFor(%s, %s) = %s, want error", tt.price, tt.bw, got)
			}
			if errors.Is(err, ErrOverflow) != tt.overflow {
				t.Errorf("error %v: errors.Is(ErrOverflow) = %v, want %v", err, !tt.overflow, tt.overflow)
			}
		})
	}
}

// flagValue is the pflag.Value interface, restated to avoid the dependency.
type flagValue interface {
	String() string
	Set(string) error
	Type() string
}

func TestFlagValues(t *testing.T) {
	var bw Bandwidth
	var m Money
	tests := []struct {
		v        flagValue
		typ, in  string
		want     string
		badInput string
	}{
		{&bw, "bandwidth", "1.5G", "1500Mbps", "fast"},
		{&m, "money", "12.50", "12.5", "12.3456789"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			if got := tt.v.Type(); got != tt.typ {
				t.Errorf("Type() = %q, want %q", got, tt.typ)
			}
			if err := tt.v.Set(tt.in); err != nil {
				t.Fatalf("Set(%q): %v", tt.in, err)
			}
			if got := tt.v.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if err := tt.v.Set(tt.badInput); err == nil {
				t.Errorf("Set(%q) succeeded", tt.badInput)
			}
			if got := tt.v.String(); got != tt.want {
				t.Errorf("failed Set changed the value to %q", got)
			}
		})
	}
}

func TestMoneyExact(t *testing.T) {
	if got := Money(-174_562_500).Exact(); got != "-174.562500" {
		t.Errorf("Exact = %q", got)
	}
	for m, want := range map[int64]string{0: "0.000000", 1: "0.000001", -1: "-0.000001", 5_000_000_000: "5000.000000",
		-174_562_500: "-174.562500", 9223372036854775807: "9223372036854.775807", -9223372036854775808: "-9223372036854.775808"} {
		if got := Money(m).Exact(); got != want {
			t.Errorf("Money(%d).Exact() = %q, want %q", m, got, want)
		}
	}
}
