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
	"time"
)

// AgentStatus is what the status socket serves at GET /status.
type AgentStatus struct {
	ASN     uint32 `json:"asn"`
	Arbiter string `json:"arbiter"`
	// Routing is nil when no route server is configured.
	Routing      *Status `json:"routing"`
	RoutingError string  `json:"routing_error,omitempty"`
	// Measure is nil when neither capture nor probing is configured.
	Measure *MeasureStatus `json:"measure,omitempty"`
}

// Status returns the agent's status.
func (a *Agent) Status() AgentStatus {
	st := AgentStatus{ASN: a.bundle.Identity.ASN, Arbiter: a.cfg.Arbiter.Address}
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("status socket", "error", err)
	}
}

// FetchStatus asks the agent listening on socket for its status.
func FetchStatus(ctx context.Context, socket string) (AgentStatus, error) {
	var st AgentStatus
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return st, fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return st, fmt.Errorf("agent status: %s: %s", resp.Status, b)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
