// Package story is the lab's automatic story: with no order placed by hand,
// a buyer's agent measures its real traffic and the paths through two
// sellers, the access manager decides in shadow mode, then buys in trade
// mode, its route moves the traffic, a degraded seller is failed over, both
// sides report usage, and the exchange settles the lab's period into an
// invoice. Each step prints what it shows and the command that shows it.
// bwx-lab (scripts/lab) runs it; so does its test.
package story

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/delayline"
	"github.com/bwxchange/bwx/shared/labnet/exchange"
)

// The customer network both sellers reach, on a host of its own, so each
// seller's path can be delayed on the seller's forwarding path.
var (
	Dest4 = netip.MustParsePrefix("198.18.0.0/24")
	Host4 = netip.MustParseAddr("198.18.0.1")
	Dest6 = netip.MustParsePrefix("2001:db8:300::/48")
	Host6 = netip.MustParseAddr("2001:db8:300::1")
)

// Traffic: each family gets PacketsPerSecond datagrams of PayloadBytes from
// the buyer's host.
const (
	PacketsPerSecond = 100
	PayloadBytes     = 1000
)

// Slot is the lab's settlement slot (settle.slot): 4 s instead of 5
// minutes, so that a run of a few minutes has a 95th percentile.
const Slot = 4 * time.Second

// ArbiterConfig is what the lab adds to the arbiter's config: the short
// slot, and use events over a minute instead of an hour.
const ArbiterConfig = `settle:
  slot: 4s
  use:
    min_duration: 1m
`

// sellerConfig: the seller's agent sells the customer network's routes and
// samples what buyers send it (seller-side usage reports).
const sellerConfig = `capture:
  interfaces: [eth0]
  sample_rate: 1
  interval: 2s
manager:
  mode: trade
  round: 1s
  sell:
    enabled: true
    destinations: ["198.18.0.0/24", "2001:db8:300::/48"]
    price: %s
    min_block: 1M
    safety_margin: 1G
    term: 2h
    renew_before: 30m
`

// buyerConfig: capture and probes every 2 s, the manager every 2 s, buying
// by performance with a 45 ms floor; hold-downs shortened to seconds.
const buyerConfig = `capture:
  interfaces: [eth0]
  sample_rate: 1
  interval: 2s
  refresh: 2s
probe:
  enabled: true
  count: 3
  round: 2s
  targets: {"198.18.0.0/24": ["198.18.0.1"], "2001:db8:300::/48": ["2001:db8:300::1"]}
manager:
  mode: %s
  round: 2s
  demand: {window: 1m, top: 5, min_samples: 10, min_intervals: 2}
  quality: {rounds: 2, max_age: 30s}
  buy:
    budget: 1000
    max_price: 10
    ranking: performance
    quality_floor: {max_latency: 45ms}
    min_improvement: {latency: 5ms}
    headroom_percent: 25
    max_open_orders: 2
    max_trades: 8
    term: 1h
    renew_before: 10m
  stability: {hysteresis_percent: 25, rebuy_hold_down: 5s, switch_hold_down: 0s, max_changes_per_hour: 100}
  failover: {rounds: 2}
`

// Members are the story's members: seller-a (2.00 per Mbps, 20 ms to the
// customer network), seller-b (3.00, 1 ms) and the buyer, whose access
// manager starts in shadow mode.
func Members() []*exchange.Member {
	remote := []string{Dest4.String(), Dest6.String()}
	return []*exchange.Member{
		{Name: "seller-a", ASN: 64501, Capacity: "10G", Prefixes: []string{"198.51.100.0/24", "2001:db8:100::/48"}, Remote: remote,
			AgentConfig: fmt.Sprintf(sellerConfig, "2")},
		{Name: "seller-b", ASN: 64502, Capacity: "10G", Prefixes: []string{"203.0.113.0/24", "2001:db8:200::/48"}, Remote: remote,
			AgentConfig: fmt.Sprintf(sellerConfig, "3")},
		{Name: "buyer", ASN: 64510, Capacity: "10G", AgentConfig: fmt.Sprintf(buyerConfig, "shadow")},
	}
}

