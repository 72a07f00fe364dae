package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

func orderAt(side pb.Side, prefix string, capacity, price int64, start, end time.Time) *pb.OrderSpec {
	s := order(side, prefix, capacity, price, 1)
	s.DeliveryStart, s.DeliveryEnd = timestamppb.New(start), timestamppb.New(end)
	return s
}

// trade makes a trade of 1G at 0.10 per Mbps per month between seller and
// buyer, delivering from start until a day from now.
func trade(t *testing.T, seller, buyer pb.TradingServiceClient, prefix string, start time.Time) uint64 {
	t.Helper()
	ctx := context.Background()
	end := clock.Now().UTC().Add(24 * time.Hour)
	if _, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_SELL, prefix, 1e9, 100_000, start, end.Add(24*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	r, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_BUY, prefix, 1e9, 100_000, start, end)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Trades) != 1 {
		t.Fatalf("buy of %s made %d trades, want 1", prefix, len(r.Trades))
	}
	return r.Trades[0].Id
}

// samples reports n 5-minute slots from start at bps, with count packet
// samples each.
func samples(trade uint64, role pb.ReporterRole, start time.Time, n int, bps, count int64) []*pb.UsageSample {
	var out []*pb.UsageSample
	for i := range n {
		s := start.Add(time.Duration(i) * settle.SlotLength)
		out = append(out, &pb.UsageSample{IdempotencyKey: fmt.Sprintf("%d-%d-%d", trade, role, i), TradeId: trade, Role: role,
			IntervalStart: timestamppb.New(s), IntervalEnd: timestamppb.New(s.Add(settle.SlotLength)), BitsPerSecond: bps, SampleCount: count})
	}
	return out
}

