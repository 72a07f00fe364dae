package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

func TestPathQuality(t *testing.T) {
	for _, c := range []struct {
		q    *pb.PathQuality
		want string
	}{
		{nil, "-"},
		{&pb.PathQuality{LatencyUs: 12_345, LossPpm: 500, Samples: 3}, "12.345ms/0.0500%"},
		{&pb.PathQuality{LatencyUs: 7, LossPpm: 1_000_000, Samples: 1}, "0.007ms/100.0000%"},
		{&pb.PathQuality{LatencyUs: 12_345, LossPpm: 500, Samples: 3, Probes: 2000}, "12.345ms/0.0500% (1/2000)"},
	} {
		if got := PathQuality(c.q); got != c.want {
			t.Errorf("PathQuality(%v) = %q, want %q", c.q, got, c.want)
		}
	}
}

// The trades table has a LATENCY/LOSS column: measured at match time, or
// "-" for a trade made on an unmeasured path. JSON carries the figures.
func TestTradesShowQuality(t *testing.T) {
	d := timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	trades := []*pb.Trade{
		{Id: 1, BuyerAsn: 64510, SellerAsn: 64501, Prefixes: []string{"198.51.100.0/24"}, DeliveryStart: d, DeliveryEnd: d,
			Quality: &pb.PathQuality{LatencyUs: 13_000, JitterUs: 1000, LossPpm: 1000, AsHops: 2, Samples: 2}},
		{Id: 2, BuyerAsn: 64510, SellerAsn: 64501, Prefixes: []string{"2001:db8:100::/48"}, DeliveryStart: d, DeliveryEnd: d},
	}
	var buf bytes.Buffer
	if err := Trades(Output{Format: "table", W: &buf}, trades); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(strings.TrimSpace(lines[0]), "LATENCY/LOSS") ||
		!strings.HasSuffix(strings.TrimSpace(lines[1]), "13.000ms/0.1000%") || !strings.HasSuffix(strings.TrimSpace(lines[2]), " -") {
		t.Errorf("table:\n%s", buf.String())
	}
	buf.Reset()
	if err := Trades(Output{Format: "json", W: &buf}, trades); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, `"latency_us": "13000"`) || strings.Count(s, `"quality"`) != 1 {
		t.Errorf("json: %s", s)
	}
}
