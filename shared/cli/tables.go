package cli

import (
	"fmt"
	"strings"
	"time"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/units"
)

func short(e fmt.Stringer, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(e.String(), prefix))
}

// Destination renders a destination as an operator would write it.
func Destination(d *pb.Destination) string {
	switch k := d.GetKind().(type) {
	case *pb.Destination_Prefix:
		return k.Prefix
	case *pb.Destination_OriginAsn:
		return fmt.Sprintf("origin AS%d", k.OriginAsn)
	case *pb.Destination_RouteType:
		return short(k.RouteType, "ROUTE_TYPE_") + " routes"
	}
	return "-"
}

func day(t interface{ AsTime() time.Time }) string {
	return t.AsTime().UTC().Format("2006-01-02T15:04Z")
}

// OrderTable prints orders for a person.
func OrderTable(o Output, orders []*pb.Order) error {
	var rows [][]string
	for _, x := range orders {
		s := x.Spec
		rows = append(rows, []string{fmt.Sprint(x.Id), fmt.Sprintf("AS%d", x.MemberAsn), short(s.Side, "SIDE_"),
			Destination(s.Destination), units.Bandwidth(s.CapacityBps).String(), units.Bandwidth(x.FilledBps).String(),
			units.Money(s.PriceMicros).String(), day(s.DeliveryStart) + " - " + day(s.DeliveryEnd),
			short(s.OrderType, "ORDER_TYPE_"), short(x.Status, "ORDER_STATUS_")})
	}
	return o.Table([]string{"ID", "MEMBER", "SIDE", "DESTINATION", "CAPACITY", "FILLED", "PRICE/Mbps/mo", "DELIVERY", "TYPE", "STATUS"}, rows)
}

// TradeTable prints trades for a person.
func TradeTable(o Output, trades []*pb.Trade) error {
	var rows [][]string
	for _, t := range trades {
		rows = append(rows, []string{fmt.Sprint(t.Id), fmt.Sprintf("AS%d", t.BuyerAsn), fmt.Sprintf("AS%d", t.SellerAsn),
			strings.Join(t.Prefixes, ","), strings.Join(t.SellerNextHops, ","), units.Bandwidth(t.CapacityBps).String(),
			units.Money(t.PriceMicros).String(), day(t.DeliveryStart) + " - " + day(t.DeliveryEnd), short(t.Status, "TRADE_STATUS_"),
			PathQuality(t.Quality)})
	}
	return o.Table([]string{"ID", "BUYER", "SELLER", "PREFIXES", "NEXT HOPS", "CAPACITY", "PRICE/Mbps/mo", "DELIVERY", "STATUS", "LATENCY/LOSS"}, rows)
}

// PathQuality renders measured quality as latency/loss, e.g.
// "12.345ms/0.0500%", with the lost and sent probes behind the loss when
// known ("12.345ms/0.0500% (1/2000)"); "-" when nothing was measured.
func PathQuality(q *pb.PathQuality) string {
	if q == nil {
		return "-"
	}
	s := fmt.Sprintf("%d.%03dms/%d.%04d%%", q.LatencyUs/1000, q.LatencyUs%1000, q.LossPpm/10000, q.LossPpm%10000)
	if q.Probes > 0 {
		lost := (int64(q.LossPpm)*q.Probes + 500_000) / 1_000_000
		s += fmt.Sprintf(" (%d/%d)", lost, q.Probes)
	}
	return s
}

// Orders prints orders as JSON for scripts or a table for people.
func Orders(o Output, orders []*pb.Order) error { return PrintList(o, orders, OrderTable) }

// Trades prints trades as JSON for scripts or a table for people, and
// their delivery records when they carry them.
func Trades(o Output, trades []*pb.Trade) error { return PrintList(o, trades, tradeTables) }

// tradeTables is the trades table, then the delivery records under it.
func tradeTables(o Output, trades []*pb.Trade) error {
	if err := TradeTable(o, trades); err != nil {
		return err
	}
	var rows [][]string
	for _, t := range trades {
		for _, d := range t.Delivery {
			to, state := "now", "delivered"
			if d.To != nil {
				to = d.To.AsTime().UTC().Format(time.RFC3339)
			}
			if !d.Delivered {
				state = "not delivered (" + d.Cause + "): " + d.Reason
			}
			rows = append(rows, []string{fmt.Sprint(t.Id), d.Session, d.From.AsTime().UTC().Format(time.RFC3339), to, state})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(o.W, "\ndelivery (what the route server really announced to the buyer's sessions):")
	return o.Table([]string{"TRADE", "SESSION", "FROM", "TO", "STATE"}, rows)
}

// CreditTable prints members' exposure against their credit limits.
func CreditTable(o Output, cs []*pb.Credit) error {
	var rows [][]string
	for _, c := range cs {
		limit := "none"
		if c.Limited {
			limit = units.Money(c.LimitMicros).Exact()
		}
		state := map[pb.CreditState]string{pb.CreditState_CREDIT_STATE_OK: "ok", pb.CreditState_CREDIT_STATE_WARNING: "warning",
			pb.CreditState_CREDIT_STATE_STOPPED: "stopped (no new buys)"}[c.State]
		rows = append(rows, []string{fmt.Sprintf("AS%d", c.MemberAsn), limit, units.Money(c.UnpaidMicros).Exact(), units.Money(c.AccruedMicros).Exact(), units.Money(c.OrdersMicros).Exact(), units.Money(c.ExposureMicros).Exact(), state})
	}
	return o.Table([]string{"MEMBER", "LIMIT", "UNPAID", "ACCRUED", "OPEN_BUYS", "EXPOSURE", "STATE"}, rows)
}
