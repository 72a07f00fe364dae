package daemon_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/bwxchange/bwx/proto/bwx/v1"
	"github.com/bwxchange/bwx/shared/pages"
)

// ListOrders over mTLS, a page at a time: pages as asked, a keyset cursor
// that an order placed between pages does not shift, and page tokens that
// only their own caller, list and filters can use.
func TestListOrdersPages(t *testing.T) {
	x := startExchange(t)
	a := pb.NewTradingServiceClient(x.member(64501, "192.0.2.1"))
	b := pb.NewTradingServiceClient(x.member(64502, "192.0.2.2"))
	x.addPrefix(64501, "198.51.100.0/24")
	x.addPrefix(64502, "203.0.113.0/24")
	ctx := context.Background()
	place := func(c pb.TradingServiceClient, prefix string) uint64 {
		t.Helper()
		r, err := c.PlaceOrder(ctx, &pb.PlaceOrderRequest{Spec: order(pb.Side_SIDE_SELL, prefix, 1e6, 1000, 30)})
		if err != nil {
			t.Fatal(err)
		}
		return r.Order.Id
	}
	var ids []uint64
	for i := range 7 {
		ids = append(ids, place(a, "198.51.100.0/24"))
		if i%2 == 0 {
			place(b, "203.0.113.0/24") // another member's, interleaved
		}
	}

	p1, err := a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 3})
	if err != nil || len(p1.Orders) != 3 || p1.NextPageToken == "" || p1.Orders[0].Id != ids[0] || p1.Orders[2].Id != ids[2] {
		t.Fatalf("first page: %v %v", p1, err)
	}
	// An order placed between pages sorts after the cursor: it comes on
	// the last page, and nothing is seen twice or skipped.
	ids = append(ids, place(a, "198.51.100.0/24"))
	p2, err := a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 3, PageToken: p1.NextPageToken})
	if err != nil || len(p2.Orders) != 3 || p2.Orders[0].Id != ids[3] || p2.NextPageToken == "" {
		t.Fatalf("second page: %v %v", p2, err)
	}
	p3, err := a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 3, PageToken: p2.NextPageToken})
	if err != nil || len(p3.Orders) != 2 || p3.Orders[1].Id != ids[7] || p3.NextPageToken != "" {
		t.Fatalf("last page: %v %v", p3, err)
	}
	all, err := pages.Orders(ctx, a, &pb.ListOrdersRequest{PageSize: 2}, 0)
	if err != nil || len(all) != len(ids) {
		t.Fatalf("every page: %d orders, %v; want %d", len(all), err, len(ids))
	}

	// Another member's token, another filter, an altered one.
	_, err = b.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 3, PageToken: p1.NextPageToken})
	wantCode(t, "AS64502 with AS64501's token", err, codes.InvalidArgument)
	_, err = a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 3, OpenOnly: true, PageToken: p1.NextPageToken})
	wantCode(t, "the token with another filter", err, codes.InvalidArgument)
	_, err = a.ListTrades(ctx, &pb.ListTradesRequest{PageToken: p1.NextPageToken})
	wantCode(t, "an orders token for trades", err, codes.InvalidArgument)
	body, mac, _ := strings.Cut(p1.NextPageToken, ".")
	forged := "MQ." + mac // the cursor "1" under the real seal
	_, err = a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 3, PageToken: forged})
	wantCode(t, "a forged cursor", err, codes.InvalidArgument)
	_, err = a.ListOrders(ctx, &pb.ListOrdersRequest{PageToken: body + ".AAAA"})
	wantCode(t, "an altered seal", err, codes.InvalidArgument)
	_, err = a.ListOrders(ctx, &pb.ListOrdersRequest{PageToken: "garbage"})
	wantCode(t, "garbage", err, codes.InvalidArgument)

	// Page sizes: 0 is the default, past the maximum and negative are refused.
	if r, err := a.ListOrders(ctx, &pb.ListOrdersRequest{}); err != nil || len(r.Orders) != len(ids) || r.NextPageToken != "" {
		t.Fatalf("default page: %d orders, %v", len(r.GetOrders()), err)
	}
	_, err = a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: 5001})
	wantCode(t, "page_size 5001", err, codes.InvalidArgument)
	_, err = a.ListOrders(ctx, &pb.ListOrdersRequest{PageSize: -1})
	wantCode(t, "page_size -1", err, codes.InvalidArgument)

	// The operator pages every member's.
	op := pb.NewTradingServiceClient(x.operator())
	every, err := pages.Orders(ctx, op, &pb.ListOrdersRequest{PageSize: 4}, 0)
	if err != nil || len(every) != len(ids)+4 {
		t.Fatalf("operator: %d orders, %v; want %d", len(every), err, len(ids)+4)
	}
	if lim, err := pages.Orders(ctx, op, &pb.ListOrdersRequest{}, 5); err != nil || len(lim) != 5 {
		t.Fatalf("operator, limit 5: %d orders, %v", len(lim), err)
	}
}

