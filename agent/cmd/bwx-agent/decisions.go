package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/pathscore"
)

func decisionsCmd(g *globals) *cobra.Command {
	var (
		socket  string
		since   uint64
		summary bool
	)
	c := &cobra.Command{
		Use:   "decisions",
		Short: "show the access manager's decisions with the numbers behind them (--summary: what they are worth)",
		Long: `Shows the running agent's decision journal: what the access manager bought,
switched, renewed, let lapse, cancelled, sold and routed, and why, with the
demand, prices, budget and path quality that drove each decision. In shadow
mode the decisions are what it would have done; --summary totals what it
would have bought, at what price, the latency and loss gained and the money
saved against the default path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if summary {
				since = 0 // the value rests on every kept decision
			}
			ds, err := fromAgent(g, socket, func(ctx context.Context, socket string) (daemon.Decisions, error) {
				return daemon.FetchDecisions(ctx, socket, since)
			})
			if err != nil {
				return err
			}
			if summary {
				s := manager.Summarize(ds.Decisions)
				if g.out.JSON() {
					return g.out.Value(struct {
						Mode string `json:"mode"`
						manager.Summary
					}{ds.Mode, s})
				}
				return printSummary(g.out, ds.Mode, s)
			}
			if g.out.JSON() {
				return g.out.Value(ds)
			}
			return printDecisions(g.out, ds)
		},
	}
	c.Flags().StringVar(&socket, "socket", "", "the agent's status socket (default: status.socket, or <state_dir>/agent.sock)")
	c.Flags().Uint64Var(&since, "since", 0, "only decisions after this number")
	c.Flags().BoolVar(&summary, "summary", false, "total what the decisions bought (or, in shadow mode, would have bought)")
	return c
}

func asn(a uint32) string {
	if a == 0 {
		return "default"
	}
	return "AS" + strconv.FormatUint(uint64(a), 10)
}

func ms(us int64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) }

// quality is a path's figures with their samples: "2.0±0.1 ms 3.3333% (1/30)".
func quality(q *manager.Quality) string {
	if q == nil {
		return "-"
	}
	lost := (int64(q.LossPPM)*q.Probes + 500_000) / 1_000_000
	return fmt.Sprintf("%s±%s ms %v (%d/%d)", ms(q.LatencyUs), ms(int64(math.Round(pathscore.Z*float64(q.LatencyErrUs)))), manager.Percent(q.LossPPM), lost, q.Probes)
}

// gainPM is a gain with its 95 % margin.
func gainPM(g, margin int64) string {
	return ms(g) + "±" + ms(margin)
}

func printDecisions(o cli.Output, ds daemon.Decisions) error {
	fmt.Fprintf(o.W, "mode %s, %d decisions\n", ds.Mode, len(ds.Decisions))
	var rows [][]string
	for _, d := range ds.Decisions {
		kind := string(d.Kind)
		if d.Shadow {
			kind += " (shadow)"
		}
		dst := d.Destination
		if d.Prefix.IsValid() {
			dst = d.Prefix.String()
		}
		path := asn(d.Seller)
		if d.From != 0 || d.Kind == manager.KindSwitch || d.Kind == manager.KindRoute {
			path = asn(d.From) + " -> " + asn(d.Seller)
		}
		size, price, monthly := "", "", ""
		if d.SizeBps != 0 {
			size = manager.Bandwidth(d.SizeBps).String()
		}
		if d.PriceMicros != 0 {
			price = manager.Money(d.PriceMicros).String()
			monthly = manager.Money(d.MonthlyMicros).String()
		}
		gain := ""
		if d.GainLatencyUs != 0 || d.GainLossPPM != 0 || d.SavingMicros != 0 {
			gain = fmt.Sprintf("%s ms, %v±%v loss, %v/month", gainPM(d.GainLatencyUs, d.GainLatencyMarginUs), manager.Percent(d.GainLossPPM),
				manager.Percent(d.GainLossMarginPPM), manager.Money(d.SavingMicros))
		}
		reason := d.Reason
		if d.Compared != "" {
			reason += " [" + d.Compared + "]"
		}
		rows = append(rows, []string{strconv.FormatUint(d.Seq, 10), d.At.Format(time.RFC3339), kind, dst, path, size, price, monthly,
			quality(d.Current), quality(d.Chosen), gain, reason})
	}
	return o.Table([]string{"#", "AT", "KIND", "DESTINATION", "PATH", "SIZE", "PRICE/MBPS", "MONTHLY", "CURRENT (LOST/PROBES)", "CHOSEN (LOST/PROBES)", "GAIN", "REASON"}, rows)
}

func printSummary(o cli.Output, mode string, s manager.Summary) error {
	verb := "bought"
	if mode == string(manager.ModeShadow) {
		verb = "would have bought (shadow mode: nothing was traded)"
	}
	fmt.Fprintf(o.W, "the access manager %s: %d destinations, %v a month, saving %v a month against the default path\n",
		verb, len(s.Destinations), manager.Money(s.MonthlyMicros), manager.Money(s.SavingMicros))
	fmt.Fprintln(o.W, "gains are point estimates ± their 95 % margin; a gain within its margin may be none")
	var rows [][]string
	for _, v := range s.Destinations {
		rows = append(rows, []string{v.Prefix.String(), asn(v.Seller), manager.Bandwidth(v.SizeBps).String(), manager.Money(v.PriceMicros).String(),
			manager.Money(v.MonthlyMicros).String(), gainPM(v.GainLatencyUs, v.GainLatencyMarginUs),
			manager.Percent(v.GainLossPPM).String() + "±" + manager.Percent(v.GainLossMarginPPM).String(), manager.Money(v.SavingMicros).String()})
	}
	return o.Table([]string{"DESTINATION", "SELLER", "SIZE", "PRICE/MBPS", "MONTHLY", "LATENCY GAIN MS", "LOSS GAIN", "SAVING/MONTH"}, rows)
}
