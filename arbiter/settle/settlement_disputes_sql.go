package settle

// The settlement_disputes table's SQL: the slots a run found disputed, for
// the members' view.

import (
	"context"
	"database/sql"

	"github.com/bwxchange/bwx/arbiter/store"
)

func writeDisputes(ctx context.Context, tx *sql.Tx, runID int64, bills []TradeBill) error {
	const cols, row, batch = "run_id, trade_id, slot_us, buyer_bps, buyer_samples, seller_bps, seller_samples, used_bps, policy", "(?,?,?,?,?,?,?,?,?)", 100
	args := make([]any, 0, batch*9)
	flush := func(n int) error {
		if n == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, store.InsertRows("settlement_disputes", cols, row, n), args...)
		args = args[:0]
		return err
	}
	n := 0
	for _, b := range bills {
		for _, d := range b.Disputes {
			args = append(args, runID, d.TradeID, store.Micros(d.Start), d.BuyerBps, d.BuyerSamples, d.SellerBps, d.SellerSamples, d.UsedBps, d.Policy)
			if n++; n == batch {
				if err := flush(n); err != nil {
					return err
				}
				n = 0
			}
		}
	}
	return flush(n)
}

// Disputes lists the disputed slots of member asn's trades in p, from the
// period's latest run; like Invoice it takes only the caller's own ASN.
func (s *Settlement) Disputes(ctx context.Context, asn uint32, p Period) ([]Dispute, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.trade_id, d.slot_us, d.buyer_bps, d.buyer_samples, d.seller_bps, d.seller_samples, d.used_bps, d.policy
		FROM settlement_disputes d JOIN trades t ON t.id = d.trade_id JOIN members m ON m.id IN (t.buyer_id, t.seller_id)
		WHERE m.asn = ? AND d.run_id = (SELECT id FROM settlement_runs WHERE period_start_us = ? AND period_end_us = ? ORDER BY seq DESC LIMIT 1)
		ORDER BY d.trade_id, d.slot_us`, asn, store.Micros(p.Start), store.Micros(p.End))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Dispute
	for rows.Next() {
		var d Dispute
		var slot int64
		if err := rows.Scan(&d.TradeID, &slot, &d.BuyerBps, &d.BuyerSamples, &d.SellerBps, &d.SellerSamples, &d.UsedBps, &d.Policy); err != nil {
			return nil, err
		}
		d.Start = store.Time(slot)
		out = append(out, d)
	}
	return out, rows.Err()
}
