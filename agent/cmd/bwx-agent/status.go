package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/units"
)

func statusCmd(g *globals) *cobra.Command {
	var socket string
	c := &cobra.Command{
		Use:   "status",
		Short: "show the running agent's BGP sessions, traded routes, installed routes and any difference",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := fromAgent(g, socket, daemon.FetchStatus)
			if err != nil {
				return err
			}
			if g.out.JSON() {
				return g.out.Value(st)
			}
			return printStatus(g.out, st)
		},
	}
	c.Flags().StringVar(&socket, "socket", "", "the agent's status socket (default: status.socket, or <state_dir>/agent.sock)")
	return c
}

// printArbiters is the arbiter pair: each one's gRPC state, which one
// calls go to and which one the event stream is on.
func printArbiters(o cli.Output, st daemon.AgentStatus) error {
	var rows [][]string
	for _, a := range st.Arbiters {
		use := ""
		if a.Current {
			use = "calls"
		}
		if a.Address == st.EventStream {
			use = strings.TrimPrefix(use+",events", ",")
		}
		last := ""
		if a.LastError != "" {
			last = ago(a.LastErrorAt) + " ago: " + a.LastError
		}
		rows = append(rows, []string{a.Address, strings.ReplaceAll(a.State, "_", " "), use, last})
	}
	if err := o.Table([]string{"ARBITER", "STATE", "IN USE", "LAST FAILURE"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(o.W)
	return nil
}

func addrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return clock.Since(t).Round(time.Second).String()
}

// printStatus prints the status for a person: sections separated by blank
// lines, each a table.
func printStatus(o cli.Output, st daemon.AgentStatus) error {
	w := o.W
	fmt.Fprintf(w, "member AS%d, arbiter %s\n", st.ASN, st.Arbiter)
	if len(st.Arbiters) > 1 {
		if err := printArbiters(o, st); err != nil {
			return err
		}
	}
	if err := printMeasure(o, st.Measure); err != nil {
		return err
	}
	if m := st.Manager; m != nil {
		fmt.Fprintf(w, "access manager: mode %s, %d rounds, last %s ago, %d decisions (bwx-agent decisions)\n", m.Mode, m.Rounds, ago(m.LastRound), m.Decisions)
		if m.Error != "" {
			fmt.Fprintf(w, "access manager error: %s\n", m.Error)
		}
	}
	r := st.Routing
	if r == nil {
		fmt.Fprintln(w, "routing: not configured (no bgp.route_servers): no traded routes are installed")
		return nil
	}
	if st.RoutingError != "" {
		fmt.Fprintf(w, "routing error: %s\n", st.RoutingError)
	}
	sync := "synced " + ago(r.LastSync) + " ago"
	if !r.Synced {
		sync = "waiting for the route server's End-of-RIB (routes left by a previous run are kept)"
	}
	fmt.Fprintf(w, "fib: table %d, interface %s, %s\n", r.Table, r.Iface, sync)
	if r.SyncErr != "" {
		fmt.Fprintf(w, "fib error: %s\n", r.SyncErr)
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, s := range r.Sessions {
		state := s.State
		if s.Restarting {
			state += " (restarting, stale until " + s.StaleUntil.Format(time.RFC3339) + ")"
		}
		rows = append(rows, []string{s.Address.String(), state, ago(s.Since), strconv.Itoa(s.Traded), strconv.Itoa(s.Ignored)})
	}
	for _, s := range r.Routers {
		rows = append(rows, []string{s.Address.String() + " (member router)", s.State, ago(s.Since), "", ""})
	}
	if err := o.Table([]string{"SESSION", "STATE", "FOR", "TRADED", "IGNORED"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows = nil
	for _, rt := range r.Learned {
		for _, nh := range rt.NextHops {
			ids := make([]string, len(nh.Trades))
			for i, id := range nh.Trades {
				ids[i] = strconv.FormatUint(id, 10)
			}
			flag := ""
			if nh.Stale {
				flag = "stale"
			}
			rows = append(rows, []string{rt.Prefix.String(), nh.Addr.String(), strings.Join(ids, ","), flag})
		}
	}
	fmt.Fprintf(w, "traded routes learned: %d\n", len(r.Learned))
	if err := o.Table([]string{"PREFIX", "NEXT HOP", "TRADES", ""}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.Rejected) > 0 {
		fmt.Fprintf(w, "learned but not installed, no active trade of ours justifies them (%d trades known): %d\n", r.Checks.Trades, len(r.Rejected))
		rows = nil
		for _, x := range r.Rejected {
			nh := ""
			if x.NextHop.IsValid() {
				nh = x.NextHop.String()
			}
			rows = append(rows, []string{x.State, x.Prefix.String(), nh, x.Reason + ": " + x.Detail})
		}
		if err := o.Table([]string{"", "PREFIX", "NEXT HOP", "WHY"}, rows); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if !r.Checks.Loaded {
		fmt.Fprintln(w, "no trade list from the arbiter yet: learned routes wait (pending)")
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "installed (ip route show proto bwx table %d): %d\n", r.Table, len(r.Installed))
	rows = nil
	for _, rt := range r.Installed {
		rows = append(rows, []string{rt.Prefix.String(), addrs(rt.NextHops)})
	}
	if err := o.Table([]string{"PREFIX", "NEXT HOPS"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return printDiff(w, o, r)
}

func printDiff(w io.Writer, o cli.Output, r *daemon.Status) error {
	if len(r.Missing) == 0 && len(r.Extra) == 0 && len(r.Refused) == 0 {
		fmt.Fprintln(w, "desired = installed: no difference")
	} else {
		var rows [][]string
		for _, rt := range r.Missing {
			rows = append(rows, []string{"missing", rt.Prefix.String(), addrs(rt.NextHops), ""})
		}
		for _, rt := range r.Extra {
			rows = append(rows, []string{"extra", rt.Prefix.String(), addrs(rt.NextHops), ""})
		}
		for _, f := range r.Refused {
			nh := ""
			if f.NextHop.IsValid() {
				nh = f.NextHop.String()
			}
			why := f.Reason
			if f.Detail != "" {
				why += ": " + f.Detail
			}
			rows = append(rows, []string{"refused", f.Prefix.String(), nh, why})
		}
		fmt.Fprintln(w, "difference between desired and installed:")
		if err := o.Table([]string{"", "PREFIX", "NEXT HOPS", "WHY"}, rows); err != nil {
			return err
		}
	}
	if len(r.Down) > 0 {
		fmt.Fprintln(w)
		var rows [][]string
		for _, n := range r.Down {
			d := "up"
			if n.Down {
				d = "DOWN (routes pulled)"
			}
			rows = append(rows, []string{n.Addr.String(), n.State, d})
		}
		return o.Table([]string{"SELLER ROUTER", "NEIGHBOR", ""}, rows)
	}
	return nil
}

// printMeasure prints the measuring side in two lines, then the busiest
// destinations of the last interval.
func printMeasure(o cli.Output, m *daemon.MeasureStatus) error {
	w := o.W
	if m == nil {
		fmt.Fprintln(w, "measuring: not configured (no capture.interfaces, probe.enabled false): no usage or quality reports")
		return nil
	}
	fmt.Fprintf(w, "capture: %v, %d destination prefixes, %d trades bought, last interval %s ago, kernel drops %d\n",
		m.Capturing, m.Destinations, m.TradesBought, ago(m.LastInterval), m.KernelDrops)
	fmt.Fprintf(w, "probe: %v, %d sellers, %d tasks pending; reports: usage %d spooled/%d sent (backlog %d), measurements %d/%d (backlog %d), %d refused\n",
		m.Probing, m.Sellers, m.PendingTasks, m.UsageSpooled, m.UsageSent, m.UsageBacklog, m.MeasurementsDone, m.MeasurementsSent, m.MeasureBacklog, m.Parked)
	if m.Error != "" {
		fmt.Fprintf(w, "measuring error: %s\n", m.Error)
	}
	if len(m.Top) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "top destinations, outgoing, last interval:")
	rows := make([][]string, 0, len(m.Top))
	for _, d := range m.Top {
		p := "unmatched"
		if d.Prefix.IsValid() {
			p = d.Prefix.String()
		}
		rows = append(rows, []string{p, units.Bandwidth(d.BitsPerSecond).Approx(), strconv.FormatInt(d.Samples, 10), strings.Join(d.NextHops, ",")})
	}
	return o.Table([]string{"DESTINATION", "BITS/S", "SAMPLES", "NEXT HOP (MAC)"}, rows)
}
