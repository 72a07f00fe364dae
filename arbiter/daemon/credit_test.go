package daemon_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// The credit attacks of issue 16, as a member with its certificate would
// make them. The figures hold on any date: a month's share of a term is
// never more than a whole month, and N months of a term that long are at
// least N-1 whole ones.

// creditExchange starts an exchange where A (64501) sells capacity for
// 198.51.100.0/24 and C (64520) is the buyer under test, with limit.
func creditExchange(t *testing.T, limit int64) (x *exchange, a, c pb.TradingServiceClient, cu pb.UsageServiceClient) {
	t.Helper()
	x = startExchange(t)
	ac := x.member(64501, "192.0.2.1")
	cc := x.member(64520, "192.0.2.20")
	x.addPrefix(64501, "198.51.100.0/24")
	x.addPrefix(64501, "203.0.113.0/24")
	if _, err := pb.NewUsageServiceClient(x.operator()).SetCreditLimit(context.Background(), &pb.SetCreditLimitRequest{MemberAsn: 64520, LimitMicros: limit}); err != nil {
		t.Fatal(err)
	}
	return x, pb.NewTradingServiceClient(ac), pb.NewTradingServiceClient(cc), pb.NewUsageServiceClient(cc)
}

func longOrder(side pb.Side, prefix string, capacity, price int64, days int) *pb.PlaceOrderRequest {
	s := order(side, prefix, capacity, price, days)
	s.MinBlockBps = 1e8
	return &pb.PlaceOrderRequest{Spec: s}
}

func credit(t *testing.T, u pb.UsageServiceClient) *pb.Credit {
	t.Helper()
	r, err := u.GetCredit(context.Background(), &pb.GetCreditRequest{})
	if err != nil || len(r.Credits) != 1 {
		t.Fatalf("own credit: %v %v", r, err)
	}
	return r.Credits[0]
}

