package main

import (
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/arbiter/routeserver"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/clock"
)

func bgpCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "bgp", Short: "the route server: sessions, received and sent routes, resets"}
	var member uint32
	sessions := &cobra.Command{
		Use:   "sessions",
		Short: "members' BGP sessions (like `gobgp neighbor`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, err := cli.CallList(g.connect, pb.NewRouteServerServiceClient, pb.RouteServerServiceClient.ListSessions, &pb.ListSessionsRequest{MemberAsn: member}, (*pb.ListSessionsResponse).GetSessions, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, items, sessionTable)
		},
	}
	sessions.Flags().Uint32Var(&member, "member", 0, "only this member's")

	received := &cobra.Command{
		Use:   "received ASN",
		Short: "routes a member announces, accepted or rejected with the reason (like `birdc show route`)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asn, err := parseASN(args[0])
			if err != nil {
				return err
			}
			items, err := cli.CallList(g.connect, pb.NewRouteServerServiceClient, pb.RouteServerServiceClient.ListReceivedRoutes, &pb.ListReceivedRoutesRequest{MemberAsn: asn}, (*pb.ListReceivedRoutesResponse).GetRoutes, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, items, receivedTable)
		},
	}

	sent := &cobra.Command{
		Use:   "sent ASN",
		Short: "trade routes the route server sends a member (like `birdc show route all`)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asn, err := parseASN(args[0])
			if err != nil {
				return err
			}
			items, err := cli.CallList(g.connect, pb.NewRouteServerServiceClient, pb.RouteServerServiceClient.ListSentRoutes, &pb.ListSentRoutesRequest{MemberAsn: asn}, (*pb.ListSentRoutesResponse).GetRoutes, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, items, sentTable)
		},
	}

	reset := &cobra.Command{
		Use:   "reset ASN",
		Short: "re-enable a member's sessions after a max-prefix shutdown or flap damping (resets the others)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asn, err := parseASN(args[0])
			if err != nil {
				return err
			}
			if _, err := cli.Call(g.connect, pb.NewRouteServerServiceClient, pb.RouteServerServiceClient.ResetSessions, &pb.ResetSessionsRequest{MemberAsn: asn}); err != nil {
				return err
			}
			if !g.out.JSON() {
				fmt.Printf("AS%d: sessions reset; its routers reconnect\n", asn)
			}
			return nil
		},
	}
	c.AddCommand(sessions, received, sent, reset)
	return c
}

func sessionTable(o cli.Output, sessions []*pb.BgpSession) error {
	var ss []routeserver.Session
	for _, s := range sessions {
		a, _ := netip.ParseAddr(s.Neighbor)
		ss = append(ss, routeserver.Session{ASN: s.Asn, Address: a, State: s.State, Uptime: clock.Since(s.Since.AsTime()),
			Received: int(s.Received), Accepted: int(s.Accepted), Sent: int(s.Sent)})
	}
	return routeserver.FormatSessions(o.W, ss)
}

func receivedTable(o cli.Output, routes []*pb.ReceivedRoute) error {
	var rs []routeserver.ReceivedRoute
	for _, r := range routes {
		x := routeserver.ReceivedRoute{ASN: r.MemberAsn, ASPath: r.AsPath, OriginAS: r.OriginAsn, Accepted: r.Accepted, Reason: r.Reason,
			Since: r.Since.AsTime(), Origin: "-"}
		x.Neighbor, _ = netip.ParseAddr(r.Neighbor)
		x.Prefix, _ = netip.ParsePrefix(r.Prefix)
		x.NextHop, _ = netip.ParseAddr(r.NextHop)
		rs = append(rs, x)
	}
	return routeserver.FormatReceived(o.W, rs)
}

func sentTable(o cli.Output, routes []*pb.SentRoute) error {
	var rs []routeserver.SentRoute
	for _, r := range routes {
		x := routeserver.SentRoute{ASPath: r.AsPath, Origin: r.Origin, Communities: r.Communities, LargeCommunities: r.LargeCommunities, PathID: r.PathId}
		x.Neighbor, _ = netip.ParseAddr(r.Neighbor)
		x.Prefix, _ = netip.ParsePrefix(r.Prefix)
		x.NextHop, _ = netip.ParseAddr(r.NextHop)
		rs = append(rs, x)
	}
	return routeserver.FormatSent(o.W, rs)
}
