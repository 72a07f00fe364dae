package main

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pages"
	"github.com/bwxchange/bwx/shared/units"
)

// specFlags are the order parameters of claim 11 as command-line flags.
type specFlags struct {
	prefix        string
	originASN     uint32
	routeType     string
	protocol      string
	capacity      units.Bandwidth
	minBlock      units.Bandwidth
	price         units.Money
	start, end    string
	duration      string
	orderType     string
	ranking       string
	priceWeight   uint32
	singleSeller  bool
	traffic       string
	maxLatency    time.Duration
	maxJitter     time.Duration
	maxLoss       string
	maxASHops     int32
	unverified    bool
	clientOrderID string
}

func (s *specFlags) register(f *pflag.FlagSet, buy bool) {
	f.StringVar(&s.prefix, "prefix", "", "destination prefix, e.g. 198.51.100.0/24")
	f.Uint32Var(&s.originASN, "origin-asn", 0, "destination: every registered route of this origin AS")
	f.StringVar(&s.routeType, "route-type", "", "destination: every route of a type (customer, peer, transit, specific)")
	f.StringVar(&s.protocol, "protocol", "", "ipv4 or ipv6 (default: the prefix's family)")
	f.Var(&s.capacity, "capacity", "capacity, e.g. 1G")
	f.Var(&s.minBlock, "min-block", "minimum bandwidth block (default: the whole capacity)")
	f.Var(&s.price, "price", "price per Mbps per month ("+map[bool]string{true: "the most to pay", false: "the ask"}[buy]+"), e.g. 0.35")
	f.StringVar(&s.start, "start", "now", "delivery start: RFC 3339 time or now")
	f.StringVar(&s.end, "end", "", "delivery end: RFC 3339 time (or use --duration)")
	f.StringVar(&s.duration, "duration", "720h", "delivery period from the start, e.g. 720h or 30d")
	f.StringVar(&s.orderType, "type", "limit", "order type: limit, ioc or fok")
	f.StringVar(&s.traffic, "traffic", "any", "traffic type: any, bulk, interactive or realtime")
	f.StringVar(&s.clientOrderID, "client-id", "", "idempotency key: retrying with the same key never places a second order")
	if buy {
		f.StringVar(&s.ranking, "ranking", "price", "rank offers by price, performance or weighted")
		f.Uint32Var(&s.priceWeight, "price-weight", 0, "with --ranking weighted: 0 (performance only) to 100 (price only)")
		f.BoolVar(&s.singleSeller, "single-seller", false, "take the whole capacity from one seller, never split")
		f.DurationVar(&s.maxLatency, "max-latency", 0, "quality limit: average latency, e.g. 20ms")
		f.DurationVar(&s.maxJitter, "max-jitter", 0, "quality limit: jitter, e.g. 5ms")
		f.StringVar(&s.maxLoss, "max-loss", "", "quality limit: packet loss in percent, e.g. 0.1")
		f.Int32Var(&s.maxASHops, "max-as-hops", 0, "quality limit: network distance in AS hops")
		f.BoolVar(&s.unverified, "allow-unverified", false, "accept sellers with no fresh measurement of at least 20 probes")
	}
}

func parseTime(flag, s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-12-01T00:00:00Z, or now", flag, s)
	}
	return t.UTC(), nil
}

func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--duration %q: want a positive number of days or a Go duration", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--duration %q: want a positive duration such as 720h or 30d", s)
	}
	return v, nil
}

var (
	orderTypes = map[string]pb.OrderType{"limit": pb.OrderType_ORDER_TYPE_LIMIT, "ioc": pb.OrderType_ORDER_TYPE_IOC, "fok": pb.OrderType_ORDER_TYPE_FOK}
	rankings   = map[string]pb.Ranking{"price": pb.Ranking_RANKING_PRICE, "performance": pb.Ranking_RANKING_PERFORMANCE, "weighted": pb.Ranking_RANKING_WEIGHTED}
	traffics   = map[string]pb.TrafficType{"any": pb.TrafficType_TRAFFIC_TYPE_ANY, "bulk": pb.TrafficType_TRAFFIC_TYPE_BULK,
		"interactive": pb.TrafficType_TRAFFIC_TYPE_INTERACTIVE, "realtime": pb.TrafficType_TRAFFIC_TYPE_REALTIME}
	routeTypes = map[string]pb.RouteType{"customer": pb.RouteType_ROUTE_TYPE_CUSTOMER, "peer": pb.RouteType_ROUTE_TYPE_PEER,
		"transit": pb.RouteType_ROUTE_TYPE_TRANSIT, "specific": pb.RouteType_ROUTE_TYPE_SPECIFIC}
	protocols = map[string]pb.Protocol{"ipv4": pb.Protocol_PROTOCOL_IPV4, "ipv6": pb.Protocol_PROTOCOL_IPV6}
)

