package main

import (
	"fmt"
	"net/netip"
	"os"

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
			conn, cx, done, err := g.connect()
			if err != nil {
				return err
			}
			defer done()
			resp, err := pb.NewRouteServerServiceClient(conn).ListSessions(cx, &pb.ListSessionsRequest{MemberAsn: member})
			if err != nil {
				return err
			}
			if g.out.JSON() {
				return cli.Protos(g.out, resp.Sessions)
			}
			var ss []routeserver.Session
			for _, s := range resp.Sessions {
				a, _ := netip.ParseAddr(s.Neighbor)
				ss = append(ss, routeserver.Session{ASN: s.Asn, Address: a, State: s.State, Uptime: clock.Since(s.Since.AsTime()),
					Received: int(s.Received), Accepted: int(s.Accepted), Sent: int(s.Sent)})
			}
			return routeserver.FormatSessions(os.Stdout, ss)
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
			conn, cx, done, err := g.connect()
			if err != nil {
				return err
			}
			defer done()
			resp, err := pb.NewRouteServerServiceClient(conn).ListReceivedRoutes(cx, &pb.ListReceivedRoutesRequest{MemberAsn: asn})
			if err != nil {
				return err
			}
			if g.out.JSON() {
				return cli.Protos(g.out, resp.Routes)
			}
			var rs []routeserver.ReceivedRoute
			for _, r := range resp.Routes {
				x := routeserver.ReceivedRoute{ASN: r.MemberAsn, ASPath: r.AsPath, OriginAS: r.OriginAsn, Accepted: r.Accepted, Reason: r.Reason,
					Since: r.Since.AsTime(), Origin: "-"}
				x.Neighbor, _ = netip.ParseAddr(r.Neighbor)
				x.Prefix, _ = netip.ParsePrefix(r.Prefix)
				x.NextHop, _ = netip.ParseAddr(r.NextHop)
				rs = append(rs, x)
			}
			return routeserver.FormatReceived(os.Stdout, rs)
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
			conn, cx, done, err := g.connect()
			if err != nil {
				return err
			}
			defer done()
			resp, err := pb.NewRouteServerServiceClient(conn).ListSentRoutes(cx, &pb.ListSentRoutesRequest{MemberAsn: asn})
			if err != nil {
				return err
			}
			if g.out.JSON() {
				return cli.Protos(g.out, resp.Routes)
			}
			var rs []routeserver.SentRoute
			for _, r := range resp.Routes {
				x := routeserver.SentRoute{ASPath: r.AsPath, Origin: r.Origin, Communities: r.Communities, LargeCommunities: r.LargeCommunities, PathID: r.PathId}
				x.Neighbor, _ = netip.ParseAddr(r.Neighbor)
				x.Prefix, _ = netip.ParsePrefix(r.Prefix)
				x.NextHop, _ = netip.ParseAddr(r.NextHop)
				rs = append(rs, x)
			}
			return routeserver.FormatSent(os.Stdout, rs)
		},
	}

	reset := &cobra.Command{
		Use:   "reset ASN",
		Short: "re-enable a member's sessions after a max-prefix shutdown (resets the others)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asn, err := parseASN(args[0])
			if err != nil {
				return err
			}
			conn, cx, done, err := g.connect()
			if err != nil {
				return err
			}
			defer done()
			if _, err := pb.NewRouteServerServiceClient(conn).ResetSessions(cx, &pb.ResetSessionsRequest{MemberAsn: asn}); err != nil {
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
