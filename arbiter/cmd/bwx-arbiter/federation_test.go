package main

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
)

func TestFederationOutputGolden(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 30, 0, 0, time.UTC)
	peers := []*pb.FederationPeer{
		{Name: "ix-b", Address: "fed.ix-b.example:7445", State: "up", Offers: 2, LastUpdate: timestamppb.New(at), Resyncs: 1,
			InterconnectBps: 10e9, AddedLatencyUs: 3000},
		{Name: "ix-c", Address: "192.0.2.99:7445", State: "down", Offers: 1, LastUpdate: timestamppb.New(at.Add(-time.Hour)), Rejected: 3,
			LastError: "rpc error: code = Unavailable", InterconnectBps: 1e9, AddedLatencyUs: 12500},
	}
	offer := func(id uint64, asn uint32, prefix string, capacity, price int64, q *pb.PathQuality) *pb.RemoteOffer {
		return &pb.RemoteOffer{OrderId: id, SellerAsn: asn, Prefixes: []string{prefix}, CapacityBps: capacity, MinBlockBps: capacity, PriceMicros: price,
			DeliveryStart: timestamppb.New(at), DeliveryEnd: timestamppb.New(at.Add(30 * 24 * time.Hour)), Measured: q}
	}
	offers := []*pb.ExchangeOffer{
		{Exchange: "ix-b", Usable: true, Offer: offer(7, 64601, "198.51.100.0/24", 2e9, 300_000, &pb.PathQuality{LatencyUs: 1700, LossPpm: 500, Probes: 2000, Samples: 8})},
		{Exchange: "ix-b", Usable: true, Offer: offer(9, 64602, "2001:db8:100::/48", 1e9, 250_000, nil)},
		{Exchange: "ix-c", Usable: false, Offer: offer(3, 64701, "203.0.113.0/24", 5e8, 100_000, nil)},
	}
	var b bytes.Buffer
	o := cli.Output{Format: "table", W: &b}
	b.WriteString("## federation peers\n")
	if err := peerTable(o, peers); err != nil {
		t.Fatal(err)
	}
	b.WriteString("## federation offers\n")
	if err := remoteOfferTable(o, offers); err != nil {
		t.Fatal(err)
	}
	golden(t, "federation.golden", b.Bytes())
}
