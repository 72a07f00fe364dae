package daemon_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// TestUsageLiesDoNotPay: the attacks on settlement a member can make
// through the Usage API with its own certificate. A buyer that reports 5 %
// less than the seller saw and claims one packet sample per slot (to widen
// its error bar until the figures "agree") is disputed anyway: the bar
// rests on the interval and the exchange's sampling rate. A buyer that
// goes silent pays at least what agreeing with the seller would have cost.
func TestUsageLiesDoNotPay(t *testing.T) {
	last := settle.MonthOf(clock.Now().UTC()).Start.AddDate(0, -1, 0)
	var bookAt atomic.Pointer[time.Time]
	bookAt.Store(&last)
	x := startExchangeOpts(t, daemon.WithBookClock(func() time.Time {
		if at := bookAt.Load(); at != nil {
			return *at
		}
		return clock.Now()
	}))
	a := x.member(64501, "192.0.2.1") // sells
	b := x.member(64510, "192.0.2.10")
	x.addPrefix(64501, "198.51.100.0/24")
	ctx := context.Background()
	period := last.Format("2006-01")
	id := trade(t, pb.NewTradingServiceClient(a), pb.NewTradingServiceClient(b), "198.51.100.0/24", last)
	bookAt.Store(nil)

	au, bu := pb.NewUsageServiceClient(a), pb.NewUsageServiceClient(b)
	// Slots 0-11: both report; the buyer 950M with "1 sample", the seller
	// 1000M with 1 sample too. Slots 12-23: only the seller, at 900M.
	buyer := samples(id, pb.ReporterRole_REPORTER_ROLE_BUYER, last, 12, 950e6, 1)
	seller := samples(id, pb.ReporterRole_REPORTER_ROLE_SELLER, last, 24, 1000e6, 1)
	for _, s := range seller[12:] {
		s.BitsPerSecond = 900e6
	}
	for _, r := range []struct {
		u  pb.UsageServiceClient
		ss []*pb.UsageSample
	}{{bu, buyer}, {au, seller}} {
		if _, err := r.u.ReportUsage(ctx, &pb.ReportUsageRequest{Samples: r.ss}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pb.NewUsageServiceClient(x.operator()).RunSettlement(ctx, &pb.RunSettlementRequest{Period: period}); err != nil {
		t.Fatal(err)
	}
	ds, err := bu.ListDisputes(ctx, &pb.ListDisputesRequest{Period: period})
	if err != nil || len(ds.Disputes) != 12 {
		t.Fatalf("disputes: %v (%v), want the 12 slots the buyer under-reported with one claimed sample", ds, err)
	}
	for _, d := range ds.Disputes {
		if d.BuyerBps != 950e6 || d.SellerBps != 1000e6 || d.UsedBps != 950e6 {
			t.Errorf("dispute %v: want buyer 950M, seller 1000M, billed at the buyer's (default policy)", d)
		}
	}
	inv, err := bu.GetInvoice(ctx, &pb.GetInvoiceRequest{Period: period})
	if err != nil || len(inv.Invoice.GetLines()) != 1 {
		t.Fatalf("buyer's invoice: %v %v", inv, err)
	}
	if l := inv.Invoice.Lines[0]; l.DisputedSlots != 12 || l.FallbackSlots != 12 {
		t.Errorf("invoice line: %d disputed, %d one-sided slots; want 12 and 12", l.DisputedSlots, l.FallbackSlots)
	}
}
