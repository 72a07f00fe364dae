package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/pages"
	"github.com/bwxchange/bwx/shared/pki"
	"github.com/bwxchange/bwx/shared/rpc"
	"github.com/bwxchange/bwx/shared/units"
)

type globals struct {
	configPath string
	socket     string
	arbiter    string
	bundle     string
	out        cli.Output
}

// dial reaches the arbiter as the operator: the local socket by default, or
// a remote arbiter with an operator certificate.
func (g *globals) dial() (*grpc.ClientConn, error) {
	g.out.W = os.Stdout
	if err := g.out.Check(); err != nil {
		return nil, err
	}
	if g.arbiter != "" {
		if g.bundle == "" {
			return nil, fmt.Errorf("--arbiter needs --bundle (an operator certificate: bwx-arbiter ca operator)")
		}
		b, err := pki.LoadBundle(g.bundle)
		if err != nil {
			return nil, err
		}
		if !b.Identity.IsOperator() {
			return nil, fmt.Errorf("%s is a %s certificate, not an operator's", g.bundle, b.Identity)
		}
		return rpc.DialTLS(g.arbiter, "", b)
	}
	sock := g.socket
	if sock == "" {
		cfg, err := loadConfigOrDefault(g.configPath)
		if err != nil {
			return nil, err
		}
		sock = cfg.Operator.Socket
	}
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("operator socket %s: %w (is bwx-arbiter running? are you root or the bwx user?)", sock, err)
	}
	return rpc.DialUnix(sock)
}

// connect dials the arbiter for one command (a cli.Connect).
func (g *globals) connect() (*grpc.ClientConn, context.Context, func(), error) {
	return cli.Dial(g.dial, cli.CallTimeout)
}

func memberCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "member", Short: "register and list members"}
	var (
		asn      uint32
		name     string
		port     string
		capacity units.Bandwidth
		routers  []string
		bundle   string
	)
	add := &cobra.Command{
		Use:   "add",
		Short: "register a member and write its certificate bundle",
		Example: `  bwx-arbiter member add --asn 64500 --name "Example Net" --port swp1 --capacity 10G \
      --router 192.0.2.10 --router 2001:db8::10 --bundle-out as64500.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bundle == "" {
				return fmt.Errorf("--bundle-out is required: where to write the member's certificate bundle")
			}
			if _, err := os.Stat(bundle); err == nil {
				return fmt.Errorf("--bundle-out %s already exists; refusing to overwrite a member's key", bundle)
			}
			key, err := pki.NewKey()
			if err != nil {
				return err
			}
			csr, err := pki.NewCSR(key, fmt.Sprintf("AS%d", asn))
			if err != nil {
				return err
			}
			resp, err := cli.Call(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.AddMember, &pb.AddMemberRequest{
				Asn: asn, Name: name, Port: &pb.Port{Name: port, CapacityBps: int64(capacity)}, RouterAddresses: routers, Csr: csr,
			})
			if err != nil {
				return err
			}
			keyPEM, err := pki.MarshalKeyPEM(key)
			if err != nil {
				return err
			}
			if err := pki.WriteBundle(bundle, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
				return fmt.Errorf("member AS%d is registered but its bundle could not be written (%v); issue a new one with `bwx-arbiter member cert`", asn, err)
			}
			if g.out.JSON() {
				return g.out.Proto(resp.Member)
			}
			fmt.Printf("registered AS%d %q; certificate bundle written to %s (give it to the member's agent)\n", asn, name, bundle)
			return nil
		},
	}
	f := add.Flags()
	f.Uint32Var(&asn, "asn", 0, "the member's AS number")
	f.StringVar(&name, "name", "", "the member's name")
	f.StringVar(&port, "port", "", "its port on the trading switch, e.g. swp12")
	f.Var(&capacity, "capacity", "the port's capacity, e.g. 10G")
	f.StringSliceVar(&routers, "router", nil, "a router address on the exchange LAN (repeat for each, IPv4 and IPv6)")
	f.StringVar(&bundle, "bundle-out", "", "file to write the member's certificate bundle to")
	for _, n := range []string{"asn", "name", "port", "capacity", "router", "bundle-out"} {
		add.MarkFlagRequired(n)
	}

	cert := &cobra.Command{
		Use:   "cert ASN",
		Short: "issue a new certificate bundle for an existing member",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := parseASN(args[0])
			if err != nil {
				return err
			}
			if _, err := os.Stat(bundle); err == nil {
				return fmt.Errorf("--bundle-out %s already exists", bundle)
			}
			key, _ := pki.NewKey()
			csr, err := pki.NewCSR(key, fmt.Sprintf("AS%d", a))
			if err != nil {
				return err
			}
			resp, err := cli.Call(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.IssueCertificate, &pb.IssueCertificateRequest{Asn: a, Csr: csr})
			if err != nil {
				return err
			}
			keyPEM, _ := pki.MarshalKeyPEM(key)
			if err := pki.WriteBundle(bundle, resp.CertificatePem, keyPEM, resp.CaPem); err != nil {
				return err
			}
			b, err := pki.LoadBundle(bundle)
			if err != nil {
				return err
			}
			fmt.Printf("certificate bundle for AS%d written to %s: serial %s, valid until %s\n", a, bundle,
				pki.Serial(b.Certificate.Leaf), b.Certificate.Leaf.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cert.Flags().StringVar(&bundle, "bundle-out", "", "file to write the bundle to")
	cert.MarkFlagRequired("bundle-out")

	list := &cobra.Command{
		Use:   "list",
		Short: "list members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				rc := pb.NewRegistryServiceClient(conn)
				ms, err := pages.List(cx, rc.ListMembers, &pb.ListMembersRequest{}, (*pb.ListMembersResponse).GetMembers, 0)
				if err != nil {
					return err
				}
				if g.out.JSON() {
					return cli.Protos(g.out, ms)
				}
				certs, err := pages.List(cx, rc.ListCertificates, &pb.ListCertificatesRequest{}, (*pb.ListCertificatesResponse).GetCertificates, 0)
				if err != nil {
					return err
				}
				return memberTable(g.out, ms, certs)
			})
		},
	}
	var reason string
	suspend := statusCmd(g, "suspend ASN", "suspend a member: its resting orders cancelled, new orders refused, its trades run on",
		`Suspend a member. At once its resting orders are cancelled (its agent and the
route server see each cancellation), and from then on the arbiter refuses its
new and modified orders, taken offers, measurements and breach reports with
"member AS... is suspended". It still reads its orders, trades, invoices,
credit and events, reports usage, and its trades run to their end: they are
contracts its counterparties rely on. "member resume" lifts it.`,
		func(rc pb.RegistryServiceClient, cx context.Context, a uint32) (*pb.MemberStatusChange, error) {
			return rc.SuspendMember(cx, &pb.SuspendMemberRequest{Asn: a, Reason: reason})
		})
	suspend.Flags().StringVar(&reason, "reason", "", "why, recorded with the status and shown by member list")
	resume := statusCmd(g, "resume ASN", "lift a member's suspension: it may order again",
		`Lift a member's suspension: it may order and report again. The orders the
suspension cancelled stay cancelled. A removed member cannot be resumed.`,
		func(rc pb.RegistryServiceClient, cx context.Context, a uint32) (*pb.MemberStatusChange, error) {
			return rc.ResumeMember(cx, &pb.ResumeMemberRequest{Asn: a})
		})
	remove := statusCmd(g, "remove ASN", "remove a member: certificates revoked, orders cancelled, trades ended now",
		`Remove a member from the exchange. Every certificate of it is revoked, so every
call it makes is refused from the moment the command returns; its resting
orders are cancelled; and each of its trades ends now: delivery_end moves to
the removal time with the reason "member AS... removed", the route server
withdraws the routes, both parties' agents see the trade end on their event
streams, and settlement charges both sides up to this moment and nothing
after. A trade not started yet is cancelled. The member stays on record,
marked removed (its invoices and ledger refer to it), and can never be
resumed. If the command fails half-way, run it again: it finishes the
removal.`,
		func(rc pb.RegistryServiceClient, cx context.Context, a uint32) (*pb.MemberStatusChange, error) {
			return rc.RemoveMember(cx, &pb.RemoveMemberRequest{Asn: a, Reason: reason})
		})
	remove.Flags().StringVar(&reason, "reason", "", "why, recorded with the status and in each ended trade's end reason")
	certs := &cobra.Command{
		Use:   "certs [ASN]",
		Short: "list the certificates the registry signed or revoked: serial, identity, expiry, revocation",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a uint32
			if len(args) == 1 {
				var err error
				if a, err = parseASN(args[0]); err != nil {
					return err
				}
			}
			cs, err := cli.CallList(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.ListCertificates, &pb.ListCertificatesRequest{MemberAsn: a}, (*pb.ListCertificatesResponse).GetCertificates, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, cs, certTable)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "revoke a member's or operator's certificate: refused from now on, no restart",
		Long: `Revoke a certificate by its serial (hex, as "member certs" shows it and
"member cert" prints when it writes a bundle). The API and the dashboard
refuse it from the moment the command returns. A serial the registry did not
sign (an operator bundle made from the CA's files) is recorded as revoked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.Call(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.RevokeCertificate, &pb.RevokeCertificateRequest{Serial: args[0]})
			if err != nil {
				return err
			}
			return cli.Print(g.out, c, func(o cli.Output, c *pb.CertificateInfo) error { return certTable(o, []*pb.CertificateInfo{c}) })
		},
	}
	c.AddCommand(add, cert, list, certs, revoke, suspend, resume, remove)
	return c
}

