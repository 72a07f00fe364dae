package book

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// eventBlock is how many sequence numbers the events_member index groups
// ahead of the member (migration 0009): a commit's events share a few index
// pages, and a reader seeks once per block.
const eventBlock = 4096

// eventsInBlock reads one block of a member's events; its seq / 4096 must
// be the index's expression, word for word.
const eventsInBlock = `SELECT seq, type, created_us, trade_id, order_id, detail FROM events
	WHERE seq / 4096 = ? AND member_id = ? AND seq > ? ORDER BY seq LIMIT ?`

type storedEvent struct {
	ev             Event
	trade, orderID *int64
}

// eventCursor reads member asn's id and the latest sequence number of
// every member's events, as one row to scan.
func eventCursor(ctx context.Context, q registry.Querier, asn uint32) *sql.Row {
	return q.QueryRowContext(ctx, "SELECT id, (SELECT coalesce(max(seq), 0) FROM events) FROM members WHERE asn = ?", asn)
}

// scanEvents appends the rows of one block of asn's events (each
// connection keeps the statement prepared).
func (b *Book) scanEvents(ctx context.Context, rs []storedEvent, asn uint32, block, member, after int64, limit int) ([]storedEvent, error) {
	rows, err := b.db.QueryContext(ctx, eventsInBlock, block, member, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var r storedEvent
		var us int64
		var detail sql.NullString
		if err := rows.Scan(&r.ev.Seq, &r.ev.Type, &us, &r.trade, &r.orderID, &detail); err != nil {
			return nil, err
		}
		r.ev.MemberASN, r.ev.Time = asn, store.Time(us)
		if err := parseDetail(&r.ev, detail.String); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// LastEventType is the type of asn's latest event among types, which are
// settlement's notices (UseOver and up), or 0 if it has none (settlement
// asks which credit state a member was last told).
func (b *Book) LastEventType(ctx context.Context, asn uint32, types ...EventType) (EventType, error) {
	if len(types) == 0 {
		return 0, nil
	}
	args := []any{asn}
	for _, t := range types {
		if t < UseOver {
			return 0, fmt.Errorf("LastEventType: %v is not a settlement notice", t)
		}
		args = append(args, t)
	}
	var t EventType
	err := b.db.QueryRowContext(ctx, lastNotice(len(types)), args...).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return t, err
}

// lastNotice selects a member's latest event among n types of
// settlement's notices (10 and up): the events_notice index holds them
// alone, and a query names its condition to use it.
func lastNotice(n int) string {
	return `SELECT e.type FROM events e JOIN members m ON m.id = e.member_id
		WHERE m.asn = ? AND e.type >= 10 AND e.type IN (` + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `) ORDER BY e.seq DESC LIMIT 1`
}

// sentBefore reports whether member asn has an event with dedup key k.
func sentBefore(ctx context.Context, q registry.Querier, asn uint32, k string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM events e JOIN members m ON m.id = e.member_id
				WHERE m.asn = ? AND e.dedup = ?`, asn, k).Scan(&n)
	return n > 0, err
}

// A commit's event writes (committer.commit).
const (
	eventCols = "seq, member_id, type, trade_id, order_id, created_us, detail, dedup"
	eventRow  = "(?,?,?,?,?,?,?,?)"
	// A notification sent again (same member and dedup key) is dropped.
	eventConflict = " ON CONFLICT DO NOTHING"
)

var kindEvent = &rowKind{8, 128, func(n int) string { return store.InsertRows("events", eventCols, eventRow, n) + eventConflict }}

// writeEvents writes a batch's events, with a as the buffer of statement
// arguments, which it returns.
func (c *committer) writeEvents(ctx context.Context, tx *sql.Tx, chs []*Change, a []any) ([]any, error) {
	for _, ch := range chs {
		for _, e := range ch.Events {
			var trade, order, detail, dedup any
			if e.Trade != nil {
				trade = e.Trade.ID
			}
			if e.Order != nil {
				order = e.Order.ID
			}
			if d, err := eventDetail(e); err != nil {
				return a, fmt.Errorf("event %d: %w", e.Seq, err)
			} else if d != "" {
				detail = d
			}
			if k := dedupKey(e); k != "" {
				dedup = k
			}
			member, err := c.memberID(ctx, e.MemberASN)
			if err != nil {
				return a, fmt.Errorf("event %d: %w", e.Seq, err)
			}
			a = append(a, e.Seq, member, e.Type, trade, order, store.Micros(e.Time), detail, dedup)
		}
	}
	if err := c.exec(ctx, tx, kindEvent, a); err != nil {
		return a, fmt.Errorf("events: %w", err)
	}
	return a, nil
}

// eventDetail is what an event carries beyond its trade or order, as the
// events table's detail JSON ("" for none).
func eventDetail(e Event) (string, error) {
	var v any
	switch {
	case e.Use != nil:
		v = e.Use
	case e.Credit != nil:
		v = e.Credit
	default:
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// dedupKey names a notification so that sending it again changes nothing:
// a use event by (trade, kind, start). Other events are never repeated.
func dedupKey(e Event) string {
	if (e.Type == UseOver || e.Type == UseUnder) && e.Trade != nil && e.Use != nil {
		return fmt.Sprintf("use:%d:%d:%d", e.Trade.ID, e.Type, store.Micros(e.Use.Start))
	}
	return ""
}
