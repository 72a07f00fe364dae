package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/delivery"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
)

// ---- members and sessions

type memberRow struct {
	registry.Member
	Prefixes     int
	OpenOrders   int
	ActiveTrades int
	Sessions     []Session
}

type membersData struct {
	Members     []memberRow
	BGP         bool
	SessionsErr string
}

func (s *Server) membersPage(ctx context.Context, v Viewer, _ *http.Request) (any, error) {
	var ms []registry.Member
	if v.Operator {
		var err error
		if ms, err = s.reg.Members(ctx); err != nil {
			return nil, err
		}
	} else {
		m, err := s.reg.Member(ctx, v.ASN)
		if err != nil {
			return nil, err
		}
		ms = []registry.Member{m}
	}
	counts, err := s.memberCounts(ctx)
	if err != nil {
		return nil, err
	}
	bv, err := s.book(ctx)
	if err != nil {
		return nil, err
	}
	d := membersData{BGP: s.o.Sessions != nil}
	bySession := map[uint32][]Session{}
	if s.o.Sessions != nil {
		ss, err := s.o.Sessions.Sessions(ctx)
		if err != nil {
			d.SessionsErr = err.Error()
		}
		for _, x := range ss {
			if v.sees(x.ASN) {
				bySession[x.ASN] = append(bySession[x.ASN], x)
			}
		}
	}
	for _, m := range ms {
		c := counts[m.ASN]
		d.Members = append(d.Members, memberRow{Member: m, Prefixes: c[0], OpenOrders: bv.open[m.ASN], ActiveTrades: c[1], Sessions: bySession[m.ASN]})
	}
	return d, nil
}

// memberCounts is each member's prefixes (from the registry) and active
// trades, one pass over each table (the open orders come with the book's
// aggregation).
func (s *Server) memberCounts(ctx context.Context) (map[uint32][2]int, error) {
	counts := map[uint32][2]int{}
	prefixes, err := registry.PrefixCounts(ctx, s.o.DB)
	if err != nil {
		return nil, err
	}
	for asn, n := range prefixes {
		c := counts[asn]
		c[0] = n
		counts[asn] = c
	}
	active, err := book.ActiveTradesPerMember(ctx, s.o.DB, s.o.Now())
	if err != nil {
		return nil, err
	}
	for asn, n := range active {
		c := counts[asn]
		c[1] = n
		counts[asn] = c
	}
	return counts, nil
}

// ---- book depth and the anonymous market tape

type bookData struct {
	Rows         []DepthRow
	Shown, Total int
	Orders       int
	Query        string
	Tape         []tapeRow
}

type tapeRow struct {
	Prefixes    string
	Protocol    string
	CapacityBps int64
	PriceMicros int64
	Created     time.Time
}

