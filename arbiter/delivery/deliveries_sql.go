package delivery

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The deliveries table's SQL: apply writes one change of a session's state
// into the record, readInto reads trades' intervals.

func apply(ctx context.Context, tx *sql.Tx, c Change) error {
	at, session := store.Micros(c.At), c.Session.String()
	var id, from int64
	var delivered bool
	var reason, cause string
	err := tx.QueryRowContext(ctx, `SELECT id, from_us, delivered, reason, cause FROM deliveries
		WHERE trade_id = ? AND session = ? AND to_us IS NULL`, c.TradeID, session).Scan(&id, &from, &delivered, &reason, &cause)
	switch {
	case err == sql.ErrNoRows:
		id = 0
	case err != nil:
		return err
	case !c.Ended && delivered == c.Delivered && reason == c.Reason && cause == c.Cause:
		return nil // the same state goes on
	}
	if id != 0 {
		// A clock that stepped back never makes an interval end before it
		// began.
		at = max(at, from)
		if at == from {
			// A state that lasted no time (the instant between a
			// session coming up and its route arriving) is no record.
			if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE id = ?`, id); err != nil {
				return err
			}
			if c.Ended {
				return nil
			}
			// The state before it goes on if it is the new one.
			res, err := tx.ExecContext(ctx, `UPDATE deliveries SET to_us = NULL WHERE trade_id = ? AND session = ? AND to_us = ?
				AND delivered = ? AND reason = ? AND cause = ?`, c.TradeID, session, at, c.Delivered, c.Reason, c.Cause)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				return nil
			}
		} else if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET to_us = ? WHERE id = ?`, at, id); err != nil {
			return err
		}
	}
	if c.Ended {
		return nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO deliveries (trade_id, session, from_us, delivered, reason, cause) VALUES (?, ?, ?, ?, ?, ?)`,
		c.TradeID, session, at, c.Delivered, c.Reason, c.Cause)
	return err
}

func (r *Record) readInto(ctx context.Context, out map[int64][]Interval, tradeIDs []int64, open bool) error {
	args := make([]any, len(tradeIDs))
	for i, id := range tradeIDs {
		args[i] = id
	}
	q := `SELECT trade_id, session, from_us, to_us, delivered, reason, cause FROM deliveries
		WHERE trade_id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(args)), ",") + `)`
	if open {
		q += ` AND to_us IS NULL`
	}
	rows, err := r.db.QueryContext(ctx, q+` ORDER BY trade_id, from_us, id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var iv Interval
		var session string
		var from int64
		var to sql.NullInt64
		if err := rows.Scan(&iv.TradeID, &session, &from, &to, &iv.Delivered, &iv.Reason, &iv.Cause); err != nil {
			return err
		}
		if iv.Session, err = netip.ParseAddr(session); err != nil {
			return fmt.Errorf("delivery record: trade %d: stored session %q: %w", iv.TradeID, session, err)
		}
		iv.From = store.Time(from)
		if to.Valid {
			iv.To = store.Time(to.Int64)
		}
		out[iv.TradeID] = append(out[iv.TradeID], iv)
	}
	return rows.Err()
}
