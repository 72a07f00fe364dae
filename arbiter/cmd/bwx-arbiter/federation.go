package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/units"
)

func federationCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "federation", Short: "the peer exchanges this one shares its book with (claim 26)"}
	peers := &cobra.Command{
		Use:   "peers",
		Short: "each peer exchange: its link's state, its offers in the view, its last update",
		Long: `Each peer exchange in federation.peers: the address of its federation
listener, the link's state (connecting, syncing: taking a snapshot of its
book, up: following its changes, down: the link failed, its offers are kept
but not usable), the offers of its book this exchange holds, when it was
last heard from, how often its book was taken again (a gap, a restart of
either side), the offers it sent that were rejected and why the last was.`,
		Example: "  bwx-arbiter federation peers\n  bwx-arbiter federation peers -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := cli.Call(g.connect, pb.NewFederationAdminServiceClient, pb.FederationAdminServiceClient.ListPeers, &pb.ListPeersRequest{})
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, resp.Peers, peerTable)
		},
	}
	var exchange, prefix string
	offers := &cobra.Command{
		Use:   "offers",
		Short: "the peer exchanges' sell orders as this exchange sees them",
		Long: `The sell orders the peer exchanges publish, as this exchange's view holds
them: exchange, seller, prefixes, the capacity left, the price and the
path's quality as the seller's exchange measured it (the interconnect's
latency not added). An offer of a peer that is down is marked (stale):
matching does not consider it.`,
		Example: "  bwx-arbiter federation offers\n  bwx-arbiter federation offers --exchange ix-b --prefix 198.51.100.0/24",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := cli.Call(g.connect, pb.NewFederationAdminServiceClient, pb.FederationAdminServiceClient.ListRemoteOffers,
				&pb.ListRemoteOffersRequest{Exchange: exchange, Prefix: prefix})
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, resp.Offers, remoteOfferTable)
		},
	}
	offers.Flags().StringVar(&exchange, "exchange", "", "only this peer exchange's offers")
	offers.Flags().StringVar(&prefix, "prefix", "", "only offers with a prefix covering this one")
	c.AddCommand(peers, offers)
	return c
}

func peerTable(o cli.Output, ps []*pb.FederationPeer) error {
	var rows [][]string
	for _, p := range ps {
		last := "-"
		if p.LastUpdate != nil {
			last = p.LastUpdate.AsTime().UTC().Format(time.RFC3339)
		}
		why := p.LastError
		if why == "" {
			why = "-"
		}
		rows = append(rows, []string{p.Name, p.Address, p.State, fmt.Sprint(p.Offers), last, fmt.Sprint(p.Resyncs), fmt.Sprint(p.Rejected),
			units.Bandwidth(p.InterconnectBps).String(), fmt.Sprintf("%.1fms", float64(p.AddedLatencyUs)/1000), why})
	}
	return o.Table([]string{"PEER", "ADDRESS", "STATE", "OFFERS", "LAST UPDATE (UTC)", "RESYNCS", "REJECTED", "INTERCONNECT", "ADDED LATENCY", "LAST ERROR"}, rows)
}

func remoteOfferTable(o cli.Output, xs []*pb.ExchangeOffer) error {
	var rows [][]string
	for _, x := range xs {
		f := x.Offer
		ex := x.Exchange
		if !x.Usable {
			ex += " (stale)"
		}
		rows = append(rows, []string{ex, fmt.Sprint(f.OrderId), fmt.Sprintf("AS%d", f.SellerAsn), strings.Join(f.Prefixes, ","),
			units.Bandwidth(f.CapacityBps).String(), units.Money(f.PriceMicros).String(),
			f.DeliveryStart.AsTime().UTC().Format("2006-01-02T15:04Z") + " - " + f.DeliveryEnd.AsTime().UTC().Format("2006-01-02T15:04Z"),
			cli.PathQuality(f.Measured)})
	}
	return o.Table([]string{"EXCHANGE", "ORDER", "SELLER", "PREFIXES", "CAPACITY", "PRICE/Mbps/mo", "DELIVERY", "LATENCY/LOSS"}, rows)
}
