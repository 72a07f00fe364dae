package daemon_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/units"
)

// Environment of TestDashboardInBrowser.
const (
	// artifactsEnv names a directory for the pages' screenshots (default: a
	// temporary directory, removed after the test).
	artifactsEnv = "BWX_ARTIFACTS"
	// screenshotEnv names a PNG file for the README's picture of the
	// dashboard (scripts/screenshot).
	screenshotEnv = "BWX_SCREENSHOT"
)

// The three members of the browser test's exchange.
const (
	asNorthwind = 64501 // sells IPv4 to Harbour
	asHarbour   = 64510 // buys from Northwind, sells IPv6 to Alpine
	asAlpine    = 64520 // buys from Harbour: the member whose view is checked
)

var dashboardPages = []string{"members", "book", "trades", "quality", "usage", "invoices"}

// TestDashboardInBrowser opens every page of a running arbiter's dashboard
// in Debian's headless Chromium, over a store with members, open orders,
// trades, measurements, usage and a settled month, and checks that the
// figures the browser shows are the store's: everything for the operator
// (the loopback listener, and an operator certificate over mutual TLS),
// and for a member's certificate its own records plus the market view and
// nothing of another member's. Each page's screenshot is saved to
// $BWX_ARTIFACTS (default: a temporary directory); BWX_SCREENSHOT=file.png
// also writes the README's picture (scripts/screenshot).
func TestDashboardInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skipf("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it): %v", err)
	}
	started := clock.Now()
	x, opCert, alpineCert := startBrowserExchange(t)
	want := readStore(t, x)

	artifacts := t.TempDir()
	if d := os.Getenv(artifactsEnv); d != "" {
		artifacts = filepath.Join(d, t.Name())
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dashboard := "https://" + x.arb.DashboardAddr.String()
	viewers := []struct {
		name   string
		base   string
		asn    uint32 // 0: the operator
		header string // who the page says looks
	}{
		{"operator-local", "http://" + x.arb.DashboardLocalAddr.String(), 0, "operator local"},
		{"operator-cert", certProxy(t, dashboard, opCert), 0, "operator alice"},
		{fmt.Sprintf("member-AS%d", asAlpine), certProxy(t, dashboard, alpineCert), asAlpine, fmt.Sprintf("AS%d", asAlpine)},
	}

	ctx := startChromium(t, chromium)
	for _, v := range viewers {
		for _, page := range dashboardPages {
			got := openPage(t, ctx, v.base+"/"+page, http.StatusOK)
			shot(t, ctx, filepath.Join(artifacts, v.name+"-"+page+".png"))
			what := v.name + " /" + page
			if got.Viewer != v.header {
				t.Errorf("%s: header names the viewer %q, want %q", what, got.Viewer, v.header)
			}
			want.check(t, what, page, v.asn, got)
		}
	}
	// Another member's trade is not found, as if it did not exist.
	other := want.trades[slices.IndexFunc(want.trades, func(tr *pb.Trade) bool { return !party(tr, asAlpine) })].Id
	got := openPage(t, ctx, fmt.Sprintf("%s/usage?trade=%d", viewers[2].base, other), http.StatusNotFound)
	if !strings.Contains(got.Body, "not found") || len(got.Usage) != 0 {
		t.Errorf("AS%d asking for trade %d's usage got %q, want not found", asAlpine, other, got.Body)
	}
	t.Logf("screenshots of %d pages in %s", len(viewers)*len(dashboardPages), artifacts)

	if path := os.Getenv(screenshotEnv); path != "" {
		// The README's picture: the operator's usage page at a common
		// laptop size, just the viewport.
		openPage(t, ctx, viewers[0].base+"/usage", http.StatusOK)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("README screenshot: %s (%d bytes)", path, len(png))
	}
	t.Logf("browser test took %v", clock.Since(started).Round(time.Millisecond))
}

