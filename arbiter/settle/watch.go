package settle

import (
	"context"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
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
		return nil, invalid("period", "end %s is not after start %s", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT t.id, bm.asn, sm.asn, t.capacity_bps, t.start_us, t.end_us
		FROM trades t JOIN members bm ON bm.id = t.buyer_id JOIN members sm ON sm.id = t.seller_id
		WHERE t.start_us < ? AND t.end_us > ? AND t.cancelled = 0 AND (? = 0 OR bm.asn = ? OR sm.asn = ?) ORDER BY t.id`,
		store.Micros(to), store.Micros(from), asn, asn, asn)
	if err != nil {
		return nil, err
	}
	type tr struct {
		id, capBps, start, end int64
		buyer, seller          uint32
	}
	var trades []tr
	for rows.Next() {
		var t tr
		if err := rows.Scan(&t.id, &t.buyer, &t.seller, &t.capBps, &t.start, &t.end); err != nil {
			rows.Close()
			return nil, err
		}
		trades = append(trades, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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
		lo, hi := max(t.start, store.Micros(from)), min(t.end, store.Micros(to))
		if samples, err = readSamples(ctx, stmt, t.id, lo, hi, samples[:0]); err != nil {
			return nil, err
		}
		points := UseOverTime(samples, store.Time(lo), store.Time(hi), BuyerFigure, s.cfg)
		for _, e := range s.cfg.Use.Events(t.id, t.capBps, points) {
			out = append(out, TradeUse{UseEvent: e, BuyerASN: t.buyer, SellerASN: t.seller})
		}
	}
	return out, nil
}
