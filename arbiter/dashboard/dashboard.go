// Package dashboard is the exchange's web dashboard, served by the arbiter:
// members and their BGP sessions, order book depth, trades, the quality
// matrix, usage against committed capacity and invoices. The operator sees
// everything; a member sees its own records plus the anonymous market view
// (book depth, the quality matrix). Pages are rendered on the server with
// html/template and inline SVG; assets are embedded, nothing is fetched
// from elsewhere.
package dashboard

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/quality"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/settle"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Viewer is who looks at the dashboard.
type Viewer struct {
	Operator bool
	ASN      uint32 // the member's, when not Operator
	Name     string // the operator's name, for the page header
}

func (v Viewer) String() string {
	if v.Operator {
		return "operator " + v.Name
	}
	return fmt.Sprintf("AS%d", v.ASN)
}

// sees reports whether v may see records of member asn.
func (v Viewer) sees(asn uint32) bool { return v.Operator || v.ASN == asn }

// Session is one member router's BGP session as the dashboard shows it; the
// daemon fills it from the route server so this package needs no BGP types.
type Session struct {
	ASN      uint32
	Neighbor netip.Addr
	State    string
	Uptime   time.Duration
	Received int
	Accepted int
	Sent     int
}

// Sessions lists the route server's sessions; nil in Options means the
// route server is not enabled.
type Sessions interface {
	Sessions(ctx context.Context) ([]Session, error)
}

// Options configure a Server.
type Options struct {
	DB *store.DB
	// Book, when set, gives the book depth from the matching engine's
	// memory instead of SQL over the orders table.
	Book     *book.Book
	Sessions Sessions
	Log      *slog.Logger
	Now      func() time.Time
	// QualityAge is the window of the quality matrix (default 24h).
	QualityAge time.Duration
	// UsageWindow is how far back the usage charts go (default 7 days).
	UsageWindow time.Duration
	// DepthRows caps the destinations on the book page (default 500).
	DepthRows int
	// DepthMaxAge is how long a book depth aggregation is reused (default
	// 2s; negative: never).
	DepthMaxAge time.Duration
}

// Server renders the pages.
type Server struct {
	o        Options
	reg      *registry.Registry
	matrix   *quality.Matrix
	settle   *settle.Settlement
	pages    map[string]*template.Template
	assetsFS fs.FS

	depthMu sync.Mutex // one aggregation at a time; the others wait for it
	depth   *bookView
}

// New checks o and parses the templates.
func New(o Options) (*Server, error) {
	if o.DB == nil {
		return nil, errors.New("dashboard: Options.DB is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = clock.Now
	}
	if o.QualityAge <= 0 {
		o.QualityAge = 24 * time.Hour
	}
	if o.UsageWindow <= 0 {
		o.UsageWindow = 7 * 24 * time.Hour
	}
	if o.DepthRows <= 0 {
		o.DepthRows = 500
	}
	if o.DepthMaxAge == 0 {
		o.DepthMaxAge = 2 * time.Second
	}
	st, err := settle.NewSettlement(o.DB, settle.Options{Config: settle.DefaultConfig(), Now: o.Now})
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, reg: registry.New(o.DB), matrix: quality.New(o.DB, o.Now), settle: st, pages: map[string]*template.Template{}}
	if s.assetsFS, err = fs.Sub(assetFS, "assets"); err != nil {
		return nil, err
	}
	for _, p := range pageOrder {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", p, err)
		}
		s.pages[p] = t
	}
	return s, nil
}

// Authenticate tells who makes a request, or why it may not.
type Authenticate func(r *http.Request) (Viewer, error)

// LocalOperator treats every request as the operator's: for the plain HTTP
// listener bound to loopback only, which only local users reach.
func LocalOperator(*http.Request) (Viewer, error) {
	return Viewer{Operator: true, Name: "local"}, nil
}

// MemberLookup is what CertAuth asks of the registry.
type MemberLookup interface {
	Member(ctx context.Context, asn uint32) (registry.Member, error)
	Revoked(ctx context.Context, serial string) (bool, error)
}

