package routeserver

import (
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"

	"github.com/bwxchange/bwx/arbiter/book"
	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
)

// The exchange's rules for what the route server takes in and hands out,
// over the registry's and the book's facts: which announced routes are
// accepted (ImportPolicy) and how a booked trade is announced (FromBook).

// Reasons the import policy rejects a received route, as operators and
// members see them (beside the route server's own, ReasonFirstAS etc.).
const (
	ReasonNotRegistered = "not registered"
	ReasonOriginDiffers = "origin AS differs from the registration"
	ReasonRPKIInvalid   = "RPKI invalid"
	ReasonNoIRR         = "no IRR route object"
)

// ImportPolicy is the arbiter's Checker: it turns the registry's facts
// into the route server's verdict. A route is accepted when the member
// registered the prefix with that origin, it is not RPKI invalid, and
// (with RequireIRR) an IRR route object backs it.
type ImportPolicy struct {
	Registry   registry.Checker
	RequireIRR bool
}

// Check implements Checker.
func (p ImportPolicy) Check(member uint32, prefix netip.Prefix, origin uint32) (bool, string) {
	v := p.Registry.Check(member, prefix, origin)
	switch {
	case !v.Registered:
		return false, ReasonNotRegistered
	case !v.OriginMatches:
		return false, ReasonOriginDiffers
	case v.RPKI == rpki.Invalid:
		return false, ReasonRPKIInvalid
	case p.RequireIRR && !v.IRR.Valid:
		return false, ReasonNoIRR
	}
	return true, "RPKI " + v.RPKI.String()
}

// Policies are the sellers' registered prefixes with their routing
// policies (allow list, prepends, export), by seller, for FromBook.
type Policies map[uint32]*bart.Table[registry.Prefix]

// NewPolicies indexes registered prefixes by seller.
func NewPolicies(ps []registry.Prefix) Policies {
	pol := Policies{}
	for _, p := range ps {
		t := pol[p.MemberASN]
		if t == nil {
			t = new(bart.Table[registry.Prefix])
			pol[p.MemberASN] = t
		}
		t.Insert(p.Prefix, p)
	}
	return pol
}

// FromBook maps a booked trade to what the route server announces, given
// the route server's members (as given to AddMember) and the sellers'
// policies. The next hop of each family is the first of the trade's
// seller next hops that is still one of the seller's routers, the others
// standing by in their order; each prefix
// takes the policy of the most specific registered prefix covering it. A
// trade that cannot be delivered as booked (a party no longer a member, no
// seller router for a family, a buyer the seller's allow list excludes) is
// delivered in part or not at all: the prefixes left out are Withheld, and
// why says what was left out. Nil only for a trade the route server cannot
// hold at all (an ID too large, a party not on it).
func FromBook(t book.Trade, members map[uint32]Member, policies Policies) (tr *Trade, why string) {
	if t.ID <= 0 || t.ID > math.MaxUint32 {
		return nil, fmt.Sprintf("trade ID %d does not fit the 32-bit BGP community", t.ID)
	}
	seller, ok := members[t.SellerASN]
	if !ok {
		return nil, fmt.Sprintf("seller AS%d is not on the route server", t.SellerASN)
	}
	if _, ok := members[t.BuyerASN]; !ok {
		return nil, fmt.Sprintf("buyer AS%d is not on the route server", t.BuyerASN)
	}
	rt := &Trade{ID: uint64(t.ID), BuyerASN: t.BuyerASN, SellerASN: t.SellerASN}
	for _, a := range t.SellerNextHops {
		switch {
		case !slices.Contains(seller.Addresses, a):
		case a.Is4() && !rt.NextHop4.IsValid():
			rt.NextHop4 = a
		case a.Is6() && !rt.NextHop6.IsValid():
			rt.NextHop6 = a
		default:
			rt.Standby = append(rt.Standby, a) // takes over when the first cannot deliver
		}
	}
	var whys []string
	pol := policies[t.SellerASN]
	for _, p := range t.Prefixes {
		nh := rt.NextHop4
		if p.Addr().Is6() {
			nh = rt.NextHop6
		}
		withhold := func(why string) {
			whys = append(whys, fmt.Sprintf("%v: %s", p, why))
			if rt.Withheld == nil {
				rt.Withheld = map[netip.Prefix]string{}
			}
			rt.Withheld[p] = why
		}
		if !nh.IsValid() {
			withhold("seller has no router of that family on the route server")
			continue
		}
		prepends, export := 0, false
		if pol != nil {
			if _, reg, ok := pol.LookupPrefixLPM(p); ok {
				if !reg.AllowsBuyer(t.BuyerASN) {
					withhold(fmt.Sprintf("AS%d is not on the seller's allow list", t.BuyerASN))
					continue
				}
				prepends, export = reg.Prepends, reg.AllowExport
			}
		}
		rt.Prefixes = append(rt.Prefixes, p)
		if export {
			if rt.Exportable == nil {
				rt.Exportable = map[netip.Prefix]bool{}
			}
			rt.Exportable[p] = true
		}
		if prepends > 0 {
			if rt.Prepends == nil {
				rt.Prepends = map[netip.Prefix]int{}
			}
			rt.Prepends[p] = prepends
		}
	}
	if len(whys) > 0 {
		why = fmt.Sprint(whys)
	}
	return rt, why
}