// memberTable prints members with their status and valid certificates.
func memberTable(o cli.Output, ms []*pb.Member, certs []*pb.CertificateInfo) error {
	valid := map[uint32][]string{}
	for _, c := range certs {
		if c.MemberAsn != 0 && c.Revoked == nil {
			valid[c.MemberAsn] = append(valid[c.MemberAsn], c.Serial+" until "+c.NotAfter.AsTime().UTC().Format("2006-01-02"))
		}
	}
	rows := [][]string{}
	for _, m := range ms {
		rows = append(rows, []string{fmt.Sprintf("AS%d", m.Asn), m.Name, memberStatus(m), m.Port.GetName(),
			units.Bandwidth(m.Port.GetCapacityBps()).String(), strings.Join(m.RouterAddresses, ","), strings.Join(valid[m.Asn], ", ")})
	}
	return o.Table([]string{"ASN", "NAME", "STATUS", "PORT", "CAPACITY", "ROUTERS", "VALID CERTIFICATES"}, rows)
}

// memberStatus is "active", or "suspended since <time>: <reason>".
func memberStatus(m *pb.Member) string {
	st := strings.ToLower(strings.TrimPrefix(m.Status.String(), "MEMBER_STATUS_"))
	if m.Status == pb.MemberStatus_MEMBER_STATUS_ACTIVE || m.Status == pb.MemberStatus_MEMBER_STATUS_UNSPECIFIED {
		return "active"
	}
	if m.StatusSince != nil {
		st += " " + m.StatusSince.AsTime().UTC().Format(time.RFC3339)
	}
	if m.StatusReason != "" {
		st += ": " + m.StatusReason
	}
	return st
}

// statusCmd is one of suspend, resume and remove: call on the member ASN
// names, and what it did printed.
func statusCmd(g *globals, use, short, long string, call func(pb.RegistryServiceClient, context.Context, uint32) (*pb.MemberStatusChange, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := parseASN(args[0])
			if err != nil {
				return err
			}
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				c, err := call(pb.NewRegistryServiceClient(conn), cx, a)
				if err != nil {
					return err
				}
				return cli.Print(g.out, c, statusChangeTable)
			})
		},
	}
}

