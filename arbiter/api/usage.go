package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
)

// UsageServer takes usage samples and serves settlement: members read their
// own invoices, disputes, use events and credit; the operator runs
// settlement and keeps credit.
type UsageServer struct {
	pb.UnimplementedUsageServiceServer
	Usage    *settle.Usage
	Settle   *settle.Settlement
	Registry *registry.Registry
	Log      *slog.Logger
	// Now is the clock that says whether a period is over; tests replace it.
	Now func() time.Time
	// Settled, if set, hears every run that wrote something (the daemon
	// logs and notifies use events and credit warnings from it).
	Settled func(context.Context, *settle.Result)
	// CreditChanged, if set, hears a member's credit after the operator
	// set its limit or booked a payment (the daemon notifies state changes).
	CreditChanged func(context.Context, settle.Credit)

	running sync.Mutex // one settlement run at a time
}

func (s *UsageServer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return clock.Now()
}

func (s *UsageServer) ReportUsage(ctx context.Context, r *pb.ReportUsageRequest) (*pb.ReportUsageResponse, error) {
	asn, err := requireMember(ctx)
	if err != nil {
		return nil, err
	}
	ss, err := samplesFromProto(r)
	if err != nil {
		return nil, err
	}
	acc, dup, err := s.Usage.Report(ctx, asn, ss)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReportUsageResponse{Accepted: int32(acc), Duplicates: int32(dup)}, nil
}

// samplesFromProto converts a member's usage report; settle.Usage.Report
// checks the samples.
func samplesFromProto(r *pb.ReportUsageRequest) ([]settle.Sample, error) {
	ss := make([]settle.Sample, 0, len(r.Samples))
	for i, x := range r.Samples {
		f := "samples[" + strconv.Itoa(i) + "]."
		start, err := fromTS(f+"interval_start", x.IntervalStart)
		if err != nil {
			return nil, err
		}
		end, err := fromTS(f+"interval_end", x.IntervalEnd)
		if err != nil {
			return nil, err
		}
		ss = append(ss, settle.Sample{IdempotencyKey: x.IdempotencyKey, TradeID: int64(x.TradeId), Role: settle.Role(x.Role),
			Start: start, End: end, Bps: x.BitsPerSecond, SampleCount: x.SampleCount})
	}
	return ss, nil
}

// settleStatus maps settlement's errors to codes, then the common ones.
func settleStatus(err error) error {
	var ce *settle.CreditError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce), errors.Is(err, settle.ErrSettled), errors.Is(err, settle.ErrNotSettled):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return toStatus(err)
}

func parsePeriod(field, s string) (settle.Period, error) {
	if s == "" {
		return settle.Period{}, invalidArg(field, "is required (a month, YYYY-MM, or START/END in RFC 3339)")
	}
	p, err := settle.ParsePeriod(s)
	if err != nil {
		return p, invalidArg(field, "%q: want a month written YYYY-MM, e.g. 2026-11, or START/END in RFC 3339 (%v)", s, err)
	}
	return p, nil
}

// ownOrNamed is the one member whose records a call reads: a member's own
// (naming another is PermissionDenied); the operator must name one.
func ownOrNamed(ctx context.Context, requested uint32) (uint32, error) {
	asn, err := scope(ctx, requested)
	if err != nil {
		return 0, err
	}
	if asn == 0 {
		return 0, invalidArg("member_asn", "is required: name the member whose records to read")
	}
	return asn, nil
}

// members is asn, or every registered member for 0 (the operator's "all").
func (s *UsageServer) members(ctx context.Context, asn uint32) ([]uint32, error) {
	if asn != 0 {
		return []uint32{asn}, nil
	}
	ms, err := s.Registry.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ASN)
	}
	return out, nil
}

