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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/agent/daemon"
	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/shared/clock"
)

func sampleDecisions() []manager.Decision {
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	p4, p6 := netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:db8:300::/48")
	return []manager.Decision{
		{Seq: 1, At: at, Kind: manager.KindBuy, Shadow: true, Prefix: p4, Seller: 64502, SizeBps: 2e6, PriceMicros: 3e6, MonthlyMicros: 6e6,
			Current: &manager.Quality{LatencyUs: 60800, Probes: 30, LatencyErrUs: 100}, Chosen: &manager.Quality{LatencyUs: 1300, LossPPM: 33333, Probes: 30, LatencyErrUs: 50},
			GainLatencyUs: 59500, GainLatencyMarginUs: 200, GainLossPPM: -33333, GainLossMarginPPM: 90000, Reason: "improves on the default path",
			Compared: "loss not significantly different; latency significantly lower"},
		{Seq: 2, At: at.Add(time.Minute), Kind: manager.KindBuy, Shadow: true, Prefix: p6, Seller: 64501, SizeBps: 1e6, PriceMicros: 2e6, MonthlyMicros: 2e6,
			GainLatencyUs: 20000, SavingMicros: 1e6, Reason: "improves on the default path"},
		{Seq: 3, At: at.Add(2 * time.Minute), Kind: manager.KindHold, Shadow: true, Prefix: p6, Reason: "change cap"},
	}
}

// serveDecisions answers GET /decisions?since=N on a unix socket, as the
// agent does.
func serveDecisions(t *testing.T, mode string, ds []manager.Decision) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/decisions" {
			http.NotFound(w, r)
			return
		}
		since, err := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		if err != nil {
			http.Error(w, "since", http.StatusBadRequest)
			return
		}
		out := daemon.Decisions{Mode: mode, Decisions: []manager.Decision{}}
		for _, d := range ds {
			if d.Seq > since {
				out.Decisions = append(out.Decisions, d)
			}
		}
		json.NewEncoder(w).Encode(out)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func runDecisions(t *testing.T, args ...string) (string, error) {
	t.Helper()
	g := &globals{configPath: "/nonexistent/agent.yaml"}
	c := decisionsCmd(g)
	c.SilenceUsage, c.SilenceErrors = true, true
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

func matches(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		re := regexp.MustCompile(strings.Join(strings.Fields(regexp.QuoteMeta(want)), `\s+`))
		if !re.MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDecisionsTableAndSince(t *testing.T) {
	sock := serveDecisions(t, "shadow", sampleDecisions())
	out, err := runDecisions(t, "--socket", sock)
	if err != nil {
		t.Fatal(err)
	}
	matches(t, out, "mode shadow, 3 decisions",
		"1 2026-11-26T01:00:00Z buy (shadow) 198.18.0.0/24 AS64502 2Mbps 3 6 60.8±0.2 ms 0% (0/30) 1.3±0.1 ms 3.3333% (1/30) 59.5±0.2 ms, -3.3333%±9% loss, 0/month improves on the default path [loss not significantly different; latency significantly lower]",
		"3 2026-11-26T01:02:00Z hold (shadow) 2001:db8:300::/48 default")
	out, err = runDecisions(t, "--socket", sock, "--since", "2", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got daemon.Decisions
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Decisions) != 1 || got.Decisions[0].Seq != 3 {
		t.Fatalf("--since 2 -o json: %v %+v\n%s", err, got, out)
	}
}

func TestDecisionsSummary(t *testing.T) {
	sock := serveDecisions(t, "shadow", sampleDecisions())
	out, err := runDecisions(t, "--socket", sock, "--summary", "--since", "2")
	if err != nil {
		t.Fatal(err)
	}
	// --since does not narrow the summary: it rests on every decision.
	matches(t, out, "would have bought (shadow mode: nothing was traded): 2 destinations, 8 a month, saving 1 a month",
		"gains are point estimates ± their 95 % margin",
		"198.18.0.0/24 AS64502 2Mbps 3 6 59.5±0.2 -3.3333%±9% 0", "2001:db8:300::/48 AS64501 1Mbps 2 2 20.0±0.0 0%±0% 1")
	out, err = runDecisions(t, "--socket", sock, "--summary", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var s manager.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil || len(s.Destinations) != 2 || s.MonthlyMicros != 8e6 || s.SavingMicros != 1e6 {
		t.Fatalf("--summary -o json: %v %+v\n%s", err, s, out)
	}
}

func TestDecisionsWithoutAgent(t *testing.T) {
	_, err := runDecisions(t, "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !strings.Contains(err.Error(), "is the agent running?") {
		t.Errorf("error %v, want it to ask whether the agent runs", err)
	}
}

func TestStatusShowsManager(t *testing.T) {
	st := sampleStatus()
	st.Manager = &daemon.ManagerStatus{Mode: "shadow", Rounds: 12, LastRound: clock.Now().Add(-3 * time.Second), Decisions: 4, Error: "list offers: unavailable"}
	out, err := runStatus(t, "--socket", serveStatus(t, st))
	if err != nil {
		t.Fatal(err)
	}
	matches(t, out, "access manager: mode shadow, 12 rounds, last 3s ago, 4 decisions (bwx-agent decisions)",
		"access manager error: list offers: unavailable")
}
