package manager

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/config"
)

const goodYAML = `
mode: trade
demand:
  window: 6h
  top: 10
  min_rate: 10M
buy:
  budget: "2500.50"
  max_price: 2.5
  ranking: weighted
  price_weight_percent: 70
  quality_floor:
    max_latency: 40ms
    max_jitter: 5ms
    max_loss: 0.5%
  min_improvement:
    latency: 5ms
    loss: "0.25%"
    savings: 100
  default_path_price: 3
  headroom_percent: 30
  max_open_orders: 2
  max_trades: 8
  sellers: [64501, 64502]
  destinations: ["198.51.100.0/24", "2001:db8::/32"]
  term: 720h
  renew_before: 48h
stability:
  hysteresis_percent: 20
  rebuy_hold_down: 6h
  switch_hold_down: 24h
  max_changes_per_hour: 3
failover:
  rounds: 2
sell:
  enabled: true
  destinations: [customer, "203.0.113.0/24"]
  price: 1.75
  min_block: 100M
  safety_margin: 1G
  term: 720h
  renew_before: 72h
`

func TestPolicyYAML(t *testing.T) {
	p := DefaultPolicy()
	if err := config.Decode("agent.yaml", []byte(goodYAML), &p); err != nil {
		t.Fatal(err)
	}
	b := p.Buy
	if p.Mode != ModeTrade || p.Demand.Window != 6*time.Hour || p.Demand.MinRate != 10*mbps ||
		b.Budget != 2500_500000 || b.MaxPrice != 2_500000 || b.Ranking != Weighted || b.PriceWeight != 70 ||
		b.Floor.Limits() != (Limits{MaxLatencyUs: 40000, MaxJitterUs: 5000, MaxLossPPM: 5000}) ||
		b.MinImprovement != (Improvement{Latency: 5 * time.Millisecond, Loss: 2500, Savings: 100 * unit}) ||
		b.Headroom != 30 || len(b.Sellers) != 2 || !b.destAllowed(pfx4) || !b.destAllowed(netip.MustParsePrefix("2001:db8:100::/48")) ||
		b.destAllowed(netip.MustParsePrefix("192.0.2.0/24")) || p.Failover.Rounds != 2 ||
		p.Sell.SafetyMargin != 1000*mbps || p.Sell.Price != 1_750000 || p.Quality.Rounds != 5 {
		t.Fatalf("decoded %+v", p)
	}
	if _, err := New(p, 10); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"mode: yes", `mode: want off, shadow or trade, got "yes"`},
		{"buy:\n  budget: 12.1234567", "buy.budget"},
		{"buy:\n  max_price: -1\n  budget: 10", "buy.max_price: must not be negative"},
		{"buy:\n  budget: 10", "buy.max_price: set both buy.budget and buy.max_price"},
		{"buy:\n  ranking: cheapest", `buy.ranking: want price, performance or weighted, got "cheapest"`},
		{"buy:\n  price_weight_percent: 101", "buy.price_weight_percent: want 0 to 100"},
		{"buy:\n  quality_floor:\n    max_loss: 101%", `buy.quality_floor.max_loss`},
		{"buy:\n  quality_floor:\n    max_latency: -1ms", `buy.quality_floor.max_latency: must not be negative`},
		{"buy:\n  min_improvement:\n    latency: 0s", "buy.min_improvement: set at least one of latency, loss or savings"},
		{"buy:\n  min_improvement:\n    savings: 10", "buy.default_path_price: required with buy.min_improvement.savings"},
		{"buy:\n  sellers: [64501, 64501]", "buy.sellers[1]: AS64501 listed twice"},
		{"buy:\n  sellers: [0]", "buy.sellers[0]: want a seller's AS number"},
		{"buy:\n  destinations: [198.51.100.1/24]", "buy.destinations[0]: 198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?"},
		{"buy:\n  destinations: [example]", `buy.destinations[0]: not a prefix (CIDR): "example"`},
		{"buy:\n  renew_before: 800h", "buy.renew_before: want more than 0 and less than buy.term"},
		{"buy:\n  max_open_orders: 0", "buy.max_open_orders: want at least 1"},
		{"stability:\n  max_changes_per_hour: 0", "stability.max_changes_per_hour: want at least 1"},
		{"stability:\n  hysteresis_percent: 200", "stability.hysteresis_percent: want 0 to 100"},
		{"failover:\n  rounds: 0", "failover.rounds: want 1 to 100"},
		{"demand:\n  window: 10s", "demand.window: want 1m to 744h"},
		{"demand:\n  min_rate: 5Bps", "demand.min_rate"},
		{"sell:\n  enabled: true\n  price: 1\n  min_block: 10M", "sell.destinations: is required"},
		{"sell:\n  enabled: true\n  destinations: [peers]\n  price: 1\n  min_block: 10M", `sell.destinations[0]: want a prefix (CIDR) or customer, peer or transit, got "peers"`},
		{"sell:\n  enabled: true\n  destinations: [customer]\n  min_block: 10M", "sell.price: must be positive"},
		{"sell:\n  enabled: true\n  destinations: [customer]\n  price: 1", "sell.min_block: must be positive"},
		{"buy:\n  bugdet: 1", "buy.bugdet: unknown key"},
	}
	for _, tc := range tests {
		p := DefaultPolicy()
		err := config.Decode("agent.yaml", []byte(tc.yaml), &p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error with %q, got %v", tc.yaml, tc.want, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "agent.yaml:") {
			t.Errorf("%q: error does not name the file: %v", tc.yaml, err)
		}
	}
}

func TestPercent(t *testing.T) {
	for in, want := range map[string]Percent{"0.5%": 5000, "1": 10000, "100%": 1_000_000, " 0.0001 % ": 1} {
		var p Percent
		if err := p.UnmarshalText([]byte(in)); err != nil || p != want {
			t.Errorf("%q: got %d, %v; want %d", in, p, err, want)
		}
	}
	for _, in := range []string{"-1%", "100.01%", "0.00001%", "x"} {
		var p Percent
		if err := p.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	if s := Percent(5000).String(); s != "0.5%" {
		t.Errorf("String: %s", s)
	}
}