// Result is what the story found, for its test.
type Result struct {
	// Bought and FailedOver are the trades of the buy (from seller-b) and
	// of the failover (from seller-a), IPv4 first.
	Bought, FailedOver []*pb.Trade
	// Through is how many of the buyer's datagrams the seller forwarded
	// after the buy and after the failover, against how many were sent.
	Through, FailoverThrough, Sent, FailoverSent int64
	// ShadowSummary is bwx-agent decisions --summary -o json in shadow
	// mode, and ShadowOrders the buyer's orders then (operator's -o json).
	ShadowSummary, ShadowOrders string
	Period                      string
	Invoice                     Invoice
	Took                        time.Duration
}

// Invoice is the part of the buyer's invoice document the story reads.
type Invoice struct {
	ASN       uint32 `json:"asn"`
	NetMicros int64  `json:"net_micros"`
	Lines     []struct {
		TradeID         uint64 `json:"trade_id"`
		P95Bps          int64  `json:"p95_bps"`
		CommittedMicros int64  `json:"committed_micros"`
		DisputedSlots   int    `json:"disputed_slots"`
	} `json:"lines"`
}

// Story is one run over a lab exchange made with Members and ArbiterConfig.
type Story struct {
	X   *exchange.Exchange
	Out io.Writer

	lines []line
	sent  atomic.Int64
	n     int
}

func (s *Story) step(format string, args ...any) {
	s.n++
	fmt.Fprintf(s.Out, "\n==> %d. "+format+"\n", append([]any{s.n}, args...)...)
}

func (s *Story) show(cmd, out string) {
	fmt.Fprintf(s.Out, "    $ %s\n%s", cmd, indent(out))
}

// Close stops the delay lines.
func (s *Story) Close() {
	for _, l := range s.lines {
		l.l.Close()
	}
}

// line is a delay line on a host's path to the customer network.
type line struct {
	h   *labnet.Host
	dev string
	l   *delayline.Line
}

// agentStatus is the part of bwx-agent status -o json the story reads.
type agentStatus struct {
	Measure *struct {
		Top []struct {
			Prefix        netip.Prefix `json:"prefix"`
			BitsPerSecond int64        `json:"bits_per_second"`
		} `json:"top_destinations"`
	} `json:"measure"`
}

func (st agentStatus) measures(p netip.Prefix) bool {
	if st.Measure == nil {
		return false
	}
	for _, d := range st.Measure.Top {
		if d.Prefix == p && d.BitsPerSecond > 0 {
			return true
		}
	}
	return false
}

