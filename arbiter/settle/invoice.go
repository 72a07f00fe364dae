package settle

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Line is one trade on a member's invoice. Amounts are micro-units from the
// member's side: negative is what it pays, positive what it receives.
type Line struct {
	TradeID         int64     `json:"trade_id"`
	Side            string    `json:"side"` // "bought" or "sold"
	CounterpartyASN uint32    `json:"counterparty_asn"`
	CapacityBps     int64     `json:"capacity_bps"`
	PriceMicros     int64     `json:"price_micros"` // per Mbps per month
	From            time.Time `json:"from"`
	To              time.Time `json:"to"`
	Slots           int       `json:"slots"`
	P95Bps          int64     `json:"p95_bps"`
	OverageBps      int64     `json:"overage_bps"`
	// UndeliveredSeconds is the time not delivered through no fault of
	// the buyer, and not charged.
	UndeliveredSeconds float64 `json:"undelivered_seconds"`
	BreachedSeconds    float64 `json:"breached_seconds"`
	// DisputedBreachSeconds is breach time on the buyer's word alone,
	// corroborated by no other vantage: not credited.
	DisputedBreachSeconds float64 `json:"disputed_breach_seconds"`
	Figure                string  `json:"figure"` // the policy for disputed slots
	DisputedSlots         int     `json:"disputed_slots"`
	FallbackSlots         int     `json:"fallback_slots"` // slots only the other party reported
	Committed             int64   `json:"committed_micros"`
	Overage               int64   `json:"overage_micros"`
	Credit                int64   `json:"sla_credit_micros"`
	Fee                   int64   `json:"fee_micros"`
	Net                   int64   `json:"net_micros"`
}

