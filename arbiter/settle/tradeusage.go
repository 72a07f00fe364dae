package settle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/invalid"
)

// MaxUsageSlots is the most slots one TradeUsage call may span: a 31-day
// month of 5-minute slots (8,928) fits; a longer span is read in parts.
const MaxUsageSlots = 10_000

// SlotUse is one slot of a trade as settlement bills it: both parties'
// figures and the figure billed under the default policy (BuyerFigure).
type SlotUse struct {
	Slot
	Billed Choice
}

// Slot is the length of the slots usage is billed in (settle.slot).
func (s *Settlement) Slot() time.Duration { return s.cfg.Slot }

// TradeUsage is trade tradeID's slots in [from, to) that either party
// reported, with both figures and the one billing chooses under the default
// policy: the same samples, grouping and choice a settlement run uses, so
// what members see here is what they are billed (a run under another
// policy bills disputed slots at that policy's figure).
//
// Member asn must be the trade's buyer or its seller; 0 (the operator)
// reads any trade. A trade of other members is the same ErrNotFound as no
// trade at all. A zero from is the trade's start, a zero to the earlier of
// now and the trade's end. from rounds down and to rounds up to slot
// boundaries, so every slot is whole; both are then clipped to the
// trade's delivery. One call spans at most MaxUsageSlots slots.
func (s *Settlement) TradeUsage(ctx context.Context, asn uint32, tradeID int64, from, to time.Time) ([]SlotUse, error) {
	if tradeID <= 0 {
		return nil, invalid.New("trade_id", "is required (a positive trade id)")
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return nil, invalid.New("to", "%s is not after from %s", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	st, en, cancelled, err := book.TradeSpan(ctx, s.db, asn, tradeID)
	if errors.Is(err, book.ErrNotFound) {
		// The same answer for "no such trade" and "not yours".
		return nil, fmt.Errorf("trade %d: %w", tradeID, registry.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if cancelled {
		return nil, invalid.New("trade_id", "trade %d was cancelled: settlement bills none of its usage", tradeID)
	}
	start, end := store.Micros(st), store.Micros(en)
	slotUs := int64(s.cfg.Slot / time.Microsecond)
	floor := func(us int64) int64 { return us - ((us%slotUs)+slotUs)%slotUs }
	ceil := func(us int64) int64 { return -floor(-us) }
	lo, hi := start, min(end, store.Micros(s.now()))
	if !from.IsZero() {
		if f := store.Micros(from); f >= end {
			return nil, invalid.New("from", "%s is not before trade %d's end %s", from.UTC().Format(time.RFC3339), tradeID, store.Time(end).Format(time.RFC3339))
		}
		lo = max(start, floor(store.Micros(from)))
	}
	if !to.IsZero() {
		if t := store.Micros(to); t <= start {
			return nil, invalid.New("to", "%s is not after trade %d's start %s", to.UTC().Format(time.RFC3339), tradeID, store.Time(start).Format(time.RFC3339))
		}
		hi = min(end, ceil(store.Micros(to)))
	}
	if hi <= lo {
		return nil, nil // not begun yet
	}
	if n := (hi - floor(lo) + slotUs - 1) / slotUs; n > MaxUsageSlots {
		field := "to"
		if from.IsZero() && !to.IsZero() {
			field = "from"
		}
		return nil, invalid.New(field, "%s to %s is %d slots of %s, more than %d in one call: ask for at most %s at a time, e.g. from %s to %s",
			store.Time(lo).Format(time.RFC3339), store.Time(hi).Format(time.RFC3339), n, s.cfg.Slot, MaxUsageSlots, MaxUsageSlots*s.cfg.Slot,
			store.Time(ceil(hi)-MaxUsageSlots*slotUs).Format(time.RFC3339), store.Time(ceil(hi)).Format(time.RFC3339))
	}
	stmt, err := s.db.PrepareContext(ctx, samplesOfTrade)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	samples, err := readSamples(ctx, stmt, tradeID, lo, hi, nil)
	if err != nil {
		return nil, err
	}
	slots := Slots(samples, s.cfg.Slot, store.Time(lo), store.Time(hi))
	errs := s.cfg.Errors()
	out := make([]SlotUse, 0, len(slots))
	for _, sl := range slots {
		if c, ok := Choose(sl, BuyerFigure, errs); ok {
			out = append(out, SlotUse{Slot: sl, Billed: c})
		}
	}
	return out, nil
}