// Run tells the story. ctx ends the traffic too.
func (s *Story) Run(ctx context.Context) (*Result, error) {
	start := time.Now()
	x := s.X
	sa, sb, buyer := x.Member("seller-a"), x.Member("seller-b"), x.Member("buyer")
	res := &Result{}

	s.step("the customer network %s and %s behind both sellers; paths: upstream (the default route) 60 ms, seller-a 20 ms, seller-b 1 ms", Dest4, Dest6)
	if err := s.network(sa, sb); err != nil {
		return nil, err
	}
	if err := x.WaitRoutes(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	if err := s.operator(ctx, "bgp", "sessions"); err != nil {
		return nil, err
	}

	s.step("traffic from the buyer's host toward %s and %s: %d datagrams/s of %d bytes each (about %.2f Mbit/s per family on the wire), via the upstream for now",
		Host4, Host6, PacketsPerSecond, PayloadBytes, float64(PacketsPerSecond*(PayloadBytes+8+40+14)*8)/1e6)
	for _, h := range []netip.Addr{Host4, Host6} {
		c, err := buyer.Host.DialContext(ctx, "udp", netip.AddrPortFrom(h, 9).String())
		if err != nil {
			return nil, err
		}
		go send(ctx, c, &s.sent)
	}
	for _, h := range []netip.Addr{Host4, Host6} {
		via, err := x.RouteVia(ctx, buyer, h)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(s.Out, "    buyer's route to %v: via %v (upstream)\n", h, via)
	}

	s.step("the buyer's agent measures it: the busiest destinations, bits/s from sampled frames")
	if err := waitAgent(ctx, s, buyer, 30*time.Second, "both destinations measured", func(st agentStatus) bool { return st.measures(Dest4) && st.measures(Dest6) }, "status"); err != nil {
		return nil, err
	}
	out, err := x.Agent(ctx, buyer, "status")
	if err != nil {
		return nil, err
	}
	s.show("bwx-agent status   (the measuring part)", fromLine(out, "capture:"))

	s.step("the buyer's agent probes through each seller (the arbiter's probe tasks); the exchange's quality matrix")
	// The paths through both sellers probed enough to decide: the shadow
	// summary holds both destinations.
	if err := waitAgent(ctx, s, buyer, 60*time.Second, "a shadow decision for both destinations", func(v summary) bool { return len(v.Destinations) >= 2 },
		"decisions", "--summary"); err != nil {
		return nil, err
	}
	if err := s.operator(ctx, "quality"); err != nil {
		return nil, err
	}

	s.step("the access manager in shadow mode: what it would buy, and what that would gain")
	out, err = x.Agent(ctx, buyer, "decisions", "--summary")
	if err != nil {
		return nil, err
	}
	s.show("bwx-agent decisions --summary", out)
	if res.ShadowSummary, err = x.Agent(ctx, buyer, "decisions", "--summary", "-o", "json"); err != nil {
		return nil, err
	}
	if res.ShadowOrders, err = x.Operator(ctx, "orders", "--member", fmt.Sprint(buyer.ASN), "-o", "json"); err != nil {
		return nil, err
	}

	s.step("trade mode: manager.mode: trade in the buyer's agent.yaml, and the agent restarted (systemctl restart bwx-agent); it buys")
	buyer.AgentConfig = fmt.Sprintf(buyerConfig, "trade")
	if err := x.RestartAgent(buyer); err != nil {
		return nil, err
	}
	for _, h := range []netip.Addr{Host4, Host6} {
		gw := sb.Host.Addr4()
		if h.Is6() {
			gw = sb.Host.Addr6()
		}
		if err := x.WaitRouteVia(ctx, buyer, h, gw, 90*time.Second); err != nil {
			return nil, err
		}
	}
	out, err = x.Agent(ctx, buyer, "decisions")
	if err != nil {
		return nil, err
	}
	s.show("bwx-agent decisions", out)
	if res.Bought, err = s.trades(ctx, sb.ASN, buyer.ASN); err != nil {
		return nil, err
	}
	if err := s.operator(ctx, "trades"); err != nil {
		return nil, err
	}

	s.step("the traded routes in the buyer's kernel, and the traffic moving to seller-b")
	for _, h := range []netip.Addr{Host4, Host6} {
		out, err := run(buyer.Host.Command(ctx, "ip", "route", "get", h.String()))
		if err != nil {
			return nil, err
		}
		s.show("ip netns exec "+buyer.Host.Netns+" ip route get "+h.String(), out)
	}
	if res.Through, res.Sent, err = s.through(ctx, sb.Host); err != nil {
		return nil, err
	}
	fmt.Fprintf(s.Out, "    seller-b forwarded %d packets toward the customer network in 3 s while the buyer sent %d (ip -s link show dl0 on seller-b)\n", res.Through, res.Sent)

	s.step("seller-b degrades: 150 ms and 10 %% loss on its path; the manager fails over to seller-a")
	if err := s.delay(sb.Host, "dl1", 150*time.Millisecond, 0.1); err != nil {
		return nil, err
	}
	for _, h := range []netip.Addr{Host4, Host6} {
		gw := sa.Host.Addr4()
		if h.Is6() {
			gw = sa.Host.Addr6()
		}
		if err := x.WaitRouteVia(ctx, buyer, h, gw, 90*time.Second); err != nil {
			return nil, err
		}
	}
	out, err = x.Agent(ctx, buyer, "decisions")
	if err != nil {
		return nil, err
	}
	s.show("bwx-agent decisions", lastLines(out, 8))
	if res.FailedOver, err = s.trades(ctx, sa.ASN, buyer.ASN); err != nil {
		return nil, err
	}
	if res.FailoverThrough, res.FailoverSent, err = s.through(ctx, sa.Host); err != nil {
		return nil, err
	}
	fmt.Fprintf(s.Out, "    seller-a forwarded %d packets in 3 s while the buyer sent %d\n", res.FailoverThrough, res.FailoverSent)

	s.step("usage: the buyer and seller-a report the trade's traffic each 2 s; settlement compares them slot by slot (%v slots in the lab)", Slot)
	// Two whole slots of seller-a's trade, and the reports of their last
	// interval delivered.
	first := res.FailedOver[0]
	until := first.DeliveryStart.AsTime().Truncate(Slot).Add(3 * Slot)
	if err := sleepUntil(ctx, until.Add(5*time.Second)); err != nil {
		return nil, err
	}
	if err := s.operator(ctx, "settle", "usage", fmt.Sprint(first.Id)); err != nil {
		return nil, err
	}

	s.step("settlement of the lab's period, and the buyer's invoice")
	from := res.Bought[0].DeliveryStart.AsTime().Truncate(Slot)
	to := time.Now().UTC().Truncate(Slot)
	res.Period = from.UTC().Format(time.RFC3339) + "/" + to.Format(time.RFC3339)
	if err := s.operator(ctx, "settle", "run", "--period", res.Period); err != nil {
		return nil, err
	}
	out, err = x.Agent(ctx, buyer, "invoices", "--period", res.Period)
	if err != nil {
		return nil, err
	}
	s.show("bwx-agent invoices --period "+res.Period, out)
	out, err = x.Agent(ctx, buyer, "invoices", "--period", res.Period, "-o", "json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &res.Invoice); err != nil {
		return nil, fmt.Errorf("bwx-agent invoices -o json: %v\n%s", err, out)
	}
	res.Took = time.Since(start)
	fmt.Fprintf(s.Out, "\nFrom traffic to invoice in %v, with no order placed by hand.\n", res.Took.Round(time.Second))
	return res, nil
}

// network adds the customer network and the delay lines.
func (s *Story) network(sa, sb *exchange.Member) error {
	x := s.X
	dest, err := x.Lab.AddHost("dest", netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("2001:db8:300::1/64"))
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"route", "add", "192.0.2.0/24", "dev", "eth0"}, {"-6", "route", "add", "2001:db8:ffff::/64", "dev", "eth0"}} {
		if _, err := run(dest.Command(context.Background(), "ip", args...)); err != nil {
			return err
		}
	}
	for h, d := range map[*labnet.Host]time.Duration{x.Upstream: 60 * time.Millisecond, sa.Host: 20 * time.Millisecond, sb.Host: time.Millisecond} {
		if err := s.delay(h, "dl0", d, 0); err != nil {
			return err
		}
	}
	return nil
}

