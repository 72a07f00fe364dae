package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bwxchange/bwx/arbiter/federation"
	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/pki"
)

// liar is a peer exchange's publisher that sends what each script says,
// one script per subscription, then holds the stream open.
type liar struct {
	pb.UnimplementedFederationServiceServer
	scripts [][]*pb.BookUpdate
	calls   atomic.Int32
}

func (l *liar) StreamBook(_ *pb.StreamBookRequest, st pb.FederationService_StreamBookServer) error {
	i := int(l.calls.Add(1)) - 1
	for _, m := range l.scripts[min(i, len(l.scripts)-1)] {
		if err := st.Send(m); err != nil {
			return err
		}
	}
	<-st.Context().Done()
	return nil
}

func cert(t *testing.T, ca *pki.CA, name string) tls.Certificate {
	t.Helper()
	c, k, err := ca.IssueExchange(name, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	x, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func remote(id uint64, prefixes ...string) *pb.RemoteOffer {
	now := clock.Now()
	return &pb.RemoteOffer{OrderId: id, SellerAsn: 64500, Prefixes: prefixes, CapacityBps: 1e9, MinBlockBps: 1e8, PriceMicros: 5,
		DeliveryStart: timestamppb.New(now), DeliveryEnd: timestamppb.New(now.Add(time.Hour)), TrafficType: pb.TrafficType_TRAFFIC_TYPE_ANY}
}

// runLiar serves l as exchange ix-a and links ix-b's view to it.
func runLiar(t *testing.T, l *liar) *federation.View {
	t.Helper()
	caA, err := pki.InitCA(t.TempDir(), "ix-a CA", nil)
	if err != nil {
		t.Fatal(err)
	}
	caB, err := pki.InitCA(t.TempDir(), "ix-b CA", nil)
	if err != nil {
		t.Fatal(err)
	}
	trustA := federation.NewTrust("ix-a", map[string]*x509.CertPool{"ix-b": caB.Pool()}, clock.Now)
	trustB := federation.NewTrust("ix-b", map[string]*x509.CertPool{"ix-a": caA.Pool()}, clock.Now)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(trustA.ServerTLS(cert(t, caA, "ix-a")))))
	pb.RegisterFederationServiceServer(s, l)
	go s.Serve(lis)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	peer := federation.PeerConfig{Name: "ix-a", Address: lis.Addr().String(), InterconnectBps: 1e9}
	v := federation.NewView(federation.Config{Name: "ix-b", Peers: []federation.PeerConfig{peer}}, clock.Now, log)
	link := &Link{Peer: peer, View: v, TLS: credentials.NewTLS(trustB.ClientTLS(cert(t, caB, "ix-b"), "ix-a")), Idle: time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); link.Run(ctx) }()
	t.Cleanup(func() { cancel(); s.Stop(); wg.Wait() })
	return v
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := clock.Now().Add(10 * time.Second)
	for !cond() {
		if clock.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A peer that sends garbage, skips a change and then floods: its bad
// offers are rejected with a reason, the gap makes the link take the book
// again, and an oversized message takes the link down, not the arbiter.
func TestLinkSurvivesALyingPeer(t *testing.T) {
	big := remote(9)
	big.Prefixes = []string{strings.Repeat("x", federation.MaxMessageBytes)}
	l := &liar{scripts: [][]*pb.BookUpdate{
		{
			{Kind: pb.BookUpdate_SNAPSHOT, Epoch: "e1", Seq: 4, Offers: []*pb.RemoteOffer{remote(1, "198.51.100.0/24"), remote(2, "not a prefix"), remote(3, "0.0.0.0/0")}},
			{Kind: pb.BookUpdate_SNAPSHOT_END, Epoch: "e1", Seq: 4},
			{Kind: pb.BookUpdate_CHANGE, Epoch: "e1", Seq: 6, Removed: []uint64{1}}, // 5 is missing
		},
		{
			{Kind: pb.BookUpdate_SNAPSHOT, Epoch: "e1", Seq: 6, Offers: []*pb.RemoteOffer{remote(7, "203.0.113.0/24")}},
			{Kind: pb.BookUpdate_SNAPSHOT_END, Epoch: "e1", Seq: 6},
			{Kind: pb.BookUpdate_CHANGE, Epoch: "e1", Seq: 7, Offers: []*pb.RemoteOffer{big}},
		},
		{
			{Kind: pb.BookUpdate_SNAPSHOT_END, Epoch: "e2", Seq: 0},
		},
	}}
	v := runLiar(t, l)
	waitFor(t, "the third subscription's (empty) book", func() bool {
		ps := v.Peers()
		return l.calls.Load() >= 3 && ps[0].State == federation.Up && ps[0].Offers == 0
	})
	p := v.Peers()[0]
	if p.Rejected != 2 || p.Resyncs < 2 {
		t.Fatalf("peer after the lies: %+v", p)
	}
	if got := v.Toward(netip.MustParsePrefix("198.51.100.0/24"), clock.Now()); len(got) != 0 {
		t.Fatalf("offers of an old snapshot usable: %+v", got)
	}
}

// A peer that goes silent (no heartbeat) is taken as down, and its book
// taken again once it answers.
func TestLinkMarksASilentPeerDown(t *testing.T) {
	l := &liar{scripts: [][]*pb.BookUpdate{{
		{Kind: pb.BookUpdate_SNAPSHOT, Epoch: "e1", Seq: 1, Offers: []*pb.RemoteOffer{remote(1, "198.51.100.0/24")}},
		{Kind: pb.BookUpdate_SNAPSHOT_END, Epoch: "e1", Seq: 1},
	}}}
	v := runLiar(t, l)
	waitFor(t, "up with one offer", func() bool { p := v.Peers()[0]; return p.State == federation.Up && p.Offers == 1 })
	waitFor(t, "down after a second of silence, then synchronised again", func() bool {
		p := v.Peers()[0]
		return p.Resyncs >= 1 && strings.Contains(p.LastError, "nothing heard")
	})
}
