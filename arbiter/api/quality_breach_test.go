package api

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pki"
)

func TestReportBreach(t *testing.T) {
	var buf bytes.Buffer
	s := &QualityServer{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
	member, op := as(pki.MemberIdentity(64510)), as(pki.OperatorIdentity("local"))
	ok := func() *pb.ReportBreachRequest {
		return &pb.ReportBreachRequest{TradeId: 7, SellerAsn: 64502, DestinationPrefix: "2001:db8:300::/48",
			Limits: &pb.Quality{MaxLatencyUs: proto.Int64(45000)}, ObservedAt: timestamppb.New(time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)),
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
	} {
		r := ok()
		c.edit(r)
		_, err := s.ReportBreach(c.ctx, r)
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: got %v, want %v naming %s", r, err, c.code, c.field)
		}
	}
}
