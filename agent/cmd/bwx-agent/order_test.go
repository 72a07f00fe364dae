package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// parse builds the flag set an order command has, parses args and turns
// them into a spec.
func parse(t *testing.T, side pb.Side, args ...string) (*pb.OrderSpec, error) {
	t.Helper()
	sf := &specFlags{}
	f := pflag.NewFlagSet("order", pflag.ContinueOnError)
	sf.register(f, side == pb.Side_SIDE_BUY)
	if err := f.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return sf.spec(side, f)
}

func buy(t *testing.T, args ...string) (*pb.OrderSpec, error) {
	t.Helper()
	return parse(t, pb.Side_SIDE_BUY, args...)
}

// base is a complete buy apart from what a case adds.
var base = []string{"--prefix", "198.51.100.0/24", "--capacity", "1G", "--price", "0.35"}

func with(extra ...string) []string { return append(append([]string{}, base...), extra...) }

func TestSpecErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string // substring of the error
	}{
		{"no destination", []string{"--capacity", "1G", "--price", "1"}, "exactly one destination"},
		{"prefix and origin", with("--origin-asn", "64500"), "exactly one destination"},
		{"origin and route type", []string{"--origin-asn", "64500", "--route-type", "peer", "--protocol", "ipv4", "--capacity", "1G", "--price", "1"}, "exactly one destination"},
		{"all three", with("--origin-asn", "64500", "--route-type", "peer"), "exactly one destination"},
		{"bad prefix", []string{"--prefix", "198.51.100/24", "--capacity", "1G", "--price", "1"}, "--prefix"},
		{"origin without protocol", []string{"--origin-asn", "64500", "--capacity", "1G", "--price", "1"}, "--protocol"},
		{"route type without protocol", []string{"--route-type", "transit", "--capacity", "1G", "--price", "1"}, "--protocol"},
		{"bad route type", []string{"--route-type", "upstream", "--protocol", "ipv4", "--capacity", "1G", "--price", "1"}, "--route-type"},
		{"bad protocol", with("--protocol", "ipx"), "--protocol"},
		{"no capacity", []string{"--prefix", "198.51.100.0/24", "--price", "1"}, "--capacity"},
		{"no price", []string{"--prefix", "198.51.100.0/24", "--capacity", "1G"}, "--price"},
		{"bad type", with("--type", "market"), "--type"},
		{"bad ranking", with("--ranking", "cheapest"), "--ranking"},
		{"bad traffic", with("--traffic", "voice"), "--traffic"},
		{"bad start", with("--start", "tomorrow"), "--start"},
		{"bad end", with("--end", "2027-01-01"), "--end"},
		{"negative days", with("--duration", "-1d"), "--duration"},
		{"zero days", with("--duration", "0d"), "--duration"},
		{"fractional days", with("--duration", "1.5d"), "--duration"},
		{"negative duration", with("--duration", "-5h"), "--duration"},
		{"zero duration", with("--duration", "0"), "--duration"},
		{"garbage duration", with("--duration", "a month"), "--duration"},
		{"loss below 1 ppm", with("--max-loss", "0.00001"), "--max-loss"},
		{"negative loss", with("--max-loss", "-0.1"), "--max-loss"},
		{"loss over 100 percent", with("--max-loss", "100.0001"), "--max-loss"},
		{"loss that would wrap int32", with("--max-loss", "429496.7296"), "--max-loss"},
		{"garbage loss", with("--max-loss", "a lot"), "--max-loss"},
		{"loss with 7 decimals", with("--max-loss", "0.0000001"), "--max-loss"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := buy(t, c.args...)
			if err == nil {
				t.Fatalf("spec(%q) = %v, want an error mentioning %q", c.args, s, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("spec(%q) error %q, want it to mention %q", c.args, err, c.want)
			}
		})
	}
}