// delay puts h's path to the customer network through a (new) delay line.
func (s *Story) delay(h *labnet.Host, dev string, d time.Duration, loss float64) error {
	for i, l := range s.lines {
		if l.h == h {
			l.l.Close()
			s.lines = slices.Delete(s.lines, i, i+1)
			for _, fam := range []string{"-4", "-6"} {
				if _, err := run(h.Command(context.Background(), "ip", fam, "route", "flush", "table", "100")); err != nil {
					return err
				}
			}
			break
		}
	}
	l, err := delayline.Add(h, dev, d, loss, 1, Dest4, Dest6)
	if err != nil {
		return err
	}
	s.lines = append(s.lines, line{h: h, dev: dev, l: l})
	return nil
}

func (s *Story) operator(ctx context.Context, args ...string) error {
	out, err := s.X.Operator(ctx, args...)
	if err != nil {
		return err
	}
	s.show("bwx-arbiter "+strings.Join(args, " "), out)
	return nil
}

// waitAgent runs the agent command args (with -o json) on m every half
// second until its output, decoded into v, satisfies ok, or timeout
// passes; what names what was awaited, for the error.
func waitAgent[T any](ctx context.Context, s *Story, m *exchange.Member, timeout time.Duration, what string, ok func(T) bool, args ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := s.X.Agent(ctx, m, append(args, "-o", "json")...)
		var v T
		if err == nil {
			err = json.Unmarshal([]byte(out), &v)
		}
		if err == nil && ok(v) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: bwx-agent %s did not show %s within %v (%v)\n%s", m.Name, strings.Join(args, " "), what, timeout, err, out)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// summary is the part of bwx-agent decisions --summary -o json the story
// reads.
type summary struct {
	Destinations []json.RawMessage `json:"destinations"`
}

// trades are the open trades between seller and buyer, IPv4 first.
func (s *Story) trades(ctx context.Context, seller, buyer uint32) ([]*pb.Trade, error) {
	out, err := s.X.Operator(ctx, "trades", "--member", fmt.Sprint(buyer), "-o", "json")
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("bwx-arbiter trades -o json: %v\n%s", err, out)
	}
	var ts []*pb.Trade
	for _, r := range raw {
		t := &pb.Trade{}
		if err := protojson.Unmarshal(r, t); err != nil {
			return nil, err
		}
		if t.SellerAsn == seller && t.BuyerAsn == buyer && t.Status == pb.TradeStatus_TRADE_STATUS_ACTIVE {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b *pb.Trade) int { return int(a.Protocol) - int(b.Protocol) })
	if len(ts) == 0 {
		return nil, fmt.Errorf("no active trade of AS%d from AS%d:\n%s", buyer, seller, out)
	}
	return ts, nil
}

