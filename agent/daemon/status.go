package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bwxchange/bwx/agent/manager"
	"github.com/bwxchange/bwx/shared/rpc"
)

// AgentStatus is what the status socket serves at GET /status.
type AgentStatus struct {
	ASN uint32 `json:"asn"`
	// Arbiter is the arbiter calls go to now.
	Arbiter string `json:"arbiter"`
	// Arbiters are arbiter.addresses with their connection states.
	Arbiters []rpc.Arbiter `json:"arbiters,omitempty"`
	// EventStream is the arbiter the trade event stream is open on; ""
	// while it is down.
	EventStream string `json:"event_stream"`
	// Routing is nil when no route server is configured.
	Routing      *Status `json:"routing"`
	RoutingError string  `json:"routing_error,omitempty"`
	// Measure is nil when neither capture nor probing is configured.
	Measure *MeasureStatus `json:"measure,omitempty"`
	// Manager is nil when the access manager does not run.
	Manager *ManagerStatus `json:"manager,omitempty"`
}

// Status returns the agent's status.
func (a *Agent) Status() AgentStatus {
	st := AgentStatus{ASN: a.bundle.Identity.ASN, Arbiter: a.conn.Current(), Arbiters: a.conn.Arbiters()}
	if on := a.streamOn.Load(); on != nil {
		st.EventStream = *on
	}
	if a.routing != nil {
		rs, err := a.routing.Status()
		st.Routing = &rs
		if err != nil {
			st.RoutingError = err.Error()
		}
	}
	if a.measure != nil {
		ms := a.measure.Status()
		st.Measure = &ms
	}
	if a.trading != nil {
		ms := a.trading.Status()
		st.Manager = &ms
	}
	return st
}

// listenStatus opens the status socket, readable and writable by the
// agent's user only.
func listenStatus(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// A socket left by a previous run that is not answering.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("status socket %s: another agent is running", path)
	}
	os.Remove(path)
	old := unixUmask(0o177)
	l, err := net.Listen("unix", path)
	unixUmask(old)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	return l, nil
}

// serveStatus answers GET /status on l until ctx is done.
func (a *Agent) serveStatus(ctx context.Context, l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, r *http.Request) {
		if a.trading == nil {
			http.Error(w, "the access manager is not running (manager.mode off, or no capture.interfaces and no sell policy)", http.StatusNotFound)
			return
		}
		var since uint64
		if s := r.URL.Query().Get("since"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				http.Error(w, fmt.Sprintf("since: want a decision number, got %q", s), http.StatusBadRequest)
				return
			}
			since = v
		}
		ds := a.trading.Manager().Journal().Since(since)
		if ds == nil {
			ds = []manager.Decision{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Decisions{Mode: string(a.cfg.Manager.Mode), Decisions: ds})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("status socket", "error", err)
	}
}

// Decisions is what GET /decisions serves: the journal after a sequence.
type Decisions struct {
	Mode      string             `json:"mode"`
	Decisions []manager.Decision `json:"decisions"`
}

// FetchDecisions asks the agent listening on socket for the decisions
// after sequence since, oldest first.
func FetchDecisions(ctx context.Context, socket string, since uint64) (Decisions, error) {
	var ds Decisions
	err := fetch(ctx, socket, "/decisions?since="+strconv.FormatUint(since, 10), &ds)
	return ds, err
}

// FetchStatus asks the agent listening on socket for its status.
func FetchStatus(ctx context.Context, socket string) (AgentStatus, error) {
	var st AgentStatus
	err := fetch(ctx, socket, "/status", &st)
	return st, err
}

func fetch(ctx context.Context, socket, path string, out any) error {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("agent %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
