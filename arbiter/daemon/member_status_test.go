package daemon_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

func wantRefused(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	wantCode(t, what, err, code)
	if !strings.Contains(status.Convert(err).Message(), msg) {
		t.Errorf("%s: %q does not say %q", what, status.Convert(err).Message(), msg)
	}
}

// A member is suspended while a buy of it rests and a trade of it runs:
// the buy is cancelled at once, every new commitment it tries with its
// certificate is refused, it still reads; its trade runs on. Resumed, it
// orders again.
func TestSuspendedMemberCannotTrade(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	sellerConn := x.member(64501, "192.0.2.1")
	buyerConn := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	seller, buyer := pb.NewTradingServiceClient(sellerConn), pb.NewTradingServiceClient(buyerConn)

	// A running trade, a resting sell of the rest, and the buyer's resting
	// buy for a prefix nobody sells.
	sellSpec := order(pb.Side_SIDE_SELL, "198.51.100.0/24", 2e9, 100_000, 40) // covers every buy below
	sellSpec.MinBlockBps = 1e9
	if _, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: sellSpec}); err != nil {
		t.Fatal(err)
	}
	spec := order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 30)
	r, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: spec})
	if err != nil || len(r.Trades) != 1 {
		t.Fatalf("buy: %v %v, want one trade", err, r)
	}
	tradeID := r.Trades[0].Id
	resting, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "203.0.113.0/24", 1e9, 100_000, 30)})
	if err != nil || resting.Order.Status != pb.OrderStatus_ORDER_STATUS_OPEN {
		t.Fatalf("resting buy: %v %v", err, resting)
	}
	sells, err := seller.ListOrders(ctx, &pb.ListOrdersRequest{OpenOnly: true})
	if err != nil || len(sells.Orders) != 1 {
		t.Fatalf("seller's resting sell: %v %v", err, sells)
	}
	sellID := sells.Orders[0].Id

	// Only the operator suspends.
	_, err = pb.NewRegistryServiceClient(sellerConn).SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64510})
	wantCode(t, "a member suspends another", err, codes.PermissionDenied)
	_, err = pb.NewRegistryServiceClient(buyerConn).ResumeMember(ctx, &pb.ResumeMemberRequest{Asn: 64510})
	wantCode(t, "a member resumes itself", err, codes.PermissionDenied)

	op := pb.NewRegistryServiceClient(x.operator())
	_, err = op.SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64599})
	wantCode(t, "suspend an unknown member", err, codes.NotFound)
	ch, err := op.SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64510, Reason: "unpaid invoice"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Member.Status != pb.MemberStatus_MEMBER_STATUS_SUSPENDED || ch.Member.StatusReason != "unpaid invoice" ||
		len(ch.CancelledOrderIds) != 1 || ch.CancelledOrderIds[0] != resting.Order.Id || len(ch.EndedTradeIds) != 0 {
		t.Fatalf("suspension: %v, want AS64510 suspended and order %d cancelled", ch, resting.Order.Id)
	}
	o, err := buyer.GetOrder(ctx, &pb.GetOrderRequest{OrderId: resting.Order.Id})
	if err != nil || o.Status != pb.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("the suspended member's resting buy: %v %v, want cancelled", err, o)
	}
	evs := streamUntil(t, buyerConn, func(e *pb.TradeEvent) bool {
		return e.Type == pb.TradeEventType_TRADE_EVENT_TYPE_ORDER_CANCELLED && e.Order.GetId() == resting.Order.Id
	})
	if len(evs) == 0 {
		t.Fatal("no cancellation on the member's event stream")
	}

	// Every new commitment is refused, with its certificate, on the spot.
	const why = "member AS64510 is suspended"
	_, err = buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 30)})
	wantRefused(t, "suspended member places a buy", err, codes.FailedPrecondition, why)
	_, err = buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "203.0.113.0/24", 1e9, 100_000, 30)})
	wantRefused(t, "suspended member places a buy that would rest", err, codes.FailedPrecondition, why)
	_, err = buyer.TakeOffer(ctx, &pb.TakeOfferRequest{OfferOrderId: sellID, Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 30)})
	wantRefused(t, "suspended member takes an offer", err, codes.FailedPrecondition, why)
	_, err = pb.NewQualityServiceClient(buyerConn).ReportMeasurements(ctx, &pb.ReportMeasurementsRequest{})
	wantRefused(t, "suspended member reports measurements", err, codes.FailedPrecondition, why)
	_, err = pb.NewQualityServiceClient(buyerConn).ReportBreach(ctx, &pb.ReportBreachRequest{TradeId: tradeID, SellerAsn: 64501})
	wantRefused(t, "suspended member reports a breach", err, codes.FailedPrecondition, why)

	// It reads as before, and its trade runs on.
	if _, err := pb.NewUsageServiceClient(buyerConn).GetCredit(ctx, &pb.GetCreditRequest{}); err != nil {
		t.Errorf("suspended member's credit: %v", err)
	}
	trades, err := buyer.ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil || len(trades.Trades) != 1 || trades.Trades[0].Status != pb.TradeStatus_TRADE_STATUS_ACTIVE || trades.Trades[0].EndReason != "" {
		t.Fatalf("suspended member's trades: %v %v, want its trade active", err, trades)
	}
	if _, err := pb.NewUsageServiceClient(buyerConn).ListInvoices(ctx, &pb.ListInvoicesRequest{}); err != nil {
		t.Errorf("suspended member's invoices: %v", err)
	}
	// Nobody can trade with it: its counterparty's new sell does not
	// match anything of it (it has nothing resting), and the counterparty
	// trades as before.
	if _, err := seller.ModifyOrder(ctx, &pb.ModifyOrderRequest{OrderId: sellID, PriceMicros: ptr(int64(90_000))}); err != nil {
		t.Errorf("the active counterparty modifies its sell: %v", err)
	}
	m, err := op.GetMember(ctx, &pb.GetMemberRequest{Asn: 64510})
	if err != nil || m.Status != pb.MemberStatus_MEMBER_STATUS_SUSPENDED || m.StatusSince == nil {
		t.Errorf("member record: %v %v, want suspended with its time", err, m)
	}
	if s := grepLines(scrape(t, x), `bwx_arbiter_grpc_refusals_total{caller="`+pki.MemberIdentity(64510).String()+`",code="FailedPrecondition"}`); !strings.HasSuffix(s, " 5") {
		t.Errorf("refusals counted for the suspended member: %q, want 5", s)
	}

	// Resumed, it orders again.
	ch, err = op.ResumeMember(ctx, &pb.ResumeMemberRequest{Asn: 64510})
	if err != nil || ch.Member.Status != pb.MemberStatus_MEMBER_STATUS_ACTIVE {
		t.Fatalf("resume: %v %v", err, ch)
	}
	r, err = buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 30)})
	if err != nil || len(r.Trades) != 1 {
		t.Fatalf("resumed member buys: %v %v, want a trade", err, r)
	}
}

