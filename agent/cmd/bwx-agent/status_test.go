package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/agent/routecheck"
	"github.com/bwxchange/bwx/agent/speaker"
	"github.com/bwxchange/bwx/shared/cli"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/rpc"
)

func sampleStatus() daemon.AgentStatus {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	return daemon.AgentStatus{ASN: 64501, Arbiter: "192.0.2.1:7443", Routing: &daemon.Status{
		ASN: 64501,
		Sessions: []speaker.Session{
			{Address: a("192.0.2.1"), State: "established", Since: clock.Now().Add(-time.Minute), Traded: 2, Ignored: 1},
			{Address: a("2001:db8::1"), State: "active", Restarting: true, StaleUntil: clock.Now().Add(time.Minute)},
		},
		Learned: []speaker.Route{
			{Prefix: p("198.51.100.0/24"), NextHops: []speaker.NextHop{{Addr: a("192.0.2.11"), Trades: []uint64{7}}, {Addr: a("192.0.2.12"), Trades: []uint64{8, 9}}}},
			{Prefix: p("2001:db8:100::/48"), NextHops: []speaker.NextHop{{Addr: a("2001:db8::b"), Trades: []uint64{7}, Stale: true}}},
		},
		Installed: []daemon.StatusRoute{{Prefix: p("198.51.100.0/24"), NextHops: []netip.Addr{a("192.0.2.11")}}},
		Missing:   []daemon.StatusRoute{{Prefix: p("2001:db8:100::/48"), NextHops: []netip.Addr{a("2001:db8::b")}}},
		Refused:   []daemon.StatusRefusal{{Prefix: p("198.51.100.0/24"), NextHop: a("192.0.2.12"), Reason: "next-hop-down", Detail: "marked down"}},
		Rejected: []daemon.StatusRejection{{Prefix: p("0.0.0.0/0"), NextHop: a("192.0.2.13"), State: "refused", Reason: "default-route",
			Detail: "0.0.0.0/0 is a default route: never installed from the route server", Trades: []uint64{5}}},
		Checks: routecheck.Stats{Trades: 3, Loaded: true, Refused: 1},
		Down:   []daemon.StatusNeighbor{{Addr: a("192.0.2.12"), State: "failed", Down: true}},
		Synced: true, LastSync: clock.Now(), Table: 254, Iface: "eth1",
	}}
}

// serveStatus answers GET /status on a unix socket, as the agent does.
func serveStatus(t *testing.T, st daemon.AgentStatus) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func runStatus(t *testing.T, args ...string) (string, error) {
	t.Helper()
	g := &globals{configPath: "/nonexistent/agent.yaml"}
	c := statusCmd(g)
	c.SilenceUsage, c.SilenceErrors = true, true
	// statusCmd prints to os.Stdout: swap it for a pipe.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	c.Flags().StringVarP(&g.out.Format, "output", "o", "table", "")
	c.SetArgs(args)
	runErr := c.Execute()
	os.Stdout = old
	w.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r)
	return buf.String(), runErr
}

func TestStatusTable(t *testing.T) {
	sock := serveStatus(t, sampleStatus())
	out, err := runStatus(t, "--socket", sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"member AS64501, arbiter 192.0.2.1:7443",
		"fib: table 254, interface eth1, synced",
		"192.0.2.1     established",
		"restarting, stale until",
		"traded routes learned: 2",
		"198.51.100.0/24    192.0.2.12   8,9",
		"2001:db8::b  7       stale",
		"not installed, no active trade of ours justifies them (3 trades known): 1",
		"refused  0.0.0.0/0  192.0.2.13  default-route: 0.0.0.0/0 is a default route",
		"installed (ip route show proto bwx table 254): 1",
		"missing  2001:db8:100::/48",
		"refused  198.51.100.0/24    192.0.2.12   next-hop-down: marked down",
		"192.0.2.12     failed    DOWN (routes pulled)",
	} {
		// Columns are aligned by tabwriter: any run of spaces matches.
		re := regexp.MustCompile(strings.Join(strings.Fields(regexp.QuoteMeta(want)), `\s+`))
		if !re.MatchString(out) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	want := sampleStatus()
	sock := serveStatus(t, want)
	out, err := runStatus(t, "--socket", sock, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got daemon.AgentStatus
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Routing == nil || len(got.Routing.Learned) != 2 || got.Routing.Learned[0].NextHops[1].Trades[1] != 9 || got.Routing.Missing[0].Prefix != want.Routing.Missing[0].Prefix {
		t.Fatalf("JSON round trip: %+v", got.Routing)
	}
	for _, key := range []string{`"sessions"`, `"learned"`, `"installed"`, `"missing"`, `"extra"`, `"refused"`, `"next_hops"`, `"trades"`} {
		if !strings.Contains(out, key) {
			t.Errorf("JSON lacks %s:\n%s", key, out)
		}
	}
}

func TestStatusWithoutAgent(t *testing.T) {
	_, err := runStatus(t, "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !strings.Contains(err.Error(), "is the agent running?") {
		t.Fatalf("error %v", err)
	}
}

func TestStatusWithoutRouting(t *testing.T) {
	var b bytes.Buffer
	if err := printStatus(cli.Output{Format: "table", W: &b}, daemon.AgentStatus{ASN: 64501}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "routing: not configured") {
		t.Fatalf("output:\n%s", b.String())
	}
}

// An arbiter pair: each arbiter's state, which one takes the calls and
// which one the event stream is on, and why the other was left.
func TestStatusArbiterPair(t *testing.T) {
	st := daemon.AgentStatus{ASN: 64501, Arbiter: "[2001:db8::2]:7443", EventStream: "[2001:db8::2]:7443", Arbiters: []rpc.Arbiter{
		{Address: "192.0.2.1:7443", State: "transient_failure", LastError: "rpc error: code = Unavailable desc = connection refused", LastErrorAt: clock.Now().Add(-time.Minute)},
		{Address: "[2001:db8::2]:7443", State: "ready", Current: true},
	}}
	var b bytes.Buffer
	if err := printStatus(cli.Output{Format: "table", W: &b}, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ARBITER STATE IN USE LAST FAILURE",
		"192.0.2.1:7443 transient failure 1m0s ago: rpc error: code = Unavailable desc = connection refused",
		"[2001:db8::2]:7443 ready calls,events",
	} {
		re := regexp.MustCompile(strings.Join(strings.Fields(regexp.QuoteMeta(want)), `\s+`))
		if !re.MatchString(b.String()) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}