func TestSpecDefaults(t *testing.T) {
	before := clock.Now().UTC().Truncate(time.Second)
	s, err := buy(t, base...)
	after := clock.Now().UTC()
	if err != nil {
		t.Fatal(err)
	}
	if s.Side != pb.Side_SIDE_BUY || s.GetDestination().GetPrefix() != "198.51.100.0/24" || s.Protocol != pb.Protocol_PROTOCOL_IPV4 {
		t.Errorf("side/destination/protocol = %v %v %v", s.Side, s.Destination, s.Protocol)
	}
	if s.CapacityBps != 1_000_000_000 || s.PriceMicros != 350_000 {
		t.Errorf("capacity %d price %d, want 1e9 and 350000 micros", s.CapacityBps, s.PriceMicros)
	}
	if s.MinBlockBps != s.CapacityBps {
		t.Errorf("min block = %d, want the capacity %d by default", s.MinBlockBps, s.CapacityBps)
	}
	if s.OrderType != pb.OrderType_ORDER_TYPE_LIMIT || s.TrafficType != pb.TrafficType_TRAFFIC_TYPE_ANY || s.Ranking != pb.Ranking_RANKING_PRICE {
		t.Errorf("type %v traffic %v ranking %v, want limit, any, price", s.OrderType, s.TrafficType, s.Ranking)
	}
	st, end := s.DeliveryStart.AsTime(), s.DeliveryEnd.AsTime()
	if st.Before(before) || st.After(after) || st.Nanosecond() != 0 {
		t.Errorf("start = %v, want now (%v..%v) in whole seconds", st, before, after)
	}
	if end.Sub(st) != 720*time.Hour {
		t.Errorf("period = %v, want the default 720h", end.Sub(st))
	}
	q := s.Quality
	if q == nil || q.MaxLatencyUs != nil || q.MaxJitterUs != nil || q.MaxLossPpm != nil || q.MaxAsHops != nil || q.AllowUnverified {
		t.Errorf("quality = %v, want no limits", q)
	}
	if s.PriceWeightPercent != 0 || s.SingleSeller {
		t.Errorf("weight %d single %v", s.PriceWeightPercent, s.SingleSeller)
	}
}

func TestSpecValues(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		name  string
		args  []string
		check func(*testing.T, *pb.OrderSpec)
	}{
		{"min block", with("--capacity", "2G", "--min-block", "500M"), func(t *testing.T, s *pb.OrderSpec) {
			if s.CapacityBps != 2_000_000_000 || s.MinBlockBps != 500_000_000 {
				t.Errorf("capacity %d min block %d", s.CapacityBps, s.MinBlockBps)
			}
		}},
		{"min block defaults to a changed capacity", with("--capacity", "3G"), func(t *testing.T, s *pb.OrderSpec) {
			if s.MinBlockBps != 3_000_000_000 {
				t.Errorf("min block %d, want 3G", s.MinBlockBps)
			}
		}},
		{"price 0 is a price", []string{"--prefix", "198.51.100.0/24", "--capacity", "1G", "--price", "0"}, func(t *testing.T, s *pb.OrderSpec) {
			if s.PriceMicros != 0 {
				t.Errorf("price %d", s.PriceMicros)
			}
		}},
		{"IPv6 prefix", []string{"--prefix", "2001:db8:100::/48", "--capacity", "1G", "--price", "1"}, func(t *testing.T, s *pb.OrderSpec) {
			if s.Protocol != pb.Protocol_PROTOCOL_IPV6 || s.GetDestination().GetPrefix() != "2001:db8:100::/48" {
				t.Errorf("protocol %v destination %v, want IPv6", s.Protocol, s.Destination)
			}
		}},
		{"explicit protocol wins (the server checks it)", with("--protocol", "IPv6"), func(t *testing.T, s *pb.OrderSpec) {
			if s.Protocol != pb.Protocol_PROTOCOL_IPV6 {
				t.Errorf("protocol %v", s.Protocol)
			}
		}},
		{"origin ASN", []string{"--origin-asn", "4200000000", "--protocol", "ipv6", "--capacity", "1G", "--price", "1"}, func(t *testing.T, s *pb.OrderSpec) {
			if s.GetDestination().GetOriginAsn() != 4200000000 || s.Protocol != pb.Protocol_PROTOCOL_IPV6 {
				t.Errorf("destination %v protocol %v", s.Destination, s.Protocol)
			}
		}},
		{"route type", []string{"--route-type", "Transit", "--protocol", "ipv4", "--capacity", "1G", "--price", "1"}, func(t *testing.T, s *pb.OrderSpec) {
			if s.GetDestination().GetRouteType() != pb.RouteType_ROUTE_TYPE_TRANSIT || s.Protocol != pb.Protocol_PROTOCOL_IPV4 {
				t.Errorf("destination %v protocol %v", s.Destination, s.Protocol)
			}
		}},
		{"30 days", with("--start", "2027-01-01T00:00:00Z", "--duration", "30d"), func(t *testing.T, s *pb.OrderSpec) {
			want := time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)
			if !s.DeliveryEnd.AsTime().Equal(want) || s.DeliveryEnd.AsTime().Sub(s.DeliveryStart.AsTime()) != 30*day {
				t.Errorf("end %v, want %v", s.DeliveryEnd.AsTime(), want)
			}
		}},
		{"Go duration", with("--start", "2027-01-01T00:00:00Z", "--duration", "90m"), func(t *testing.T, s *pb.OrderSpec) {
			if d := s.DeliveryEnd.AsTime().Sub(s.DeliveryStart.AsTime()); d != 90*time.Minute {
				t.Errorf("period %v, want 90m", d)
			}
		}},
		{"start in another zone is UTC", with("--start", "2027-01-01T02:00:00+02:00", "--duration", "1d"), func(t *testing.T, s *pb.OrderSpec) {
			if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !s.DeliveryStart.AsTime().Equal(want) {
				t.Errorf("start %v, want %v", s.DeliveryStart.AsTime(), want)
			}
		}},
		{"end before start passes through", with("--start", "2027-01-02T00:00:00Z", "--end", "2027-01-01T00:00:00Z"), func(t *testing.T, s *pb.OrderSpec) {
			if !s.DeliveryEnd.AsTime().Before(s.DeliveryStart.AsTime()) {
				t.Errorf("start %v end %v: the flags were not passed as given", s.DeliveryStart.AsTime(), s.DeliveryEnd.AsTime())
			}
		}},
		{"end wins over duration", with("--start", "2027-01-01T00:00:00Z", "--end", "2027-03-01T00:00:00Z", "--duration", "1d"), func(t *testing.T, s *pb.OrderSpec) {
			if want := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC); !s.DeliveryEnd.AsTime().Equal(want) {
				t.Errorf("end %v, want %v", s.DeliveryEnd.AsTime(), want)
			}
		}},
		{"enums by name, any case", with("--type", "FOK", "--traffic", "Realtime", "--ranking", "weighted", "--price-weight", "40", "--single-seller"), func(t *testing.T, s *pb.OrderSpec) {
			if s.OrderType != pb.OrderType_ORDER_TYPE_FOK || s.TrafficType != pb.TrafficType_TRAFFIC_TYPE_REALTIME ||
				s.Ranking != pb.Ranking_RANKING_WEIGHTED || s.PriceWeightPercent != 40 || !s.SingleSeller {
				t.Errorf("spec %v", s)
			}
		}},
		{"quality limits", with("--max-latency", "20ms", "--max-jitter", "1.5ms", "--max-as-hops", "3", "--allow-unverified"), func(t *testing.T, s *pb.OrderSpec) {
			q := s.Quality
			if q.GetMaxLatencyUs() != 20_000 || q.GetMaxJitterUs() != 1_500 || q.GetMaxAsHops() != 3 || !q.AllowUnverified || q.MaxLossPpm != nil {
				t.Errorf("quality %v", q)
			}
		}},
		{"explicit zero limits are limits", with("--max-latency", "0s", "--max-as-hops", "0", "--max-loss", "0"), func(t *testing.T, s *pb.OrderSpec) {
			q := s.Quality
			if q.MaxLatencyUs == nil || *q.MaxLatencyUs != 0 || q.MaxAsHops == nil || *q.MaxAsHops != 0 || q.MaxLossPpm == nil || *q.MaxLossPpm != 0 {
				t.Errorf("quality %v, want three limits of 0", q)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := buy(t, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, s)
		})
	}
}

