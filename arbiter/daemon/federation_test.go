package daemon_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/bwxchange/bwx/arbiter/daemon"
	"github.com/bwxchange/bwx/arbiter/federation"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// exchangeBundle issues exchange name's federation certificate from the CA
// in caDir and writes it as a bundle.
func exchangeBundle(t *testing.T, caDir, name, path string) {
	t.Helper()
	ca, err := pki.LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := ca.IssueExchange(name, []string{"127.0.0.1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteBundle(path, c, k, ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
}

// federatedPair starts two arbiters, ix-a and ix-b, each with its own CA
// and sqlite store, peered with each other over loopback.
func federatedPair(t *testing.T) (a, b *exchange) {
	t.Helper()
	names := []string{"ix-a", "ix-b"}
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	xs := make([]*exchange, 2)
	for i, name := range names {
		dir := t.TempDir()
		cfg := daemon.DefaultConfig()
		cfg.StateDir = filepath.Join(dir, "state")
		cfg.GRPC.Listen = "127.0.0.1:0"
		cfg.Metrics.Listen = "127.0.0.1:0"
		cfg.Operator.Socket = filepath.Join(dir, "operator.sock")
		if _, err := pki.InitCA(cfg.CADir(), name+" CA", []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		bundle := filepath.Join(dir, "federation.pem")
		exchangeBundle(t, cfg.CADir(), name, bundle)
		cfg.Federation = federation.Config{Name: name, Listen: addrs[i], Bundle: bundle, Heartbeat: 200 * time.Millisecond,
			Publish: time.Hour} // changes reach peers by the orders they touched, not a periodic read
		xs[i] = &exchange{t: t, cfg: cfg, dir: dir, opts: []daemon.Option{daemon.WithFederationBackoff(50*time.Millisecond, 300*time.Millisecond)}}
	}
	for i := range xs {
		o := 1 - i
		xs[i].cfg.Federation.Peers = []federation.PeerConfig{{Name: names[o], Address: addrs[o], CA: filepath.Join(xs[o].cfg.CADir(), pki.CACertFile),
			InterconnectBps: 10e9, AddedLatency: 3 * time.Millisecond}}
	}
	for _, x := range xs {
		x.start()
		t.Cleanup(func() { x.arb.Close() })
	}
	return xs[0], xs[1]
}

func peers(t *testing.T, x *exchange) map[string]*pb.FederationPeer {
	t.Helper()
	resp, err := pb.NewFederationAdminServiceClient(x.operator()).ListPeers(context.Background(), &pb.ListPeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*pb.FederationPeer{}
	for _, p := range resp.Peers {
		out[p.Name] = p
	}
	return out
}

func remoteOffers(t *testing.T, x *exchange) []*pb.ExchangeOffer {
	t.Helper()
	resp, err := pb.NewFederationAdminServiceClient(x.operator()).ListRemoteOffers(context.Background(), &pb.ListRemoteOffersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Offers
}

// offersAre is "" when x's view of its peer holds exactly want (order id
// -> "prefixes capacity price"), all usable.
func offersAre(t *testing.T, x *exchange, want map[uint64]string) string {
	got := map[uint64]string{}
	for _, o := range remoteOffers(t, x) {
		if !o.Usable {
			return fmt.Sprintf("offer %d of %s not usable", o.Offer.OrderId, o.Exchange)
		}
		got[o.Offer.OrderId] = fmt.Sprintf("%s %d %d", strings.Join(o.Offer.Prefixes, ","), o.Offer.CapacityBps, o.Offer.PriceMicros)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Sprintf("view %v, want %v", got, want)
	}
	return ""
}

func TestFederatedBooksFollowEachOther(t *testing.T) {
	a, b := federatedPair(t)
	eventually(t, 15*time.Second, "both links up", func() string {
		pa, pb := peers(t, a)["ix-b"], peers(t, b)["ix-a"]
		if pa.State != "up" || pb.State != "up" {
			return fmt.Sprintf("A sees ix-b %s, B sees ix-a %s", pa.State, pb.State)
		}
		return ""
	})
	ctx := context.Background()
	seller := pb.NewTradingServiceClient(a.member(64501, "192.0.2.1", "2001:db8::1"))
	a.addPrefix(64501, "198.51.100.0/24")
	a.addPrefix(64501, "2001:db8:100::/48")

	// Placed at A, it appears in B's view with its terms.
	sell := order(pb.Side_SIDE_SELL, "198.51.100.0/24", 2e9, 300_000, 30)
	sell.MinBlockBps = 1e9
	placed, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: sell})
	if err != nil {
		t.Fatal(err)
	}
	id := placed.Order.Id
	eventually(t, 15*time.Second, "the sell in B's view", func() string {
		return offersAre(t, b, map[uint64]string{id: "198.51.100.0/24 2000000000 300000"})
	})
	o := remoteOffers(t, b)[0]
	if o.Exchange != "ix-a" || o.Offer.SellerAsn != 64501 || o.Offer.MinBlockBps != 1e9 ||
		!o.Offer.DeliveryEnd.AsTime().Equal(sell.DeliveryEnd.AsTime()) {
		t.Fatalf("B's copy of the offer: %v", o)
	}

	// A change of price, then a fill, propagate.
	if _, err := seller.ModifyOrder(ctx, &pb.ModifyOrderRequest{OrderId: id, PriceMicros: ptr(int64(250_000))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the new price in B's view", func() string {
		return offersAre(t, b, map[uint64]string{id: "198.51.100.0/24 2000000000 250000"})
	})
	buyer := pb.NewTradingServiceClient(a.member(64510, "192.0.2.10"))
	if r, err := buyer.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_BUY, "198.51.100.0/24", 1e9, 400_000, 10)}); err != nil || len(r.Trades) != 1 {
		t.Fatalf("buy at A: %v %v", r, err)
	}
	eventually(t, 15*time.Second, "the fill in B's view", func() string {
		return offersAre(t, b, map[uint64]string{id: "198.51.100.0/24 1000000000 250000"})
	})
	// A sell at B shows at A: each sees exactly the other's, never its own
	// offers passed back (no transit of books).
	bSeller := pb.NewTradingServiceClient(b.member(64601, "192.0.2.51"))
	b.addPrefix(64601, "203.0.113.0/24")
	bs, err := bSeller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, "203.0.113.0/24", 1e9, 100_000, 30)})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "B's sell in A's view, only it", func() string {
		return offersAre(t, a, map[uint64]string{bs.Order.Id: "203.0.113.0/24 1000000000 100000"})
	})
	// Cancelled at A, gone from B's view.
	if _, err := seller.CancelOrder(ctx, &pb.CancelOrderRequest{OrderId: id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the cancel in B's view", func() string { return offersAre(t, b, map[uint64]string{}) })

	// A goes away: B marks it down and keeps nothing usable from it.
	v6 := order(pb.Side_SIDE_SELL, "2001:db8:100::/48", 1e9, 500_000, 30)
	p6, err := seller.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: v6})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the IPv6 sell in B's view", func() string {
		return offersAre(t, b, map[uint64]string{p6.Order.Id: "2001:db8:100::/48 1000000000 500000"})
	})
	a.arb.Close()
	eventually(t, 15*time.Second, "B marks ix-a down", func() string {
		if p := peers(t, b)["ix-a"]; p.State != "down" || p.LastError == "" {
			return fmt.Sprintf("ix-a is %s (%q)", p.State, p.LastError)
		}
		return ""
	})
	for _, o := range remoteOffers(t, b) {
		if o.Usable {
			t.Fatalf("a down peer's offer is usable: %v", o)
		}
	}
	// While B cannot see it, A's book changes (A runs without federation).
	fed := a.cfg.Federation
	a.cfg.Federation = federation.Config{}
	a.start()
	if _, err := pb.NewTradingServiceClient(a.dialBundle(a.caBundle(pki.MemberIdentity(64501), "seller"))).CancelOrder(ctx, &pb.CancelOrderRequest{OrderId: p6.Order.Id}); err != nil {
		t.Fatal(err)
	}
	later, err := pb.NewTradingServiceClient(a.dialBundle(a.caBundle(pki.MemberIdentity(64501), "seller2"))).PlaceOrder(ctx,
		&pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, "198.51.100.0/24", 3e9, 200_000, 30)})
	if err != nil {
		t.Fatal(err)
	}
	a.arb.Close()
	// A is back, federating: B takes a snapshot again and holds exactly
	// A's book as it now is.
	a.cfg.Federation = fed
	a.start()
	eventually(t, 15*time.Second, "B resynchronised to A's book", func() string {
		if msg := offersAre(t, b, map[uint64]string{later.Order.Id: "198.51.100.0/24 3000000000 200000"}); msg != "" {
			return msg
		}
		if p := peers(t, b)["ix-a"]; p.State != "up" || p.Resyncs < 1 {
			return fmt.Sprintf("ix-a %s, %d resyncs", p.State, p.Resyncs)
		}
		return ""
	})
	// The metrics say so per peer.
	resp, err := http.Get("http://" + b.arb.MetricsAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`bwx_arbiter_federation_peer_state{peer="ix-a",state="up"} 1`, `bwx_arbiter_federation_peer_offers{peer="ix-a"} 1`,
		`bwx_arbiter_federation_peer_resyncs_total{peer="ix-a"}`, `bwx_arbiter_federation_published_offers 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// streamWith subscribes to x's federation listener presenting cert.
func streamWith(t *testing.T, x *exchange, cert tls.Certificate, caFile string) error {
	t.Helper()
	pool, err := federation.LoadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, Time: clock.Now}
	if len(cert.Certificate) > 0 {
		cfg.Certificates = []tls.Certificate{cert}
	}
	conn, err := grpc.NewClient("passthrough:///"+x.arb.FederationAddr.String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := pb.NewFederationServiceClient(conn).StreamBook(ctx, &pb.StreamBookRequest{})
	if err != nil {
		return err
	}
	m, err := st.Recv()
	if err == nil && m.Kind != pb.BookUpdate_SNAPSHOT_END && m.Kind != pb.BookUpdate_SNAPSHOT {
		return fmt.Errorf("first message %v", m.Kind)
	}
	return err
}

func certOf(t *testing.T, caDir string, id pki.Identity) tls.Certificate {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.pem")
	ca, err := pki.LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	if id.IsExchange() {
		c, k, err := ca.IssueExchange(id.Name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteBundle(path, c, k, ca.CertPEM()); err != nil {
			t.Fatal(err)
		}
	} else if err := pki.IssueBundle(ca, id, path); err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	return b.Certificate
}

// Only ix-b, by its CA and its name, may subscribe to A's book; ix-b's
// federation certificate opens nothing on the member API.
func TestFederationRefusesStrangers(t *testing.T) {
	a, b := federatedPair(t)
	aCA := filepath.Join(a.cfg.CADir(), pki.CACertFile)
	strangerCA := filepath.Join(t.TempDir(), "ca")
	if _, err := pki.InitCA(strangerCA, "ix-c CA", nil); err != nil {
		t.Fatal(err)
	}
	if err := streamWith(t, a, certOf(t, b.cfg.CADir(), pki.ExchangeIdentity("ix-b")), aCA); err != nil {
		t.Fatalf("ix-b's own certificate: %v", err)
	}
	for _, tc := range []struct {
		name string
		cert tls.Certificate
	}{
		{"no certificate at all", tls.Certificate{}},
		{"a member certificate of B's CA", certOf(t, b.cfg.CADir(), pki.MemberIdentity(64601))},
		{"a member certificate of A's own CA", certOf(t, a.cfg.CADir(), pki.MemberIdentity(64501))},
		{"an operator certificate of A's CA", certOf(t, a.cfg.CADir(), pki.OperatorIdentity("alice"))},
		{"another CA claiming to be ix-b", certOf(t, strangerCA, pki.ExchangeIdentity("ix-b"))},
		{"B's CA claiming another exchange's name", certOf(t, b.cfg.CADir(), pki.ExchangeIdentity("ix-c"))},
		{"an exchange that is not configured", certOf(t, strangerCA, pki.ExchangeIdentity("ix-c"))},
		{"A's CA vouching for A itself", certOf(t, a.cfg.CADir(), pki.ExchangeIdentity("ix-a"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := streamWith(t, a, tc.cert, aCA)
			if err == nil {
				t.Fatal("subscribed to A's book")
			}
			if c := status.Code(err); c != codes.Unavailable && c != codes.PermissionDenied && c != codes.Unauthenticated {
				t.Fatalf("refused with %v", err)
			}
		})
	}
	// An exchange certificate issued by A's own CA reads nothing of A's
	// member and operator API (it would otherwise scope as the operator).
	path := filepath.Join(t.TempDir(), "ex.pem")
	exchangeBundle(t, a.cfg.CADir(), "ix-b", path)
	_, err := pb.NewTradingServiceClient(a.dialBundle(path)).ListOrders(context.Background(), &pb.ListOrdersRequest{})
	wantCode(t, "an exchange certificate on the member API", err, codes.PermissionDenied)
	os.Remove(path)

	// The federation's view is the operator's: a member is refused, and an
	// exchange that does not federate says so.
	member := a.member(64501, "192.0.2.1")
	_, err = pb.NewFederationAdminServiceClient(member).ListPeers(context.Background(), &pb.ListPeersRequest{})
	wantCode(t, "a member listing the peers", err, codes.PermissionDenied)
	_, err = pb.NewFederationAdminServiceClient(a.operator()).ListRemoteOffers(context.Background(), &pb.ListRemoteOffersRequest{Prefix: "198.51.100.1/33"})
	wantCode(t, "a bad prefix", err, codes.InvalidArgument)
	_, err = pb.NewFederationAdminServiceClient(a.operator()).ListRemoteOffers(context.Background(), &pb.ListRemoteOffersRequest{Exchange: "ix-z"})
	wantCode(t, "an unknown exchange", err, codes.InvalidArgument)
	_, err = pb.NewFederationAdminServiceClient(startExchange(t).operator()).ListPeers(context.Background(), &pb.ListPeersRequest{})
	wantCode(t, "peers of an exchange that does not federate", err, codes.FailedPrecondition)
}