// through counts over 3 s the packets h's delay line forwarded toward the
// customer network, and the datagrams the buyer sent meanwhile.
func (s *Story) through(ctx context.Context, h *labnet.Host) (forwarded, sent int64, err error) {
	dev := "dl0"
	for _, l := range s.lines {
		if l.h == h {
			dev = l.dev
		}
	}
	before, err := txPackets(ctx, h, dev)
	if err != nil {
		return 0, 0, err
	}
	s0 := s.sent.Load()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return 0, 0, err
	}
	after, err := txPackets(ctx, h, dev)
	return after - before, s.sent.Load() - s0, err
}

func txPackets(ctx context.Context, h *labnet.Host, dev string) (int64, error) {
	out, err := run(h.Command(ctx, "ip", "-s", "-j", "link", "show", "dev", dev))
	if err != nil {
		return 0, err
	}
	var ls []struct {
		Stats64 struct {
			TX struct {
				Packets int64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 {
		return 0, fmt.Errorf("%s: ip -s -j link show %s: %v\n%s", h.Name, dev, err, out)
	}
	return ls[0].Stats64.TX.Packets, nil
}

// send writes PayloadBytes datagrams at PacketsPerSecond until ctx ends.
func send(ctx context.Context, c net.Conn, sent *atomic.Int64) {
	defer c.Close()
	buf := make([]byte, PayloadBytes)
	t := time.NewTicker(time.Second / PacketsPerSecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := c.Write(buf); err == nil {
			sent.Add(1)
		}
	}
}

func run(cmd interface{ CombinedOutput() ([]byte, error) }) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, out)
	}
	return string(out), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func sleepUntil(ctx context.Context, t time.Time) error { return sleep(ctx, time.Until(t)) }

// fromLine is s from the first line that starts with prefix.
func fromLine(s, prefix string) string {
	for i, l := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.Join(strings.SplitAfter(s, "\n")[i:], "")
		}
	}
	return s
}

// lastLines is the header line of a table and its last n lines.
func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) <= n+1 {
		return s
	}
	return ls[0] + "\n" + strings.Join(ls[len(ls)-n:], "\n") + "\n"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
