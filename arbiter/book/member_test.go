package book_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
)

// standing is a registry stand-in: the members that may not trade.
type standing struct {
	mu  sync.Mutex
	off map[uint32]registry.MemberStatus
}

func (s *standing) set(asn uint32, st registry.MemberStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.off == nil {
		s.off = map[uint32]registry.MemberStatus{}
	}
	s.off[asn] = st
}

func (s *standing) check(asn uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.off[asn]; ok && st != registry.Active {
		return &registry.StandingError{ASN: asn, Status: st}
	}
	return nil
}

// From the moment the registry says a member is suspended, the book
// refuses its orders and its resting orders do not match, even before
// CancelMember takes them out; CancelMember then cancels them all, with
// an event each. Resumed, it trades again.
func TestSuspendedMemberNeitherOrdersNorMatches(t *testing.T) {
	st := &standing{}
	fx := newFixtureWith(t, func(f *fixture) { f.active = st.check })
	ctx := context.Background()
	sell, _, err := fx.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", 2*Gbps, 5_000_000), "")
	if err != nil {
		t.Fatal(err)
	}
	st.set(seller, registry.Suspended)
	var se *registry.StandingError
	if _, _, err := fx.book.Place(ctx, seller, spec(book.Sell, "203.0.113.0/24", Gbps, 5_000_000), ""); !errors.As(err, &se) || se.ASN != seller {
		t.Fatalf("a suspended member's sell: %v, want a StandingError", err)
	}
	lower := int64(4_000_000)
	if _, _, err := fx.book.Modify(ctx, seller, sell.ID, nil, &lower); !errors.As(err, &se) {
		t.Fatalf("a suspended member modifies its resting sell: %v, want a StandingError", err)
	}
	// Its sell still rests, but a buy does not trade with it.
	buy, trades, err := fx.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 7_000_000), "")
	if err != nil || len(trades) != 0 || buy.Status != book.Open {
		t.Fatalf("buy against a suspended seller's resting sell: %v %v %v, want it to rest untraded", buy, trades, err)
	}
	// Nor does time make it trade (Wake).
	fx.setClock(t0.Add(time.Hour))
	if err := fx.book.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, _ := fx.book.Trades(ctx, seller, false); len(ts) != 0 {
		t.Fatalf("the suspended seller traded at a wake: %v", ts)
	}
	cancelled, err := fx.book.CancelMember(ctx, seller)
	if err != nil || len(cancelled) != 1 || cancelled[0].ID != sell.ID || cancelled[0].Status != book.Cancelled {
		t.Fatalf("CancelMember: %v %v, want the resting sell cancelled", cancelled, err)
	}
	if o, _ := fx.book.Get(ctx, seller, sell.ID); o.Status != book.Cancelled {
		t.Errorf("stored sell: %v, want cancelled", o.Status)
	}
	n := 0
	for _, e := range fx.seen() {
		if e.Type == book.OrderCancelled && e.MemberASN == seller && e.Order.ID == sell.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d cancellation events for the seller, want 1", n)
	}
	if again, err := fx.book.CancelMember(ctx, seller); err != nil || len(again) != 0 {
		t.Errorf("CancelMember again: %v %v, want nothing", again, err)
	}
	st.set(seller, registry.Active)
	again := spec(book.Sell, "198.51.100.0/24", Gbps, 5_000_000)
	again.Start = fx.clock()
	if _, trades, err := fx.book.Place(ctx, seller, again, ""); err != nil || len(trades) != 1 {
		t.Fatalf("the resumed seller's sell: %v %v, want it to trade with the resting buy", trades, err)
	}
}