func statusChangeTable(o cli.Output, c *pb.MemberStatusChange) error {
	m := c.Member
	ids := func(xs []uint64) string {
		if len(xs) == 0 {
			return "none"
		}
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = strconv.FormatUint(x, 10)
		}
		return strings.Join(s, ", ")
	}
	serials := "none"
	if len(c.RevokedSerials) > 0 {
		serials = strings.Join(c.RevokedSerials, ", ")
	}
	return o.Table([]string{"MEMBER", "STATUS", "CANCELLED ORDERS", "ENDED TRADES", "REVOKED CERTIFICATES"},
		[][]string{{fmt.Sprintf("AS%d", m.GetAsn()), memberStatus(m), ids(c.CancelledOrderIds), ids(c.EndedTradeIds), serials}})
}

// certTable prints certificates with their state.
func certTable(o cli.Output, cs []*pb.CertificateInfo) error {
	rows := [][]string{}
	for _, c := range cs {
		rows = append(rows, certRow(c))
	}
	return o.Table([]string{"SERIAL", "IDENTITY", "MEMBER", "NOT AFTER", "STATE"}, rows)
}

// certRow is a certificate's row in certTable.
func certRow(c *pb.CertificateInfo) []string {
	member, notAfter, state := "-", "-", "valid"
	if c.MemberAsn != 0 {
		member = fmt.Sprintf("AS%d", c.MemberAsn)
	}
	if c.NotAfter != nil {
		notAfter = c.NotAfter.AsTime().UTC().Format(time.RFC3339)
	}
	if c.Revoked != nil {
		state = "revoked " + c.Revoked.AsTime().UTC().Format(time.RFC3339)
	}
	return []string{c.Serial, c.Identity, member, notAfter, state}
}

func parseASN(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(s), "AS"), 10, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not an AS number", s)
	}
	return uint32(v), nil
}

var routeTypes = map[string]pb.RouteType{"customer": pb.RouteType_ROUTE_TYPE_CUSTOMER, "peer": pb.RouteType_ROUTE_TYPE_PEER,
	"transit": pb.RouteType_ROUTE_TYPE_TRANSIT, "specific": pb.RouteType_ROUTE_TYPE_SPECIFIC}

func routeTypeName(t pb.RouteType) string {
	for n, v := range routeTypes {
		if v == t {
			return n
		}
	}
	return t.String()
}

func prefixCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "prefix", Short: "register members' prefixes (the trade route registry)"}
	var (
		member, origin uint32
		typ            string
		allow          []string
		prepends       int
		noExport       bool
	)
	add := &cobra.Command{
		Use:     "add PREFIX",
		Short:   "register a prefix for a member",
		Example: "  bwx-arbiter prefix add 198.51.100.0/24 --member 64500 --type customer",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, ok := routeTypes[strings.ToLower(typ)]
			if !ok {
				return fmt.Errorf("--type %q: want customer, peer, transit or specific", typ)
			}
			if _, err := netip.ParsePrefix(args[0]); err != nil {
				return fmt.Errorf("%q is not a CIDR prefix", args[0])
			}
			var buyers []uint32
			for _, s := range allow {
				a, err := parseASN(s)
				if err != nil {
					return fmt.Errorf("--allow: %w", err)
				}
				buyers = append(buyers, a)
			}
			p, err := cli.Call(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.AddPrefix, &pb.AddPrefixRequest{Prefix: &pb.Prefix{
				Prefix: args[0], MemberAsn: member, RouteType: t, OriginAsn: origin,
				AllowedBuyers: buyers, Prepends: int32(prepends), AllowExport: !noExport}})
			if err != nil {
				return err
			}
			return cli.Print(g.out, p, func(o cli.Output, p *pb.Prefix) error {
				_, err := fmt.Fprintf(o.W, "registered %s for AS%d (%s, origin AS%d)\n", p.Prefix, p.MemberAsn, routeTypeName(p.RouteType), p.OriginAsn)
				return err
			})
		},
	}
	add.Flags().Uint32Var(&member, "member", 0, "the member's AS number")
	add.Flags().StringVar(&typ, "type", "customer", "route type: customer, peer, transit or specific")
	add.Flags().Uint32Var(&origin, "origin", 0, "origin AS of the route (default: the member's)")
	add.Flags().StringSliceVar(&allow, "allow", nil, "a member that may buy it (repeat; default: every member)")
	add.Flags().IntVar(&prepends, "prepend", 0, "times the seller's ASN is prepended to the delivered path (0-10)")
	add.Flags().BoolVar(&noExport, "no-export", true, "tag delivered routes NO_EXPORT, so buyers keep them to themselves (--no-export=false lets buyers pass them on)")
	add.MarkFlagRequired("member")

	remove := &cobra.Command{
		Use:   "remove PREFIX",
		Short: "remove a member's registered prefix",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cli.Call(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.RemovePrefix, &pb.RemovePrefixRequest{MemberAsn: member, Prefix: args[0]})
			return err
		},
	}
	remove.Flags().Uint32Var(&member, "member", 0, "the member's AS number")
	remove.MarkFlagRequired("member")

	list := &cobra.Command{
		Use:   "list",
		Short: "list registered prefixes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := cli.CallList(g.connect, pb.NewRegistryServiceClient, pb.RegistryServiceClient.ListPrefixes, &pb.ListPrefixesRequest{MemberAsn: member}, (*pb.ListPrefixesResponse).GetPrefixes, 0)
			if err != nil {
				return err
			}
			return cli.PrintList(g.out, ps, prefixTable)
		},
	}
	list.Flags().Uint32Var(&member, "member", 0, "only this member's")
	c.AddCommand(add, remove, list)
	return c
}