// startBrowserExchange starts an arbiter with both dashboard listeners and
// fills its store through the gRPC API as members and the operator would:
// three members with prefixes, trades made last month and settled, a trade
// running since two hours ago, resting orders, quality measurements and
// both parties' usage reports. It returns the exchange and the certificate
// bundles of an operator (alice) and of Alpine.
func startBrowserExchange(t *testing.T) (x *exchange, opCert, alpineCert string) {
	t.Helper()
	now := clock.Now().UTC()
	last := settle.MonthOf(now).Start.AddDate(0, -1, 0)
	// The book's clock stands where each trade starts while it is placed
	// (a start in the past is refused), then runs on.
	var bookAt atomic.Pointer[time.Time]
	dir := t.TempDir()
	cfg := daemon.DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.GRPC.Listen, cfg.Metrics.Listen = "127.0.0.1:0", ""
	cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
	cfg.Dashboard.Listen, cfg.Dashboard.Local = "127.0.0.1:0", "127.0.0.1:0"
	if _, err := pki.InitCA(cfg.CADir(), "test CA", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	x = &exchange{t: t, cfg: cfg, dir: dir, opts: []daemon.Option{daemon.WithBookClock(func() time.Time {
		if at := bookAt.Load(); at != nil {
			return *at
		}
		return clock.Now()
	})}}
	x.start()
	t.Cleanup(func() { x.arb.Close() })

	northwind, _ := namedMember(x, asNorthwind, "Northwind Transit", "xe-0/0/1", "192.0.2.11", "2001:db8:ffff::11")
	harbour, _ := namedMember(x, asHarbour, "Harbour Fibre", "et-1/0/4", "192.0.2.12", "2001:db8:ffff::12")
	alpine, alpineCert := namedMember(x, asAlpine, "Alpine Access", "swp7", "192.0.2.13", "2001:db8:ffff::13")
	x.addPrefix(asNorthwind, "198.51.100.0/24")
	x.addPrefix(asNorthwind, "203.0.113.0/24")
	x.addPrefix(asHarbour, "2001:db8:100::/48")
	x.addPrefix(asAlpine, "2001:db8:200::/48")
	ctx := context.Background()
	place := func(c *grpc.ClientConn, s *pb.OrderSpec, trades int) uint64 {
		t.Helper()
		r, err := pb.NewTradingServiceClient(c).PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: s})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Trades) != trades {
			t.Fatalf("order %v made %d trades, want %d", s, len(r.Trades), trades)
		}
		if trades == 0 {
			return 0
		}
		return r.Trades[0].Id
	}
	deal := func(seller, buyer *grpc.ClientConn, prefix string, capacity, ask, bid int64, start time.Time) uint64 {
		t.Helper()
		bookAt.Store(&start)
		defer bookAt.Store(nil)
		end := now.Add(30 * 24 * time.Hour)
		place(seller, orderAt(pb.Side_SIDE_SELL, prefix, capacity, ask, start, end), 0)
		return place(buyer, orderAt(pb.Side_SIDE_BUY, prefix, capacity, bid, start, end), 1)
	}
	t1 := deal(northwind, harbour, "198.51.100.0/24", 2e9, 120_000, 140_000, last)
	t2 := deal(harbour, alpine, "2001:db8:100::/48", 1e9, 180_000, 180_000, last)
	recent := now.Truncate(settle.SlotLength).Add(-2 * time.Hour)
	t3 := deal(northwind, harbour, "203.0.113.0/24", 500e6, 250_000, 300_000, recent)
	// Resting orders for the book's depth: bids below the offers.
	place(northwind, order(pb.Side_SIDE_SELL, "198.51.100.0/24", 3e9, 150_000, 30), 0)
	place(alpine, order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 80_000, 30), 0)
	place(harbour, order(pb.Side_SIDE_SELL, "2001:db8:100::/48", 2e9, 200_000, 30), 0)
	place(harbour, order(pb.Side_SIDE_SELL, "2001:db8:100::/48", 1e9, 210_000, 14), 0)

	// What the agents measured through each seller.
	measure := func(c *grpc.ClientConn, ms ...*pb.Measurement) {
		t.Helper()
		for i, m := range ms {
			m.IdempotencyKey, m.MeasuredAt, m.ProbesSent = fmt.Sprintf("m%d", i), timestamppb.New(now.Add(-time.Minute)), 20
		}
		if _, err := pb.NewQualityServiceClient(c).ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{Measurements: ms}); err != nil {
			t.Fatal(err)
		}
	}
	measure(harbour,
		&pb.Measurement{ViaAsn: asNorthwind, DestinationPrefix: "198.51.100.0/24", Target: "198.51.100.1", LatencyUs: 12_300, JitterUs: 800},
		&pb.Measurement{ViaAsn: asNorthwind, DestinationPrefix: "203.0.113.0/24", Target: "203.0.113.1", LatencyUs: 48_200, JitterUs: 3_100, LossPpm: 25_000})
	measure(alpine,
		&pb.Measurement{ViaAsn: asHarbour, DestinationPrefix: "2001:db8:100::/48", Target: "2001:db8:100::1", LatencyUs: 7_100, JitterUs: 400},
		&pb.Measurement{ViaAsn: asNorthwind, DestinationPrefix: "198.51.100.0/24", Target: "198.51.100.1", LatencyUs: 95_000, JitterUs: 12_000, LossPpm: 1_200})

	// Usage: two hours of last month for the bill (Harbour sends 1.5G
	// on Alpine's 1G: overage), and the last 90 minutes for the charts.
	report := func(c *grpc.ClientConn, ss []*pb.UsageSample) {
		t.Helper()
		if _, err := pb.NewUsageServiceClient(c).ReportUsage(ctx, &pb.ReportUsageRequest{Samples: ss}); err != nil {
			t.Fatal(err)
		}
	}
	buyer, seller := pb.ReporterRole_REPORTER_ROLE_BUYER, pb.ReporterRole_REPORTER_ROLE_SELLER
	report(harbour, samples(t1, buyer, last, 24, 1.2e9, 10_000))
	report(northwind, samples(t1, seller, last, 24, 1.2e9, 10_000))
	report(alpine, samples(t2, buyer, last, 24, 1.5e9, 10_000))
	from := now.Truncate(settle.SlotLength).Add(-90 * time.Minute)
	wave := func(tr uint64, role pb.ReporterRole, base, swing float64, phase int) []*pb.UsageSample {
		ss := samples(tr, role, from, 18, 0, 5_000)
		for i, s := range ss {
			s.IdempotencyKey = "recent-" + s.IdempotencyKey
			s.BitsPerSecond = int64(math.Round((base+swing*math.Sin(float64(i+phase)/3))/1e6)) * 1e6
		}
		return ss
	}
	report(harbour, wave(t1, buyer, 1.3e9, 4e8, 0))
	report(northwind, wave(t1, seller, 1.31e9, 4e8, 0))
	report(alpine, wave(t2, buyer, 8e8, 3e8, 2))
	report(harbour, wave(t2, seller, 8e8, 3e8, 2))
	report(harbour, wave(t3, buyer, 3.5e8, 1e8, 5))

	op := pb.NewUsageServiceClient(x.operator())
	if _, err := op.RunSettlement(ctx, &pb.RunSettlementRequest{Period: last.Format("2006-01")}); err != nil {
		t.Fatal(err)
	}
	return x, x.caBundle(pki.OperatorIdentity("alice"), "alice"), alpineCert
}

