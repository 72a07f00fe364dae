package routeserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/bwxchange/bwx/shared/clock"
)

// Session is one member router's BGP session.
type Session struct {
	ASN     uint32
	Address netip.Addr
	// State is the BGP FSM state (Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established), with the reason an Idle session stays
	// down: "Idle (max prefix)", "Idle (dampened)" (flapping: see
	// Config.FlapLimit) or "Idle (admin)".
	State string
	// Uptime is how long the session has been in its state.
	Uptime time.Duration
	// Received and Accepted count the routes the router announces now;
	// Sent the paths in its Adj-RIB-Out (its trades as a buyer).
	Received, Accepted, Sent int
}

// Established reports whether the session is up.
func (s *Session) Established() bool { return s.State == "Established" }

// SessionCounts is how many member sessions are established and how many
// are not: what a metrics scrape needs, without Sessions' Adj-RIB-Out
// listings.
func (s *Server) SessionCounts() (up, down int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nbrs {
		if n.established() {
			up++
		} else {
			down++
		}
	}
	return up, down
}

// Sessions lists every member session, by ASN and address.
func (s *Server) Sessions(ctx context.Context) ([]Session, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	s.end()
	s.mu.Lock()
	out := make([]Session, 0, len(s.nbrs))
	addPath := map[uint32]bool{}
	for asn, m := range s.members {
		addPath[asn] = m.AddPathReceive
	}
	now := clock.Now()
	for _, n := range s.nbrs {
		state := stateName(n.state, n.admin)
		if now.Before(n.dampedUntil) {
			state = "Idle (dampened)"
		}
		out = append(out, Session{
			ASN: n.asn, Address: n.addr, State: state,
			Uptime: clock.Since(n.since).Truncate(time.Second), Received: n.routes.Size(), Accepted: n.nAcc,
		})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Session) int {
		if c := cmp.Compare(a.ASN, b.ASN); c != 0 {
			return c
		}
		return a.Address.Compare(b.Address)
	})
	// Sent is what the session's Adj-RIB-Out holds: its table's best path
	// per prefix (every path with ADD-PATH) after the export policy.
	// (GoBGP's own Advertised counter counts before the policy.)
	var errs []error
	for i := range out {
		if !out[i].Established() {
			continue
		}
		rs, err := s.sentTo(ctx, out[i].Address)
		if err != nil {
			errs = append(errs, err)
		}
		out[i].Sent = len(rs)
	}
	return out, errors.Join(errs...)
}

func stateName(st api.PeerState_SessionState, admin api.PeerState_AdminState) string {
	var name string
	switch st {
	case api.PeerState_IDLE:
		name = "Idle"
	case api.PeerState_CONNECT:
		name = "Connect"
	case api.PeerState_ACTIVE:
		name = "Active"
	case api.PeerState_OPENSENT:
		name = "OpenSent"
	case api.PeerState_OPENCONFIRM:
		name = "OpenConfirm"
	case api.PeerState_ESTABLISHED:
		return "Established"
	default:
		name = "Unknown"
	}
	switch admin {
	case api.PeerState_PFX_CT:
		name += " (max prefix)"
	case api.PeerState_DOWN:
		name += " (admin)"
	}
	return name
}

// SentRoute is a path as the route server sends it to a member router
// (after the export policy; the route server's ASN prepended).
type SentRoute struct {
	Neighbor         netip.Addr
	Prefix           netip.Prefix
	NextHop          netip.Addr
	ASPath           []uint32
	Origin           string
	Communities      []string // e.g. "65535:65281" (NO_EXPORT)
	LargeCommunities []string // e.g. "65000:1:64501"
	PathID           uint32   // ADD-PATH identifier on the wire (0 without ADD-PATH)
}

// Sent lists what the route server sends the member's routers now. It is
// GoBGP's Adj-RIB-Out computed from the current RIB and policy.
func (s *Server) Sent(ctx context.Context, asn uint32) ([]SentRoute, error) {
	s.mu.Lock()
	var addrs []netip.Addr
	if m, ok := s.members[asn]; ok {
		for _, a := range m.Addresses {
			if n := s.nbrs[a]; n != nil && n.established() {
				addrs = append(addrs, a)
			}
		}
	}
	s.mu.Unlock()
	var out []SentRoute
	for _, a := range addrs {
		rs, err := s.sentTo(ctx, a)
		out = append(out, rs...)
		if err != nil {
			return out, err
		}
	}
	slices.SortFunc(out, func(a, b SentRoute) int {
		if c := a.Prefix.Compare(b.Prefix); c != 0 {
			return c
		}
		if c := a.Neighbor.Compare(b.Neighbor); c != 0 {
			return c
		}
		return a.NextHop.Compare(b.NextHop)
	})
	return out, nil
}

