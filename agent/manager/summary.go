package manager

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// String is a one-line account of the decision for logs.
func (d Decision) String() string {
	var b strings.Builder
	if d.Shadow {
		b.WriteString("[shadow] ")
	}
	b.WriteString(string(d.Kind))
	if d.Prefix.IsValid() {
		fmt.Fprintf(&b, " %s", d.Prefix)
	}
	if d.Destination != "" {
		fmt.Fprintf(&b, " %s", d.Destination)
	}
	if d.From != 0 {
		fmt.Fprintf(&b, " from AS%d", d.From)
	}
	if d.Seller != 0 {
		fmt.Fprintf(&b, " AS%d", d.Seller)
	}
	if d.SizeBps != 0 {
		fmt.Fprintf(&b, " %v", Bandwidth(d.SizeBps))
	}
	if d.PriceMicros != 0 {
		fmt.Fprintf(&b, " at %v/Mbps/month (%v a month)", Money(d.PriceMicros), Money(d.MonthlyMicros))
	}
	if d.GainLatencyUs != 0 || d.GainLossPPM != 0 || d.SavingMicros != 0 {
		fmt.Fprintf(&b, "; gains %.1f±%.1f ms, %v±%v loss, saves %v a month", float64(d.GainLatencyUs)/1000, float64(d.GainLatencyMarginUs)/1000,
			Percent(d.GainLossPPM), Percent(d.GainLossMarginPPM), Money(d.SavingMicros))
	}
	fmt.Fprintf(&b, ": %s", d.Reason)
	if d.Compared != "" {
		fmt.Fprintf(&b, " [%s]", d.Compared)
	}
	return b.String()
}

// Value is what buying would be worth per destination: the latest buy,
// switch or renewal decided for it (in shadow mode: what the manager would
// have bought).
type Value struct {
	Prefix        netip.Prefix `json:"prefix"`
	Seller        uint32       `json:"seller"`
	SizeBps       int64        `json:"size_bps"`
	PriceMicros   int64        `json:"price_micros"`
	MonthlyMicros int64        `json:"monthly_micros"`
	GainLatencyUs int64        `json:"gain_latency_us"`
	GainLossPPM   int32        `json:"gain_loss_ppm"`
	SavingMicros  int64        `json:"saving_micros"`
	// The gains' 95 % margins: the gain is somewhere in gain ± margin,
	// and a gain within its margin may be none at all.
	GainLatencyMarginUs int64 `json:"gain_latency_margin_us"`
	GainLossMarginPPM   int32 `json:"gain_loss_margin_ppm"`
}

// Summary totals the value of what was (or would have been) bought, for a
// member deciding whether to let the manager trade.
type Summary struct {
	Destinations  []Value `json:"destinations"`
	MonthlyMicros int64   `json:"monthly_micros"`
	SavingMicros  int64   `json:"saving_micros"`
}

// Summarize reads decisions (oldest first, as Journal.Since gives them).
func Summarize(ds []Decision) Summary {
	last := map[netip.Prefix]Value{}
	for _, d := range ds {
		switch d.Kind {
		case KindBuy, KindSwitch, KindRenew:
			v := Value{Prefix: d.Prefix, Seller: d.Seller, SizeBps: d.SizeBps, PriceMicros: d.PriceMicros, MonthlyMicros: d.MonthlyMicros,
				GainLatencyUs: d.GainLatencyUs, GainLossPPM: d.GainLossPPM, SavingMicros: d.SavingMicros,
				GainLatencyMarginUs: d.GainLatencyMarginUs, GainLossMarginPPM: d.GainLossMarginPPM}
			if d.Kind == KindRenew {
				// A renewal's gains are the kept path's over the default one.
				if old, ok := last[d.Prefix]; ok && old.Seller == d.Seller {
					v.GainLatencyUs, v.GainLossPPM = old.GainLatencyUs, old.GainLossPPM
					v.GainLatencyMarginUs, v.GainLossMarginPPM = old.GainLatencyMarginUs, old.GainLossMarginPPM
				}
			}
			last[d.Prefix] = v
		case KindLapse:
			if v, ok := last[d.Prefix]; ok && v.Seller == d.Seller {
				delete(last, d.Prefix)
			}
		}
	}
	var s Summary
	for _, v := range last {
		s.Destinations = append(s.Destinations, v)
		s.MonthlyMicros += v.MonthlyMicros
		s.SavingMicros += v.SavingMicros
	}
	slices.SortFunc(s.Destinations, func(a, b Value) int { return a.Prefix.Compare(b.Prefix) })
	return s
}
