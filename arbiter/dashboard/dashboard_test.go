package dashboard

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/delivery"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// The fixture exchange: Alpha (AS64500) and Bravo (AS64501) buy from
// Charlie (AS64502), which sells IPv4 and IPv6 routes.
const (
	asA, asB, asC = 64500, 64501, 64502
	nameB         = "Bravo Net"
)

type fixture struct {
	db             *store.DB
	bk             *book.Book
	tradeA, tradeB int64
	now            time.Time
	period         settle.Period
}

var (
	pfx4 = netip.MustParsePrefix("198.51.100.0/24")
	pfx6 = netip.MustParsePrefix("2001:db8:100::/48")
	bid4 = netip.MustParsePrefix("203.0.113.0/24")
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(filepath.Join(t.TempDir(), "bwx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := registry.New(db)
	for i, m := range []registry.Member{
		{ASN: asA, Name: "Alpha Net", Port: registry.Port{Name: "swp1", CapacityBps: 100e9}, Routers: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:ffff::10")}},
		{ASN: asB, Name: nameB, Port: registry.Port{Name: "swp2", CapacityBps: 100e9}, Routers: []netip.Addr{netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("2001:db8:ffff::11")}},
		{ASN: asC, Name: "Charlie Transit", Port: registry.Port{Name: "swp3", CapacityBps: 100e9}, Routers: []netip.Addr{netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("2001:db8:ffff::12")}},
	} {
		if _, err := reg.AddMember(ctx, m, nil); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	for _, p := range []netip.Prefix{pfx4, pfx6} {
		if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: p, MemberASN: asC, Type: registry.Customer, OriginASN: asC}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{db: db, now: clock.Now().UTC()}
	// Delivery began last month, so last month can be settled: the book's
	// clock stands at its start while the orders are placed (a start in
	// the past is refused), then at now.
	f.period = settle.MonthOf(settle.MonthOf(f.now).Start.Add(-time.Hour))
	start, end := f.period.Start, f.now.AddDate(0, 1, 0)
	var bookNow atomic.Pointer[time.Time]
	bookNow.Store(&start)
	if f.bk, err = book.Start(ctx, db, book.Options{ExpireEvery: -1, Now: func() time.Time { return *bookNow.Load() }}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.bk.Close)
	spec := func(side book.Side, p netip.Prefix, capacity, price int64) book.Spec {
		proto := book.IPv4
		if p.Addr().Is6() {
			proto = book.IPv6
		}
		return book.Spec{Side: side, Destination: book.Destination{Prefix: p}, Protocol: proto, CapacityBps: capacity, MinBlockBps: 100e6,
			PriceMicros: price, TrafficType: book.AnyTraffic, Start: start, End: end, Type: book.Limit}
	}
	place := func(asn uint32, s book.Spec) []book.Trade {
		t.Helper()
		_, ts, err := f.bk.Place(ctx, asn, s, "")
		if err != nil {
			t.Fatalf("AS%d place %v: %v", asn, s.Destination, err)
		}
		return ts
	}
	place(asC, spec(book.Sell, pfx4, 10e9, 300_000))
	place(asC, spec(book.Sell, pfx4, 10e9, 250_000))
	place(asC, spec(book.Sell, pfx6, 5e9, 400_000))
	ts := place(asA, spec(book.Buy, pfx4, 1e9, 500_000))
	if len(ts) != 1 {
		t.Fatalf("A's buy made %d trades, want 1", len(ts))
	}
	f.tradeA = ts[0].ID
	ts = place(asB, spec(book.Buy, pfx6, 2e9, 500_000))
	if len(ts) != 1 {
		t.Fatalf("B's buy made %d trades, want 1", len(ts))
	}
	f.tradeB = ts[0].ID
	// Resting bids nobody sells.
	place(asA, spec(book.Buy, bid4, 500e6, 200_000))
	place(asB, spec(book.Buy, bid4, 700e6, 220_000))
	bookNow.Store(&f.now)

	// Usage: each buyer reports its trade over the last hour; the seller too.
	u := settle.New(db)
	for _, r := range []struct {
		asn   uint32
		trade int64
		role  settle.Role
		bps   int64
	}{{asA, f.tradeA, settle.BuyerRole, 600e6}, {asC, f.tradeA, settle.SellerRole, 590e6}, {asB, f.tradeB, settle.BuyerRole, 1500e6}} {
		var ss []settle.Sample
		for i := range 12 {
			st := f.now.Add(-time.Hour).Truncate(5 * time.Minute).Add(time.Duration(i) * 5 * time.Minute)
			ss = append(ss, settle.Sample{IdempotencyKey: fmt.Sprintf("%d-%d-%d", r.trade, r.role, i), TradeID: r.trade, Role: r.role,
				Start: st, End: st.Add(5 * time.Minute), Bps: r.bps + int64(i)*1e6, SampleCount: 1000})
		}
		if _, _, err := u.Report(ctx, r.asn, ss); err != nil {
			t.Fatalf("usage of AS%d: %v", r.asn, err)
		}
	}
	// Quality: A measured through C toward both prefixes.
	m := quality.New(db, nil)
	if _, _, err := m.Report(ctx, asA, []quality.Measurement{
		{IdempotencyKey: "q1", ViaASN: asC, Prefix: pfx4, Target: netip.MustParseAddr("198.51.100.1"), At: f.now.Add(-time.Minute), LatencyUs: 12000, JitterUs: 800, LossPPM: 2500, ASHops: 2, IPHops: 6, ProbesSent: 10},
		{IdempotencyKey: "q2", ViaASN: asC, Prefix: pfx6, Target: netip.MustParseAddr("2001:db8:100::1"), At: f.now.Add(-time.Minute), LatencyUs: 95000, JitterUs: 3000, LossPPM: 0, ASHops: 3, IPHops: 9, ProbesSent: 10},
	}); err != nil {
		t.Fatal(err)
	}
	st, err := settle.NewSettlement(db, settle.Options{Config: settle.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Run(ctx, f.period, settle.BuyerFigure); err != nil {
		t.Fatalf("settle %s: %v", f.period, err)
	}
	return f
}

type fakeSessions []Session

func (f fakeSessions) Sessions(context.Context) ([]Session, error) { return f, nil }

var sessions = fakeSessions{
	{ASN: asA, Neighbor: netip.MustParseAddr("192.0.2.10"), State: "Established", Uptime: time.Hour, Received: 3, Accepted: 2, Sent: 1},
	{ASN: asA, Neighbor: netip.MustParseAddr("2001:db8:ffff::10"), State: "Established", Uptime: time.Hour},
	{ASN: asB, Neighbor: netip.MustParseAddr("192.0.2.11"), State: "Active", Uptime: time.Minute},
}

func (f *fixture) server(t testing.TB, withBook bool) *Server {
	t.Helper()
	o := Options{DB: f.db, Sessions: sessions}
	if withBook {
		o.Book = f.bk
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func as(v Viewer) Authenticate { return func(*http.Request) (Viewer, error) { return v, nil } }

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func mustGet(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	res, body := get(t, h, path)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
	}
	return body
}

var pages = []string{"/members", "/book", "/trades", "/quality", "/usage", "/invoices"}

func TestOperatorSeesEverything(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, false).Handler(LocalOperator)
	body := mustGet(t, h, "/trades")
	for _, want := range []string{"AS64500 Alpha Net", "AS64501 Bravo Net", "AS64502 Charlie Transit", ">198.51.100.0/24<", ">2001:db8:100::/48<",
		fmt.Sprintf(`href="/usage?trade=%d"`, f.tradeA), fmt.Sprintf(`href="/usage?trade=%d"`, f.tradeB)} {
		if !strings.Contains(body, want) {
			t.Errorf("operator's /trades lacks %q", want)
		}
	}
	for _, withBook := range []bool{false, true} {
		body = mustGet(t, f.server(t, withBook).Handler(LocalOperator), "/members")
		for _, want := range []string{"AS64500", "AS64501", "AS64502", "192.0.2.11", "2001:db8:ffff::10", "Active",
			// Charlie: 2 prefixes, 3 open sells (one partly filled), 2 active trades.
			"<td>swp3</td><td class=\"num\">100Gbps</td>", `<td class="num">2</td><td class="num">3</td><td class="num">2</td>`} {
			if !strings.Contains(body, want) {
				t.Errorf("book=%v: operator's /members lacks %q", withBook, want)
			}
		}
	}
	body = mustGet(t, h, "/invoices")
	for _, want := range []string{"AS64500 · " + f.period.String(), "AS64501 · " + f.period.String(), "AS64502 · " + f.period.String(), `id="exchange"`} {
		if !strings.Contains(body, want) {
			t.Errorf("operator's /invoices lacks %q", want)
		}
	}
	body = mustGet(t, h, "/usage")
	for _, id := range []int64{f.tradeA, f.tradeB} {
		if !strings.Contains(body, fmt.Sprintf(`id="trade-%d"`, id)) {
			t.Errorf("operator's /usage lacks trade %d", id)
		}
	}
}

// A member sees its own records only: nothing on its pages names Bravo,
// its router, its trade or its invoice.
// The trades page shows what the route server delivers now, from the
// delivery record.
func TestTradesShowDelivery(t *testing.T) {
	f := newFixture(t)
	err := delivery.NewRecord(f.db).Apply(context.Background(), []delivery.Change{
		{TradeID: f.tradeA, Session: netip.MustParseAddr("192.0.2.10"), At: f.now.Add(-time.Hour), Delivered: true},
		{TradeID: f.tradeA, Session: netip.MustParseAddr("192.0.2.10"), At: f.now.Add(-time.Minute), Reason: "seller session down", Cause: delivery.CauseSeller},
		{TradeID: f.tradeB, Session: netip.MustParseAddr("2001:db8:ffff::11"), At: f.now.Add(-time.Hour), Delivered: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := mustGet(t, f.server(t, false).Handler(LocalOperator), "/trades")
	for _, want := range []string{"<td>not delivered (seller): seller session down</td>", "<td>delivered</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("operator's /trades lacks %q", want)
		}
	}
}

func TestMemberSeesOnlyItsOwn(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, false).Handler(as(Viewer{ASN: asA}))
	forbidden := []string{"64501", nameB, "192.0.2.11", "2001:db8:ffff::11", "2001:db8:100::/48", fmt.Sprintf("trade=%d", f.tradeB), fmt.Sprintf("trade-%d", f.tradeB)}
	for _, p := range []string{"/members", "/trades", "/usage", "/invoices"} {
		body := mustGet(t, h, p)
		for _, bad := range forbidden {
			if strings.Contains(body, bad) {
				t.Errorf("member A's %s shows %q", p, bad)
			}
		}
	}
	if body := mustGet(t, h, "/trades"); !strings.Contains(body, fmt.Sprintf(`href="/usage?trade=%d"`, f.tradeA)) || !strings.Contains(body, "AS64500 Alpha Net") {
		t.Errorf("member A's /trades lacks its own trade %d", f.tradeA)
	}
	if body := mustGet(t, h, "/invoices"); !strings.Contains(body, "AS64500 · "+f.period.String()) || strings.Contains(body, `id="exchange"`) {
		t.Errorf("member A's /invoices: want its own invoice and no exchange statement")
	}
	if body := mustGet(t, h, "/members"); !strings.Contains(body, "192.0.2.10") || strings.Contains(body, "AS64502") {
		t.Errorf("member A's /members: want its own session only")
	}
	// Another member's trade looks missing.
	if res, _ := get(t, h, fmt.Sprintf("/usage?trade=%d", f.tradeB)); res.StatusCode != http.StatusNotFound {
		t.Errorf("member A asking for B's usage: %d, want 404", res.StatusCode)
	}
	// The market view names nobody.
	for _, p := range []string{"/book"} {
		body := mustGet(t, h, p)
		for _, bad := range []string{"64501", "64502", nameB, "Charlie"} {
			if strings.Contains(body, bad) {
				t.Errorf("market view %s names %q", p, bad)
			}
		}
	}
}

func TestBookDepthAggregates(t *testing.T) {
	f := newFixture(t)
	for _, withBook := range []bool{false, true} {
		s := f.server(t, withBook)
		rows, err := s.Depth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []DepthRow{
			// Two sells of 10G; A's 1G filled from the 0.25 one.
			{Destination: "198.51.100.0/24", Protocol: "ipv4", SellOrders: 2, SellBps: 19e9, BestAsk: 250_000},
			{Destination: "2001:db8:100::/48", Protocol: "ipv6", SellOrders: 1, SellBps: 3e9, BestAsk: 400_000},
			{Destination: "203.0.113.0/24", Protocol: "ipv4", BuyOrders: 2, BuyBps: 1.2e9, BestBid: 220_000},
		}
		if !slices.Equal(rows, want) {
			t.Errorf("book=%v depth:\n got %+v\nwant %+v", withBook, rows, want)
		}
		body := mustGet(t, s.Handler(as(Viewer{ASN: asA})), "/book")
		for _, want := range []string{"<code>198.51.100.0/24</code></td><td>ipv4</td>\n<td class=\"num\">0</td><td class=\"num\">–</td><td class=\"num\">–</td>\n<td class=\"num\">2</td><td class=\"num\">19Gbps</td><td class=\"num\">0.25</td>",
			"<code>203.0.113.0/24</code></td><td>ipv4</td>\n<td class=\"num\">2</td><td class=\"num\">1200Mbps</td><td class=\"num\">0.22</td>",
			"5 open orders over 3 destinations"} {
			if !strings.Contains(body, want) {
				t.Errorf("book=%v /book lacks %q", withBook, want)
			}
		}
		body = mustGet(t, s.Handler(LocalOperator), "/book?q=2001:db8")
		depth := body[strings.Index(body, `<table id="depth">`):strings.Index(body, `<table id="tape">`)]
		if !strings.Contains(depth, "2001:db8:100::/48") || strings.Contains(depth, "198.51.100.0/24") || !strings.Contains(body, "over 1 destinations matching") {
			t.Errorf("filter q=2001:db8 did not filter the depth table")
		}
	}
}

func TestQualityHeatmap(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, false).Handler(as(Viewer{ASN: asB}))
	body := mustGet(t, h, "/quality")
	for _, want := range []string{`<svg id="heatmap"`, ">AS64502</text>", ">198.51.100.0/24</text>", "AS64502 → 198.51.100.0/24: 12.0 ms latency, 0.25% loss",
		"AS64502 → 2001:db8:100::/48: 95.0 ms latency, 0.00% loss", fmt.Sprintf(`fill="%s"`, latencyColour(12000))} {
		if !strings.Contains(body, want) {
			t.Errorf("/quality lacks %q", want)
		}
	}
	if body := mustGet(t, h, "/quality?metric=loss"); !strings.Contains(body, fmt.Sprintf(`fill="%s"`, lossColour(2500))) {
		t.Errorf("/quality?metric=loss does not colour by loss")
	}
	if res, body := get(t, h, "/quality?metric=jitter"); res.StatusCode != 400 || !strings.Contains(body, "metric") {
		t.Errorf("bad metric: %d %q, want 400 naming metric", res.StatusCode, body)
	}
	if latencyColour(1000) == latencyColour(200000) || lossColour(0) == lossColour(100000) {
		t.Error("colour scale does not separate good from bad")
	}
}

func TestUsageChart(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, false).Handler(as(Viewer{ASN: asA}))
	body := mustGet(t, h, fmt.Sprintf("/usage?trade=%d", f.tradeA))
	for _, want := range []string{`<polyline class="buyer" points="`, `<polyline class="seller" points="`, "committed 1G", "24 samples", "peak 611M", `<line class="capacity"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/usage?trade=%d lacks %q", f.tradeA, want)
		}
	}
	// 12 buyer points in the polyline.
	m := regexp.MustCompile(`<polyline class="buyer" points="([^"]*)"`).FindStringSubmatch(body)
	if m == nil || len(strings.Fields(m[1])) != 12 {
		t.Errorf("buyer line: %v, want 12 points", m)
	}
	if res, _ := get(t, h, "/usage?trade=x"); res.StatusCode != 400 {
		t.Errorf("trade=x: %d, want 400", res.StatusCode)
	}
}

func TestAssetsAndHeaders(t *testing.T) {
	f := newFixture(t)
	h := f.server(t, false).Handler(LocalOperator)
	for path, ctype := range map[string]string{"/assets/style.css": "text/css; charset=utf-8", "/assets/favicon.svg": "image/svg+xml"} {
		res, body := get(t, h, path)
		if res.StatusCode != 200 || body == "" {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != ctype {
			t.Errorf("%s: Content-Type %q, want %q", path, got, ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "public, max-age=86400" {
			t.Errorf("%s: Cache-Control %q", path, got)
		}
	}
	for _, p := range []string{"/assets/", "/assets/nope.js"} {
		if res, _ := get(t, h, p); res.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
	if res, _ := get(t, h, "/"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/members" {
		t.Errorf("/: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	for _, p := range pages {
		res, _ := get(t, h, p)
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store (private data)", p, cc)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
	}
}

// Every page loads only from its own host: no absolute URL anywhere in a
// src or href, and no http(s) URL at all in the HTML.
func TestNoExternalURLs(t *testing.T) {
	f := newFixture(t)
	attr := regexp.MustCompile(`(?i)(?:src|href|action)\s*=\s*"([^"]*)"`)
	for _, v := range []Viewer{{Operator: true, Name: "t"}, {ASN: asA}} {
		h := f.server(t, true).Handler(as(v))
		for _, p := range append(pages, "/quality?metric=loss", fmt.Sprintf("/usage?trade=%d", f.tradeA)) {
			body := mustGet(t, h, p)
			if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
				t.Errorf("%s as %v contains an http(s) URL", p, v)
			}
			refs := attr.FindAllStringSubmatch(body, -1)
			if len(refs) == 0 {
				t.Fatalf("%s: no src/href found; the check is not looking", p)
			}
			for _, m := range refs {
				if u := m[1]; !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
					t.Errorf("%s as %v: %q is not a path on this host", p, v, u)
				}
			}
		}
	}
}

func TestBadViewer(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, false)
	// A member that is not registered: CertAuth refuses it before this,
	// but the pages must not fall open either.
	h := s.Handler(as(Viewer{ASN: 65999}))
	if res, _ := get(t, h, "/members"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unregistered member /members: %d", res.StatusCode)
	}
	body := mustGet(t, h, "/trades")
	if strings.Contains(body, "AS64500") || strings.Contains(body, "AS64501") {
		t.Error("an unknown member sees trades")
	}
}

// The dashboard's TLS listener: member and operator certificates from the
// exchange CA, over a real loopback TLS connection.
func TestTLSListener(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), "test exchange", []string{"127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(id pki.Identity) *pki.Bundle {
		p := filepath.Join(dir, id.String()+".pem")
		p = filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(filepath.Base(p)))
		if err := pki.IssueBundle(ca, id, p); err != nil {
			t.Fatal(err)
		}
		b, err := pki.LoadBundle(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := f.server(t, true)
	srv := httptest.NewUnstartedServer(s.Handler(CertAuth(registry.New(f.db))))
	srv.TLS = TLSConfig(ca)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	srv.StartTLS()
	defer srv.Close()
	client := func(b *pki.Bundle) *http.Client {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool(), ServerName: "127.0.0.1", Time: clock.Now}
		if b != nil {
			cfg.Certificates = []tls.Certificate{b.Certificate}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	}
	fetch := func(c *http.Client, path string) (int, string, error) {
		res, err := c.Get(srv.URL + path)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}

	code, body, err := fetch(client(bundle(pki.MemberIdentity(asA))), "/trades")
	if err != nil || code != 200 {
		t.Fatalf("member A: %d %v %s", code, err, body)
	}
	if !strings.Contains(body, fmt.Sprintf("trade=%d", f.tradeA)) || strings.Contains(body, fmt.Sprintf("trade=%d", f.tradeB)) || !strings.Contains(body, `id="viewer">AS64500<`) {
		t.Errorf("member A over TLS: want its own trade only")
	}
	code, body, err = fetch(client(bundle(pki.OperatorIdentity("alice"))), "/trades")
	if err != nil || code != 200 {
		t.Fatalf("operator: %d %v", code, err)
	}
	if !strings.Contains(body, fmt.Sprintf("trade=%d", f.tradeA)) || !strings.Contains(body, fmt.Sprintf("trade=%d", f.tradeB)) || !strings.Contains(body, "operator alice") {
		t.Errorf("operator over TLS: want every trade")
	}
	if _, _, err := fetch(client(nil), "/trades"); err == nil {
		t.Error("a client without a certificate was served")
	}
	// A certificate for a member no longer registered.
	code, _, err = fetch(client(bundle(pki.MemberIdentity(65999))), "/members")
	if err != nil || code != http.StatusForbidden {
		t.Errorf("unregistered member's certificate: %d %v, want 403", code, err)
	}
	// A certificate from another CA fails the handshake.
	other, err := pki.InitCA(filepath.Join(dir, "other"), "other", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "other.pem")
	if err := pki.IssueBundle(other, pki.OperatorIdentity("mallory"), p); err != nil {
		t.Fatal(err)
	}
	ob, err := pki.LoadBundle(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fetch(client(ob), "/trades"); err == nil {
		t.Error("a certificate from another CA was served")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{7 * 24 * time.Hour: "7d", time.Hour + 30*time.Minute: "1h 30m", 45 * time.Second: "45s",
		26*time.Hour + 1500*time.Millisecond: "1d 2h 1s", 0: "0s"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
