package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
	"github.com/bwxchange/bwx/shared/pki"
)

const waitBGP = 20 * time.Second

func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := clock.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if clock.Now().After(deadline) {
			t.Fatalf("%s: after %v: %s", what, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bird is a member router: BIRD 2 in a lab namespace, peering with the
// route server at 192.0.2.1 and 2001:db8::1.
type bird struct {
	t    *testing.T
	host *labnet.Host
	dir  string
}

func startBIRD(t *testing.T, h *labnet.Host, asn uint32, static ...string) *bird {
	t.Helper()
	b := &bird{t: t, host: h, dir: t.TempDir()}
	var w strings.Builder
	fmt.Fprintf(&w, "log stderr all;\nrouter id %s;\nprotocol device {}\n", h.Addr4())
	fmt.Fprintf(&w, "protocol static st4 { ipv4;\n")
	for _, p := range static {
		if !strings.Contains(p, ":") {
			fmt.Fprintf(&w, "  route %s unreachable;\n", p)
		}
	}
	fmt.Fprintf(&w, "}\nprotocol static st6 { ipv6;\n")
	for _, p := range static {
		if strings.Contains(p, ":") {
			fmt.Fprintf(&w, "  route %s unreachable;\n", p)
		}
	}
	fmt.Fprintf(&w, "}\n")
	for _, s := range []struct{ name, local, rs, ch string }{
		{"rs4", h.Addr4().String(), "192.0.2.1", "ipv4"}, {"rs6", h.Addr6().String(), "2001:db8::1", "ipv6"},
	} {
		fmt.Fprintf(&w, "protocol bgp %s {\n  local %s as %d;\n  neighbor %s as 65000;\n", s.name, s.local, asn, s.rs)
		fmt.Fprintf(&w, "  hold time 9; keepalive time 3; connect retry time 1; error wait time 1,2;\n")
		fmt.Fprintf(&w, "  %s { import all; export where source = RTS_STATIC; };\n}\n", s.ch)
	}
	conf := filepath.Join(b.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(w.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Start(t.Context(), filepath.Join(b.dir, "bird.log"), "bird", "-f", "-c", conf, "-s", b.sock(), "-P", filepath.Join(b.dir, "bird.pid")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "BIRD on "+h.Name+" answers", func() string {
		if _, err := b.birdc("show status"); err != nil {
			return err.Error()
		}
		return ""
	})
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(b.dir, "bird.log"))
			t.Logf("BIRD %s log:\n%s", h.Name, log)
		}
	})
	return b
}

func (b *bird) sock() string { return filepath.Join(b.dir, "bird.ctl") }

func (b *bird) birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.sock()}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// route returns `show route <p> all` from the route server's sessions, or
// "" when BIRD has no such route.
func (b *bird) route(p string) string {
	b.t.Helper()
	proto := "rs4"
	if strings.Contains(p, ":") {
		proto = "rs6"
	}
	out, err := b.birdc("show", "route", p, "protocol", proto, "all")
	if strings.Contains(out, "Network not found") {
		return ""
	}
	if err != nil {
		b.t.Fatal(err)
	}
	if !strings.Contains(out, p) {
		return ""
	}
	return out
}

func needBIRD(t *testing.T) {
	t.Helper()
	for _, p := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed (apt-get install bird2): %v", p, err)
		}
	}
}

