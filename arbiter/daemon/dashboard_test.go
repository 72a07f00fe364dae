package daemon_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/daemon"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/bwxchange/bwx/shared/pki"
)

// The arbiter serves the dashboard on both listeners from its own store
// and book, and the metrics time the book's calls.
func TestDashboardAndMatchMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen, cfg.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	cfg.Dashboard.Listen, cfg.Dashboard.Local = "127.0.0.1:0", "127.0.0.1:0"
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x := &exchange{t: t, cfg: cfg, dir: dir}
	x.start()
	t.Cleanup(func() { x.arb.Close() })

	seller := x.member(64501, "192.0.2.1", "2001:db8::1")
	x.addPrefix(64501, "2001:db8:100::/48")
	x.addPrefix(64501, "198.51.100.0/24")
	buyer := x.member(64510, "192.0.2.10", "2001:db8::10") // member.pem is now the buyer's bundle
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range []string{"2001:db8:100::/48", "198.51.100.0/24"} {
		if _, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, p, 2e9, 300_000, 90)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := pb.NewTradingServiceClient(buyer).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "2001:db8:100::/48", 2e9, 400_000, 30)})
	if err != nil || len(resp.Trades) != 1 {
		t.Fatalf("buy: %v %v", resp, err)
	}
	trade := resp.Trades[0].Id

	get := func(c *http.Client, url string) string {
		t.Helper()
		r, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", url, r.StatusCode, b)
		}
		return string(b)
	}
	local := "http://" + x.arb.DashboardLocalAddr.String()
	body := get(http.DefaultClient, local+"/trades")
	if !strings.Contains(body, fmt.Sprintf(`href="/usage?trade=%d"`, trade)) || !strings.Contains(body, "AS64510") || !strings.Contains(body, "operator local") {
		t.Errorf("local dashboard /trades does not show trade %d to the operator", trade)
	}
	// The book page shows the remaining IPv4 sell; the IPv6 one was filled.
	if body := get(http.DefaultClient, local+"/book"); !strings.Contains(body, "<code>198.51.100.0/24</code>") || !strings.Contains(body, "1 open orders over 1 destinations") {
		t.Errorf("local dashboard /book does not show the resting sell")
	}

	b, err := pki.LoadBundle(filepath.Join(dir, "member.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{b.Certificate}, RootCAs: b.CAs, ServerName: "127.0.0.1", Time: clock.Now}}}
	body = get(c, "https://"+x.arb.DashboardAddr.String()+"/members")
	if !strings.Contains(body, `id="viewer">AS64510<`) || !strings.Contains(body, "192.0.2.10") || strings.Contains(body, "192.0.2.1<") || strings.Contains(body, "AS64501") {
		t.Errorf("member's /members over mTLS shows more or less than its own")
	}

	metrics := get(http.DefaultClient, "http://"+x.arb.MetricsAddr.String()+"/metrics")
	for _, want := range []string{`bwx_arbiter_match_duration_seconds_count{op="place"} 3`, `bwx_arbiter_orders_total{result="accepted",side="buy"} 1`,
		`bwx_arbiter_orders_total{result="accepted",side="sell"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestDashboardLocalMustBeLoopback(t *testing.T) {
	cfg := daemon.DefaultConfig()
	for _, bad := range []string{"0.0.0.0:9471", "[::]:9471", "192.0.2.1:9471", ":9471", "example.org:9471", "nonsense"} {
		cfg.Dashboard.Local = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "dashboard.local") {
			t.Errorf("dashboard.local %q: %v, want an error naming dashboard.local", bad, err)
		}
	}
	for _, ok := range []string{"127.0.0.1:9471", "[::1]:9471", "localhost:9471", ""} {
		cfg.Dashboard.Local = ok
		if err := cfg.Validate(); err != nil {
			t.Errorf("dashboard.local %q: %v", ok, err)
		}
	}
	cfg.Dashboard.Local, cfg.Dashboard.Listen = "", "7444"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "dashboard.listen") {
		t.Errorf("dashboard.listen 7444: %v", err)
	}
}

// The members page shows the route server's real sessions: a member's BIRD
// in a lab namespace peers over IPv4 and IPv6, and the page shows both
// sessions established with the routes it accepted.
func TestDashboardShowsBGPSessions(t *testing.T) {
	needBIRD(t)
	lab := labtest.New(t, t.Name())
	arbHost := labtest.AddHost(t, lab, "arb", "192.0.2.1/24", "2001:db8::1/64")
	sh := labtest.AddHost(t, lab, "seller", "192.0.2.11/24", "2001:db8::11/64")

	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen, cfg.Metrics.Listen, cfg.Dashboard.Local = "127.0.0.1:0", "", "127.0.0.1:0"
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	cfg.BGP.Enabled, cfg.BGP.ASN, cfg.BGP.RouterID = true, 65000, "192.0.2.1"
	cfg.BGP.Listen = []string{"192.0.2.1", "2001:db8::1"}
	cfg.BGP.HoldTime = 9 * time.Second
	cfg.BGP.RequireIRR = false
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x := &exchange{t: t, cfg: cfg, dir: dir, opts: []daemon.Option{daemon.WithBGPRunIn(arbHost.Do)}}
	x.start()
	t.Cleanup(func() { x.arb.Close() })
	x.member(64501, "192.0.2.11", "2001:db8::11")
	x.addPrefix(64501, "198.51.100.0/24")
	x.addPrefix(64501, "2001:db8:100::/48")
	startBIRD(t, sh, 64501, "198.51.100.0/24", "2001:db8:100::/48", "203.0.113.0/24")

	url := "http://" + x.arb.DashboardLocalAddr.String() + "/members"
	eventually(t, waitBGP, "both sessions established on the members page", func() string {
		r, err := http.Get(url)
		if err != nil {
			return err.Error()
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		body := string(b)
		for _, want := range []string{
			`<div class="session up"><code>192.0.2.11</code> Established`,
			`<div class="session up"><code>2001:db8::11</code> Established`,
			"1/2 accepted", "1/1 accepted",
		} {
			if !strings.Contains(body, want) {
				return "members page lacks " + want
			}
		}
		return ""
	})
}