// Invoice is one member's statement for a period: what it bought and sold,
// netted. Net = Received - Paid - Fees.
type Invoice struct {
	ASN      uint32    `json:"asn"`
	Period   string    `json:"period"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Lines    []Line    `json:"lines"`
	Paid     int64     `json:"paid_micros"`     // for what it bought, after credits
	Received int64     `json:"received_micros"` // for what it sold, after credits
	Fees     int64     `json:"fees_micros"`
	Net      int64     `json:"net_micros"` // positive: the exchange owes the member
}

// Exchange is the exchange's own statement: the fees it earned against the
// members' net. Balance is always zero; anything else is a bug.
type Exchange struct {
	Period    string `json:"period"`
	Members   int    `json:"members"`
	Trades    int    `json:"trades"`
	Gross     int64  `json:"gross_micros"`      // paid by buyers to sellers
	FeeIncome int64  `json:"fee_income_micros"` // both sides' fees
	MemberNet int64  `json:"member_net_micros"` // sum of the invoices' Net
	Balance   int64  `json:"balance_micros"`    // MemberNet + FeeIncome
}

// Invoices nets bills into one invoice per member (sorted by ASN) and the
// exchange's statement. Every line amount comes from a bill unchanged, so
// each trade's money leaves one member and reaches another or the exchange.
func Invoices(p Period, bills []TradeBill) ([]Invoice, Exchange) {
	by := map[uint32]*Invoice{}
	inv := func(asn uint32) *Invoice {
		if by[asn] == nil {
			by[asn] = &Invoice{ASN: asn, Period: p.String(), Start: p.Start.UTC(), End: p.End.UTC()}
		}
		return by[asn]
	}
	ex := Exchange{Period: p.String()}
	for _, b := range bills {
		if b.From.IsZero() {
			continue // not delivered in the period
		}
		ex.Trades++
		ex.Gross += b.Gross
		ex.FeeIncome += b.BuyerFee + b.SellerFee
		t := b.Trade
		base := Line{TradeID: t.ID, CapacityBps: t.CapacityBps, PriceMicros: t.PriceMicros, From: b.From, To: b.To,
			Slots: b.Slots, P95Bps: b.P95Bps, OverageBps: b.OverageBps, UndeliveredSeconds: float64(b.UndeliveredMicros) / 1e6, BreachedSeconds: float64(b.BreachedMicros) / 1e6,
			DisputedBreachSeconds: float64(b.DisputedBreachMicros) / 1e6,
			Figure:                b.Policy.String(), DisputedSlots: b.DisputedSlots, FallbackSlots: b.FallbackSlots}

		bl := base
		bl.Side, bl.CounterpartyASN = "bought", t.SellerASN
		bl.Committed, bl.Overage, bl.Credit, bl.Fee = -b.Committed, -b.Overage, b.Credit, -b.BuyerFee
		bl.Net = -b.Gross - b.BuyerFee
		bi := inv(t.BuyerASN)
		bi.Lines = append(bi.Lines, bl)
		bi.Paid += b.Gross
		bi.Fees += b.BuyerFee
		bi.Net += bl.Net

		sl := base
		sl.Side, sl.CounterpartyASN = "sold", t.BuyerASN
		sl.Committed, sl.Overage, sl.Credit, sl.Fee = b.Committed, b.Overage, -b.Credit, -b.SellerFee
		sl.Net = b.Gross - b.SellerFee
		si := inv(t.SellerASN)
		si.Lines = append(si.Lines, sl)
		si.Received += b.Gross
		si.Fees += b.SellerFee
		si.Net += sl.Net
	}
	out := make([]Invoice, 0, len(by))
	for _, i := range by {
		slices.SortFunc(i.Lines, func(a, b Line) int {
			if a.TradeID != b.TradeID {
				return int(min(max(a.TradeID-b.TradeID, -1), 1))
			}
			return cmp.Compare(a.Side, b.Side)
		})
		ex.MemberNet += i.Net
		out = append(out, *i)
	}
	slices.SortFunc(out, func(a, b Invoice) int { return int(int64(a.ASN) - int64(b.ASN)) })
	ex.Members = len(out)
	ex.Balance = ex.MemberNet + ex.FeeIncome
	return out, ex
}

// WriteJSON writes the invoice as indented JSON.
func (i Invoice) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(i)
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"asn", "period", "trade_id", "side", "counterparty_asn", "capacity_bps", "price_micros", "from", "to",
	"slots", "p95_bps", "overage_bps", "undelivered_seconds", "breached_seconds", "disputed_breach_seconds", "figure", "disputed_slots", "fallback_slots",
	"committed_micros", "overage_micros", "sla_credit_micros", "fee_micros", "net_micros"}

// WriteCSV writes one row per line and a last "total" row whose net is the
// invoice's Net.
func (i Invoice) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	d := func(v int64) string { return strconv.FormatInt(v, 10) }
	asn, ts := strconv.FormatUint(uint64(i.ASN), 10), func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	var c, o, cr, f int64
	for _, l := range i.Lines {
		cw.Write([]string{asn, i.Period, d(l.TradeID), l.Side, strconv.FormatUint(uint64(l.CounterpartyASN), 10), d(l.CapacityBps), d(l.PriceMicros),
			ts(l.From), ts(l.To), strconv.Itoa(l.Slots), d(l.P95Bps), d(l.OverageBps), strconv.FormatFloat(l.UndeliveredSeconds, 'f', -1, 64), strconv.FormatFloat(l.BreachedSeconds, 'f', -1, 64),
			strconv.FormatFloat(l.DisputedBreachSeconds, 'f', -1, 64), l.Figure, strconv.Itoa(l.DisputedSlots), strconv.Itoa(l.FallbackSlots), d(l.Committed), d(l.Overage), d(l.Credit), d(l.Fee), d(l.Net)})
		c, o, cr, f = c+l.Committed, o+l.Overage, cr+l.Credit, f+l.Fee
	}
	var disputed int
	for _, l := range i.Lines {
		disputed += l.DisputedSlots
	}
	cw.Write([]string{asn, i.Period, "", "total", "", "", "", ts(i.Start), ts(i.End), "", "", "", "", "", "", "", strconv.Itoa(disputed), "",
		d(c), d(o), d(cr), d(f), d(i.Net)})
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("invoice CSV: %w", err)
	}
	return nil
}