// A removed member's trades end at the removal: a running one's end moves
// to now (its agreed end and the reason kept), one not started is
// cancelled, and both parties hear of it; the capacity they held on the
// ports is free from now on, so a resting buy takes it at once; the trade
// stays ended after a restart.
func TestEndMemberTradesEndsAndFreesCapacity(t *testing.T) {
	st := &standing{}
	fx := newFixtureWith(t, func(f *fixture) { f.active = st.check })
	ctx := context.Background()
	// The seller's port (10G) is full with a running 10G trade; a
	// scheduled one follows.
	full := spec(book.Sell, "198.51.100.0/24", 10*Gbps, 5_000_000)
	if _, _, err := fx.book.Place(ctx, seller, full, ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := fx.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", 10*Gbps, 5_000_000), "")
	if err != nil || len(trades) != 1 {
		t.Fatalf("running trade: %v %v", trades, err)
	}
	running := trades[0]
	// seller2 offers to the buyer, whose port is full: its sell rests.
	if _, trades, err := fx.book.Place(ctx, seller2, spec(book.Sell, "198.51.100.0/24", 2*Gbps, 6_000_000), ""); err != nil || len(trades) != 0 {
		t.Fatalf("seller2's sell: %v %v, want it to rest (the buyer's port is full)", trades, err)
	}
	if _, trades, err := fx.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", 2*Gbps, 6_000_000), ""); err != nil || len(trades) != 0 {
		t.Fatalf("buyer's second buy: %v %v, want it to rest", trades, err)
	}
	removal := t0.Add(48 * time.Hour)
	fx.setClock(removal)
	st.set(seller, registry.Removed)
	ended, err := fx.book.EndMemberTrades(ctx, seller, "member AS64501 removed")
	if err != nil || len(ended) != 1 || ended[0].ID != running.ID {
		t.Fatalf("EndMemberTrades: %v %v, want trade %d", ended, err, running.ID)
	}
	got, err := fx.book.Trade(ctx, buyer, running.ID)
	if err != nil || !got.End.Equal(removal) || !got.ContractEnd.Equal(running.End) || got.EndReason != "member AS64501 removed" || got.Cancelled {
		t.Fatalf("stored trade: %+v %v, want it ended at %v", got, err, removal)
	}
	for _, asn := range []uint32{buyer, seller} {
		n := 0
		for _, e := range fx.seen() {
			if e.Type == book.TradeEnded && e.MemberASN == asn && e.Trade.ID == running.ID && e.Trade.End.Equal(removal) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("AS%d heard of the end %d times, want once", asn, n)
		}
	}
	// The buyer's port is free from now on: the resting buy trades with
	// seller2 at the next operation.
	if err := fx.book.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	ts, _ := fx.book.Trades(ctx, seller2, false)
	if len(ts) != 1 || !ts[0].Start.Equal(removal) {
		t.Fatalf("seller2's trades after the capacity was freed: %+v, want one starting at the removal", ts)
	}
	if again, err := fx.book.EndMemberTrades(ctx, seller, "again"); err != nil || len(again) != 0 {
		t.Errorf("EndMemberTrades again: %v %v, want nothing", again, err)
	}
	fx.restart(t)
	if got, _ := fx.book.Trade(ctx, buyer, running.ID); !got.End.Equal(removal) || got.EndReason == "" {
		t.Errorf("after a restart: %+v, want it ended", got)
	}
	if un, _ := fx.book.Unended(ctx, removal); len(un) != 1 || un[0].SellerASN != seller2 {
		t.Errorf("unended after the removal: %+v, want seller2's trade only", un)
	}
}

// A trade not started when its party is removed is cancelled.
func TestEndMemberTradesCancelsAScheduledTrade(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, _, err := fx.book.Place(ctx, seller, spec(book.Sell, "198.51.100.0/24", Gbps, 5_000_000), ""); err != nil {
		t.Fatal(err)
	}
	_, trades, err := fx.book.Place(ctx, buyer, spec(book.Buy, "198.51.100.0/24", Gbps, 5_000_000), "")
	if err != nil || len(trades) != 1 || !trades[0].Start.After(fx.clock()) {
		t.Fatalf("scheduled trade: %v %v", trades, err)
	}
	ended, err := fx.book.EndMemberTrades(ctx, buyer, "member AS64510 removed")
	if err != nil || len(ended) != 1 || !ended[0].Cancelled || !ended[0].End.Equal(trades[0].End) {
		t.Fatalf("EndMemberTrades: %+v %v, want the trade cancelled, its period kept", ended, err)
	}
	got, _ := fx.book.Trade(ctx, seller, trades[0].ID)
	if got.StatusAt(fx.clock()) != book.TradeCancelled || got.EndReason == "" {
		t.Errorf("stored: %+v, want cancelled with its reason", got)
	}
	n := 0
	for _, e := range fx.seen() {
		if e.Type == book.TradeCancelledEvent && e.Trade.ID == trades[0].ID {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d cancellation events, want one per party", n)
	}
}