// namedMember registers a member with its name and port, and returns a
// connection with its certificate and the certificate bundle's path.
func namedMember(x *exchange, asn uint32, name, port string, routers ...string) (*grpc.ClientConn, string) {
	x.t.Helper()
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "x")
	resp, err := pb.NewRegistryServiceClient(x.operator()).AddMember(context.Background(), &pb.AddMemberRequest{
		Asn: asn, Name: name, Port: &pb.Port{Name: port, CapacityBps: 10e9}, RouterAddresses: routers, Csr: csr})
	if err != nil {
		x.t.Fatal(err)
	}
	keyPEM, _ := pki.MarshalKeyPEM(key)
	path := filepath.Join(x.dir, fmt.Sprintf("as%d.pem", asn))
	if err := pki.WriteBundle(path, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
		x.t.Fatal(err)
	}
	return x.dialBundle(path), path
}

// certProxy returns the URL of a plain-HTTP proxy on loopback that
// forwards to the dashboard's mutual-TLS listener with the certificate in
// bundle. Headless Chromium presents a client certificate only from an NSS
// database, chosen by an AutoSelectCertificateForUrls policy file under
// /etc/chromium: files outside the test that would outlive it. The
// dashboard still authenticates a real TLS client certificate; only the
// browser's leg is plain HTTP, on loopback.
func certProxy(t *testing.T, target, bundle string) string {
	t.Helper()
	b, err := pki.LoadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(b, "127.0.0.1"), ForceAttemptHTTP2: true},
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s.URL
}

