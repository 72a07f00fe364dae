package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/book"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
)

func TestReportBreach(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	s := &QualityServer{Log: slog.New(slog.NewJSONHandler(&buf, nil)), now: func() time.Time { return at.Add(time.Hour) },
		Trades: fakeTrades{
			{ID: 7, BuyerASN: 64510, SellerASN: 64502, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:300::/48")}},
			{ID: 8, BuyerASN: 64999, SellerASN: 64502, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:300::/48")}},
			{ID: 9, BuyerASN: 64502, SellerASN: 64510, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		}}
	member, op := as(pki.MemberIdentity(64510)), as(pki.OperatorIdentity("local"))
	ok := func() *pb.ReportBreachRequest {
		return &pb.ReportBreachRequest{TradeId: 7, SellerAsn: 64502, DestinationPrefix: "2001:db8:300::/48",
			Limits: &pb.Quality{MaxLatencyUs: proto.Int64(45000)}, ObservedAt: timestamppb.New(at),
			LatencyUs: 150700}
	}
	if _, err := s.ReportBreach(member, ok()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"SLA breach reported"`, `"buyer":64510`, `"seller":64502`, `"trade":7`, `"prefix":"2001:db8:300::/48"`,
		`"latency_us":150700`, `"max_latency_us":45000`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
	for _, c := range []struct {
		ctx   context.Context
		edit  func(*pb.ReportBreachRequest)
		code  codes.Code
		field string
	}{
		{op, func(*pb.ReportBreachRequest) {}, codes.PermissionDenied, "member"},
		{member, func(r *pb.ReportBreachRequest) { r.TradeId = 0 }, codes.InvalidArgument, "trade_id"},
		{member, func(r *pb.ReportBreachRequest) { r.SellerAsn = 64510 }, codes.InvalidArgument, "seller_asn"},
		{member, func(r *pb.ReportBreachRequest) { r.DestinationPrefix = "198.18.0.1" }, codes.InvalidArgument, "destination_prefix"},
		{member, func(r *pb.ReportBreachRequest) { r.ObservedAt = nil }, codes.InvalidArgument, "observed_at"},
		// A member reports breaches of its own purchases only: not another
		// buyer's trade, not one it sold, not an unknown one, and only
		// about the trade's seller and prefixes, never from the future.
		{member, func(r *pb.ReportBreachRequest) { r.TradeId = 8 }, codes.InvalidArgument, "trade_id"},
		{member, func(r *pb.ReportBreachRequest) {
			r.TradeId, r.SellerAsn, r.DestinationPrefix = 9, 64502, "198.51.100.0/24"
		}, codes.InvalidArgument, "trade_id"},
		{member, func(r *pb.ReportBreachRequest) { r.TradeId = 99 }, codes.InvalidArgument, "trade_id"},
		{member, func(r *pb.ReportBreachRequest) { r.SellerAsn = 64503 }, codes.InvalidArgument, "seller_asn"},
		{member, func(r *pb.ReportBreachRequest) { r.DestinationPrefix = "2001:db8:400::/48" }, codes.InvalidArgument, "destination_prefix"},
		{member, func(r *pb.ReportBreachRequest) { r.DestinationPrefix = "2001:db8::/32" }, codes.InvalidArgument, "destination_prefix"},
		{member, func(r *pb.ReportBreachRequest) { r.ObservedAt = timestamppb.New(at.Add(2 * time.Hour)) }, codes.InvalidArgument, "observed_at"},
	} {
		r := ok()
		c.edit(r)
		_, err := s.ReportBreach(c.ctx, r)
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: got %v, want %v naming %s", r, err, c.code, c.field)
		}
	}
	// A more specific prefix inside the trade's is the trade's.
	r := ok()
	r.DestinationPrefix = "2001:db8:300:1::/64"
	if _, err := s.ReportBreach(member, r); err != nil {
		t.Errorf("breach toward a prefix inside the trade's: %v", err)
	}
}

type fakeTrades []book.Trade

func (f fakeTrades) Trade(_ context.Context, asn uint32, id int64) (book.Trade, error) {
	for _, t := range f {
		if t.ID == id && (t.BuyerASN == asn || t.SellerASN == asn) {
			return t, nil
		}
	}
	return book.Trade{}, book.ErrNotFound
}