func (s *Server) bookPage(ctx context.Context, _ Viewer, r *http.Request) (any, error) {
	rows, err := s.Depth(ctx)
	if err != nil {
		return nil, err
	}
	d := bookData{Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	for _, x := range rows {
		d.Orders += x.BuyOrders + x.SellOrders
	}
	if d.Query != "" {
		// A filtered copy: rows are shared with the cache.
		var kept []DepthRow
		for _, x := range rows {
			if strings.Contains(x.Destination, d.Query) {
				kept = append(kept, x)
			}
		}
		rows = kept
	}
	d.Total = len(rows)
	d.Rows = rows[:min(len(rows), s.o.DepthRows)]
	d.Shown = len(d.Rows)
	tape, err := book.Tape(ctx, s.o.DB)
	if err != nil {
		return nil, err
	}
	for _, t := range tape {
		d.Tape = append(d.Tape, tapeRow{Prefixes: strings.ReplaceAll(t.Prefixes, ",", ", "), Protocol: t.Protocol.String(),
			CapacityBps: t.CapacityBps, PriceMicros: t.PriceMicros, Created: t.Created})
	}
	return d, nil
}

// ---- trades

type tradeRow struct {
	ID                    int64
	BuyerASN, SellerASN   uint32
	BuyerName, SellerName string
	Prefixes              string
	Protocol              string
	CapacityBps           int64
	PriceMicros           int64
	Start, End, Created   time.Time
	Status                string
	// Delivery is what the route server delivers now: "delivered", "not
	// delivered (<cause>): <reason>", or "" (no record: BGP off, or not
	// judged yet).
	Delivery string
}

// trades lists the viewer's trades (every trade for the operator), newest
// first; id > 0 picks one.
func (s *Server) trades(ctx context.Context, v Viewer, id int64, limit int) ([]tradeRow, error) {
	return s.tradesIn(ctx, v, id, book.TradeWindow{}, limit)
}

func (s *Server) tradesIn(ctx context.Context, v Viewer, id int64, w book.TradeWindow, limit int) ([]tradeRow, error) {
	ts, err := book.NamedTradesPage(ctx, s.o.DB, v.ASN, v.Operator, id, w, limit)
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
	var out []tradeRow
	for _, x := range ts {
		t := tradeRow{ID: x.ID, BuyerASN: x.BuyerASN, BuyerName: x.BuyerName, SellerASN: x.SellerASN, SellerName: x.SellerName,
			Prefixes: strings.ReplaceAll(x.Prefixes, ",", ", "), Protocol: x.Protocol.String(), CapacityBps: x.CapacityBps,
			PriceMicros: x.PriceMicros, Start: x.Start, End: x.End, Created: x.Created}
		switch {
		case x.Cancelled:
			t.Status = "cancelled"
		case now.Before(t.Start):
			t.Status = "pending"
		case !now.Before(t.End):
			t.Status = "ended"
		default:
			t.Status = "active"
		}
		out = append(out, t)
	}
	return out, s.delivery(ctx, out)
}

// delivery fills each running trade's Delivery from the delivery record.
func (s *Server) delivery(ctx context.Context, ts []tradeRow) error {
	var ids []int64
	for _, t := range ts {
		if t.Status == "active" {
			ids = append(ids, t.ID)
		}
	}
	now, err := delivery.NewRecord(s.o.DB).Now(ctx, ids)
	if err != nil {
		return err
	}
	for i := range ts {
		for _, iv := range now[ts[i].ID] {
			if !iv.Delivered {
				ts[i].Delivery = "not delivered (" + iv.Cause + "): " + iv.Reason
				break
			}
			ts[i].Delivery = "delivered"
		}
	}
	return nil
}

// tradesPageSize is how many trades the trades page shows at once.
const tradesPageSize = 200

// tradesData is one page of the trades table, newest first, with the
// cursors of the pages before and after it (0: none).
type tradesData struct {
	Rows         []tradeRow
	Newer, Older int64
}

// tradesPage pages by trade id: ?before=N shows the trades older than N,
// ?after=N the page of newer ones just above N; both stay put when
// trades are added.
func (s *Server) tradesPage(ctx context.Context, v Viewer, r *http.Request) (any, error) {
	var w book.TradeWindow
	for _, p := range []struct {
		name string
		to   *int64
	}{{"before", &w.Before}, {"after", &w.After}} {
		if q := r.URL.Query().Get(p.name); q != "" {
			n, err := strconv.ParseInt(q, 10, 64)
			if err != nil || n <= 0 {
				return nil, badRequest{fmt.Errorf("%s: want a trade id, got %q", p.name, q)}
			}
			*p.to = n
		}
	}
	rows, err := s.tradesIn(ctx, v, 0, w, tradesPageSize+1)
	if err != nil {
		return nil, err
	}
	d := tradesData{Rows: rows}
	more := len(rows) > tradesPageSize
	switch {
	case w.After > 0:
		if more {
			d.Rows = rows[1:] // the extra one is the newest
			d.Newer = d.Rows[0].ID
		}
		if len(d.Rows) > 0 {
			d.Older = d.Rows[len(d.Rows)-1].ID
		}
	default:
		if more {
			d.Rows = rows[:tradesPageSize]
			d.Older = d.Rows[len(d.Rows)-1].ID
		}
		if w.Before > 0 && len(d.Rows) > 0 {
			d.Newer = d.Rows[0].ID
		}
	}
	return d, nil
}

// ---- quality matrix

type heatCell struct {
	X, Y   int
	Fill   string
	Title  string
	Filled bool
}

type qualityData struct {
	Metric   string
	Sellers  []uint32
	Dests    []string
	Cells    []heatCell
	Entries  []quality.Entry
	W, H     int
	Age      time.Duration
	Legend   []legendStop
	Cut      bool
	AllDests int
}

type legendStop struct {
	Label string
	Fill  string
	X     int
}

// heatmap geometry, in SVG user units.
const (
	heatCellW, heatCellH = 22, 18
	heatLeft, heatTop    = 80, 120
	heatMaxCols          = 120
)

func (s *Server) qualityPage(ctx context.Context, _ Viewer, r *http.Request) (any, error) {
	metric := r.URL.Query().Get("metric")
	switch metric {
	case "":
		metric = "latency"
	case "latency", "loss":
	default:
		return nil, badRequest{fmt.Errorf("metric: want latency or loss, got %q", metric)}
	}
	es, err := s.matrix.Query(ctx, 0, netip.Prefix{}, s.o.QualityAge)
	if err != nil {
		return nil, err
	}
	d := qualityData{Metric: metric, Age: s.o.QualityAge}
	seller, dest := map[uint32]int{}, map[string]int{}
	for _, e := range es {
		d.Entries = append(d.Entries, e)
		if _, ok := seller[e.ViaASN]; !ok {
			seller[e.ViaASN] = 0
			d.Sellers = append(d.Sellers, e.ViaASN)
		}
		if _, ok := dest[e.Prefix]; !ok {
			dest[e.Prefix] = 0
			d.Dests = append(d.Dests, e.Prefix)
		}
	}
	slices.Sort(d.Sellers)
	slices.SortFunc(d.Dests, comparePrefixes)
	d.AllDests = len(d.Dests)
	if len(d.Dests) > heatMaxCols {
		d.Dests, d.Cut = d.Dests[:heatMaxCols], true
	}
	for i, a := range d.Sellers {
		seller[a] = i
	}
	for i, p := range d.Dests {
		dest[p] = i
	}
	for _, e := range es {
		x, ok := dest[e.Prefix]
		if !ok || x >= len(d.Dests) || d.Dests[x] != e.Prefix {
			continue
		}
		c := heatCell{X: heatLeft + x*heatCellW, Y: heatTop + seller[e.ViaASN]*heatCellH, Filled: true,
			Title: fmt.Sprintf("AS%d → %s: %s latency, %s loss, %d samples from %d vantages", e.ViaASN, e.Prefix, fmtMicros(e.LatencyUs), fmtPPM(e.LossPPM), e.Samples, e.Vantages)}
		if metric == "latency" {
			c.Fill = latencyColour(e.LatencyUs)
		} else {
			c.Fill = lossColour(e.LossPPM)
		}
		d.Cells = append(d.Cells, c)
	}
	// Room on the right for the last column's slanted label, and for the legend.
	d.W = max(heatLeft+max(len(d.Dests), 1)*heatCellW+110, heatLeft+6*70+40)
	d.H = heatTop + max(len(d.Sellers), 1)*heatCellH + 50
	if metric == "latency" {
		for i, us := range []int64{1000, 10000, 30000, 60000, 100000, 200000} {
			d.Legend = append(d.Legend, legendStop{Label: fmtMicros(us), Fill: latencyColour(us), X: i * 70})
		}
	} else {
		for i, p := range []int32{0, 1000, 5000, 10000, 50000, 100000} {
			d.Legend = append(d.Legend, legendStop{Label: fmtPPM(p), Fill: lossColour(p), X: i * 70})
		}
	}
	return d, nil
}

func comparePrefixes(a, b string) int {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	if ea != nil || eb != nil {
		return strings.Compare(a, b)
	}
	if c := pa.Addr().Compare(pb.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(pa.Bits(), pb.Bits())
}

// ---- usage against committed capacity

type usageChart struct {
	Trade tradeRow
	Chart chart
	Peak  int64
	Last  int64
	N     int
}

type usageData struct {
	Charts []usageChart
	Window time.Duration
	One    bool
}

func (s *Server) usagePage(ctx context.Context, v Viewer, r *http.Request) (any, error) {
	var id int64
	if t := r.URL.Query().Get("trade"); t != "" {
		var err error
		if id, err = strconv.ParseInt(t, 10, 64); err != nil || id <= 0 {
			return nil, badRequest{fmt.Errorf("trade: want a trade id, got %q", t)}
		}
	}
	ts, err := s.trades(ctx, v, id, 20)
	if err != nil {
		return nil, err
	}
	if id > 0 && len(ts) == 0 {
		// Another member's trade looks like a missing one.
		return nil, fmt.Errorf("trade %d: %w", id, registry.ErrNotFound)
	}
	now := s.o.Now()
	from := now.Add(-s.o.UsageWindow)
	samples, err := s.settle.ChartSamples(ctx)
	if err != nil {
		return nil, err
	}
	defer samples.Close()
	d := usageData{Window: s.o.UsageWindow, One: id > 0}
	for _, t := range ts {
		lo, hi := maxTime(from, t.Start), minTime(now, t.End)
		if !hi.After(lo) {
			lo, hi = t.Start, t.End // not delivered in the window: show its whole period
		}
		ss, err := samples.Of(ctx, t.ID, lo, hi)
		if err != nil {
			return nil, err
		}
		var buyer, seller []point
		var first int64
		uc := usageChart{Trade: t}
		for _, sm := range ss {
			st, en, bps := store.Micros(sm.Start), store.Micros(sm.End), sm.Bps
			if uc.N == 0 {
				first = st
			}
			p := point{T: store.Time((st + en) / 2), V: bps}
			if sm.Role == settle.BuyerRole {
				buyer = append(buyer, p)
				uc.Last = bps
			} else {
				seller = append(seller, p)
			}
			uc.Peak = max(uc.Peak, bps)
			uc.N++
		}
		if uc.N > 0 {
			// Start the axis at the first report, not at an empty week.
			lo = maxTime(lo, store.Time(first))
		}
		uc.Chart = lineChart(lo, hi, t.CapacityBps, []series{{Name: "buyer", Class: "buyer", Points: buyer}, {Name: "seller", Class: "seller", Points: seller}})
		d.Charts = append(d.Charts, uc)
	}
	return d, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ---- invoices

type invoicesData struct {
	Invoices  []settle.Invoice
	Exchange  []settle.Exchange
	Operator  bool
	Unsettled bool
}

func (s *Server) invoicesPage(ctx context.Context, v Viewer, _ *http.Request) (any, error) {
	d := invoicesData{Operator: v.Operator}
	asns := []uint32{v.ASN}
	if v.Operator {
		asns = asns[:0]
		ms, err := s.reg.Members(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			asns = append(asns, m.ASN)
		}
	}
	for _, a := range asns {
		is, err := s.settle.Invoices(ctx, a)
		if err != nil {
			return nil, err
		}
		d.Invoices = append(d.Invoices, is...)
	}
	// Newest period first, then by member.
	slices.SortStableFunc(d.Invoices, func(a, b settle.Invoice) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.ASN, b.ASN)
	})
	if v.Operator {
		ps, err := s.settle.SettledPeriods(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			ex, err := s.settle.ExchangeStatement(ctx, p)
			if err != nil && !errors.Is(err, settle.ErrNotSettled) {
				return nil, err
			}
			if err == nil {
				d.Exchange = append(d.Exchange, ex)
			}
		}
	}
	d.Unsettled = len(d.Invoices) == 0 && len(d.Exchange) == 0
	return d, nil
}