// TestRouteServerDeliversBookTrades runs the arbiter with the route server
// listening in a lab namespace, members' BIRD routers in others: what a
// seller announces is checked against the registry, IRR and RPKI and
// recorded; a trade placed through the book reaches the buyer's BIRD with
// the seller's next hop, the trade's community, NO_EXPORT and the seller's
// prepend, and nobody else; it goes at the trade's end; a restarted
// arbiter re-announces exactly the active trades.
func TestRouteServerDeliversBookTrades(t *testing.T) {
	needBIRD(t)
	lab := labtest.New(t, t.Name())
	arbHost := labtest.AddHost(t, lab, "arb", "192.0.2.1/24", "2001:db8::1/64")
	sh := labtest.AddHost(t, lab, "seller", "192.0.2.11/24", "2001:db8::11/64")
	bh := labtest.AddHost(t, lab, "buyer", "192.0.2.12/24", "2001:db8::12/64")
	oh := labtest.AddHost(t, lab, "other", "192.0.2.13/24", "2001:db8::13/64")

	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	cfg.BGP.Enabled = true
	cfg.BGP.ASN = 65000
	cfg.BGP.RouterID = "192.0.2.1"
	cfg.BGP.Listen = []string{"192.0.2.1", "2001:db8::1"}
	cfg.BGP.HoldTime = 9 * time.Second
	cfg.BGP.MaxPrefixes = 100
	cfg.BGP.RecheckInterval = time.Hour // every re-check below is asked for
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	importRouteData(t, cfg.StorePath())

	x := &exchange{t: t, cfg: cfg, dir: dir, opts: []daemon.Option{daemon.WithBGPRunIn(arbHost.Do)}}
	if testing.Verbose() {
		x.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	x.start()
	t.Cleanup(func() { x.arb.Close() }) // before the lab goes (cleanups run last first)

	seller := x.member(64501, "192.0.2.11", "2001:db8::11")
	buyer := x.member(64502, "192.0.2.12", "2001:db8::12")
	x.member(64503, "192.0.2.13", "2001:db8::13")
	reg := pb.NewRegistryServiceClient(x.operator())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range []*pb.Prefix{
		{Prefix: "198.51.100.0/24", MemberAsn: 64501, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER, Prepends: 1, AllowedBuyers: []uint32{64502}},
		{Prefix: "198.51.101.0/24", MemberAsn: 64501, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER},
		{Prefix: "198.51.102.0/24", MemberAsn: 64501, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER},
		{Prefix: "2001:db8:100::/48", MemberAsn: 64501, RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER},
	} {
		if _, err := reg.AddPrefix(ctx, &pb.AddPrefixRequest{Prefix: p}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := reg.AddPrefix(ctx, &pb.AddPrefixRequest{Prefix: &pb.Prefix{Prefix: "198.51.103.0/24", MemberAsn: 64501,
		RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER, Prepends: 11}})
	wantCode(t, "11 prepends", err, codes.InvalidArgument)

	startBIRD(t, sh, 64501, "198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24", "203.0.113.0/24", "2001:db8:100::/48")
	buyerBIRD := startBIRD(t, bh, 64502)
	otherBIRD := startBIRD(t, oh, 64503)

	// What the seller announces is checked and recorded with the reason.
	rsc := pb.NewRouteServerServiceClient(x.operator())
	want := map[string]string{
		"198.51.100.0/24":   "",
		"198.51.101.0/24":   routeserver.ReasonRPKIInvalid,
		"198.51.102.0/24":   routeserver.ReasonNoIRR,
		"203.0.113.0/24":    routeserver.ReasonNotRegistered,
		"2001:db8:100::/48": "",
	}
	eventually(t, waitBGP, "the seller's routes recorded with their verdicts", func() string {
		resp, err := rsc.ListReceivedRoutes(ctx, &pb.ListReceivedRoutesRequest{MemberAsn: 64501})
		if err != nil {
			return err.Error()
		}
		if len(resp.Routes) != len(want) {
			return fmt.Sprintf("%d routes: %v", len(resp.Routes), resp.Routes)
		}
		for _, r := range resp.Routes {
			w, ok := want[r.Prefix]
			if !ok || r.Accepted != (w == "") || (w != "" && r.Reason != w) || r.OriginAsn != 64501 {
				return fmt.Sprintf("%v: want accepted=%v reason %q", r, w == "", w)
			}
		}
		return ""
	})
	// Registering a prefix re-checks what the sessions carry at once: the
	// verdict changes without the seller announcing anything again.
	if _, err := reg.AddPrefix(ctx, &pb.AddPrefixRequest{Prefix: &pb.Prefix{Prefix: "203.0.113.0/24", MemberAsn: 64501,
		RouteType: pb.RouteType_ROUTE_TYPE_CUSTOMER}}); err != nil {
		t.Fatal(err)
	}
	want["203.0.113.0/24"] = routeserver.ReasonNoIRR
	eventually(t, waitBGP, "re-checked after the registry changed", func() string {
		resp, err := rsc.ListReceivedRoutes(ctx, &pb.ListReceivedRoutesRequest{MemberAsn: 64501})
		if err != nil {
			return err.Error()
		}
		for _, r := range resp.Routes {
			if r.Prefix == "203.0.113.0/24" && r.Reason != routeserver.ReasonNoIRR {
				return fmt.Sprint(r)
			}
		}
		return ""
	})

	// An IRR import by another process (`bwx-arbiter import irr`, which
	// then asks the running arbiter to re-check) is read at once, not at
	// the next recheck_interval.
	db, err := store.Open(cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	rpsl := "route: 198.51.100.0/24\norigin: AS64501\nsource: TEST\n\nroute: 198.51.101.0/24\norigin: AS64501\nsource: TEST\n\n" +
		"route6: 2001:db8:100::/48\norigin: AS64501\nsource: TEST\n\nroute: 203.0.113.0/24\norigin: AS64501\nsource: TEST\n"
	_, err = irr.Import(ctx, db, []irr.Input{{Name: "test.db", R: strings.NewReader(rpsl)}}, irr.ImportOptions{})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsc.Recheck(ctx, &pb.RecheckRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = pb.NewRouteServerServiceClient(seller).Recheck(ctx, &pb.RecheckRequest{})
	wantCode(t, "a member asks for a re-check", err, codes.PermissionDenied)
	eventually(t, 10*time.Second, "the import read at once", func() string {
		resp, err := rsc.ListReceivedRoutes(ctx, &pb.ListReceivedRoutesRequest{MemberAsn: 64501})
		if err != nil {
			return err.Error()
		}
		for _, r := range resp.Routes {
			if r.Prefix == "203.0.113.0/24" && !r.Accepted {
				return fmt.Sprint(r)
			}
		}
		return ""
	})
	want["203.0.113.0/24"] = ""

	// A member sees its own records only.
	_, err = pb.NewRouteServerServiceClient(buyer).ListReceivedRoutes(ctx, &pb.ListReceivedRoutesRequest{MemberAsn: 64501})
	wantCode(t, "buyer reads the seller's routes", err, codes.PermissionDenied)
	own, err := pb.NewRouteServerServiceClient(seller).ListReceivedRoutes(ctx, &pb.ListReceivedRoutesRequest{})
	if err != nil || len(own.Routes) != len(want) {
		t.Fatalf("seller's own routes: %v %v", own, err)
	}
	eventually(t, waitBGP, "all six sessions established", func() string {
		resp, err := rsc.ListSessions(ctx, &pb.ListSessionsRequest{})
		if err != nil {
			return err.Error()
		}
		up := 0
		for _, s := range resp.Sessions {
			if s.State == "Established" {
				up++
			}
		}
		if up != 6 {
			return fmt.Sprint(resp.Sessions)
		}
		return ""
	})

	// Two trades through the book: IPv4 for a few seconds, IPv6 for 30 days.
	trade := func(prefix string, d time.Duration) *pb.Trade {
		t.Helper()
		if _, err := pb.NewTradingServiceClient(seller).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, prefix, 1e9, 300_000, 90)}); err != nil {
			t.Fatal(err)
		}
		buy := order(pb.Side_SIDE_BUY, prefix, 1e9, 400_000, 30)
		buy.DeliveryEnd = timestamppb.New(buy.DeliveryStart.AsTime().Add(d))
		resp, err := pb.NewTradingServiceClient(buyer).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: buy})
		if err != nil || len(resp.Trades) != 1 {
			t.Fatalf("buy %s: %v %v", prefix, resp, err)
		}
		return resp.Trades[0]
	}
	short := trade("198.51.100.0/24", 8*time.Second)
	long := trade("2001:db8:100::/48", 30*24*time.Hour)

	has := func(b *bird, p string, want ...string) {
		t.Helper()
		eventually(t, waitBGP, fmt.Sprintf("%s has %s with %q", b.host.Name, p, want), func() string {
			r := b.route(p)
			if r == "" {
				return "no route"
			}
			for _, w := range want {
				if !strings.Contains(r, w) {
					return r
				}
			}
			return ""
		})
	}
	lacks := func(b *bird, p string) {
		t.Helper()
		eventually(t, waitBGP, fmt.Sprintf("%s lacks %s", b.host.Name, p), func() string { return b.route(p) })
	}
	has(buyerBIRD, "198.51.100.0/24", "via 192.0.2.11", "BGP.as_path: 65000 64501 64501",
		"(65535,65281)", fmt.Sprintf("(65000, 2, %d)", short.Id), "(65000, 1, 64502)")
	has(buyerBIRD, "2001:db8:100::/48", "via 2001:db8::11", "BGP.as_path: 65000 64501",
		fmt.Sprintf("(65000, 2, %d)", long.Id))
	for _, p := range []string{"198.51.100.0/24", "2001:db8:100::/48"} {
		if r := otherBIRD.route(p); r != "" {
			t.Errorf("a member that bought nothing has %s:\n%s", p, r)
		}
	}
	sent, err := rsc.ListSentRoutes(ctx, &pb.ListSentRoutesRequest{MemberAsn: 64502})
	if err != nil || len(sent.Routes) != 2 {
		t.Fatalf("sent to the buyer: %v %v", sent, err)
	}
	if m := scrape(t, x); !regexp.MustCompile(`bwx_arbiter_bgp_sessions\{state="established"\} 6\b`).MatchString(m) ||
		!strings.Contains(m, `bwx_arbiter_bgp_received_routes{reason="RPKI invalid",result="rejected"} 1`) ||
		!strings.Contains(m, "bwx_arbiter_bgp_trade_paths 2") {
		t.Errorf("metrics:\n%s", grepLines(m, "bwx_arbiter_bgp"))
	}
	// A member closes a session: counted by member and GoBGP's reason.
	if _, err := otherBIRD.birdc("disable", "rs4"); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitBGP, "the close counted", func() string {
		m := scrape(t, x)
		if !strings.Contains(m, `bwx_arbiter_bgp_session_closed_total{member="64503",reason="notification-received code 6(cease) subcode 2(administrative shutdown)"} 1`) {
			return grepLines(m, "bwx_arbiter_bgp_session_closed")
		}
		return ""
	})

	// The short trade ends: its route goes, the other stays.
	lacks(buyerBIRD, "198.51.100.0/24")
	if clock.Now().Before(short.DeliveryEnd.AsTime()) {
		t.Errorf("route withdrawn before the trade's end %v", short.DeliveryEnd.AsTime())
	}
	has(buyerBIRD, "2001:db8:100::/48", "via 2001:db8::11")

	// Restart: the sessions drop, and the new arbiter re-announces exactly
	// the active trade.
	x.arb.Close()
	lacks(buyerBIRD, "2001:db8:100::/48")
	x.start()
	has(buyerBIRD, "2001:db8:100::/48", "via 2001:db8::11", fmt.Sprintf("(65000, 2, %d)", long.Id))
	eventually(t, waitBGP, "the buyer is sent only the active trade", func() string {
		sent, err := pb.NewRouteServerServiceClient(x.operator()).ListSentRoutes(ctx, &pb.ListSentRoutesRequest{MemberAsn: 64502})
		if err != nil {
			return err.Error()
		}
		if len(sent.Routes) != 1 || sent.Routes[0].Prefix != "2001:db8:100::/48" {
			return fmt.Sprint(sent.Routes)
		}
		return ""
	})
	if r := buyerBIRD.route("198.51.100.0/24"); r != "" {
		t.Errorf("the ended trade came back after the restart:\n%s", r)
	}
}

// importRouteData stores IRR route objects for two of the seller's
// prefixes and a ROA that makes a third RPKI invalid.
func importRouteData(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	rpsl := "route: 198.51.100.0/24\norigin: AS64501\nsource: TEST\n\n" +
		"route: 198.51.101.0/24\norigin: AS64501\nsource: TEST\n\n" +
		"route6: 2001:db8:100::/48\norigin: AS64501\nsource: TEST\n"
	if _, err := irr.Import(ctx, db, []irr.Input{{Name: "test.db", R: strings.NewReader(rpsl)}}, irr.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	roas := `{"roas": [{"asn": "AS64999", "prefix": "198.51.101.0/24", "maxLength": 24, "ta": "test"},
		{"asn": "AS64501", "prefix": "198.51.100.0/24", "maxLength": 24, "ta": "test"}]}`
	if _, err := rpki.Import(ctx, db, "roas.json", strings.NewReader(roas), rpki.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, x *exchange) string {
	t.Helper()
	r, err := http.Get("http://" + x.arb.MetricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