func TestMaxLoss(t *testing.T) {
	for _, c := range []struct {
		in  string
		ppm int32
	}{
		{"0.1", 1000},
		{"0.1%", 1000},
		{"1", 10_000},
		{"0.0001", 1},
		{"0.0050", 50},
		{"100", 1_000_000},
		{"0", 0},
	} {
		s, err := buy(t, with("--max-loss", c.in)...)
		if err != nil {
			t.Errorf("--max-loss %q: %v", c.in, err)
			continue
		}
		if s.Quality.MaxLossPpm == nil || *s.Quality.MaxLossPpm != c.ppm {
			t.Errorf("--max-loss %q = %v ppm, want %d", c.in, s.Quality.MaxLossPpm, c.ppm)
		}
	}
}

func TestSellSpec(t *testing.T) {
	s, err := parse(t, pb.Side_SIDE_SELL, "--prefix", "198.51.100.0/24", "--capacity", "2G", "--min-block", "500M", "--price", "0.35", "--duration", "90d")
	if err != nil {
		t.Fatal(err)
	}
	if s.Side != pb.Side_SIDE_SELL || s.Ranking != pb.Ranking_RANKING_UNSPECIFIED || s.Quality != nil || s.MinBlockBps != 500_000_000 {
		t.Errorf("sell spec = %v; want no ranking and no quality", s)
	}
	if d := s.DeliveryEnd.AsTime().Sub(s.DeliveryStart.AsTime()); d != 90*24*time.Hour {
		t.Errorf("period %v, want 90 days", d)
	}
	// A sell has no buy-only flags.
	f := pflag.NewFlagSet("sell", pflag.ContinueOnError)
	(&specFlags{}).register(f, false)
	for _, name := range []string{"ranking", "price-weight", "single-seller", "max-latency", "max-jitter", "max-loss", "max-as-hops", "allow-unverified"} {
		if f.Lookup(name) != nil {
			t.Errorf("sell has the buy-only flag --%s", name)
		}
	}
}