// A suspended member's resting sell is cancelled at once and no buy trades
// with it; resumed, a new sell of it trades; suspending twice keeps the
// first suspension. (That its resting orders cannot trade between the
// suspension and their cancellation is the book's test.)
func TestSuspendedSellerIsNoCounterparty(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	sellerConn := x.member(64501, "192.0.2.1")
	buyerConn := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	seller, buyer := pb.NewTradingServiceClient(sellerConn), pb.NewTradingServiceClient(buyerConn)
	sell, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, "198.51.100.0/24", 1e9, 100_000, 40)})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := pb.NewRegistryServiceClient(x.operator()).SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64501})
	if err != nil || len(ch.CancelledOrderIds) != 1 || ch.CancelledOrderIds[0] != sell.Order.Id {
		t.Fatalf("suspend the seller: %v %v", err, ch)
	}
	r, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 30)})
	if err != nil || len(r.Trades) != 0 {
		t.Fatalf("buy after the seller's suspension: %v %v, want no trade", err, r)
	}
	// Resumed, its sell stays cancelled; a new one trades with the buy.
	if _, err := pb.NewRegistryServiceClient(x.operator()).ResumeMember(ctx, &pb.ResumeMemberRequest{Asn: 64501}); err != nil {
		t.Fatal(err)
	}
	r, err = seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, "198.51.100.0/24", 1e9, 100_000, 40)})
	if err != nil || len(r.Trades) != 1 {
		t.Fatalf("the resumed seller's new sell: %v %v, want it to trade with the resting buy", err, r)
	}
	if _, err := pb.NewRegistryServiceClient(x.operator()).SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64501, Reason: "first"}); err != nil {
		t.Fatal(err)
	}
	// Suspending again changes nothing and cancels nothing more.
	ch, err = pb.NewRegistryServiceClient(x.operator()).SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64501, Reason: "again"})
	if err != nil || len(ch.CancelledOrderIds) != 0 || ch.Member.StatusReason != "first" {
		t.Fatalf("suspend twice: %v %v, want the first suspension kept", err, ch)
	}
}