// startChromium starts headless Chromium for the test and returns the
// context of its tab; the browser stops when the test ends.
func startChromium(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("lang", "en-US"))
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox (CI runs as root).
		opts = append(opts, chromedp.NoSandbox)
	}
	// A bound for the whole browser: the test takes about ten seconds.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 2*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return bctx
}

// pageView is what the browser shows of a page, read from the rendered DOM
// (innerText: the text as laid out, as a reader sees it).
type pageView struct {
	Viewer   string                `json:"viewer"`
	Title    string                `json:"title"`
	Body     string                `json:"body"`
	Tables   map[string][][]string `json:"tables"`
	Invoices []struct {
		Heading string     `json:"heading"`
		Figures string     `json:"figures"`
		Lines   [][]string `json:"lines"`
	} `json:"invoices"`
	Usage []struct {
		ID      string `json:"id"`
		Heading string `json:"heading"`
		Figures string `json:"figures"`
		Lines   int    `json:"lines"`
		Empty   bool   `json:"empty"`
	} `json:"usage"`
	Cells []string `json:"cells"`
}

const readPage = `(() => {
	const text = e => e ? e.innerText.trim() : "";
	const rows = t => t && t.tBodies[0] ? Array.from(t.tBodies[0].rows, r => Array.from(r.cells, c => c.innerText.trim())) : [];
	const tables = {};
	for (const t of document.querySelectorAll("table[id]")) tables[t.id] = rows(t);
	return {
		viewer: text(document.getElementById("viewer")),
		title: text(document.querySelector("h1")),
		body: document.body.innerText,
		tables,
		invoices: Array.from(document.querySelectorAll("section.invoice"), s => ({
			heading: text(s.querySelector("h2")), figures: text(s.querySelector(".figures")), lines: rows(s.querySelector("table.lines"))})),
		usage: Array.from(document.querySelectorAll("section.usage"), s => ({
			id: s.id, heading: text(s.querySelector("h2")), figures: text(s.querySelector(".figures")),
			lines: s.querySelectorAll("polyline").length, empty: s.querySelector("svg").textContent.includes("no usage reported")})),
		cells: Array.from(document.querySelectorAll("#heatmap rect > title"), e => e.textContent),
	};
})()`

// openPage loads url, checks the HTTP status, and reads the page.
func openPage(t *testing.T, ctx context.Context, url string, status int64) pageView {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.Status != status {
		t.Errorf("GET %s: status %d, want %d", url, resp.Status, status)
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[pageView](readPage))
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return v
}

// shot saves a PNG of the whole page.
func shot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storeView is what the store holds, read through the operator's API and
// the database file: what the dashboard must show.
type storeView struct {
	members  []*pb.Member
	prefixes map[uint32]int
	orders   []*pb.Order // open
	trades   []*pb.Trade // newest first
	matrix   []*pb.MatrixEntry
	invoices []settle.Invoice // newest period first, then by member
	exchange []*pb.ExchangeStatement
	usage    map[uint64]usageFigures
}

type usageFigures struct {
	n          int
	peak, last int64
}