// The lists made whole in memory (the registry's, the route server's,
// settlement's) page too: in their own order, after the item the token
// names, and a token naming an item gone is refused, not guessed at.
func TestInMemoryListsPage(t *testing.T) {
	x := startExchange(t)
	m := x.member(64501, "192.0.2.1")
	x.member(64502, "192.0.2.2")
	x.member(64503, "192.0.2.3")
	prefixes := []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48", "2001:db8:2::/48", "192.0.2.0/24"}
	for _, p := range prefixes {
		x.addPrefix(64501, p)
	}
	ctx := context.Background()
	rc := pb.NewRegistryServiceClient(x.operator())
	whole, err := rc.ListPrefixes(ctx, &pb.ListPrefixesRequest{})
	if err != nil || len(whole.Prefixes) != len(prefixes) || whole.NextPageToken != "" {
		t.Fatalf("one page: %v %v", whole, err)
	}
	paged, err := pages.List(ctx, rc.ListPrefixes, &pb.ListPrefixesRequest{PageSize: 2}, (*pb.ListPrefixesResponse).GetPrefixes, 0)
	if err != nil || len(paged) != len(prefixes) {
		t.Fatalf("pages of 2: %d prefixes, %v", len(paged), err)
	}
	for i, p := range paged {
		if p.Prefix != whole.Prefixes[i].Prefix {
			t.Fatalf("prefix %d: %s paged, %s whole", i, p.Prefix, whole.Prefixes[i].Prefix)
		}
	}
	p1, err := rc.ListPrefixes(ctx, &pb.ListPrefixesRequest{PageSize: 2})
	if err != nil || len(p1.Prefixes) != 2 {
		t.Fatal(p1, err)
	}
	// The member's own token is not the operator's.
	_, err = pb.NewRegistryServiceClient(m).ListPrefixes(ctx, &pb.ListPrefixesRequest{PageSize: 2, PageToken: p1.NextPageToken})
	wantCode(t, "the operator's token used by a member", err, codes.InvalidArgument)
	// The prefix the page ended at is removed: the token is refused.
	if _, err := rc.RemovePrefix(ctx, &pb.RemovePrefixRequest{MemberAsn: 64501, Prefix: p1.Prefixes[1].Prefix}); err != nil {
		t.Fatal(err)
	}
	_, err = rc.ListPrefixes(ctx, &pb.ListPrefixesRequest{PageSize: 2, PageToken: p1.NextPageToken})
	wantCode(t, "a token naming a removed prefix", err, codes.InvalidArgument)

	ms, err := pages.List(ctx, rc.ListMembers, &pb.ListMembersRequest{PageSize: 1}, (*pb.ListMembersResponse).GetMembers, 0)
	if err != nil || len(ms) != 3 || ms[0].Asn != 64501 || ms[2].Asn != 64503 {
		t.Fatalf("members a page at a time: %v %v", ms, err)
	}
}
