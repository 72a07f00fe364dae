package main

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/cli"
)

// The member commands' tables: member list shows each member's status, and
// suspend, resume and remove say what they did.
func TestMemberOutputGolden(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 11, 14, 9, 30, 0, 0, time.UTC))
	notAfter := timestamppb.New(time.Date(2027, 11, 1, 0, 0, 0, 0, time.UTC))
	port := &pb.Port{Name: "swp1", CapacityBps: 10e9}
	active := &pb.Member{Asn: 64501, Name: "seller-net", Port: port, RouterAddresses: []string{"192.0.2.1", "2001:db8::1"}, Status: pb.MemberStatus_MEMBER_STATUS_ACTIVE}
	suspended := &pb.Member{Asn: 64510, Name: "buyer-net", Port: port, RouterAddresses: []string{"192.0.2.10"},
		Status: pb.MemberStatus_MEMBER_STATUS_SUSPENDED, StatusReason: "unpaid invoice 2026-10", StatusSince: at}
	removed := &pb.Member{Asn: 64520, Name: "gone-net", Port: port, RouterAddresses: []string{"192.0.2.20"},
		Status: pb.MemberStatus_MEMBER_STATUS_REMOVED, StatusReason: "leaked key, contract terminated", StatusSince: at}
	certs := []*pb.CertificateInfo{
		{Serial: "0a1b", MemberAsn: 64501, NotAfter: notAfter},
		{Serial: "0c2d", MemberAsn: 64510, NotAfter: notAfter},
		{Serial: "0e3f", MemberAsn: 64520, NotAfter: notAfter, Revoked: at},
	}
	var b bytes.Buffer
	o := cli.Output{Format: "table", W: &b}
	step := func(title string, f func() error) {
		b.WriteString("## " + title + "\n")
		if err := f(); err != nil {
			t.Fatalf("%s: %v", title, err)
		}
		b.WriteString("\n")
	}
	step("member list", func() error { return memberTable(o, []*pb.Member{active, suspended, removed}, certs) })
	step(`member suspend AS64510 --reason "unpaid invoice 2026-10"`, func() error {
		return statusChangeTable(o, &pb.MemberStatusChange{Member: suspended, CancelledOrderIds: []uint64{12, 15}})
	})
	step("member resume AS64510", func() error {
		return statusChangeTable(o, &pb.MemberStatusChange{Member: &pb.Member{Asn: 64510, Status: pb.MemberStatus_MEMBER_STATUS_ACTIVE}})
	})
	step(`member remove AS64520 --reason "leaked key, contract terminated"`, func() error {
		return statusChangeTable(o, &pb.MemberStatusChange{Member: removed, CancelledOrderIds: []uint64{21}, EndedTradeIds: []uint64{7, 9}, RevokedSerials: []string{"0e3f"}})
	})
	golden(t, "member.golden", b.Bytes())
}