// One buy of any size used to pass from zero exposure: 10G for a year
// under a limit of 100.00 filled. Its own worst case counts now.
func TestCreditOneHugeLongBuyIsRefused(t *testing.T) {
	x, a, c, cu := creditExchange(t, 100_000_000)
	ctx := context.Background()
	if _, err := a.PlaceOrder(ctx, longOrder(pb.Side_SIDE_SELL, "198.51.100.0/24", 10e9, 100_000, 400)); err != nil {
		t.Fatal(err)
	}
	r, err := c.PlaceOrder(ctx, longOrder(pb.Side_SIDE_BUY, "198.51.100.0/24", 10e9, 100_000, 365))
	wantCode(t, "10G for a year under a limit of 100.00", err, codes.FailedPrecondition)
	if r != nil {
		t.Errorf("refused buy traded: %v", r.Trades)
	}
	// The member is told the limit, its exposure and what the order would
	// add: 10G at 0.10 is 1,000.00 a month, 12 months of the year count.
	m := status.Convert(err).Message()
	for _, want := range []string{"AS64520", "limit 100.000000", "exposure 0.000000", "would add 1", "up to 12 months"} {
		if !strings.Contains(m, want) {
			t.Errorf("refusal %q lacks %q", m, want)
		}
	}
	if cr := credit(t, cu); cr.ExposureMicros != 0 {
		t.Errorf("after the refusal: %v, want no exposure", cr)
	}
	// A taken offer is the same buy.
	_, err = c.TakeOffer(ctx, &pb.TakeOfferRequest{OfferOrderId: 1, Spec: longOrder(pb.Side_SIDE_BUY, "198.51.100.0/24", 10e9, 100_000, 365).Spec})
	wantCode(t, "taking 10G for a year", err, codes.FailedPrecondition)
	// What fits the limit still trades: 1G for a day is about 3.33.
	if r, err := c.PlaceOrder(ctx, longOrder(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 1)); err != nil || len(r.Trades) != 1 {
		t.Fatalf("a buy within the limit: %v %v", r, err)
	}
	// Each refusal is counted with the member that asked.
	resp, err := http.Get("http://" + x.arb.MetricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := `bwx_arbiter_grpc_refusals_total{caller="member AS64520",code="FailedPrecondition"} 2`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// A ten-year buy used to count as about a month: its trade's charge
// counted only to the month's end. It counts 12 months now (the default
// horizon), so the limit holds the member to what it can pay.
func TestCreditTenYearBuyCountsItsHorizon(t *testing.T) {
	_, a, c, cu := creditExchange(t, 2_000_000_000)
	ctx := context.Background()
	if _, err := a.PlaceOrder(ctx, longOrder(pb.Side_SIDE_SELL, "198.51.100.0/24", 2e9, 100_000, 10*365+1)); err != nil {
		t.Fatal(err)
	}
	// 1G at 0.10: 100.00 a month; 12 months of ten years count, the
	// current one in part: 1,100.00 to 1,200.00.
	tenYears := longOrder(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 10*365)
	if r, err := c.PlaceOrder(ctx, tenYears); err != nil || len(r.Trades) != 1 {
		t.Fatalf("a ten-year buy within the limit: %v %v", r, err)
	}
	cr := credit(t, cu)
	if cr.AccruedMicros < 1_100_000_000 || cr.AccruedMicros > 1_200_000_000 || cr.ExposureMicros != cr.AccruedMicros {
		t.Fatalf("after a ten-year buy of 100.00 a month: %v, want 1,100.00 to 1,200.00 accrued", cr)
	}
	_, err := c.PlaceOrder(ctx, tenYears)
	wantCode(t, "a second ten-year buy past the limit", err, codes.FailedPrecondition)
	if m := status.Convert(err).Message(); !strings.Contains(m, "limit 2000.000000") || !strings.Contains(m, "would add") {
		t.Errorf("refusal %q does not say why", m)
	}
	if again := credit(t, cu); again.ExposureMicros != cr.ExposureMicros {
		t.Errorf("the refused buy moved the exposure: %v, was %v", again, cr)
	}
}

// Many small buys used to pass until the exposure had already reached the
// limit, the last one past it; and buys resting in the book counted
// nothing until they traded, so a sell could fill all of them at once.
func TestCreditSmallBuysStopAtTheLimit(t *testing.T) {
	_, a, c, cu := creditExchange(t, 100_000_000)
	ctx := context.Background()
	if _, err := a.PlaceOrder(ctx, longOrder(pb.Side_SIDE_SELL, "198.51.100.0/24", 10e9, 100_000, 400)); err != nil {
		t.Fatal(err)
	}
	// 1G at 0.10 for 8 days: 25.80 to 28.58 each (the share of a month of
	// 28 to 31 days), so three fit 100.00 and a fourth never does.
	var accepted int
	for i := 0; i < 5; i++ {
		r, err := c.PlaceOrder(ctx, longOrder(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 100_000, 8))
		if err == nil {
			if len(r.Trades) != 1 {
				t.Fatalf("buy %d: %v", i, r)
			}
			accepted++
		} else {
			wantCode(t, "a small buy past the limit", err, codes.FailedPrecondition)
		}
		if cr := credit(t, cu); cr.ExposureMicros > cr.LimitMicros {
			t.Fatalf("after buy %d: exposure %d above the limit %d", i, cr.ExposureMicros, cr.LimitMicros)
		}
	}
	if accepted != 3 {
		t.Errorf("%d small buys accepted, want 3", accepted)
	}
}

// Buys resting in the book used to count nothing until they traded: a
// member could stack them and let one sell fill them all. They count at
// their worst case now.
func TestCreditRestingBuysCount(t *testing.T) {
	_, a, c, cu := creditExchange(t, 100_000_000)
	ctx := context.Background()
	// Nobody sells 203.0.113.0/24 yet. 1G at 0.10 for 12 days is 38.70
	// to 42.86: two fit 100.00, a third never does.
	var resting int
	for i := 0; i < 4; i++ {
		r, err := c.PlaceOrder(ctx, longOrder(pb.Side_SIDE_BUY, "203.0.113.0/24", 1e9, 100_000, 12))
		if err == nil && r.Order.Status == pb.OrderStatus_ORDER_STATUS_OPEN {
			resting++
		} else {
			wantCode(t, "a resting buy past the limit", err, codes.FailedPrecondition)
		}
	}
	if cr := credit(t, cu); resting != 2 || cr.OrdersMicros < 77_000_000 || cr.ExposureMicros != cr.OrdersMicros {
		t.Fatalf("%d resting buys accepted, credit %v; want 2, counted", resting, cr)
	}
	// A sell arriving fills what rests, within the limit.
	if r, err := a.PlaceOrder(ctx, longOrder(pb.Side_SIDE_SELL, "203.0.113.0/24", 10e9, 100_000, 400)); err != nil || len(r.Trades) != resting {
		t.Fatalf("the sell into the resting buys: %v %v", r, err)
	}
	if cr := credit(t, cu); cr.ExposureMicros > cr.LimitMicros || cr.OrdersMicros != 0 || cr.AccruedMicros == 0 {
		t.Fatalf("after the sell filled the resting buys: %v", cr)
	}
}
