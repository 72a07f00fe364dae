package settle

import (
	"context"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/invalid"
)

// TradeUse is a use event with the trade's two members, so it can be sent
// to both (claim 16).
type TradeUse struct {
	UseEvent
	BuyerASN, SellerASN uint32
}

// UseEvents finds the sustained overuse and underuse in [from, to) of the
// trades member asn bought or sold (asn 0: every member's), billed figures
// chosen as billing chooses them under the default (buyer) policy. It works
// on a running month too: a run still going at the last sample is reported
// up to it.
func (s *Settlement) UseEvents(ctx context.Context, asn uint32, from, to time.Time) ([]TradeUse, error) {
	if !to.After(from) {
		return nil, invalid.New("period", "end %s is not after start %s", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	trades, err := book.MemberTradesIn(ctx, s.db, asn, from, to)
	if err != nil {
		return nil, err
	}
	stmt, err := s.db.PrepareContext(ctx, samplesOfTrade)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	var out []TradeUse
	var samples []Sample
	for _, t := range trades {
		lo, hi := max(store.Micros(t.Start), store.Micros(from)), min(store.Micros(t.End), store.Micros(to))
		if samples, err = readSamples(ctx, stmt, t.ID, lo, hi, samples[:0]); err != nil {
			return nil, err
		}
		points := UseOverTime(samples, store.Time(lo), store.Time(hi), BuyerFigure, s.cfg)
		for _, e := range s.cfg.Use.Events(t.ID, t.CapacityBps, points) {
			out = append(out, TradeUse{UseEvent: e, BuyerASN: t.BuyerASN, SellerASN: t.SellerASN})
		}
	}
	return out, nil
}