// prefixTable prints registered prefixes with their allow lists.
func prefixTable(o cli.Output, ps []*pb.Prefix) error {
	var rows [][]string
	for _, p := range ps {
		buyers := "all"
		if len(p.AllowedBuyers) > 0 {
			var bs []string
			for _, b := range p.AllowedBuyers {
				bs = append(bs, fmt.Sprintf("AS%d", b))
			}
			buyers = strings.Join(bs, ",")
		}
		noExport := "yes"
		if p.AllowExport {
			noExport = "no"
		}
		rows = append(rows, []string{p.Prefix, fmt.Sprintf("AS%d", p.MemberAsn), routeTypeName(p.RouteType), fmt.Sprintf("AS%d", p.OriginAsn),
			buyers, strconv.Itoa(int(p.Prepends)), noExport})
	}
	return o.Table([]string{"PREFIX", "MEMBER", "TYPE", "ORIGIN", "BUYERS", "PREPEND", "NO_EXPORT"}, rows)
}

func ordersCmd(g *globals) *cobra.Command {
	var member uint32
	var open bool
	var limit int
	c := &cobra.Command{
		Use:   "orders",
		Short: "list the order book",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				os, err := pages.Orders(cx, pb.NewTradingServiceClient(conn), &pb.ListOrdersRequest{MemberAsn: member, OpenOnly: open}, limit)
				if err != nil {
					return err
				}
				return cli.Orders(g.out, os)
			})
		},
	}
	c.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all, read a page at a time)")
	c.Flags().Uint32Var(&member, "member", 0, "only this member's")
	c.Flags().BoolVar(&open, "open", false, "only open orders")
	return c
}

func tradesCmd(g *globals) *cobra.Command {
	var member uint32
	var active, withDelivery bool
	var limit int
	c := &cobra.Command{
		Use:   "trades",
		Short: "list trades (and, with --delivery, what was really delivered)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Calls(g.connect, func(cx context.Context, conn *grpc.ClientConn) error {
				ts, err := pages.Trades(cx, pb.NewTradingServiceClient(conn), &pb.ListTradesRequest{MemberAsn: member, ActiveOnly: active, WithDelivery: withDelivery}, limit)
				if err != nil {
					return err
				}
				return cli.Trades(g.out, ts)
			})
		},
	}
	c.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all, read a page at a time)")
	c.Flags().Uint32Var(&member, "member", 0, "only this member's")
	c.Flags().BoolVar(&active, "active", false, "only trades in delivery now")
	c.Flags().BoolVar(&withDelivery, "delivery", false, "add each trade's delivery record: per buyer session, when its routes were announced, and why not otherwise")
	return c
}