// TestSettlementThroughTheDaemon runs claim 19 end to end: trades in last
// month, usage reported by both sides through the Usage API, a run on the
// operator socket, and each member fetching only its own invoice over mTLS.
func TestSettlementThroughTheDaemon(t *testing.T) {
	// The trades are made last month: the book's clock stands there while
	// they are placed (a start in the past is refused), then runs on.
	last := settle.MonthOf(clock.Now().UTC()).Start.AddDate(0, -1, 0)
	var bookAt atomic.Pointer[time.Time]
	bookAt.Store(&last)
	x := startExchangeOpts(t, daemon.WithBookClock(func() time.Time {
		if at := bookAt.Load(); at != nil {
			return *at
		}
		return clock.Now()
	}))
	a := x.member(64501, "192.0.2.1", "2001:db8:ffff::1")   // sells IPv4 to B
	b := x.member(64510, "192.0.2.10", "2001:db8:ffff::10") // buys from A, sells IPv6 to C
	c := x.member(64520, "192.0.2.20", "2001:db8:ffff::20") // buys from B
	x.addPrefix(64501, "198.51.100.0/24")
	x.addPrefix(64510, "2001:db8:100::/48")
	ctx := context.Background()
	op := pb.NewUsageServiceClient(x.operator())

	period := last.Format("2006-01")
	t1 := trade(t, pb.NewTradingServiceClient(a), pb.NewTradingServiceClient(b), "198.51.100.0/24", last)
	t2 := trade(t, pb.NewTradingServiceClient(b), pb.NewTradingServiceClient(c), "2001:db8:100::/48", last)
	bookAt.Store(nil)

	// Trade 1: B sends 500M, A agrees except in one slot it sees 900M, far
	// outside the sampling error: disputed, billed at the buyer's figure.
	bu, au, cu := pb.NewUsageServiceClient(b), pb.NewUsageServiceClient(a), pb.NewUsageServiceClient(c)
	report := func(u pb.UsageServiceClient, ss []*pb.UsageSample, wantNew int32) {
		t.Helper()
		r, err := u.ReportUsage(ctx, &pb.ReportUsageRequest{Samples: ss})
		if err != nil {
			t.Fatal(err)
		}
		if r.Accepted != wantNew || r.Accepted+r.Duplicates != int32(len(ss)) {
			t.Fatalf("report: accepted %d duplicates %d of %d, want %d new", r.Accepted, r.Duplicates, len(ss), wantNew)
		}
	}
	report(bu, samples(t1, pb.ReporterRole_REPORTER_ROLE_BUYER, last, 24, 500e6, 10_000), 24)
	seller := samples(t1, pb.ReporterRole_REPORTER_ROLE_SELLER, last, 24, 500e6, 10_000)
	seller[5].BitsPerSecond = 900e6
	report(au, seller, 24)
	// Trade 2: C sends 1.5G on its 1G for 2 hours: the 95th percentile is
	// 1.5G, 0.5G of overage, and a sustained overuse.
	report(cu, samples(t2, pb.ReporterRole_REPORTER_ROLE_BUYER, last, 24, 1.5e9, 10_000), 24)
	report(cu, samples(t2, pb.ReporterRole_REPORTER_ROLE_BUYER, last, 24, 1.5e9, 10_000), 0) // a replay changes nothing
	// A member cannot report for a trade it is not party to.
	_, err := au.ReportUsage(ctx, &pb.ReportUsageRequest{Samples: samples(t2, pb.ReporterRole_REPORTER_ROLE_BUYER, last, 1, 1, 1)})
	wantCode(t, "A reports C's usage", err, codes.InvalidArgument)

	// Only the operator runs settlement, for a month that is over.
	_, err = bu.RunSettlement(ctx, &pb.RunSettlementRequest{Period: period})
	wantCode(t, "member runs settlement", err, codes.PermissionDenied)
	for _, p := range []string{"", "2026-13", "last month", clock.Now().UTC().Format("2006-01")} {
		_, err = op.RunSettlement(ctx, &pb.RunSettlementRequest{Period: p})
		wantCode(t, "run of period "+p, err, codes.InvalidArgument)
		if !strings.Contains(status.Convert(err).Message(), "period") {
			t.Errorf("run of %q: %v does not name the field", p, err)
		}
	}
	_, err = op.RunSettlement(ctx, &pb.RunSettlementRequest{Period: period, Policy: "average"})
	wantCode(t, "bad policy", err, codes.InvalidArgument)

	start := clock.Now()
	run, err := op.RunSettlement(ctx, &pb.RunSettlementRequest{Period: period})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("settled %s: %d trades in %v", period, run.Exchange.Trades, clock.Since(start))
	// Committed 1G x 0.10/Mbps for the whole month = 100 units per trade;
	// trade 2's overage 0.5G x 0.10 x 1.5 = 75; fees 0.25 % on each side.
	const c1, c2, f1, f2 = 100_000_000, 175_000_000, 250_000, 437_500
	wantNet := map[uint32]int64{64501: c1 - f1, 64510: c2 - c1 - f1 - f2, 64520: -c2 - f2}
	ex := run.Exchange
	if ex.Trades != 2 || ex.Members != 3 || ex.GrossMicros != c1+c2 || ex.FeeIncomeMicros != 2*(f1+f2) || ex.BalanceMicros != 0 {
		t.Errorf("exchange statement = %+v, want 2 trades, 3 members, gross %d, fees %d, balance 0", ex, c1+c2, 2*(f1+f2))
	}
	if len(run.UseEvents) != 1 || run.UseEvents[0].TradeId != t2 || run.UseEvents[0].Kind != pb.UseKind_USE_KIND_OVERUSE ||
		run.UseEvents[0].BuyerAsn != 64520 || run.UseEvents[0].SellerAsn != 64510 {
		t.Errorf("use events = %v, want trade %d's overuse, buyer AS64520, seller AS64510", run.UseEvents, t2)
	}
	// The overuse reaches both parties' event streams, nobody else's.
	isOver := func(e *pb.TradeEvent) bool {
		return e.Type == pb.TradeEventType_TRADE_EVENT_TYPE_USE_OVER && e.Trade.GetId() == t2 && e.Use.GetTradeId() == t2 &&
			e.Use.Kind == pb.UseKind_USE_KIND_OVERUSE && e.Use.PeakBps == 1.5e9 && e.Use.CapacityBps == 1e9 && e.Use.BuyerAsn == 64520
	}
	for _, m := range []*grpc.ClientConn{b, c} {
		streamUntil(t, m, isOver)
		if evs := streamUntil(t, m, nil); countEvents(evs, isOver) != 1 {
			t.Errorf("overuse told %d times, want once", countEvents(evs, isOver))
		}
	}
	if evs := streamUntil(t, a, nil); countEvents(evs, func(e *pb.TradeEvent) bool { return e.Use != nil }) != 0 {
		t.Errorf("A, not party to trade %d, heard of its use", t2)
	}
	_, err = op.RunSettlement(ctx, &pb.RunSettlementRequest{Period: period})
	wantCode(t, "second run of a settled period", err, codes.FailedPrecondition)
	corr, err := op.RunSettlement(ctx, &pb.RunSettlementRequest{Period: period, Correct: true})
	if err != nil || corr.Entries != 0 {
		t.Fatalf("correction with nothing changed: %v, %v entries, want 0", err, corr.GetEntries())
	}

	// Each member fetches its own invoice over its TLS connection.
	for asn, u := range map[uint32]pb.UsageServiceClient{64501: au, 64510: bu, 64520: cu} {
		inv, err := u.GetInvoice(ctx, &pb.GetInvoiceRequest{Period: period})
		if err != nil {
			t.Fatalf("AS%d's invoice: %v", asn, err)
		}
		if inv.Invoice.MemberAsn != asn || inv.Invoice.TotalMicros != wantNet[asn] {
			t.Errorf("AS%d's invoice: member %d net %d, want net %d", asn, inv.Invoice.MemberAsn, inv.Invoice.TotalMicros, wantNet[asn])
		}
		var doc settle.Invoice
		if err := json.Unmarshal([]byte(inv.DocumentJson), &doc); err != nil || doc.Net != wantNet[asn] || doc.ASN != asn {
			t.Errorf("AS%d's JSON document: %v, net %d", asn, err, doc.Net)
		}
		if !strings.HasPrefix(inv.DocumentCsv, "asn,period,trade_id") || !strings.Contains(inv.DocumentCsv, fmt.Sprint(wantNet[asn])) {
			t.Errorf("AS%d's CSV document:\n%s", asn, inv.DocumentCsv)
		}
		list, err := u.ListInvoices(ctx, &pb.ListInvoicesRequest{})
		if err != nil || len(list.Invoices) != 1 || list.Invoices[0].MemberAsn != asn {
			t.Errorf("AS%d lists invoices: %v %v, want only its own", asn, err, list)
		}
	}
	// B netted what it bought and sold: one line each way.
	binv, _ := bu.GetInvoice(ctx, &pb.GetInvoiceRequest{Period: period})
	if ls := binv.GetInvoice().GetLines(); len(ls) != 2 || ls[0].Side == ls[1].Side {
		t.Errorf("AS64510's lines = %v, want one bought and one sold", ls)
	}
	// Never another member's.
	_, err = bu.GetInvoice(ctx, &pb.GetInvoiceRequest{MemberAsn: 64501, Period: period})
	wantCode(t, "B reads A's invoice", err, codes.PermissionDenied)
	_, err = bu.ListInvoices(ctx, &pb.ListInvoicesRequest{MemberAsn: 64520})
	wantCode(t, "B lists C's invoices", err, codes.PermissionDenied)
	_, err = bu.ListDisputes(ctx, &pb.ListDisputesRequest{MemberAsn: 64501, Period: period})
	wantCode(t, "B reads A's disputes", err, codes.PermissionDenied)
	_, err = cu.GetCredit(ctx, &pb.GetCreditRequest{MemberAsn: 64510})
	wantCode(t, "C reads B's credit", err, codes.PermissionDenied)
	_, err = bu.GetExchangeStatement(ctx, &pb.GetExchangeStatementRequest{Period: period})
	wantCode(t, "member reads the exchange statement", err, codes.PermissionDenied)
	// The operator sees all, and must name the member for one invoice.
	all, err := op.ListInvoices(ctx, &pb.ListInvoicesRequest{Period: period})
	if err != nil || len(all.Invoices) != 3 {
		t.Fatalf("operator lists invoices: %v, %d, want 3", err, len(all.GetInvoices()))
	}
	var sum int64
	for _, inv := range all.Invoices {
		sum += inv.TotalMicros
	}
	if sum+ex.FeeIncomeMicros != 0 {
		t.Errorf("members' net %d + fee income %d != 0", sum, ex.FeeIncomeMicros)
	}
	// An operator certificate over TLS is the operator too.
	opPath := x.caBundle(pki.OperatorIdentity("alice"), "alice")
	remote := pb.NewUsageServiceClient(x.dialBundle(opPath))
	if r, err := remote.ListInvoices(ctx, &pb.ListInvoicesRequest{MemberAsn: 64501}); err != nil || len(r.Invoices) != 1 || r.Invoices[0].MemberAsn != 64501 {
		t.Errorf("operator certificate lists AS64501's invoices: %v %v", err, r)
	}
	_, err = op.GetInvoice(ctx, &pb.GetInvoiceRequest{Period: period})
	wantCode(t, "operator gets an invoice without naming the member", err, codes.InvalidArgument)
	st, err := op.GetExchangeStatement(ctx, &pb.GetExchangeStatementRequest{Period: period})
	if err != nil || st.BalanceMicros != 0 || st.FeeIncomeMicros != ex.FeeIncomeMicros {
		t.Errorf("exchange statement: %v %v", err, st)
	}

	// The disputed slot, with both figures, for both parties of trade 1.
	for _, u := range []pb.UsageServiceClient{au, bu} {
		ds, err := u.ListDisputes(ctx, &pb.ListDisputesRequest{Period: period})
		if err != nil || len(ds.Disputes) != 1 || ds.Disputes[0].BuyerBps != 500e6 || ds.Disputes[0].SellerBps != 900e6 || ds.Disputes[0].UsedBps != 500e6 {
			t.Errorf("disputes: %v %v, want trade %d's slot billed at the buyer's 500M", err, ds, t1)
		}
	}
	ds, err := cu.ListDisputes(ctx, &pb.ListDisputesRequest{Period: period})
	if err != nil || len(ds.Disputes) != 0 {
		t.Errorf("C's disputes: %v %v, want none", err, ds)
	}
	// Use events reach both parties of the trade, nobody else.
	for asn, u := range map[uint32]pb.UsageServiceClient{64501: au, 64510: bu, 64520: cu} {
		evs, err := u.ListUseEvents(ctx, &pb.ListUseEventsRequest{Period: period})
		want := map[uint32]int{64501: 0, 64510: 1, 64520: 1}[asn]
		if err != nil || len(evs.Events) != want {
			t.Errorf("AS%d's use events: %v %v, want %d", asn, err, evs, want)
		}
	}

	// Credit control: C owes its invoice; a limit below that stops its buys
	// (not its sells) with a message that says why; a payment reopens them.
	// The limit is above what C's running trade can commit in one month
	// (100 units, all of it on a month's last day, when the trade's end a
	// day from now closes the month), so the payment reopens on any date.
	cr, err := op.SetCreditLimit(ctx, &pb.SetCreditLimitRequest{MemberAsn: 64520, LimitMicros: 150_000_000})
	if err != nil || cr.State != pb.CreditState_CREDIT_STATE_STOPPED || cr.UnpaidMicros != c2+f2 {
		t.Fatalf("limit set: %v %v, want stopped with %d unpaid", err, cr, c2+f2)
	}
	isStopped := func(e *pb.TradeEvent) bool {
		return e.Type == pb.TradeEventType_TRADE_EVENT_TYPE_CREDIT_STOPPED && e.Trade == nil && e.Order == nil &&
			e.Credit.GetState() == pb.CreditState_CREDIT_STATE_STOPPED && e.Credit.LimitMicros == 150_000_000 && e.Credit.UnpaidMicros == c2+f2
	}
	streamUntil(t, c, isStopped)
	// The same state again is not news.
	if _, err := op.SetCreditLimit(ctx, &pb.SetCreditLimitRequest{MemberAsn: 64520, LimitMicros: 150_000_000}); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(streamUntil(t, c, nil), func(e *pb.TradeEvent) bool { return e.Credit != nil }); n != 1 {
		t.Errorf("C heard %d credit events, want 1", n)
	}
	_, err = op.SetCreditLimit(ctx, &pb.SetCreditLimitRequest{MemberAsn: 64520, LimitMicros: -1})
	wantCode(t, "negative limit", err, codes.InvalidArgument)
	_, err = cu.SetCreditLimit(ctx, &pb.SetCreditLimitRequest{MemberAsn: 64520, LimitMicros: 1e12})
	wantCode(t, "member raises its own limit", err, codes.PermissionDenied)
	ct := pb.NewTradingServiceClient(c)
	now := clock.Now().UTC()
	buy := &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 50_000, now, now.Add(time.Hour))}
	_, err = ct.PlaceOrder(ctx, buy)
	wantCode(t, "buy at the credit limit", err, codes.FailedPrecondition)
	if m := status.Convert(err).Message(); !strings.Contains(m, "credit limit reached") || !strings.Contains(m, "of limit 150.000000") {
		t.Errorf("refusal %q does not say why", status.Convert(err).Message())
	}
	_, err = ct.TakeOffer(ctx, &pb.TakeOfferRequest{OfferOrderId: 1, Spec: buy.Spec})
	wantCode(t, "take at the credit limit", err, codes.FailedPrecondition)
	if _, err := ct.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_SELL, "2001:db8:100::/48", 1e9, 50_000, now, now.Add(time.Hour))}); status.Code(err) == codes.FailedPrecondition {
		t.Errorf("a sell was refused by credit control: %v", err)
	}
	if gc, err := cu.GetCredit(ctx, &pb.GetCreditRequest{}); err != nil || len(gc.Credits) != 1 || gc.Credits[0].State != pb.CreditState_CREDIT_STATE_STOPPED {
		t.Errorf("C's credit: %v %v", err, gc)
	}
	_, err = op.RecordPayment(ctx, &pb.RecordPaymentRequest{MemberAsn: 64520, AmountMicros: 0})
	wantCode(t, "zero payment", err, codes.InvalidArgument)
	cr, err = op.RecordPayment(ctx, &pb.RecordPaymentRequest{MemberAsn: 64520, AmountMicros: 500_000_000, Memo: "wire"})
	if err != nil || cr.State == pb.CreditState_CREDIT_STATE_STOPPED || cr.UnpaidMicros != 0 {
		t.Fatalf("after payment: %v %v, want no longer stopped", err, cr)
	}
	buy.Spec.DeliveryStart = timestamppb.New(clock.Now().UTC())
	if _, err := ct.PlaceOrder(ctx, buy); err != nil {
		t.Fatalf("buy after the payment: %v", err)
	}
	all2, err := op.GetCredit(ctx, &pb.GetCreditRequest{})
	if err != nil || len(all2.Credits) != 3 {
		t.Errorf("operator's credit list: %v %v, want 3 members", err, all2)
	}
}