// sentTo lists the session's Adj-RIB-Out.
func (s *Server) sentTo(ctx context.Context, a netip.Addr) ([]SentRoute, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	fam := family4
	if a.Is6() {
		fam = family6
	}
	var out []SentRoute
	var perr error
	err := s.bgp.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_OUT, Name: a.String(), Family: fam},
		func(d *api.Destination) {
			for _, p := range d.Paths {
				r, err := sentRoute(a, p)
				if err != nil {
					perr = err
					continue
				}
				out = append(out, r)
			}
		})
	if err == nil {
		err = perr
	}
	if err != nil {
		return out, fmt.Errorf("routeserver: routes sent to %v: %w", a, err)
	}
	return out, nil
}

func sentRoute(nbr netip.Addr, p *api.Path) (SentRoute, error) {
	r, err := parsePath(p)
	if err != nil {
		return SentRoute{}, err
	}
	s := SentRoute{Neighbor: nbr, Prefix: r.Prefix, NextHop: r.NextHop, ASPath: r.ASPath, Origin: r.Origin, PathID: p.LocalIdentifier}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return s, err
	}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeCommunities:
			for _, c := range a.Value {
				s.Communities = append(s.Communities, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
			}
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				s.LargeCommunities = append(s.LargeCommunities, c.String())
			}
		}
	}
	return s, nil
}

// FormatSessions writes sessions as a table in the manner of `gobgp
// neighbor`.
func FormatSessions(w io.Writer, sessions []Session) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Peer\tAS\tUp/Down\tState\t#Received\tAccepted\tSent")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\n", s.Address, s.ASN, formatAge(s.Uptime), s.State, s.Received, s.Accepted, s.Sent)
	}
	return tw.Flush()
}

// FormatReceived writes received routes in the manner of `birdc show
// route`: one line per route with its verdict.
func FormatReceived(w io.Writer, routes []ReceivedRoute) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Network\tNext Hop\tFrom\tAS Path\tOrigin\tVerdict")
	for _, r := range routes {
		v := "accepted"
		if !r.Accepted {
			v = "REJECTED"
		}
		if r.Reason != "" {
			v += ": " + r.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\tAS%d %s\t%s\t%s\t%s\n", r.Prefix, r.NextHop, r.ASN, r.Neighbor, asPathString(r.ASPath), r.Origin, v)
	}
	return tw.Flush()
}

// FormatSent writes sent routes in the manner of `birdc show route all`
// condensed to one line each.
func FormatSent(w io.Writer, routes []SentRoute) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Network\tNext Hop\tTo\tAS Path\tOrigin\tID\tCommunities")
	for _, r := range routes {
		comms := strings.Join(append(slices.Clone(r.Communities), r.LargeCommunities...), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Prefix, r.NextHop, r.Neighbor, asPathString(r.ASPath), r.Origin, r.PathID, comms)
	}
	return tw.Flush()
}

// FormatAnnounced writes the route server's own paths in the manner of
// `gobgp global rib`, with the buyer and trades each one serves.
func FormatAnnounced(w io.Writer, paths []AnnouncedPath) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Network\tNext Hop\tSeller\tAS Path\tAge\tBuyer\tTrades")
	for _, p := range paths {
		var trades []string
		for _, t := range p.Trades {
			trades = append(trades, fmt.Sprint(t))
		}
		fmt.Fprintf(tw, "%s\t%s\tAS%d\t%s\t%s\t%s\t%s\n", p.Prefix, p.NextHop, p.SellerASN, asPathString(p.ASPath),
			formatAge(clock.Since(p.Since)), fmt.Sprintf("AS%d", p.Buyer), strings.Join(trades, ","))
	}
	return tw.Flush()
}

// formatAge prints a duration as gobgp does: hh:mm:ss, or NdHHh.
func formatAge(d time.Duration) string {
	d = d.Truncate(time.Second)
	if d >= 24*time.Hour {
		return fmt.Sprintf("%dd%02dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	}
	return fmt.Sprintf("%02d:%02d:%02d", d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second)
}
