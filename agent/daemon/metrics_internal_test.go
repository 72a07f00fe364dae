package daemon

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bwxchange/bwx/agent/probe"
	"github.com/bwxchange/bwx/shared/rpc"
)

// TestProbeMetricsPerSeller feeds probe rounds to the metrics and reads
// the per-seller loss and latency of the last round that probed each.
func TestProbeMetricsPerSeller(t *testing.T) {
	conn, err := rpc.NewFailover([]string{"arbiter.invalid:1"}, func(addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}, rpc.FailoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := DefaultConfig()
	cfg.Probe.Enabled = true
	a := &Agent{cfg: cfg, conn: conn, metrics: newMetrics(), measure: &Measure{cfg: cfg}}
	c := collector{a}
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	tg := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	p4, p6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	a.metrics.observeProbes([]probe.Measurement{
		{ASN: 64511, Prefix: p4, Targets: tg("198.51.100.1", "198.51.100.2"), At: at, Sent: 5, Received: 5, LatencyUs: 10000},
		{ASN: 64511, Prefix: p6, Targets: tg("2001:db8:100::1"), At: at, Sent: 5, Received: 3, LatencyUs: 20000},
		{ASN: 64512, Prefix: p4, Targets: tg("198.51.100.1"), At: at, Sent: 5, Received: 0},
	})
	// A later round through 64512 only: 64511 keeps its figures.
	a.metrics.observeProbes([]probe.Measurement{
		{ASN: 64512, Prefix: p4, Targets: tg("198.51.100.1"), At: at.Add(time.Minute), Sent: 5, Received: 5, LatencyUs: 1000},
	})
	want := map[string]float64{
		`bwx_agent_probe_latency_seconds{seller_asn="64511"}`:              0.01375, // (10 ms*5 + 20 ms*3)/8
		`bwx_agent_probe_latency_seconds{seller_asn="64512"}`:              0.001,
		`bwx_agent_probe_loss_ratio{seller_asn="64511"}`:                   0.2,
		`bwx_agent_probe_loss_ratio{seller_asn="64512"}`:                   0,
		`bwx_agent_probe_last_round_timestamp_seconds{seller_asn="64511"}`: float64(at.Unix()),
		`bwx_agent_probe_last_round_timestamp_seconds{seller_asn="64512"}`: float64(at.Add(time.Minute).Unix()),
		`bwx_agent_probe_rounds_total`:                                     2,
		`bwx_agent_probe_targets_total`:                                    5,
		`bwx_agent_probe_pending_tasks`:                                    0,
		`bwx_agent_event_stream_up`:                                        0,
		`bwx_agent_arbiter_connected`:                                      0,
		`bwx_agent_trades_bought`:                                          0,
	}
	got := gather(t, c)
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, "bwx_agent_probe_") {
			t.Errorf("unexpected series %s", k)
		}
	}
	// A seller nothing answered through has loss 1 and no latency.
	a.metrics.observeProbes([]probe.Measurement{{ASN: 64512, Prefix: p4, Targets: tg("198.51.100.1"), At: at.Add(2 * time.Minute), Sent: 5}})
	got = gather(t, c)
	if v, ok := got[`bwx_agent_probe_latency_seconds{seller_asn="64512"}`]; ok {
		t.Errorf("latency %v for a seller nothing answered through", v)
	}
	if v := got[`bwx_agent_probe_loss_ratio{seller_asn="64512"}`]; v != 1 {
		t.Errorf("loss %v for a seller nothing answered through, want 1", v)
	}
	// A day later, a seller not probed since is dropped.
	a.metrics.observeProbes([]probe.Measurement{{ASN: 64512, Prefix: p4, Targets: tg("198.51.100.1"), At: at.Add(25 * time.Hour), Sent: 5, Received: 5}})
	got = gather(t, c)
	if _, ok := got[`bwx_agent_probe_loss_ratio{seller_asn="64511"}`]; ok {
		t.Error("seller 64511, not probed for a day, is still exported")
	}
	if _, ok := got[`bwx_agent_probe_loss_ratio{seller_asn="64512"}`]; !ok {
		t.Error("seller 64512 is gone")
	}
}

// gather collects c into `name{label="value",...}` -> value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			k := mf.GetName()
			if len(ls) > 0 {
				k += "{" + strings.Join(ls, ",") + "}"
			}
			out[k] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

func TestMetricsListenConfig(t *testing.T) {
	for s, ok := range map[string]bool{"": true, "127.0.0.1:9480": true, "[::1]:0": true, ":9480": true,
		"127.0.0.1": false, "127.0.0.1:http": false, "127.0.0.1:70000": false, "[::1]9480": false} {
		c := DefaultConfig()
		c.Arbiter.Address = "192.0.2.1:7443"
		c.Metrics.Listen = s
		err := c.Validate()
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "metrics.listen")) {
			t.Errorf("metrics.listen %q: %v", s, err)
		}
	}
	if c := DefaultConfig(); c.Metrics.Listen != "127.0.0.1:9480" {
		t.Errorf("default metrics.listen %q", c.Metrics.Listen)
	}
}
