package book

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// EventType follows the gRPC contract's numbers.
type EventType int

const (
	TradeCreated EventType = 1
	// A trade ended before its agreed end, or was cancelled before it
	// started, because a party was removed (Engine.EndTrades); the event
	// carries the trade as it now stands.
	TradeEnded          EventType = 3
	TradeCancelledEvent EventType = 4 // the trade's status is then TradeCancelled
	OrderAccepted       EventType = 5
	OrderModified       EventType = 6
	OrderCancelled      EventType = 7
	OrderExpired        EventType = 8
	OrderFilled         EventType = 9
	// Settlement's notifications (claim 16 and credit control), appended
	// with AppendEvents: use outside a trade's capacity carries the trade
	// and Use; a credit event carries Credit and neither trade nor order.
	UseOver       EventType = 10
	UseUnder      EventType = 11
	CreditWarning EventType = 12
	CreditStopped EventType = 13
)

func (t EventType) String() string {
	switch t {
	case TradeCreated:
		return "trade_created"
	case TradeEnded:
		return "trade_ended"
	case TradeCancelledEvent:
		return "trade_cancelled"
	case OrderAccepted:
		return "order_accepted"
	case OrderModified:
		return "order_modified"
	case OrderCancelled:
		return "order_cancelled"
	case OrderExpired:
		return "order_expired"
	case OrderFilled:
		return "order_filled"
	case UseOver:
		return "use_over"
	case UseUnder:
		return "use_under"
	case CreditWarning:
		return "credit_warning"
	case CreditStopped:
		return "credit_stopped"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one entry of a member's event log: about a trade, an order, or
// (credit events) the member itself.
type Event struct {
	Seq       int64
	MemberASN uint32
	Type      EventType
	Time      time.Time
	Trade     *Trade
	Order     *Order
	Use       *UseNotice    // UseOver, UseUnder
	Credit    *CreditNotice // CreditWarning, CreditStopped
}

// UseNotice is a sustained run of a trade's use above or below its
// capacity, as settlement found it.
type UseNotice struct {
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	CapacityBps int64     `json:"capacity_bps"`
	PeakBps     int64     `json:"peak_bps"`
	MinBps      int64     `json:"min_bps"`
}

// CreditNotice is where a member stood against its credit limit when its
// credit state changed.
type CreditNotice struct {
	LimitMicros    int64 `json:"limit_micros"`
	UnpaidMicros   int64 `json:"unpaid_micros"`
	AccruedMicros  int64 `json:"accrued_micros"`
	OrdersMicros   int64 `json:"orders_micros"`
	ExposureMicros int64 `json:"exposure_micros"`
}

// Events returns asn's events after seq, oldest first, at most limit.
func (b *Book) Events(ctx context.Context, asn uint32, after int64, limit int) ([]Event, error) {
	var member, last int64
	err := eventCursor(ctx, b.db, asn).Scan(&member, &last)
	if errors.Is(err, sql.ErrNoRows) || limit <= 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rs []storedEvent
	for block := max(after, 0) / eventBlock; block <= last/eventBlock && len(rs) < limit; block++ {
		if rs, err = b.scanEvents(ctx, rs, asn, block, member, after, limit-len(rs)); err != nil {
			return nil, err
		}
	}
	out := make([]Event, 0, len(rs))
	for _, r := range rs {
		if r.trade != nil {
			ts, err := tradeByID(ctx, b.db, *r.trade)
			if err != nil || len(ts) != 1 {
				return nil, fmt.Errorf("event %d: trade %d: %v", r.ev.Seq, *r.trade, err)
			}
			r.ev.Trade = &ts[0]
		}
		if r.orderID != nil {
			o, err := getOrder(ctx, b.db, asn, *r.orderID)
			if err != nil {
				return nil, fmt.Errorf("event %d: %w", r.ev.Seq, err)
			}
			r.ev.Order = &o
		}
		out = append(out, r.ev)
	}
	return out, nil
}

// parseDetail fills a stored event's Use or Credit from its detail JSON.
func parseDetail(ev *Event, detail string) error {
	if detail == "" {
		return nil
	}
	var v any
	switch ev.Type {
	case UseOver, UseUnder:
		ev.Use = &UseNotice{}
		v = ev.Use
	case CreditWarning, CreditStopped:
		ev.Credit = &CreditNotice{}
		v = ev.Credit
	default:
		return nil // a detail this build does not know: the event stands without it
	}
	if err := json.Unmarshal([]byte(detail), v); err != nil {
		return fmt.Errorf("event %d: stored detail: %w", ev.Seq, err)
	}
	return nil
}

// AppendEvents adds settlement's notifications to the members' event logs
// through the same group commit as the book's own changes, then hands them
// to Notify (which wakes the members' streams). A use event is appended
// once per member and (trade, kind, start): sending it again is a no-op.
// It returns the events it appended, numbered. See Engine.Notify for what
// each event must carry; a use event's trade must exist and the member
// must be a party to it.
func (b *Book) AppendEvents(ctx context.Context, evs []Event) ([]Event, error) {
	fresh := make([]Event, 0, len(evs))
	keys := map[string]bool{}
	for i, ev := range evs {
		if ev.Trade != nil && ev.Trade.ID > 0 {
			party, err := isParty(ctx, b.db, ev.Trade.ID, ev.MemberASN)
			if err != nil {
				return nil, err
			}
			if !party {
				return nil, invalid.New(fmt.Sprintf("events[%d].trade", i), "AS%d has no trade %d", ev.MemberASN, ev.Trade.ID)
			}
		}
		if k := dedupKey(ev); k != "" {
			mk := fmt.Sprint(ev.MemberASN, " ", k)
			if keys[mk] {
				continue
			}
			keys[mk] = true
			sent, err := sentBefore(ctx, b.db, ev.MemberASN, k)
			if err != nil {
				return nil, err
			}
			if sent {
				continue
			}
		}
		fresh = append(fresh, ev)
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	ch, err := b.apply(func(e *Engine) (*Change, error) { return e.Notify(b.opt.Now(), fresh) })
	if err != nil {
		return nil, err
	}
	return ch.Events, nil
}
