package api

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

func TestTradeQualityToProto(t *testing.T) {
	tr := book.Trade{ID: 3, BuyerASN: 64510, SellerASN: 64501, Start: start, End: start.Add(time.Hour)}
	if q := tradeToProto(tr, start).Quality; q != nil {
		t.Errorf("unmeasured trade has quality %v", q)
	}
	tr.Quality = &book.Measured{LatencyUs: 12_345, JitterUs: 800, LossPPM: 500, ASHops: 2, Samples: 7}
	q := tradeToProto(tr, start).Quality
	if q == nil || q.LatencyUs != 12_345 || q.JitterUs != 800 || q.LossPpm != 500 || q.AsHops != 2 || q.Samples != 7 {
		t.Errorf("quality %v", q)
	}
}

// Settlement events keep the contract's type numbers and carry their
// figures; an order event carries neither.
func TestSettlementEventsToProto(t *testing.T) {
	tr := &book.Trade{ID: 9, BuyerASN: 64520, SellerASN: 64510, Start: start, End: start.Add(48 * time.Hour)}
	use := &book.UseNotice{Start: start, End: start.Add(2 * time.Hour), CapacityBps: 1e9, PeakBps: 1.5e9, MinBps: 1.2e9}
	e := eventToProto(book.Event{Seq: 4, MemberASN: 64510, Type: book.UseOver, Time: start, Trade: tr, Use: use}, start)
	if e.Type != pb.TradeEventType_TRADE_EVENT_TYPE_USE_OVER || e.Sequence != 4 || e.Trade.GetId() != 9 || e.Credit != nil {
		t.Fatalf("use event %v", e)
	}
	if u := e.Use; u.TradeId != 9 || u.Kind != pb.UseKind_USE_KIND_OVERUSE || !u.Start.AsTime().Equal(start) || !u.End.AsTime().Equal(use.End) ||
		u.PeakBps != 1.5e9 || u.MinBps != 1.2e9 || u.CapacityBps != 1e9 || u.BuyerAsn != 64520 || u.SellerAsn != 64510 {
		t.Errorf("use %v", u)
	}
	if e := eventToProto(book.Event{Type: book.UseUnder, Trade: tr, Use: use}, start); e.Type != pb.TradeEventType_TRADE_EVENT_TYPE_USE_UNDER || e.Use.Kind != pb.UseKind_USE_KIND_UNDERUSE {
		t.Errorf("underuse %v", e)
	}
	c := &book.CreditNotice{LimitMicros: 100, UnpaidMicros: 60, AccruedMicros: 30, ExposureMicros: 90}
	for typ, want := range map[book.EventType]pb.CreditState{book.CreditWarning: pb.CreditState_CREDIT_STATE_WARNING, book.CreditStopped: pb.CreditState_CREDIT_STATE_STOPPED} {
		e := eventToProto(book.Event{MemberASN: 64520, Type: typ, Time: start, Credit: c}, start)
		if int(e.Type) != int(typ) || e.Trade != nil || e.Use != nil || e.Credit.GetState() != want || e.Credit.MemberAsn != 64520 ||
			e.Credit.LimitMicros != 100 || e.Credit.ExposureMicros != 90 || e.Credit.UnpaidMicros != 60 || e.Credit.AccruedMicros != 30 {
			t.Errorf("%v event %v", typ, e)
		}
	}
	for typ, name := range map[book.EventType]string{book.UseOver: "TRADE_EVENT_TYPE_USE_OVER", book.UseUnder: "TRADE_EVENT_TYPE_USE_UNDER",
		book.CreditWarning: "TRADE_EVENT_TYPE_CREDIT_WARNING", book.CreditStopped: "TRADE_EVENT_TYPE_CREDIT_STOPPED"} {
		if got := pb.TradeEventType(typ).String(); got != name {
			t.Errorf("book type %d is %s in the contract, want %s", typ, got, name)
		}
	}
}

// The book's credit refusal is FailedPrecondition with settlement's words.
func TestRefusedBuyIsFailedPrecondition(t *testing.T) {
	ce := &settle.CreditError{Credit: settle.Credit{ASN: 64520, Limited: true, LimitMicros: 100_000_000, ExposureMicros: 120_000_000}}
	err := toStatus(&book.RefusedError{ASN: 64520, Err: ce})
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != ce.Error() {
		t.Errorf("%v, want FailedPrecondition %q", err, ce.Error())
	}
	if !errors.Is(&book.RefusedError{Err: ce}, settle.ErrCreditLimit) {
		t.Error("the refusal does not unwrap to settle.ErrCreditLimit")
	}
}
