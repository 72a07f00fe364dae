package manager

import (
	"net/netip"
	"sync"
	"time"
)

// Kind is what a decision did.
type Kind string

const (
	KindBuy    Kind = "buy"    // take an offer for an uncovered destination
	KindSwitch Kind = "switch" // take a better seller's offer for a covered one
	KindRenew  Kind = "renew"  // buy the next term from the same seller
	KindLapse  Kind = "lapse"  // let a trade end without renewing
	KindCancel Kind = "cancel" // cancel an open buy order of the manager's
	KindRoute  Kind = "route"  // send a destination's traffic another way
	// KindBreach: a traded path broke its limits for failover.rounds rounds.
	KindBreach     Kind = "breach"
	KindSellPlace  Kind = "sell_place"
	KindSellModify Kind = "sell_modify"
	KindSellCancel Kind = "sell_cancel"
	// KindHold: something was worth doing but a hold-down, the change cap,
	// the budget or a limit stopped it (journaled once per reason).
	KindHold Kind = "hold"
)

// changes tells whether a kind counts toward the change cap.
func (k Kind) changes() bool {
	switch k {
	case KindBuy, KindSwitch, KindCancel, KindSellPlace, KindSellModify, KindSellCancel:
		return true
	}
	return false
}

// IntentType is an action for the daemon.
type IntentType string

const (
	// TakeOffer: TradingService.TakeOffer(OfferOrderID, a buy spec with
	// Prefix, CapacityBps, MinBlockBps, PriceMicros as limit, Limits,
	// Start..End, ranking as the policy's), ClientOrderID as idempotency key.
	TakeOffer IntentType = "take_offer"
	// CancelOrder: TradingService.CancelOrder(OrderID).
	CancelOrder IntentType = "cancel_order"
	// PlaceSell: TradingService.PlaceOrder(sell limit order: Destination,
	// CapacityBps, MinBlockBps, PriceMicros, Limits as stated quality,
	// Start..End), ClientOrderID as idempotency key.
	PlaceSell IntentType = "place_sell"
	// ModifySell: TradingService.ModifyOrder(OrderID, CapacityBps, PriceMicros).
	ModifySell IntentType = "modify_sell"
	// Route: prefer Seller's traded route for Prefix (DefaultPath: install
	// no traded route for it, so traffic takes the member's own path).
	Route IntentType = "route"
	// ReportBreach: tell the arbiter that TradeID's path broke Limits
	// (Observed is the last round).
	ReportBreach IntentType = "report_breach"
)

// Intent is one action for the daemon; fields unused by its type are zero.
type Intent struct {
	Type          IntentType   `json:"type"`
	ClientOrderID string       `json:"client_order_id,omitempty"`
	OfferOrderID  uint64       `json:"offer_order_id,omitempty"`
	OrderID       uint64       `json:"order_id,omitempty"`
	TradeID       uint64       `json:"trade_id,omitempty"`
	Seller        uint32       `json:"seller,omitempty"`
	Prefix        netip.Prefix `json:"prefix,omitzero"`
	Destination   string       `json:"destination,omitempty"`
	CapacityBps   int64        `json:"capacity_bps,omitempty"`
	MinBlockBps   int64        `json:"min_block_bps,omitempty"`
	PriceMicros   int64        `json:"price_micros,omitempty"`
	Limits        Limits       `json:"limits,omitzero"`
	Start         time.Time    `json:"start,omitzero"`
	End           time.Time    `json:"end,omitzero"`
	Observed      *Quality     `json:"observed,omitempty"`
}

// Decision is one thing the manager decided, with the numbers that drove
// it: the journal `bwx-agent decisions` shows.
type Decision struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Kind   Kind      `json:"kind"`
	Shadow bool      `json:"shadow,omitempty"`
	Reason string    `json:"reason"`

	Prefix      netip.Prefix `json:"prefix,omitzero"`
	Destination string       `json:"destination,omitempty"`
	// Seller is the path chosen (or acted on); From the one left.
	Seller  uint32 `json:"seller,omitempty"`
	From    uint32 `json:"from,omitempty"`
	TradeID uint64 `json:"trade_id,omitempty"`
	OrderID uint64 `json:"order_id,omitempty"`
	// HoldUntil is when the destination may be bought again (cancel, lapse).
	HoldUntil time.Time `json:"hold_until,omitzero"`

	// Demand: the destination's 95th percentile and the size bought.
	DemandP95Bps int64 `json:"demand_p95_bps,omitempty"`
	SizeBps      int64 `json:"size_bps,omitempty"`
	// Money: price per Mbps per month, the monthly cost of this decision,
	// the budget in use before it and the budget.
	PriceMicros   int64 `json:"price_micros,omitempty"`
	MonthlyMicros int64 `json:"monthly_micros,omitempty"`
	BudgetUsed    int64 `json:"budget_used_micros,omitempty"`
	Budget        int64 `json:"budget_micros,omitempty"`
	// Quality of the current path and of the chosen one, and the gain
	// (current minus chosen: positive is better); SavingMicros is per
	// month against the default path's price (negative: it costs more).
	Current       *Quality `json:"current,omitempty"`
	Chosen        *Quality `json:"chosen,omitempty"`
	GainLatencyUs int64    `json:"gain_latency_us,omitempty"`
	GainLossPPM   int32    `json:"gain_loss_ppm,omitempty"`
	SavingMicros  int64    `json:"saving_micros,omitempty"`
	// The gains' 95 % margins: a gain within its margin is noise.
	GainLatencyMarginUs int64 `json:"gain_latency_margin_us,omitempty"`
	GainLossMarginPPM   int32 `json:"gain_loss_margin_ppm,omitempty"`
	// Compared is the comparison of the chosen path with the current one
	// that decided, each figure with its sample (shared/pathscore).
	Compared string `json:"compared,omitempty"`

	// Intents are what the daemon must do; none in shadow mode.
	Intents []Intent `json:"intents,omitempty"`
}

// Journal is a bounded ring of decisions, safe for concurrent use (Step
// writes, the status socket reads).
type Journal struct {
	mu   sync.Mutex
	buf  []Decision
	next int // index of the next write
	full bool
	seq  uint64
}

// NewJournal keeps the last size decisions.
func NewJournal(size int) *Journal {
	return &Journal{buf: make([]Decision, max(size, 1))}
}

// add numbers d and keeps it.
func (j *Journal) add(d Decision) Decision {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	d.Seq = j.seq
	j.buf[j.next] = d
	j.next = (j.next + 1) % len(j.buf)
	if j.next == 0 {
		j.full = true
	}
	return d
}

// Since returns the kept decisions with Seq > after, oldest first.
func (j *Journal) Since(after uint64) []Decision {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Decision
	n := j.next
	if j.full {
		n = len(j.buf)
	}
	for i := range n {
		d := j.buf[(j.next-n+i+len(j.buf))%len(j.buf)]
		if d.Seq > after {
			out = append(out, d)
		}
	}
	return out
}

// Last is the sequence number of the newest decision.
func (j *Journal) Last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq
}

// restore puts persisted decisions back (oldest first), keeping their
// sequence numbers.
func (j *Journal) restore(ds []Decision) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, d := range ds {
		if d.Seq <= j.seq {
			continue
		}
		j.seq = d.Seq
		j.buf[j.next] = d
		j.next = (j.next + 1) % len(j.buf)
		if j.next == 0 {
			j.full = true
		}
	}
}