// CertAuth identifies the viewer by the verified client certificate, as
// the gRPC API does: an operator certificate sees everything; a member
// certificate sees its own records, and only while the member is registered
// and not removed (a suspended member still reads).
func CertAuth(members MemberLookup) Authenticate {
	return func(r *http.Request) (Viewer, error) {
		id, err := pki.PeerIdentity(r.TLS)
		if err != nil {
			return Viewer{}, errUnauthenticated{fmt.Errorf("client certificate: %w", err)}
		}
		serial := pki.Serial(r.TLS.PeerCertificates[0])
		switch revoked, err := members.Revoked(r.Context(), serial); {
		case err != nil:
			return Viewer{}, err
		case revoked:
			return Viewer{}, errUnauthenticated{fmt.Errorf("client certificate %s (%s) was revoked", serial, id)}
		}
		switch {
		case id.IsOperator():
			return Viewer{Operator: true, Name: id.Name}, nil
		case id.IsMember():
			m, err := members.Member(r.Context(), id.ASN)
			if err != nil {
				if errors.Is(err, registry.ErrNotFound) {
					return Viewer{}, errForbidden{fmt.Errorf("certificate names AS%d, which is not a registered member", id.ASN)}
				}
				return Viewer{}, err
			}
			if m.Status == registry.Removed {
				// Its registry certificates are revoked; one made from the CA's files is refused here.
				return Viewer{}, errForbidden{&registry.StandingError{ASN: id.ASN, Status: m.Status}}
			}
			return Viewer{ASN: id.ASN}, nil
		}
		return Viewer{}, errForbidden{fmt.Errorf("certificate identity %s may not use the dashboard", id)}
	}
}

type errUnauthenticated struct{ error }
type errForbidden struct{ error }

// TLSConfig is the listener's configuration: the arbiter's server
// certificate, and a client certificate from the exchange CA required.
func TLSConfig(ca *pki.CA) *tls.Config {
	c := pki.ServerTLS(ca.ServerCertificate(), ca.Pool())
	c.NextProtos = []string{"h2", "http/1.1"}
	return c
}

// Handler serves the dashboard with auth deciding who looks.
func (s *Server) Handler(auth Authenticate) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", assetHandler(s.assetsFS)))
	page := func(name string, load func(context.Context, Viewer, *http.Request) (any, error)) {
		path := "GET /" + name
		if name == "members" {
			mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/members", http.StatusSeeOther) })
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			v, err := auth(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			data, err := load(r.Context(), v, r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			s.render(w, name, v, data)
		})
	}
	page("members", s.membersPage)
	page("book", s.bookPage)
	page("trades", s.tradesPage)
	page("quality", s.qualityPage)
	page("usage", s.usagePage)
	page("invoices", s.invoicesPage)
	return secure(mux)
}

// secure sets the headers every response carries: nothing may be loaded
// from elsewhere, nothing framed, and private pages never cached.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// badRequest is a query parameter the page cannot use.
type badRequest struct{ error }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Cache-Control", "no-store")
	var (
		ua errUnauthenticated
		fb errForbidden
		br badRequest
	)
	switch {
	case errors.As(err, &ua):
		http.Error(w, err.Error(), http.StatusUnauthorized)
	case errors.As(err, &fb):
		http.Error(w, err.Error(), http.StatusForbidden)
	case errors.As(err, &br):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, registry.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		s.o.Log.Error("dashboard page failed", "path", r.URL.Path, "error", err)
		http.Error(w, "internal error (logged on the arbiter)", http.StatusInternalServerError)
	}
}

type pageData struct {
	Title  string
	Page   string
	Viewer Viewer
	Now    time.Time
	Data   any
	Pages  []string
	Titles map[string]string
}

var pageOrder = []string{"members", "book", "trades", "quality", "usage", "invoices"}

var titles = map[string]string{"members": "Members", "book": "Order book", "trades": "Trades", "quality": "Quality matrix", "usage": "Usage", "invoices": "Invoices"}

func (s *Server) render(w http.ResponseWriter, name string, v Viewer, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	err := s.pages[name].Execute(w, pageData{Title: titles[name], Page: name, Viewer: v, Now: s.o.Now().UTC(), Data: data, Pages: pageOrder, Titles: titles})
	if err != nil {
		s.o.Log.Error("dashboard render failed", "page", name, "error", err)
	}
}

// assetHandler serves the embedded assets with their content type and a
// day of caching: they change only with the binary.
func assetHandler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}