// streamUntil reads conn's member's event stream from the start until an
// event satisfies want (nil: until the log is read, as far as a short wait
// shows), failing the test if none does within 10 s.
func streamUntil(t *testing.T, conn *grpc.ClientConn, want func(*pb.TradeEvent) bool) []*pb.TradeEvent {
	t.Helper()
	wait := 10 * time.Second
	if want == nil {
		wait = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := pb.NewTradingServiceClient(conn).StreamTradeEvents(ctx, &pb.StreamTradeEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.TradeEvent
	for {
		e, err := st.Recv()
		if err != nil {
			if want != nil {
				t.Fatalf("event stream ended (%v) before the event wanted; got %v", err, out)
			}
			return out
		}
		out = append(out, e)
		if want != nil && want(e) {
			return out
		}
	}
}

func countEvents(evs []*pb.TradeEvent, f func(*pb.TradeEvent) bool) int {
	n := 0
	for _, e := range evs {
		if f(e) {
			n++
		}
	}
	return n
}

func TestSettleConfigErrorsNameKeyAndLine(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"state_dir: /var/lib/x\nsettle:\n  fee_bp: 20000\n", ":3: settle.fee_bp: must be 0..10000"},
		{"settle:\n  dispute_k: 0\n", ":2: settle.dispute_k: must be a positive number"},
		{"settle:\n  sampling_rate: 0\n", ":2: settle.sampling_rate: want 1 (every packet)"},
		{"settle:\n  max_frame_bytes: 20\n", ":2: settle.max_frame_bytes: want 64 to 65535"},
		{"settle:\n  use:\n    min_duration: 1m\n", ":3: settle.use.min_duration: must be at least 5m0s"},
		{"settle:\n  fees: 1\n", ":2: settle.fees: unknown key"},
		{"settle:\n  credit_warn_percent: lots\n", ":2: settle.credit_warn_percent"},
		{"settle:\n  credit_horizon_months: -1\n", ":2: settle.credit_horizon_months: must be 0 (every commitment to its end) or 1..1200"},
		{"settle:\n  credit_horizon_months: 1201\n", ":2: settle.credit_horizon_months"},
		// yaml alone truncated these into the integer keys, and the daemon started with fee_bp 2.
		{"settle:\n  fee_bp: 2.5\n", ":2: settle.fee_bp: expected an integer, got 2.5"},
		{"log:\n  level: info\nsettle:\n  overage_multiplier_bp: 1.5e4\n", ":4: settle.overage_multiplier_bp: expected an integer, got 1.5e4"},
		{"bgp:\n  port: 179.0\n", ":2: bgp.port: expected an integer, got 179.0"},
		{"settle:\n  fee_bp: 1e300\n", ":2: settle.fee_bp: expected an integer, got 1e300"},
	} {
		path := t.TempDir() + "/arbiter.yaml"
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := daemon.LoadConfig(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
	path := t.TempDir() + "/arbiter.yaml"
	os.WriteFile(path, []byte("settle:\n  fee_bp: 10\n  use:\n    over_percent: 120\n"), 0o600)
	cfg, err := daemon.LoadConfig(path)
	if err != nil || cfg.Settle.FeeBP != 10 || cfg.Settle.Use.OverPercent != 120 || cfg.Settle.OverageMultiplierBP != settle.DefaultConfig().OverageMultiplierBP ||
		cfg.Settle.CreditHorizonMonths != 12 {
		t.Errorf("settle section over the defaults: %v %+v", err, cfg.Settle)
	}
}