func (s *UsageServer) ListInvoices(ctx context.Context, r *pb.ListInvoicesRequest) (*pb.ListInvoicesResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	var p settle.Period
	if r.Period != "" {
		if p, err = parsePeriod("period", r.Period); err != nil {
			return nil, err
		}
	}
	pg, err := pageOf(ctx, "invoices", r.PageSize, r.PageToken, asn, r.Period)
	if err != nil {
		return nil, err
	}
	asns, err := s.members(ctx, asn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListInvoicesResponse{}
	for _, a := range asns {
		var invs []settle.Invoice
		if r.Period == "" {
			invs, err = s.Settle.Invoices(ctx, a)
		} else {
			var inv settle.Invoice
			if inv, err = s.Settle.Invoice(ctx, a, p); err == nil {
				invs = []settle.Invoice{inv}
			} else if errors.Is(err, registry.ErrNotFound) {
				err = nil // no invoice of that member for the period
			}
		}
		if err != nil {
			return nil, settleStatus(err)
		}
		for _, inv := range invs {
			out.Invoices = append(out.Invoices, invoiceToProto(inv))
		}
	}
	out.Invoices, out.NextPageToken, err = cutAt(pg, out.Invoices, func(x *pb.Invoice) string { return fmt.Sprint(x.MemberAsn, " ", x.Period) })
	return out, err
}

// memberPeriod is what a read of one member's records for a period
// names: the member (as ownOrNamed) and the period.
func memberPeriod(ctx context.Context, member uint32, period string) (uint32, settle.Period, error) {
	asn, err := ownOrNamed(ctx, member)
	if err != nil {
		return 0, settle.Period{}, err
	}
	p, err := parsePeriod("period", period)
	return asn, p, err
}

func (s *UsageServer) GetInvoice(ctx context.Context, r *pb.GetInvoiceRequest) (*pb.GetInvoiceResponse, error) {
	asn, p, err := memberPeriod(ctx, r.MemberAsn, r.Period)
	if err != nil {
		return nil, err
	}
	inv, err := s.Settle.Invoice(ctx, asn, p)
	if err != nil {
		return nil, settleStatus(err)
	}
	var j, c bytes.Buffer
	if err := inv.WriteJSON(&j); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := inv.WriteCSV(&c); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.GetInvoiceResponse{Invoice: invoiceToProto(inv), DocumentJson: j.String(), DocumentCsv: c.String()}, nil
}

func (s *UsageServer) ListDisputes(ctx context.Context, r *pb.ListDisputesRequest) (*pb.ListDisputesResponse, error) {
	asn, p, err := memberPeriod(ctx, r.MemberAsn, r.Period)
	if err != nil {
		return nil, err
	}
	pg, err := pageOf(ctx, "disputes", r.PageSize, r.PageToken, asn, r.Period)
	if err != nil {
		return nil, err
	}
	ds, err := s.Settle.Disputes(ctx, asn, p)
	if err != nil {
		return nil, settleStatus(err)
	}
	out := &pb.ListDisputesResponse{}
	if ds, out.NextPageToken, err = cutAt(pg, ds, func(d settle.Dispute) string { return fmt.Sprint(d.TradeID, " ", d.Start.UnixMicro()) }); err != nil {
		return nil, err
	}
	for _, d := range ds {
		out.Disputes = append(out.Disputes, &pb.Dispute{TradeId: uint64(d.TradeID), SlotStart: ts(d.Start), BuyerBps: d.BuyerBps,
			BuyerSamples: d.BuyerSamples, SellerBps: d.SellerBps, SellerSamples: d.SellerSamples, UsedBps: d.UsedBps, Policy: d.Policy})
	}
	return out, nil
}

func (s *UsageServer) ListUseEvents(ctx context.Context, r *pb.ListUseEventsRequest) (*pb.ListUseEventsResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	from, to := settle.MonthOf(now).Start, now
	if r.Period != "" {
		p, err := parsePeriod("period", r.Period)
		if err != nil {
			return nil, err
		}
		from, to = p.Start, p.End
		if now.Before(to) {
			to = now
		}
		if !to.After(from) {
			return nil, invalidArg("period", "%s has not begun", r.Period)
		}
	}
	pg, err := pageOf(ctx, "use events", r.PageSize, r.PageToken, asn, r.Period)
	if err != nil {
		return nil, err
	}
	evs, err := s.Settle.UseEvents(ctx, asn, from, to)
	if err != nil {
		return nil, settleStatus(err)
	}
	out := &pb.ListUseEventsResponse{}
	if evs, out.NextPageToken, err = cutAt(pg, evs, func(e settle.TradeUse) string { return fmt.Sprint(e.TradeID, " ", e.Kind, " ", e.Start.UnixMicro()) }); err != nil {
		return nil, err
	}
	for _, e := range evs {
		out.Events = append(out.Events, useToProto(e))
	}
	return out, nil
}

func (s *UsageServer) GetCredit(ctx context.Context, r *pb.GetCreditRequest) (*pb.GetCreditResponse, error) {
	asn, err := scope(ctx, r.MemberAsn)
	if err != nil {
		return nil, err
	}
	asns, err := s.members(ctx, asn)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.GetCreditResponse{}
	for _, a := range asns {
		c, err := s.Settle.Credit(ctx, a)
		if err != nil {
			return nil, settleStatus(err)
		}
		out.Credits = append(out.Credits, creditToProto(c))
	}
	return out, nil
}

// GetTradeUsage is one trade's slots as settlement bills them. Who may
// read which trade is settle's rule (TradeUsage): the caller's identity
// goes in, never a member named in the request.
func (s *UsageServer) GetTradeUsage(ctx context.Context, r *pb.GetTradeUsageRequest) (*pb.GetTradeUsageResponse, error) {
	if r.TradeId == 0 || r.TradeId > math.MaxInt64 {
		return nil, invalidArg("trade_id", "want a trade id, got %d", r.TradeId)
	}
	from, err := fromTS("from", r.From)
	if err != nil {
		return nil, err
	}
	to, err := fromTS("to", r.To)
	if err != nil {
		return nil, err
	}
	slots, err := s.Settle.TradeUsage(ctx, callerFrom(ctx).ASN(), int64(r.TradeId), from, to)
	if err != nil {
		return nil, settleStatus(err)
	}
	out := &pb.GetTradeUsageResponse{TradeId: r.TradeId, SlotSeconds: int32(s.Settle.Slot() / time.Second), Slots: make([]*pb.UsageSlot, 0, len(slots))}
	for _, u := range slots {
		out.Slots = append(out.Slots, &pb.UsageSlot{Start: ts(u.Start), BuyerBps: u.Buyer.Bps, BuyerSamples: u.Buyer.Samples, BuyerReported: u.Buyer.OK,
			SellerBps: u.Seller.Bps, SellerSamples: u.Seller.Samples, SellerReported: u.Seller.OK, BilledBps: u.Billed.Bps,
			Disputed: u.Billed.Disputed, OneSided: u.Billed.Fallback})
	}
	return out, nil
}

// RunSettlement settles a period. The billing is read and computed outside
// any write transaction, so only the final write holds sqlite's write lock
// (the book's commits wait for that part only); runs are serialized here.
func (s *UsageServer) RunSettlement(ctx context.Context, r *pb.RunSettlementRequest) (*pb.RunSettlementResponse, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	p, err := parsePeriod("period", r.Period)
	if err != nil {
		return nil, err
	}
	if now := s.now(); p.End.After(now) {
		return nil, invalidArg("period", "%s is not over until %s: settle a period once it has ended", r.Period, p.End.Format(time.RFC3339))
	}
	policy := settle.BuyerFigure
	if r.Policy != "" {
		if policy, err = settle.ParsePolicy(r.Policy); err != nil {
			return nil, invalidArg("policy", "%q: want buyer, seller, min or max", r.Policy)
		}
	}
	if !s.running.TryLock() {
		return nil, status.Error(codes.Aborted, "another settlement run is in progress; try again when it has finished")
	}
	defer s.running.Unlock()
	start := clock.Now()
	var res *settle.Result
	if r.Correct {
		res, err = s.Settle.Correct(ctx, p, policy)
	} else {
		res, err = s.Settle.Run(ctx, p, policy)
	}
	if err != nil {
		return nil, settleStatus(err)
	}
	if s.Log != nil {
		s.Log.Info("settlement run", "period", p.String(), "policy", policy.String(), "correct", r.Correct, "run_id", res.RunID,
			"seq", res.Seq, "entries", res.Entries, "invoices", len(res.Invoices), "trades", res.Exchange.Trades,
			"fee_income_micros", res.Exchange.FeeIncome, "balance_micros", res.Exchange.Balance, "took", clock.Since(start).String())
	}
	if s.Settled != nil {
		s.Settled(ctx, res)
	}
	out := &pb.RunSettlementResponse{RunId: uint64(res.RunID), Seq: int32(res.Seq), Period: res.Period.String(), Policy: res.Policy.String(),
		Entries: int32(res.Entries), Exchange: exchangeToProto(res.Exchange)}
	for _, inv := range res.Invoices {
		out.Invoices = append(out.Invoices, invoiceToProto(inv))
	}
	for _, e := range UseWithMembers(res) {
		out.UseEvents = append(out.UseEvents, useToProto(e))
	}
	for _, a := range res.SetAside {
		out.SetAside = append(out.SetAside, &pb.SetAsideTrade{TradeId: uint64(a.TradeID), Reason: a.Reason})
		if s.Log != nil {
			s.Log.Warn("settlement: trade set aside", "period", p.String(), "trade", a.TradeID, "reason", a.Reason)
		}
	}
	return out, nil
}

// UseWithMembers names both members of each of a run's use events, from
// the run's invoices.
func UseWithMembers(res *settle.Result) []settle.TradeUse {
	buyer, seller := map[int64]uint32{}, map[int64]uint32{}
	for _, inv := range res.Invoices {
		for _, l := range inv.Lines {
			if l.Side == "bought" {
				buyer[l.TradeID], seller[l.TradeID] = inv.ASN, l.CounterpartyASN
			}
		}
	}
	out := make([]settle.TradeUse, 0, len(res.Use))
	for _, e := range res.Use {
		out = append(out, settle.TradeUse{UseEvent: e, BuyerASN: buyer[e.TradeID], SellerASN: seller[e.TradeID]})
	}
	return out
}

func (s *UsageServer) SetCreditLimit(ctx context.Context, r *pb.SetCreditLimitRequest) (*pb.Credit, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if r.MemberAsn == 0 {
		return nil, invalidArg("member_asn", "is required")
	}
	if r.LimitMicros < 0 {
		return nil, invalidArg("limit_micros", "must not be negative, got %d", r.LimitMicros)
	}
	if err := s.Settle.SetCreditLimit(ctx, r.MemberAsn, r.LimitMicros); err != nil {
		return nil, settleStatus(err)
	}
	return s.credit(ctx, r.MemberAsn, "credit limit set")
}

func (s *UsageServer) RecordPayment(ctx context.Context, r *pb.RecordPaymentRequest) (*pb.Credit, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if r.MemberAsn == 0 {
		return nil, invalidArg("member_asn", "is required")
	}
	if r.AmountMicros <= 0 {
		return nil, invalidArg("amount_micros", "must be positive, got %d", r.AmountMicros)
	}
	if len(r.Memo) > 1000 {
		return nil, invalidArg("memo", "longer than 1000 bytes")
	}
	if err := s.Settle.RecordPayment(ctx, r.MemberAsn, r.AmountMicros, r.Memo); err != nil {
		return nil, settleStatus(err)
	}
	return s.credit(ctx, r.MemberAsn, "payment recorded", "amount_micros", r.AmountMicros)
}

func (s *UsageServer) credit(ctx context.Context, asn uint32, what string, args ...any) (*pb.Credit, error) {
	c, err := s.Settle.Credit(ctx, asn)
	if err != nil {
		return nil, settleStatus(err)
	}
	if s.Log != nil {
		s.Log.Info(what, append(args, "member", asn, "limit_micros", c.LimitMicros, "exposure_micros", c.ExposureMicros, "state", c.State.String())...)
	}
	if s.CreditChanged != nil {
		s.CreditChanged(ctx, c)
	}
	return creditToProto(c), nil
}

func (s *UsageServer) GetExchangeStatement(ctx context.Context, r *pb.GetExchangeStatementRequest) (*pb.ExchangeStatement, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	p, err := parsePeriod("period", r.Period)
	if err != nil {
		return nil, err
	}
	ex, err := s.Settle.ExchangeStatement(ctx, p)
	if err != nil {
		return nil, settleStatus(err)
	}
	return exchangeToProto(ex), nil
}

func invoiceToProto(inv settle.Invoice) *pb.Invoice {
	out := &pb.Invoice{Id: fmt.Sprintf("AS%d-%s", inv.ASN, inv.Period), MemberAsn: inv.ASN, PeriodStart: ts(inv.Start), PeriodEnd: ts(inv.End),
		TotalMicros: inv.Net, Period: inv.Period, PaidMicros: inv.Paid, ReceivedMicros: inv.Received, FeesMicros: inv.Fees}
	for _, l := range inv.Lines {
		dir := "from"
		if l.Side == "sold" {
			dir = "to"
		}
		out.Lines = append(out.Lines, &pb.InvoiceLine{TradeId: uint64(l.TradeID), Description: fmt.Sprintf("%s %s AS%d", l.Side, dir, l.CounterpartyASN),
			AmountMicros: l.Net, Side: l.Side, CounterpartyAsn: l.CounterpartyASN, CapacityBps: l.CapacityBps, PriceMicros: l.PriceMicros,
			From: ts(l.From), To: ts(l.To), Slots: int32(l.Slots), P95Bps: l.P95Bps, OverageBps: l.OverageBps, UndeliveredSeconds: l.UndeliveredSeconds, BreachedSeconds: l.BreachedSeconds,
			DisputedBreachSeconds: l.DisputedBreachSeconds, Figure: l.Figure, DisputedSlots: int32(l.DisputedSlots), FallbackSlots: int32(l.FallbackSlots), CommittedMicros: l.Committed,
			OverageMicros: l.Overage, SlaCreditMicros: l.Credit, FeeMicros: l.Fee})
	}
	return out
}

func exchangeToProto(e settle.Exchange) *pb.ExchangeStatement {
	return &pb.ExchangeStatement{Period: e.Period, Members: int32(e.Members), Trades: int32(e.Trades), GrossMicros: e.Gross,
		FeeIncomeMicros: e.FeeIncome, MemberNetMicros: e.MemberNet, BalanceMicros: e.Balance}
}

func creditToProto(c settle.Credit) *pb.Credit {
	return &pb.Credit{MemberAsn: c.ASN, Limited: c.Limited, LimitMicros: c.LimitMicros, UnpaidMicros: c.UnpaidMicros,
		AccruedMicros: c.AccruedMicros, OrdersMicros: c.OrdersMicros, ExposureMicros: c.ExposureMicros, State: pb.CreditState(c.State)}
}

func useToProto(e settle.TradeUse) *pb.UseEvent {
	return &pb.UseEvent{TradeId: uint64(e.TradeID), Kind: pb.UseKind(e.Kind), Start: ts(e.Start), End: ts(e.End), CapacityBps: e.CapacityBps,
		PeakBps: e.PeakBps, MinBps: e.MinBps, BuyerAsn: e.BuyerASN, SellerAsn: e.SellerASN}
}
