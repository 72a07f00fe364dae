package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestRate(t *testing.T) {
	for _, c := range []struct {
		bps  int64
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1.000k"}, {950_000, "950.0k"}, {999_940, "999.9k"}, {999_960, "1.000M"},
		{812_300_000, "812.3M"}, {812_349_999, "812.3M"}, {1_250_000_000, "1.250G"}, {12_345_000_000, "12.35G"}, {100e12, "100.0T"},
	} {
		if got := Rate(c.bps); got != c.want {
			t.Errorf("Rate(%d) = %q, want %q", c.bps, got, c.want)
		}
	}
}

func TestUsageRequest(t *testing.T) {
	r, err := UsageRequest("7", "2026-11-03T10:00:00Z", "")
	if err != nil || r.TradeId != 7 || r.From.AsTime().Hour() != 10 || r.To != nil {
		t.Errorf("usage 7 --from 10:00: %v, %v", r, err)
	}
	for _, c := range []struct{ id, from, to, want string }{
		{"x", "", "", "TRADE-ID"}, {"0", "", "", "TRADE-ID"}, {"7", "yesterday", "", "--from"}, {"7", "", "2026-11-03", "--to"},
	} {
		if _, err := UsageRequest(c.id, c.from, c.to); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("usage %q --from %q --to %q: %v, want an error naming %s", c.id, c.from, c.to, err, c.want)
		}
	}
	var b bytes.Buffer
	if err := UsageTable(Output{Format: "table", W: &b}, nil); err != nil || b.String() != "trade 0: no usage reported in that span\n" {
		t.Errorf("no slots: %q, %v", b.String(), err)
	}
}
