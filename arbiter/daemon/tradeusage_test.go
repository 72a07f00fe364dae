package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// TestTradeUsageThroughTheAPI: a trade's buyer and seller, each with its
// own certificate, read the trade's slots with both figures and how each
// is billed; the operator reads it too; a third member learns nothing, not
// even that the trade exists.
func TestTradeUsageThroughTheAPI(t *testing.T) {
	last := settle.MonthOf(clock.Now().UTC()).Start.AddDate(0, -1, 0)
	var bookAt atomic.Pointer[time.Time]
	bookAt.Store(&last)
	x := startExchangeOpts(t, daemon.WithBookClock(func() time.Time {
		if at := bookAt.Load(); at != nil {
			return *at
		}
		return clock.Now()
	}))
	a := x.member(64501, "192.0.2.1", "2001:db8:ffff::1") // sells
	b := x.member(64510, "192.0.2.10", "2001:db8:ffff::10")
	c := x.member(64520, "192.0.2.20")
	x.addPrefix(64501, "198.51.100.0/24")
	ctx := context.Background()
	id := trade(t, pb.NewTradingServiceClient(a), pb.NewTradingServiceClient(b), "198.51.100.0/24", last)
	bookAt.Store(nil)

	au, bu, cu, op := pb.NewUsageServiceClient(a), pb.NewUsageServiceClient(b), pb.NewUsageServiceClient(c), pb.NewUsageServiceClient(x.operator())
	// Slots 0-4 both at 500M but the seller sees 900M in slot 4; slot 5
	// only the seller reported, slot 6 only the buyer.
	buyer := samples(id, pb.ReporterRole_REPORTER_ROLE_BUYER, last, 7, 500e6, 10_000)
	seller := samples(id, pb.ReporterRole_REPORTER_ROLE_SELLER, last, 6, 500e6, 10_000)
	seller[4].BitsPerSecond, seller[5].BitsPerSecond = 900e6, 300e6
	buyer = append(buyer[:5], buyer[6])
	for _, r := range []struct {
		u  pb.UsageServiceClient
		ss []*pb.UsageSample
	}{{bu, buyer}, {au, seller}} {
		if _, err := r.u.ReportUsage(ctx, &pb.ReportUsageRequest{Samples: r.ss}); err != nil {
			t.Fatal(err)
		}
	}

	req := &pb.GetTradeUsageRequest{TradeId: id, From: timestamppb.New(last), To: timestamppb.New(last.Add(time.Hour))}
	type state struct {
		buyer, seller, billed int64 // -1: not reported
		disputed, oneSided    bool
	}
	want := []state{{500e6, 500e6, 500e6, false, false}, {}, {}, {}, {500e6, 900e6, 500e6, true, false}, {-1, 300e6, 0, false, true},
		{500e6, -1, 500e6, false, true}}
	want[1], want[2], want[3] = want[0], want[0], want[0]
	for _, who := range []struct {
		name string
		u    pb.UsageServiceClient
	}{{"buyer", bu}, {"seller", au}, {"operator", op}} {
		resp, err := who.u.GetTradeUsage(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", who.name, err)
		}
		if resp.TradeId != id || resp.SlotSeconds != 300 || len(resp.Slots) != len(want) {
			t.Fatalf("%s: trade %d, %d s slots, %d slots; want trade %d, 300 s, %d slots", who.name, resp.TradeId, resp.SlotSeconds, len(resp.Slots), id, len(want))
		}
		for i, w := range want {
			s := resp.Slots[i]
			fig := func(bps int64, ok bool) int64 {
				if !ok {
					return -1
				}
				return bps
			}
			got := state{fig(s.BuyerBps, s.BuyerReported), fig(s.SellerBps, s.SellerReported), s.BilledBps, s.Disputed, s.OneSided}
			if i == 5 { // billed at the most that would have agreed with the seller
				if got.billed <= 300e6 {
					t.Errorf("%s: slot 5 only the seller reported is billed at %d, want above its 300M", who.name, got.billed)
				}
				got.billed = 0
			}
			if got != w || !s.Start.AsTime().Equal(last.Add(time.Duration(i)*settle.SlotLength)) {
				t.Errorf("%s: slot %d %v: %+v, want %+v", who.name, i, s.Start.AsTime(), got, w)
			}
			if s.BuyerReported && s.BuyerSamples != 10_000 {
				t.Errorf("%s: slot %d buyer samples %d, want 10000 as reported", who.name, i, s.BuyerSamples)
			}
		}
	}

	// A third member: the answer for a trade that does not exist.
	_, err := cu.GetTradeUsage(ctx, req)
	_, errNone := cu.GetTradeUsage(ctx, &pb.GetTradeUsageRequest{TradeId: id + 1000})
	wantCode(t, "a third member reads the trade", err, codes.NotFound)
	wantCode(t, "a trade that does not exist", errNone, codes.NotFound)
	if m, mNone := status.Convert(err).Message(), status.Convert(errNone).Message(); m != fmt.Sprintf("trade %d: not found", id) ||
		mNone != fmt.Sprintf("trade %d: not found", id+1000) {
		t.Errorf("third member told %q, a trade that does not exist %q: want the same answer", m, mNone)
	}

	// Bad input names the field.
	for _, c := range []struct {
		req   *pb.GetTradeUsageRequest
		field string
	}{
		{&pb.GetTradeUsageRequest{}, "trade_id"},
		{&pb.GetTradeUsageRequest{TradeId: id, From: req.To, To: req.From}, "to"},
		{&pb.GetTradeUsageRequest{TradeId: id, From: timestamppb.New(clock.Now().Add(72 * time.Hour))}, "from"}, // after the trade's end
	} {
		_, err := bu.GetTradeUsage(ctx, c.req)
		wantCode(t, "request "+c.req.String(), err, codes.InvalidArgument)
		if !strings.HasPrefix(status.Convert(err).Message(), c.field+": ") {
			t.Errorf("request %v: %q does not name %s", c.req, status.Convert(err).Message(), c.field)
		}
	}
}
