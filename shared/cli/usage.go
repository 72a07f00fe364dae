package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/units"
)

// UsageRequest is the request of `usage TRADE-ID [--from] [--to]`, the same
// in both commands: from and to in RFC 3339, empty for the arbiter's
// default.
func UsageRequest(tradeID, from, to string) (*pb.GetTradeUsageRequest, error) {
	id, err := strconv.ParseUint(tradeID, 10, 64)
	if err != nil || id == 0 {
		return nil, fmt.Errorf("TRADE-ID %q: want a trade number (the ID column of trades)", tradeID)
	}
	r := &pb.GetTradeUsageRequest{TradeId: id}
	for _, f := range []struct {
		name, v string
		to      **timestamppb.Timestamp
	}{{"from", from, &r.From}, {"to", to, &r.To}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.v)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: want a time in RFC 3339, e.g. 2026-11-03T10:00:00Z", f.name, f.v)
		}
		*f.to = timestamppb.New(t)
	}
	return r, nil
}

// Rate is bits/s for a person, to four significant digits: 812.3M,
// 1.250G, 950.0k, 7.
func Rate(bps int64) string { return units.Bandwidth(bps).Round(4) }

// TradeUsage is both CLIs' usage command: it checks the arguments, asks
// the arbiter for the trade's usage slot by slot and prints it (a table,
// or JSON) to o as connect leaves it (connecting sets the CLIs' writer).
func TradeUsage(o *Output, connect Connect, tradeID, from, to string) error {
	req, err := UsageRequest(tradeID, from, to)
	if err != nil {
		return err
	}
	resp, err := Call(connect, pb.NewUsageServiceClient, pb.UsageServiceClient.GetTradeUsage, req)
	if err != nil {
		return err
	}
	return Print(*o, resp, UsageTable)
}

// TradeUsageCommand makes c, which names and describes the command, both
// CLIs' usage command: `usage TRADE-ID [--from] [--to]`, TradeUsage.
func TradeUsageCommand(c *cobra.Command, o *Output, connect Connect) *cobra.Command {
	var from, to string
	c.Args = cobra.ExactArgs(1)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return TradeUsage(o, connect, args[0], from, to)
	}
	c.Flags().StringVar(&from, "from", "", "the first slot, RFC 3339 (default: the trade's start)")
	c.Flags().StringVar(&to, "to", "", "the end, RFC 3339 (default: now, or the trade's end if earlier)")
	return c
}

// UsageTable prints a trade's usage slot by slot, each party's figure with
// its reported sample count, the billed figure and whether the two agree,
// then a summary line.
func UsageTable(o Output, r *pb.GetTradeUsageResponse) error {
	if len(r.GetSlots()) == 0 {
		_, err := fmt.Fprintf(o.W, "trade %d: no usage reported in that span\n", r.GetTradeId())
		return err
	}
	figure := func(bps, samples int64, ok bool) string {
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%s (%d)", Rate(bps), samples)
	}
	rows := make([][]string, 0, len(r.Slots))
	var agree, disputed, oneSided int
	var most float64
	var mostAt *timestamppb.Timestamp
	for _, s := range r.Slots {
		state := "agree"
		switch {
		case s.Disputed:
			state, disputed = "disputed", disputed+1
		case s.OneSided && s.BuyerReported:
			state, oneSided = "buyer only", oneSided+1
		case s.OneSided:
			state, oneSided = "seller only", oneSided+1
		default:
			agree++
		}
		if s.BuyerReported && s.SellerReported {
			if d := difference(s.BuyerBps, s.SellerBps); mostAt == nil || d > most {
				most, mostAt = d, s.Start
			}
		}
		rows = append(rows, []string{s.Start.AsTime().UTC().Format("2006-01-02T15:04:05Z"), figure(s.BuyerBps, s.BuyerSamples, s.BuyerReported),
			figure(s.SellerBps, s.SellerSamples, s.SellerReported), Rate(s.BilledBps), state})
	}
	if err := o.Table([]string{"SLOT", "BUYER", "SELLER", "BILLED", "STATE"}, rows); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trade %d: %d slots of %s: %d agree, %d disputed, %d one-sided", r.TradeId, len(r.Slots),
		time.Duration(r.SlotSeconds)*time.Second, agree, disputed, oneSided)
	if mostAt != nil {
		fmt.Fprintf(&b, "; largest difference %.1f %% of the larger figure (%s)", most, mostAt.AsTime().UTC().Format("2006-01-02T15:04:05Z"))
	}
	_, err := fmt.Fprintln(o.W, b.String())
	return err
}

// difference is how far apart two figures are, in percent of the larger.
func difference(a, b int64) float64 {
	hi, lo := max(a, b), min(a, b)
	if hi <= 0 {
		return 0
	}
	return 100 * float64(hi-lo) / float64(hi)
}
