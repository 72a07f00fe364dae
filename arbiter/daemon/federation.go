package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/federation"
	"github.com/bwxchange/bwx/arbiter/federation/wire"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/pki"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
)

// federationSide is the federation wired up: the published book fed from
// the order book, the listener peers subscribe on, and a link per peer
// keeping the view of its book.
type federationSide struct {
	view   *federation.View
	pub    *federation.Publisher
	server *grpc.Server
	lis    net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// federationBackoff bounds the wait between a link's attempts.
var federationBackoff = [2]time.Duration{500 * time.Millisecond, 30 * time.Second}

func loadBundle(path, key, self string) (*pki.Bundle, error) {
	b, err := pki.LoadBundle(path)
	if err != nil {
		return nil, config.Errorf(key, "%v", err)
	}
	if b.Identity != pki.ExchangeIdentity(self) {
		return nil, config.Errorf(key, "the certificate names %s, not exchange %s (federation.name)", b.Identity, self)
	}
	return b, nil
}

// startFederation starts publishing bk to the peers and following theirs;
// dirty says which orders the book's changes touched.
func startFederation(cfg federation.Config, log *slog.Logger, bk *book.Book, dirty *federation.Dirty, backoff [2]time.Duration) (*federationSide, error) {
	if backoff[0] <= 0 {
		backoff = federationBackoff
	}
	cfg = cfg.WithDefaults()
	log = log.With("component", "federation")
	own, err := loadBundle(cfg.Bundle, "federation.bundle", cfg.Name)
	if err != nil {
		return nil, err
	}
	cas := map[string]*x509.CertPool{}
	clientCerts := map[string]tls.Certificate{}
	for i, p := range cfg.Peers {
		if cas[p.Name], err = federation.LoadCAFile(p.CA); err != nil {
			return nil, config.Errorf(fmt.Sprintf("federation.peers[%d].ca", i), "%v", err)
		}
		clientCerts[p.Name] = own.Certificate
		if p.Bundle != "" {
			b, err := loadBundle(p.Bundle, fmt.Sprintf("federation.peers[%d].bundle", i), cfg.Name)
			if err != nil {
				return nil, err
			}
			clientCerts[p.Name] = b.Certificate
		}
	}
	trust := federation.NewTrust(cfg.Name, cas, clock.Now)
	var nonce [8]byte
	rand.Read(nonce[:])
	f := &federationSide{
		view: federation.NewView(cfg, clock.Now, log),
		pub:  federation.NewPublisher(hex.EncodeToString(nonce[:]), 256),
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("federation.listen: %w", err)
	}
	f.lis = lis
	f.server = grpc.NewServer(grpc.Creds(credentials.NewTLS(trust.ServerTLS(own.Certificate))),
		// A peer asks for little: one small request per stream, a few streams.
		grpc.MaxRecvMsgSize(64<<10), grpc.MaxConcurrentStreams(16),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	pb.RegisterFederationServiceServer(f.server, &wire.Server{Publisher: f.pub, Trust: trust, Heartbeat: cfg.Heartbeat, Log: log})

	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	read := func(ctx context.Context, ids []int64) ([]federation.Offer, error) {
		sells, err := bk.OpenSells(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make([]federation.Offer, 0, len(sells))
		for _, s := range sells {
			// What is left below one block cannot be bought.
			if o := federation.FromBook(s); o.CapacityBps >= o.MinBlockBps {
				out = append(out, o)
			}
		}
		return out, nil
	}
	// The first read is done before peers can subscribe, so none sees an
	// empty book that is not.
	if offers, err := read(ctx, nil); err == nil {
		f.pub.Update(offers)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.pub.Feed(ctx, read, dirty, cfg.Publish, 200*time.Millisecond, func(err error) { log.Warn("reading the book to publish", "error", err) })
	}()
	go serve(log, "federation", func() error { return f.server.Serve(lis) })
	for _, p := range cfg.Peers {
		l := &wire.Link{Peer: p, View: f.view, TLS: credentials.NewTLS(trust.ClientTLS(clientCerts[p.Name], p.Name)),
			Idle: 3 * cfg.Heartbeat, MinBackoff: backoff[0], MaxBackoff: backoff[1], Log: log.With("peer", p.Name)}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			l.Run(ctx)
		}()
	}
	log.Info("federation started", "name", cfg.Name, "listen", lis.Addr().String(), "peers", len(cfg.Peers))
	return f, nil
}

func (f *federationSide) close() {
	if f == nil {
		return
	}
	f.cancel()
	// Peers' streams never end by themselves: stop, not drain.
	f.server.Stop()
	f.lis.Close()
	f.wg.Wait()
}

type federationCollector struct{ f *federationSide }

var (
	descFedState    = prometheus.NewDesc("bwx_arbiter_federation_peer_state", "Each peer exchange's link state (1 for the current one).", []string{"peer", "state"}, nil)
	descFedOffers   = prometheus.NewDesc("bwx_arbiter_federation_peer_offers", "Offers of each peer exchange in the view.", []string{"peer"}, nil)
	descFedResyncs  = prometheus.NewDesc("bwx_arbiter_federation_peer_resyncs_total", "Snapshots taken again of each peer's book since start.", []string{"peer"}, nil)
	descFedRejected = prometheus.NewDesc("bwx_arbiter_federation_peer_rejected_total", "Offers of each peer rejected since start.", []string{"peer"}, nil)
	descFedOwn      = prometheus.NewDesc("bwx_arbiter_federation_published_offers", "This exchange's offers published to its peers.", nil, nil)
)

func (c federationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFedState, descFedOffers, descFedResyncs, descFedRejected, descFedOwn} {
		ch <- d
	}
}

func (c federationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.f.view.Peers() {
		for _, s := range []federation.State{federation.Connecting, federation.Syncing, federation.Up, federation.Down} {
			v := 0.0
			if p.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descFedState, prometheus.GaugeValue, v, p.Name, string(s))
		}
		ch <- prometheus.MustNewConstMetric(descFedOffers, prometheus.GaugeValue, float64(p.Offers), p.Name)
		ch <- prometheus.MustNewConstMetric(descFedResyncs, prometheus.CounterValue, float64(p.Resyncs), p.Name)
		ch <- prometheus.MustNewConstMetric(descFedRejected, prometheus.CounterValue, float64(p.Rejected), p.Name)
	}
	ch <- prometheus.MustNewConstMetric(descFedOwn, prometheus.GaugeValue, float64(c.f.pub.Len()))
}
