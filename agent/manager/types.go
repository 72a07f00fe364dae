package manager

import (
	"net/netip"
	"time"
)

// DefaultPath is the seller number of the member's own path toward a
// destination: no traded route.
const DefaultPath uint32 = 0

// DemandSample is the traffic of one capture interval toward one
// destination prefix through one path (capture.Figure, with the next hop's
// MAC mapped to the seller's ASN, or DefaultPath).
type DemandSample struct {
	Prefix        netip.Prefix
	Seller        uint32
	Start, End    time.Time
	BitsPerSecond int64
	// Samples is how many frames were sampled: the figure's confidence.
	Samples int64
}

// PathSample is one probe round toward a prefix through one path
// (probe.Measurement; Seller is its ASN, DefaultPath for the member's own
// path).
type PathSample struct {
	Seller uint32
	Prefix netip.Prefix
	At     time.Time
	// Sent and Received count echo requests and timely replies.
	Sent, Received int32
	LatencyUs      int64
	JitterUs       int64
	LossPPM        int32
}

// Quality is a path's measured (or smoothed) quality, with the samples
// behind it: the path score (shared/pathscore) counts a difference only
// when it is significant.
type Quality struct {
	// LatencyUs and JitterUs are means.
	LatencyUs int64 `json:"latency_us"`
	JitterUs  int64 `json:"jitter_us"`
	LossPPM   int32 `json:"loss_ppm"`
	// Probes is how many echo requests the figures count (the loss's
	// sample size; 0: unknown), Rounds how many probe rounds.
	Probes int64 `json:"probes,omitempty"`
	Rounds int   `json:"rounds,omitempty"`
	// LatencyErrUs and JitterErrUs are the standard errors of the means.
	LatencyErrUs int64 `json:"latency_err_us,omitempty"`
	JitterErrUs  int64 `json:"jitter_err_us,omitempty"`
	// LossDispersion is how much burstier than independent probes the
	// loss was between rounds (at least 1; pathscore.Dispersion).
	LossDispersion float64 `json:"loss_dispersion,omitempty"`
}

// Limits are quality limits; 0 means no limit (as an unset proto field).
type Limits struct {
	MaxLatencyUs int64 `json:"max_latency_us,omitempty"`
	MaxJitterUs  int64 `json:"max_jitter_us,omitempty"`
	MaxLossPPM   int32 `json:"max_loss_ppm,omitempty"`
}

// Meets tells whether q is within l.
func (l Limits) Meets(q Quality) bool {
	return (l.MaxLatencyUs == 0 || q.LatencyUs <= l.MaxLatencyUs) &&
		(l.MaxJitterUs == 0 || q.JitterUs <= l.MaxJitterUs) &&
		(l.MaxLossPPM == 0 || q.LossPPM <= l.MaxLossPPM)
}

// Offer is one sell offer from ListOffers, asked for Prefix (the demand
// prefix the daemon queried with a buy spec).
type Offer struct {
	OrderID      uint64
	Seller       uint32
	Prefix       netip.Prefix
	AvailableBps int64
	MinBlockBps  int64
	// PriceMicros is per Mbps per month.
	PriceMicros int64
	// Measured is the exchange's measured quality toward the destination
	// through this seller; nil if unknown.
	Measured *Quality
	// Start and End bound the delivery period the offer can serve; a zero
	// End is open-ended.
	Start, End time.Time
}

// Side of an order or trade, from the member's point of view.
type Side uint8

const (
	Buy Side = iota + 1
	Sell
)

func (s Side) String() string {
	switch s {
	case Buy:
		return "buy"
	case Sell:
		return "sell"
	}
	return "unknown"
}

// Order is one of the member's open orders (ListOrders open_only).
type Order struct {
	ID   uint64
	Side Side
	// Prefix is the destination when it is a prefix; Destination the
	// destination as written otherwise (a route type such as "customer").
	Prefix        netip.Prefix
	Destination   string
	CapacityBps   int64
	FilledBps     int64
	MinBlockBps   int64
	PriceMicros   int64
	Start, End    time.Time
	ClientOrderID string
}

// Remaining is what the order can still trade.
func (o Order) Remaining() int64 { return max(0, o.CapacityBps-o.FilledBps) }

// Trade is one of the member's trades that has not ended (scheduled or
// active): ListTrades plus the trade event stream.
type Trade struct {
	ID       uint64
	Side     Side
	Seller   uint32
	Buyer    uint32
	Prefixes []netip.Prefix
	// CapacityBps and PriceMicros (per Mbps per month) as traded.
	CapacityBps int64
	PriceMicros int64
	Start, End  time.Time
	// Limits are the quality limits of the buy order behind the trade; the
	// manager fills them in for the trades it buys (see Intent.Limits).
	Limits Limits
}

// Covers tells whether one of the trade's prefixes contains p.
func (t Trade) Covers(p netip.Prefix) bool {
	for _, q := range t.Prefixes {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// ActiveAt tells whether the trade delivers at instant now.
func (t Trade) ActiveAt(now time.Time) bool {
	return !now.Before(t.Start) && now.Before(t.End)
}

// Port is the member's switch port.
type Port struct {
	CapacityBps int64
	// CommittedBps is what trades already reserve on the port now (both
	// sides, as the arbiter counts it).
	CommittedBps int64
	// OtherUseBps is measured use of the port outside trades (e.g. public
	// peering on the same port); the seller keeps it free.
	OtherUseBps int64
}

// Inputs is what one Step decides from: the market as the daemon last
// fetched it and the clock.
type Inputs struct {
	Now time.Time
	// Offers for the destinations Wanted returned (any order).
	Offers []Offer
	// Orders are the member's open orders, Trades its trades that have not
	// ended (both sides).
	Orders []Order
	Trades []Trade
	Port   Port
}