func pick[T any](flag, v string, m map[string]T) (T, error) {
	x, ok := m[strings.ToLower(v)]
	if !ok {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		return x, fmt.Errorf("--%s %q: want one of %s", flag, v, strings.Join(keys, ", "))
	}
	return x, nil
}

// spec turns the flags into an order spec; the arbiter checks the rest.
func (s *specFlags) spec(side pb.Side, f *pflag.FlagSet) (*pb.OrderSpec, error) {
	out := &pb.OrderSpec{Side: side, CapacityBps: int64(s.capacity), PriceMicros: int64(s.price), Destination: &pb.Destination{}}
	n := 0
	if s.prefix != "" {
		n++
		p, err := netip.ParsePrefix(s.prefix)
		if err != nil {
			return nil, fmt.Errorf("--prefix %q is not a CIDR prefix", s.prefix)
		}
		out.Destination.Kind = &pb.Destination_Prefix{Prefix: s.prefix}
		out.Protocol = pb.Protocol_PROTOCOL_IPV4
		if p.Addr().Is6() {
			out.Protocol = pb.Protocol_PROTOCOL_IPV6
		}
	}
	if s.originASN != 0 {
		n++
		out.Destination.Kind = &pb.Destination_OriginAsn{OriginAsn: s.originASN}
	}
	if s.routeType != "" {
		n++
		t, err := pick("route-type", s.routeType, routeTypes)
		if err != nil {
			return nil, err
		}
		out.Destination.Kind = &pb.Destination_RouteType{RouteType: t}
	}
	if n != 1 {
		return nil, fmt.Errorf("give exactly one destination: --prefix, --origin-asn or --route-type")
	}
	if s.protocol != "" {
		p, err := pick("protocol", s.protocol, protocols)
		if err != nil {
			return nil, err
		}
		out.Protocol = p
	} else if out.Protocol == 0 {
		return nil, fmt.Errorf("--protocol ipv4|ipv6 is needed with --origin-asn or --route-type")
	}
	if !f.Changed("capacity") {
		return nil, fmt.Errorf("--capacity is required, e.g. --capacity 1G")
	}
	if !f.Changed("price") {
		return nil, fmt.Errorf("--price is required (per Mbps per month), e.g. --price 0.35")
	}
	out.MinBlockBps = int64(s.minBlock)
	if !f.Changed("min-block") {
		out.MinBlockBps = out.CapacityBps
	}
	now := clock.Now().UTC().Truncate(time.Second)
	start, err := parseTime("start", s.start, now)
	if err != nil {
		return nil, err
	}
	end := start
	if s.end != "" {
		if end, err = parseTime("end", s.end, now); err != nil {
			return nil, err
		}
	} else {
		d, err := parseDuration(s.duration)
		if err != nil {
			return nil, err
		}
		end = start.Add(d)
	}
	out.DeliveryStart, out.DeliveryEnd = timestamppb.New(start), timestamppb.New(end)
	if out.OrderType, err = pick("type", s.orderType, orderTypes); err != nil {
		return nil, err
	}
	if out.TrafficType, err = pick("traffic", s.traffic, traffics); err != nil {
		return nil, err
	}
	if side == pb.Side_SIDE_BUY {
		if out.Ranking, err = pick("ranking", s.ranking, rankings); err != nil {
			return nil, err
		}
		out.PriceWeightPercent, out.SingleSeller = s.priceWeight, s.singleSeller
		q := &pb.Quality{AllowUnverified: s.unverified}
		if f.Changed("max-latency") {
			q.MaxLatencyUs = proto.Int64(s.maxLatency.Microseconds())
		}
		if f.Changed("max-jitter") {
			q.MaxJitterUs = proto.Int64(s.maxJitter.Microseconds())
		}
		if s.maxLoss != "" {
			// Percent with up to four decimals -> parts per million, no floats.
			m, err := units.ParseMoney(strings.TrimSuffix(s.maxLoss, "%"))
			if err != nil || m < 0 || m > 100*units.MicrosPerUnit || int64(m)%100 != 0 {
				return nil, fmt.Errorf("--max-loss %q: want a percentage from 0 to 100 such as 0.1 (at most 4 decimals)", s.maxLoss)
			}
			q.MaxLossPpm = proto.Int32(int32(int64(m) / 100))
		}
		if f.Changed("max-as-hops") {
			q.MaxAsHops = proto.Int32(s.maxASHops)
		}
		out.Quality = q
	}
	return out, nil
}

func orderCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "order", Short: "place, cancel and list orders by hand"}
	for _, side := range []pb.Side{pb.Side_SIDE_BUY, pb.Side_SIDE_SELL} {
		sf := &specFlags{}
		name := strings.ToLower(strings.TrimPrefix(side.String(), "SIDE_"))
		example := "  bwx-agent order buy --prefix 198.51.100.0/24 --capacity 1G --price 0.40 --duration 30d --max-latency 20ms"
		if side == pb.Side_SIDE_SELL {
			example = "  bwx-agent order sell --prefix 198.51.100.0/24 --capacity 2G --min-block 500M --price 0.35 --duration 90d"
		}
		cmd := &cobra.Command{
			Use:     name,
			Short:   name + " bandwidth toward a destination",
			Example: example,
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				spec, err := sf.spec(side, cmd.Flags())
				if err != nil {
					return err
				}
				resp, err := cli.Call(g.connect, pb.NewTradingServiceClient, pb.TradingServiceClient.PlaceOrder, &pb.PlaceOrderRequest{Spec: spec, ClientOrderId: sf.clientOrderID})
				if err != nil {
					return err
				}
				return placed(g.out, resp)
			},
		}
		sf.register(cmd.Flags(), side == pb.Side_SIDE_BUY)
		c.AddCommand(cmd)
	}
	c.AddCommand(&cobra.Command{
		Use:   "cancel ORDER-ID",
		Short: "cancel an open order (trades it made stand)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("%q is not an order id", args[0])
			}
			o, err := cli.Call(g.connect, pb.NewTradingServiceClient, pb.TradingServiceClient.CancelOrder, &pb.CancelOrderRequest{OrderId: id})
			if err != nil {
				return err
			}
			return cli.Print(g.out, o, func(out cli.Output, o *pb.Order) error { return cli.OrderTable(out, []*pb.Order{o}) })
		},
	})
	var open bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "list this member's orders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				os, err := pages.Orders(cx, pb.NewTradingServiceClient(conn), &pb.ListOrdersRequest{OpenOnly: open}, limit)
				if err != nil {
					return err
				}
				return cli.Orders(g.out, os)
			})
		},
	}
	list.Flags().BoolVar(&open, "open", false, "only open orders")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all, read a page at a time)")
	c.AddCommand(list)
	return c
}

func tradesCmd(g *globals) *cobra.Command {
	var active, withDelivery bool
	var limit int
	c := &cobra.Command{
		Use:   "trades",
		Short: "list this member's trades (and, with --delivery, what was really delivered)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				ts, err := pages.Trades(cx, pb.NewTradingServiceClient(conn), &pb.ListTradesRequest{ActiveOnly: active, WithDelivery: withDelivery}, limit)
				if err != nil {
					return err
				}
				return cli.Trades(g.out, ts)
			})
		},
	}
	c.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all, read a page at a time)")
	c.Flags().BoolVar(&active, "active", false, "only trades in delivery now")
	c.Flags().BoolVar(&withDelivery, "delivery", false, "add each trade's delivery record: per buyer session, when its routes were announced, and why not otherwise")
	return c
}

func offersCmd(g *globals) *cobra.Command {
	sf := &specFlags{}
	c := &cobra.Command{
		Use:     "offers",
		Short:   "list the sell offers a buy would match (request for quotes)",
		Example: "  bwx-agent offers --prefix 198.51.100.0/24 --capacity 1G --price 1 --duration 30d",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := sf.spec(pb.Side_SIDE_BUY, cmd.Flags())
			if err != nil {
				return err
			}
			offers, err := cli.CallList(g.connect, pb.NewTradingServiceClient, pb.TradingServiceClient.ListOffers, &pb.ListOffersRequest{Spec: spec}, (*pb.ListOffersResponse).GetOffers, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, offers, offerTable)
		},
	}
	sf.register(c.Flags(), true)
	return c
}

// offerTable prints offers with their measured latency.
func offerTable(out cli.Output, offers []*pb.Offer) error {
	var rows [][]string
	for _, o := range offers {
		lat, vantages := "-", "-"
		if o.Measured != nil {
			lat = (time.Duration(o.Measured.GetMaxLatencyUs()) * time.Microsecond).String()
		}
		if n := o.MeasuredPath.GetVantages(); n > 0 {
			// 1: your own measurements, or one reporter; more: the
			// exchange's pooled view, the median of that many.
			vantages = strconv.Itoa(int(n))
		}
		rows = append(rows, []string{fmt.Sprint(o.OrderId), fmt.Sprintf("AS%d", o.SellerAsn), cli.Destination(o.Destination),
			units.Bandwidth(o.AvailableBps).String(), units.Bandwidth(o.MinBlockBps).String(), units.Money(o.PriceMicros).String(), lat, vantages})
	}
	return out.Table([]string{"OFFER", "SELLER", "DESTINATION", "AVAILABLE", "BLOCK", "PRICE/Mbps/mo", "LATENCY", "VANTAGES"}, rows)
}

// lookupCapacity stands for "as much as the offer has" when `take` asks
// the arbiter what an offer has available for a buy: more than any port.
const lookupCapacity = 1_000_000_000_000_000 // 1 Pbit/s