func readStore(t *testing.T, x *exchange) *storeView {
	t.Helper()
	ctx := context.Background()
	op := x.operator()
	v := &storeView{prefixes: map[uint32]int{}, usage: map[uint64]usageFigures{}}
	ms, err := pb.NewRegistryServiceClient(op).ListMembers(ctx, &pb.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v.members = ms.Members
	ps, err := pb.NewRegistryServiceClient(op).ListPrefixes(ctx, &pb.ListPrefixesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps.Prefixes {
		v.prefixes[p.MemberAsn]++
	}
	trading := pb.NewTradingServiceClient(op)
	open, err := trading.ListOrders(ctx, &pb.ListOrdersRequest{OpenOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	v.orders = open.Orders
	ts, err := trading.ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v.trades = ts.Trades
	slices.SortFunc(v.trades, func(a, b *pb.Trade) int { return cmp.Compare(b.Id, a.Id) })
	qm, err := pb.NewQualityServiceClient(op).QueryMatrix(ctx, &pb.QueryMatrixRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v.matrix = qm.Entries
	usage := pb.NewUsageServiceClient(op)
	is, err := usage.ListInvoices(ctx, &pb.ListInvoicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	periods := map[string]bool{}
	for _, inv := range is.Invoices {
		r, err := usage.GetInvoice(ctx, &pb.GetInvoiceRequest{MemberAsn: inv.MemberAsn, Period: inv.Period})
		if err != nil {
			t.Fatal(err)
		}
		var doc settle.Invoice
		if err := json.Unmarshal([]byte(r.DocumentJson), &doc); err != nil {
			t.Fatal(err)
		}
		v.invoices = append(v.invoices, doc)
		if !periods[inv.Period] {
			periods[inv.Period] = true
			st, err := usage.GetExchangeStatement(ctx, &pb.GetExchangeStatementRequest{Period: inv.Period})
			if err != nil {
				t.Fatal(err)
			}
			v.exchange = append(v.exchange, st)
		}
	}
	slices.SortFunc(v.invoices, func(a, b settle.Invoice) int {
		return cmp.Or(b.Start.Compare(a.Start), cmp.Compare(a.ASN, b.ASN))
	})
	if len(v.trades) != 3 || len(v.invoices) != 3 || len(v.exchange) != 1 || len(v.matrix) != 3 || len(v.orders) != 4 {
		t.Fatalf("store has %d trades, %d invoices, %d statements, %d matrix cells, %d open orders; want 3, 3, 1, 3, 4",
			len(v.trades), len(v.invoices), len(v.exchange), len(v.matrix), len(v.orders))
	}

	// The usage reports of the last week, straight from the database file.
	db, err := store.Open(x.cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, `SELECT trade_id, role, bps FROM usage_samples WHERE end_us > ? ORDER BY trade_id, start_us, role`,
		store.Micros(clock.Now().Add(-7*24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var id uint64
		var role int
		var bps int64
		if err := rs.Scan(&id, &role, &bps); err != nil {
			t.Fatal(err)
		}
		u := v.usage[id]
		u.n++
		u.peak = max(u.peak, bps)
		if settle.Role(role) == settle.BuyerRole {
			u.last = bps
		}
		v.usage[id] = u
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return v
}

func party(tr *pb.Trade, asn uint32) bool { return tr.BuyerAsn == asn || tr.SellerAsn == asn }

func (v *storeView) name(asn uint32) string {
	for _, m := range v.members {
		if m.Asn == asn {
			return m.Name
		}
	}
	return "?"
}

func bw(b int64) string        { return units.Bandwidth(b).String() }
func money(m int64) string     { return units.Money(m).String() }
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

var tradeStatus = map[pb.TradeStatus]string{pb.TradeStatus_TRADE_STATUS_SCHEDULED: "pending", pb.TradeStatus_TRADE_STATUS_ACTIVE: "active",
	pb.TradeStatus_TRADE_STATUS_ENDED: "ended", pb.TradeStatus_TRADE_STATUS_CANCELLED: "cancelled"}

// check compares what page shows viewer asn (0: the operator) with the store.
func (v *storeView) check(t *testing.T, what, page string, asn uint32, got pageView) {
	t.Helper()
	sees := func(a uint32) bool { return asn == 0 || a == asn }
	var trades []*pb.Trade
	for _, tr := range v.trades {
		if asn == 0 || party(tr, asn) {
			trades = append(trades, tr)
		}
	}
	if asn != 0 {
		// A member sees nothing of a member it has no trade with, on any
		// page: Alpine trades with Harbour only.
		for _, s := range []string{v.name(asNorthwind), "192.0.2.11", "xe-0/0/1"} {
			if strings.Contains(got.Body, s) {
				t.Errorf("%s shows %q, of AS%d, which AS%d has no business with", what, s, asNorthwind, asn)
			}
		}
		if page != "book" && page != "quality" && strings.Contains(got.Body, fmt.Sprintf("AS%d", asNorthwind)) {
			t.Errorf("%s names AS%d outside the market view", what, asNorthwind)
		}
	}
	table := func(id string, want [][]string, sorted bool) {
		t.Helper()
		g := got.Tables[id]
		if sorted {
			g = slices.Clone(g)
			slices.SortFunc(g, slices.Compare)
			slices.SortFunc(want, slices.Compare)
		}
		if !slices.EqualFunc(g, want, slices.Equal) {
			t.Errorf("%s: table #%s shows\n%s\nwant (from the store)\n%s", what, id, rowsText(g), rowsText(want))
		}
	}
	switch page {
	case "members":
		var want [][]string
		for _, m := range v.members {
			if !sees(m.Asn) {
				continue
			}
			open, active := 0, 0
			for _, o := range v.orders {
				if o.MemberAsn == m.Asn {
					open++
				}
			}
			for _, tr := range v.trades {
				if party(tr, m.Asn) && tr.Status == pb.TradeStatus_TRADE_STATUS_ACTIVE {
					active++
				}
			}
			want = append(want, []string{fmt.Sprintf("AS%d", m.Asn), m.Name, strings.ToLower(strings.TrimPrefix(m.Status.String(), "MEMBER_STATUS_")), m.Port.Name, bw(m.Port.CapacityBps),
				strings.Join(m.RouterAddresses, "\n"), fmt.Sprint(v.prefixes[m.Asn]), fmt.Sprint(open), fmt.Sprint(active), ""})
		}
		table("members", want, false)
	case "book":
		// The market view, the same for everyone: depth from the open
		// orders, and the tape of every trade, naming no member.
		type depth struct {
			proto            book.Protocol
			buys, sells      int
			buyBps, sellBps  int64
			bestBid, bestAsk int64
		}
		byDest := map[string]*depth{}
		for _, o := range v.orders {
			dest := o.Spec.Destination.GetPrefix()
			d := byDest[dest]
			if d == nil {
				d = &depth{proto: book.Protocol(o.Spec.Protocol), bestAsk: math.MaxInt64}
				byDest[dest] = d
			}
			left := o.Spec.CapacityBps - o.FilledBps
			if o.Spec.Side == pb.Side_SIDE_BUY {
				d.buys, d.buyBps, d.bestBid = d.buys+1, d.buyBps+left, max(d.bestBid, o.Spec.PriceMicros)
			} else {
				d.sells, d.sellBps, d.bestAsk = d.sells+1, d.sellBps+left, min(d.bestAsk, o.Spec.PriceMicros)
			}
		}
		var want [][]string
		for dest, d := range byDest {
			row := []string{dest, d.proto.String(), fmt.Sprint(d.buys), "–", "–", fmt.Sprint(d.sells), "–", "–"}
			if d.buys > 0 {
				row[3], row[4] = bw(d.buyBps), money(d.bestBid)
			}
			if d.sells > 0 {
				row[6], row[7] = bw(d.sellBps), money(d.bestAsk)
			}
			want = append(want, row)
		}
		table("depth", want, true)
		var tape [][]string
		for _, tr := range v.trades {
			tape = append(tape, []string{stamp(tr.CreatedAt.AsTime()), strings.Join(tr.Prefixes, ", "), book.Protocol(tr.Protocol).String(),
				bw(tr.CapacityBps), money(tr.PriceMicros)})
		}
		table("tape", tape, false)
		for _, m := range v.members {
			if strings.Contains(got.Body, m.Name) {
				t.Errorf("%s: the market view names %s", what, m.Name)
			}
		}
	case "trades":
		var want [][]string
		for _, tr := range trades {
			want = append(want, []string{fmt.Sprint(tr.Id), fmt.Sprintf("AS%d %s", tr.BuyerAsn, v.name(tr.BuyerAsn)),
				fmt.Sprintf("AS%d %s", tr.SellerAsn, v.name(tr.SellerAsn)), strings.Join(tr.Prefixes, ", "), book.Protocol(tr.Protocol).String(),
				bw(tr.CapacityBps), money(tr.PriceMicros), stamp(tr.DeliveryStart.AsTime()), stamp(tr.DeliveryEnd.AsTime()),
				tradeStatus[tr.Status], "-", "usage"})
		}
		table("trades", want, false)
	case "quality":
		var want [][]string
		var cells []string
		for _, e := range v.matrix {
			want = append(want, []string{fmt.Sprintf("AS%d", e.ViaAsn), e.DestinationPrefix, fmt.Sprintf("%.1f ms", float64(e.LatencyUs)/1000),
				fmt.Sprintf("%.1f ms", float64(e.JitterUs)/1000), fmt.Sprintf("%.2f%%", float64(e.LossPpm)/1e4), fmt.Sprint(e.AsHops),
				fmt.Sprint(e.Samples), fmt.Sprint(e.Vantages), stamp(e.LastMeasuredAt.AsTime())})
			cells = append(cells, fmt.Sprintf("AS%d → %s: %.1f ms latency, %.2f%% loss, %d samples from %d vantages",
				e.ViaAsn, e.DestinationPrefix, float64(e.LatencyUs)/1000, float64(e.LossPpm)/1e4, e.Samples, e.Vantages))
		}
		table("matrix", want, true)
		g := slices.Sorted(slices.Values(got.Cells))
		slices.Sort(cells)
		if !slices.Equal(g, cells) {
			t.Errorf("%s: heat map cells say\n%s\nwant\n%s", what, strings.Join(g, "\n"), strings.Join(cells, "\n"))
		}
	case "usage":
		var want, gotCharts []string
		for _, tr := range trades {
			u := v.usage[tr.Id]
			want = append(want, fmt.Sprintf("trade-%d | Trade %d: AS%d buys from AS%d · %s · %s committed · %s | %d samples · peak %s · last (buyer) %s | empty %v",
				tr.Id, tr.Id, tr.BuyerAsn, tr.SellerAsn, strings.Join(tr.Prefixes, ", "), bw(tr.CapacityBps), tradeStatus[tr.Status],
				u.n, bw(u.peak), bw(u.last), u.n == 0))
		}
		for _, c := range got.Usage {
			gotCharts = append(gotCharts, fmt.Sprintf("%s | %s | %s | empty %v", c.ID, c.Heading, c.Figures, c.Empty))
			if !c.Empty && c.Lines == 0 {
				t.Errorf("%s: %s has usage but draws no line", what, c.ID)
			}
		}
		if !slices.Equal(gotCharts, want) {
			t.Errorf("%s: charts\n%s\nwant\n%s", what, strings.Join(gotCharts, "\n"), strings.Join(want, "\n"))
		}
	case "invoices":
		var want, gotInv []string
		for _, inv := range v.invoices {
			if !sees(inv.ASN) {
				continue
			}
			s := fmt.Sprintf("AS%d · %s | Paid %s · received %s · fees %s · net %s", inv.ASN, inv.Period,
				money(inv.Paid), money(inv.Received), money(inv.Fees), money(inv.Net))
			for _, l := range inv.Lines {
				s += fmt.Sprintf(" | %d %s AS%d %s %s %s %s %s %s %s %s %s", l.TradeID, l.Side, l.CounterpartyASN, bw(l.CapacityBps),
					money(l.PriceMicros), bw(l.P95Bps), bw(l.OverageBps), money(l.Committed), money(l.Overage), money(l.Credit), money(l.Fee), money(l.Net))
			}
			want = append(want, s)
		}
		for _, inv := range got.Invoices {
			s := inv.Heading + " | " + inv.Figures
			for _, l := range inv.Lines {
				s += " | " + strings.Join(l, " ")
			}
			gotInv = append(gotInv, s)
		}
		if !slices.Equal(gotInv, want) {
			t.Errorf("%s: invoices\n%s\nwant (from the store)\n%s", what, strings.Join(gotInv, "\n"), strings.Join(want, "\n"))
		}
		var ex [][]string
		if asn == 0 {
			for _, e := range v.exchange {
				ex = append(ex, []string{e.Period, fmt.Sprint(e.Members), fmt.Sprint(e.Trades), money(e.GrossMicros), money(e.FeeIncomeMicros),
					money(e.MemberNetMicros), money(e.BalanceMicros)})
			}
		}
		table("exchange", ex, false)
	}
}

func rowsText(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %q\n", r)
	}
	return b.String()
}