// A member is removed in the middle of last month while it sells to
// another: its certificate is refused at once, the trade ends at the
// removal (its end moved, the reason recorded), the buyer's event stream
// sees it end, the route server no longer has it, and settlement charges
// the month only up to the removal.
func TestRemovedMemberLeaves(t *testing.T) {
	last := settle.MonthOf(clock.Now().UTC()).Start.AddDate(0, -1, 0)
	removal := last.AddDate(0, 0, 10)
	var bookAt atomic.Pointer[time.Time]
	bookAt.Store(&last)
	x := startExchangeOpts(t, daemon.WithBookClock(func() time.Time {
		if at := bookAt.Load(); at != nil {
			return *at
		}
		return clock.Now()
	}))
	ctx := context.Background()
	sellerConn := x.member(64501, "192.0.2.1")
	buyerConn := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	x.addPrefix(64501, "198.51.101.0/24")
	seller, buyer := pb.NewTradingServiceClient(sellerConn), pb.NewTradingServiceClient(buyerConn)
	// Two trades: one running from the start of last month to a month from
	// now, one that starts after the removal.
	end := clock.Now().UTC().AddDate(0, 1, 0)
	t1 := trade(t, seller, buyer, "198.51.100.0/24", last)
	later := removal.Add(24 * time.Hour)
	if _, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_SELL, "198.51.101.0/24", 1e9, 100_000, later, end)}); err != nil {
		t.Fatal(err)
	}
	r, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_BUY, "198.51.101.0/24", 1e9, 100_000, later, end)})
	if err != nil || len(r.Trades) != 1 {
		t.Fatalf("scheduled trade: %v %v", err, r)
	}
	t2 := r.Trades[0].Id
	before, err := buyer.ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil || len(before.Trades) != 2 {
		t.Fatal(err, before)
	}
	agreed := before.Trades[0].DeliveryEnd.AsTime()
	// The seller leaves a resting sell too.
	if _, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: orderAt(pb.Side_SIDE_SELL, "198.51.100.0/24", 1e9, 200_000, last, end)}); err != nil {
		t.Fatal(err)
	}
	bookAt.Store(&removal)

	_, err = pb.NewRegistryServiceClient(buyerConn).RemoveMember(ctx, &pb.RemoveMemberRequest{Asn: 64501})
	wantCode(t, "a member removes another", err, codes.PermissionDenied)

	op := pb.NewRegistryServiceClient(x.operator())
	ch, err := op.RemoveMember(ctx, &pb.RemoveMemberRequest{Asn: 64501, Reason: "contract terminated"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Member.Status != pb.MemberStatus_MEMBER_STATUS_REMOVED || len(ch.RevokedSerials) != 1 || len(ch.CancelledOrderIds) != 1 ||
		len(ch.EndedTradeIds) != 2 {
		t.Fatalf("removal: %v, want removed, 1 certificate revoked, 1 order cancelled, 2 trades ended", ch)
	}

	// Its certificate is refused on the very connection it has open; a
	// member bundle made from the CA's files too.
	_, err = seller.ListOrders(ctx, &pb.ListOrdersRequest{})
	wantRefused(t, "the removed member's certificate", err, codes.Unauthenticated, "revoked")
	_, err = pb.NewTradingServiceClient(x.dialBundle(x.caBundle(pki.MemberIdentity(64501), "forged"))).ListOrders(ctx, &pb.ListOrdersRequest{})
	wantRefused(t, "a CA-made bundle of the removed member", err, codes.PermissionDenied, "removed")

	// The trade ended at the removal, for the reason recorded; the one not
	// started is cancelled.
	after, err := buyer.ListTrades(ctx, &pb.ListTradesRequest{})
	if err != nil || len(after.Trades) != 2 {
		t.Fatal(err, after)
	}
	got := after.Trades[0]
	if got.Id != t1 || !got.DeliveryEnd.AsTime().Equal(removal) || !got.ContractEnd.AsTime().Equal(agreed) ||
		!strings.Contains(got.EndReason, "member AS64501 removed: contract terminated") || got.Status != pb.TradeStatus_TRADE_STATUS_ENDED {
		t.Errorf("trade %d after the removal: %v, want it ended at %v (agreed %v) for the removal", t1, got, removal, agreed)
	}
	if s := after.Trades[1]; s.Id != t2 || s.Status != pb.TradeStatus_TRADE_STATUS_CANCELLED || s.EndReason == "" {
		t.Errorf("scheduled trade %d after the removal: %v, want cancelled", t2, s)
	}
	// The buyer's agent sees both on its event stream.
	evs := streamUntil(t, buyerConn, func(e *pb.TradeEvent) bool {
		return e.Type == pb.TradeEventType_TRADE_EVENT_TYPE_CANCELLED && e.Trade.GetId() == t2
	})
	if n := countEvents(evs, func(e *pb.TradeEvent) bool {
		return e.Type == pb.TradeEventType_TRADE_EVENT_TYPE_ENDED && e.Trade.GetId() == t1 && e.Trade.DeliveryEnd.AsTime().Equal(removal)
	}); n != 1 {
		t.Errorf("buyer's stream has %d ENDED events for trade %d, want 1: %v", n, t1, evs)
	}
	// Removing again finishes nothing more; a removed member is never resumed.
	if ch, err = op.RemoveMember(ctx, &pb.RemoveMemberRequest{Asn: 64501}); err != nil || len(ch.EndedTradeIds)+len(ch.CancelledOrderIds)+len(ch.RevokedSerials) != 0 {
		t.Errorf("remove twice: %v %v, want nothing more done", err, ch)
	}
	_, err = op.ResumeMember(ctx, &pb.ResumeMemberRequest{Asn: 64501})
	wantRefused(t, "resume a removed member", err, codes.FailedPrecondition, "removed")
	_, err = op.SuspendMember(ctx, &pb.SuspendMemberRequest{Asn: 64501})
	wantRefused(t, "suspend a removed member", err, codes.FailedPrecondition, "removed")
	key, _ := pki.NewKey()
	csr, _ := pki.NewCSR(key, "x")
	_, err = op.IssueCertificate(ctx, &pb.IssueCertificateRequest{Asn: 64501, Csr: csr})
	wantRefused(t, "a new certificate for a removed member", err, codes.FailedPrecondition, "removed")
	ms, err := op.ListMembers(ctx, &pb.ListMembersRequest{})
	if err != nil || len(ms.Members) != 2 || ms.Members[0].Status != pb.MemberStatus_MEMBER_STATUS_REMOVED ||
		ms.Members[1].Status != pb.MemberStatus_MEMBER_STATUS_ACTIVE {
		t.Errorf("members after the removal: %v %v, want AS64501 kept, removed", err, ms)
	}

	// Settlement of last month charges the trade up to the removal only:
	// 1G at 0.10 per Mbps-month for 10 days of the month.
	bookAt.Store(nil)
	run, err := pb.NewUsageServiceClient(x.operator()).RunSettlement(ctx, &pb.RunSettlementRequest{Period: last.Format("2006-01")})
	if err != nil {
		t.Fatal(err)
	}
	days := float64(last.AddDate(0, 1, 0).Sub(last)) / float64(24*time.Hour)
	want := int64(math.Round(100_000_000 * 10 / days))
	var found bool
	for _, inv := range run.Invoices {
		for _, l := range inv.Lines {
			if l.TradeId != t1 {
				continue
			}
			found = true
			if abs(l.CommittedMicros) != want {
				t.Errorf("AS%d's line for trade %d: committed %d, want ±%d (10 days of %.0f)", inv.MemberAsn, t1, l.CommittedMicros, want, days)
			}
		}
	}
	if !found || run.Exchange.Trades != 1 {
		t.Errorf("settlement: trade %d not billed alone: %v", t1, run.Exchange)
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// freePort is a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The route server drops a removed member's trade at once: the active
// trades it was handed go from one to none as the removal returns.
func TestRouteServerDropsARemovedMembersTrade(t *testing.T) {
	port := freePort(t)
	x := startExchangeWith(t, func(c *daemon.Config) {
		c.Metrics.Listen = "127.0.0.1:0"
		c.BGP.Enabled, c.BGP.ASN, c.BGP.RouterID = true, 65000, "192.0.2.250"
		c.BGP.Listen, c.BGP.Port, c.BGP.RequireIRR = []string{"127.0.0.1"}, port, false
	})
	ctx := context.Background()
	seller := pb.NewTradingServiceClient(x.member(64501, "192.0.2.1"))
	buyer := pb.NewTradingServiceClient(x.member(64510, "192.0.2.10"))
	x.addPrefix(64501, "198.51.100.0/24")
	trade(t, seller, buyer, "198.51.100.0/24", clock.Now().UTC())
	active := func(want int) {
		t.Helper()
		eventually(t, 10*time.Second, fmt.Sprintf("%d trade(s) handed to the route server", want), func() string {
			m := scrape(t, x)
			if !strings.Contains(m, fmt.Sprintf("\nbwx_arbiter_bgp_active_trades %d\n", want)) {
				return grepLines(m, "bwx_arbiter_bgp_active_trades")
			}
			return ""
		})
	}
	active(1)
	if _, err := pb.NewRegistryServiceClient(x.operator()).RemoveMember(ctx, &pb.RemoveMemberRequest{Asn: 64510}); err != nil {
		t.Fatal(err)
	}
	active(0)
}
