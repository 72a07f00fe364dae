package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/bwxchange/bwx/arbiter/dashboard"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/routeserver"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/pki"
)

// DashboardConfig is the web dashboard (arbiter/dashboard).
type DashboardConfig struct {
	// Listen serves the dashboard over HTTPS with mutual TLS: a member's
	// certificate sees its own records and the anonymous market, an
	// operator certificate (`bwx-arbiter ca operator`) sees everything.
	// "" disables it.
	Listen string `yaml:"listen"`
	// Local serves it over plain HTTP, without a certificate, to the
	// operator. It must be a loopback address: whoever reaches it is
	// treated as the operator, so only local users may. "" disables it.
	Local string `yaml:"local"`
}

func (d *DashboardConfig) validate() error {
	if d.Listen != "" {
		if _, _, err := net.SplitHostPort(d.Listen); err != nil {
			return config.Errorf("dashboard.listen", "want host:port, got %q", d.Listen)
		}
	}
	if d.Local != "" {
		host, _, err := net.SplitHostPort(d.Local)
		if err != nil {
			return config.Errorf("dashboard.local", "want host:port, got %q", d.Local)
		}
		if a, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !a.IsLoopback()) {
			return config.Errorf("dashboard.local", "%q is not a loopback address (127.0.0.1, ::1 or localhost): the local dashboard has no authentication", host)
		}
	}
	return nil
}

// dashboardSide is the running dashboard's listeners.
type dashboardSide struct {
	servers []*http.Server
}

// rsSessions shows the route server's sessions to the dashboard, which
// knows no BGP types.
type rsSessions struct{ rs *routeserver.Server }

func (s rsSessions) Sessions(ctx context.Context) ([]dashboard.Session, error) {
	ss, err := s.rs.Sessions(ctx)
	out := make([]dashboard.Session, 0, len(ss))
	for _, x := range ss {
		out = append(out, dashboard.Session{ASN: x.ASN, Neighbor: x.Address, State: x.State, Uptime: x.Uptime,
			Received: x.Received, Accepted: x.Accepted, Sent: x.Sent})
	}
	return out, err
}

// startDashboard binds the dashboard's listeners, if configured.
func (a *Arbiter) startDashboard(ca *pki.CA, reg *registry.Registry) error {
	c := a.cfg.Dashboard
	if c.Listen == "" && c.Local == "" {
		return nil
	}
	o := dashboard.Options{DB: a.db, Book: a.book, Log: a.log.With("component", "dashboard")}
	if a.bgp != nil {
		o.Sessions = rsSessions{a.bgp.rs}
	}
	srv, err := dashboard.New(o)
	if err != nil {
		return err
	}
	a.dash = &dashboardSide{}
	serveOn := func(key, addr string, h http.Handler, tlsCfg *tls.Config) (net.Addr, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug), TLSConfig: tlsCfg} // handshake failures are the client's problem
		a.dash.servers = append(a.dash.servers, hs)
		if tlsCfg != nil {
			l = tls.NewListener(l, tlsCfg)
		}
		go serve(a.log, key, func() error { return hs.Serve(l) })
		return l.Addr(), nil
	}
	if c.Listen != "" {
		if a.DashboardAddr, err = serveOn("dashboard.listen", c.Listen, srv.Handler(dashboard.CertAuth(reg)), dashboard.TLSConfig(ca)); err != nil {
			return err
		}
	}
	if c.Local != "" {
		if a.DashboardLocalAddr, err = serveOn("dashboard.local", c.Local, srv.Handler(dashboard.LocalOperator), nil); err != nil {
			return err
		}
	}
	a.log.Info("dashboard serving", "listen", c.Listen, "local", c.Local)
	return nil
}

func (a *Arbiter) closeDashboard() {
	if a.dash == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range a.dash.servers {
		s.Shutdown(ctx)
	}
}
