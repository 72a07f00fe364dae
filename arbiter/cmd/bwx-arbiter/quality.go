package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
)

func qualityCmd(g *globals) *cobra.Command {
	var via uint32
	var prefix string
	var maxAge time.Duration
	c := &cobra.Command{
		Use:   "quality",
		Short: "the quality matrix: latency, jitter and loss through each seller toward each destination",
		Long: `The quality matrix as the exchange pools it from its members' probes and
third-party measurements: per seller (VIA) and destination prefix, the mean
latency and jitter, the loss, the AS hops of the seller's route, the
probes behind the figures, and how many independent vantages (members'
agents, third parties) they rest on: each figure is the median of the
vantages' own averages, so one loud reporter cannot move it.`,
		Example: "  bwx-arbiter quality\n  bwx-arbiter quality --via 64502 --prefix 198.18.0.0/24 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.QueryMatrixRequest{ViaAsn: via, DestinationPrefix: prefix}
			if maxAge > 0 {
				req.MaxAge = durationpb.New(maxAge)
			}
			resp, err := cli.Call(g.connect, pb.NewQualityServiceClient, pb.QualityServiceClient.QueryMatrix, req)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, resp.Entries, matrixTable)
		},
	}
	c.Flags().Uint32Var(&via, "via", 0, "only paths through this seller's AS")
	c.Flags().StringVar(&prefix, "prefix", "", "only this destination prefix")
	c.Flags().DurationVar(&maxAge, "max-age", 0, "only measurements newer than this (default: the arbiter's freshness window)")
	return c
}

// matrixTable prints the quality matrix's entries.
func matrixTable(o cli.Output, entries []*pb.MatrixEntry) error {
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		hops := "-"
		if e.AsHops > 0 {
			hops = strconv.Itoa(int(e.AsHops))
		}
		rows = append(rows, []string{fmt.Sprintf("AS%d", e.ViaAsn), e.DestinationPrefix, ms(e.LatencyUs), ms(e.JitterUs),
			fmt.Sprintf("%.2f%%", float64(e.LossPpm)/1e4), hops, strconv.Itoa(int(e.Samples)), strconv.Itoa(int(e.Vantages)), e.LastMeasuredAt.AsTime().UTC().Format(time.TimeOnly)})
	}
	return o.Table([]string{"VIA", "DESTINATION", "LATENCY", "JITTER", "LOSS", "AS HOPS", "SAMPLES", "VANTAGES", "LAST (UTC)"}, rows)
}

func ms(us int64) string { return fmt.Sprintf("%.1fms", float64(us)/1000) }