func takeCmd(g *globals) *cobra.Command {
	sf := &specFlags{}
	c := &cobra.Command{
		Use:   "take OFFER-ID",
		Short: "take one offer listed by `offers` (request for quotes): buy from it only, all or nothing",
		Long: `take buys from one sell offer only, all or nothing: give the offer's id as
"bwx-agent offers" listed it and the same destination, period and limits.
Without --capacity it takes all the offer has available for the period;
without --price, the price limit is the offer's ask. The arbiter's refusals
(offer gone, changed, your own, a bad field) are shown as it gives them.`,
		Example: "  bwx-agent take 42 --prefix 198.51.100.0/24 --duration 30d\n  bwx-agent take 42 --prefix 198.51.100.0/24 --duration 30d --capacity 500M --price 0.40",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("%q is not an offer id (the OFFER column of bwx-agent offers)", args[0])
			}
			spec, fillCapacity, fillPrice, err := sf.takeSpec(cmd.Flags())
			if err != nil {
				return err
			}
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				resp, err := takeOffer(cx, pb.NewTradingServiceClient(conn), id, spec, fillCapacity, fillPrice, sf.clientOrderID)
				if err != nil {
					return err
				}
				return placed(g.out, resp)
			})
		},
	}
	sf.register(c.Flags(), true)
	return c
}

// placed prints a placed order (an order or a taken offer) and the trades
// it made, if any.
func placed(out cli.Output, resp *pb.PlaceOrderResponse) error {
	return cli.Print(out, resp, placedTable)
}

func placedTable(out cli.Output, resp *pb.PlaceOrderResponse) error {
	if err := cli.OrderTable(out, []*pb.Order{resp.Order}); err != nil {
		return err
	}
	if len(resp.Trades) > 0 {
		fmt.Fprintln(out.W)
		return cli.TradeTable(out, resp.Trades)
	}
	return nil
}

// takeSpec is the buy that takes an offer: the flags as for an order, all
// or nothing (FOK). fillCapacity and fillPrice say that --capacity or
// --price was not given, for the offer to fill in.
func (s *specFlags) takeSpec(f *pflag.FlagSet) (spec *pb.OrderSpec, fillCapacity, fillPrice bool, err error) {
	fillCapacity, fillPrice = !f.Changed("capacity"), !f.Changed("price")
	// spec wants both: stand-ins until the offer is known.
	if fillCapacity {
		s.capacity = lookupCapacity
		f.Lookup("capacity").Changed = true
	}
	if fillPrice {
		s.price = 0
		f.Lookup("price").Changed = true
	}
	if spec, err = s.spec(pb.Side_SIDE_BUY, f); err != nil {
		return nil, false, false, err
	}
	if fillCapacity && !f.Changed("min-block") {
		spec.MinBlockBps = 1 // the offer's block applies
	}
	spec.OrderType = pb.OrderType_ORDER_TYPE_FOK
	return spec, fillCapacity, fillPrice, nil
}

// takeOffer takes offer id with the buy spec. When the capacity or the
// price was not given (fillCapacity, fillPrice), it first asks ListOffers
// with the same spec for the offer and takes what it has available at its
// ask; an offer that is not listed is refused here, saying why it may be.
// Every other refusal is the arbiter's own.
func takeOffer(ctx context.Context, tc pb.TradingServiceClient, id uint64, spec *pb.OrderSpec, fillCapacity, fillPrice bool, clientID string) (*pb.PlaceOrderResponse, error) {
	if fillCapacity || fillPrice {
		q := proto.Clone(spec).(*pb.OrderSpec)
		if fillPrice {
			// The highest limit that the capacity asked keeps within the
			// money type: every offer's ask is below it.
			q.PriceMicros = math.MaxInt64 / max(q.CapacityBps/int64(units.Mbps), 1)
		}
		offers, err := pages.List(ctx, tc.ListOffers, &pb.ListOffersRequest{Spec: q}, (*pb.ListOffersResponse).GetOffers, 0)
		if err != nil {
			return nil, err
		}
		var offer *pb.Offer
		for _, o := range offers {
			if o.OrderId == id {
				offer = o
			}
		}
		if offer == nil {
			return nil, fmt.Errorf("offer %d is not available for this buy: it was filled, cancelled or expired, or it does not serve the destination, period, price or quality limits given (bwx-agent offers with the same flags lists what is)", id)
		}
		if fillCapacity {
			spec.CapacityBps, spec.MinBlockBps = offer.AvailableBps, max(spec.MinBlockBps, offer.MinBlockBps)
		}
		if fillPrice {
			spec.PriceMicros = offer.PriceMicros
		}
	}
	return tc.TakeOffer(ctx, &pb.TakeOfferRequest{OfferOrderId: id, Spec: spec, ClientOrderId: clientID})
}
