package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
)

// Policy names.
const (
	policyExport  = "bwx-export"
	policyImport  = "bwx-import"
	setRouters    = "bwx-member-routers"
	setOurTrades  = "bwx-our-trades"
	setDefault4   = "bwx-default-route-ipv4"
	setDefault6   = "bwx-default-route-ipv6"
	globalRIBName = "global"
)

// installPolicy lets only our traded paths out, and only to the member's
// routers; nothing is taken from those routers. GoBGP v3 has policy only on
// "global" for plain peers; in the export direction a neighbor set matches
// the receiving peer, in the import direction the sending one.
func (s *Speaker) installPolicy(ctx context.Context) error {
	var routers []string
	for _, a := range s.cfg.MemberRouters {
		routers = append(routers, netip.PrefixFrom(a, a.BitLen()).String())
	}
	var stmts []*api.Statement
	if len(routers) > 0 {
		sets := []*api.DefinedSet{
			{DefinedType: api.DefinedType_NEIGHBOR, Name: setRouters, List: routers},
			{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: setOurTrades, List: []string{fmt.Sprintf("^%d:%d:%d$", s.cfg.RouteServerASN, lcDeliverTo, s.cfg.ASN)}},
		}
		for _, d := range sets {
			if err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: d}); err != nil {
				return fmt.Errorf("speaker: defined set %s: %w", d.Name, err)
			}
		}
		// A default route is never handed on, whatever the route server
		// says (the agent's route check refuses it for the kernel too).
		for _, d := range []struct{ set, pfx string }{{setDefault4, "0.0.0.0/0"}, {setDefault6, "::/0"}} {
			err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
				DefinedType: api.DefinedType_PREFIX, Name: d.set,
				Prefixes: []*api.Prefix{{IpPrefix: d.pfx, MaskLengthMin: 0, MaskLengthMax: 0}},
			}})
			if err != nil {
				return fmt.Errorf("speaker: defined set %s: %w", d.set, err)
			}
			stmts = append(stmts, &api.Statement{
				Name:       policyExport + "-" + d.set,
				Conditions: &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: d.set}},
				Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
			})
		}
		// The paths let through are added by SetReannounced: a statement
		// per seller's router.
		err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policyImport, Statements: []*api.Statement{{
			Name:       policyImport + "-routers",
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: setRouters}},
			Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
		}}}})
		if err != nil {
			return fmt.Errorf("speaker: import policy: %w", err)
		}
		err = s.bgp.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: globalRIBName, Direction: api.PolicyDirection_IMPORT,
			Policies: []*api.Policy{{Name: policyImport}}, DefaultAction: api.RouteAction_ACCEPT,
		}})
		if err != nil {
			return fmt.Errorf("speaker: assign import policy: %w", err)
		}
	}
	if len(stmts) > 0 {
		if err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policyExport, Statements: stmts}}); err != nil {
			return fmt.Errorf("speaker: export policy: %w", err)
		}
	}
	a := &api.PolicyAssignment{Name: globalRIBName, Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_REJECT}
	if len(stmts) > 0 {
		a.Policies = []*api.Policy{{Name: policyExport}}
	}
	if err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
		return fmt.Errorf("speaker: export policy: %w", err)
	}
	return nil
}

// nhStatement lets through to the member's routers the traded paths via
// next hop nh for the prefixes in its set.
func nhStatement(nh netip.Addr) *api.Statement {
	return &api.Statement{
		Name: policyExport + "-via-" + nh.String(),
		Conditions: &api.Conditions{
			NeighborSet:       &api.MatchSet{Type: api.MatchSet_ANY, Name: setRouters},
			LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: setOurTrades},
			PrefixSet:         &api.MatchSet{Type: api.MatchSet_ANY, Name: nhSetName(nh)},
			NextHopInList:     []string{netip.PrefixFrom(nh, nh.BitLen()).String()},
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}
}

func nhSetName(nh netip.Addr) string { return "bwx-via-" + nh.String() }

func prefixSet(name string, ps []netip.Prefix) *api.DefinedSet {
	d := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name}
	for _, p := range ps {
		d.Prefixes = append(d.Prefixes, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
	}
	return d
}

// SetReannounced sets which traded paths go on to the member's routers:
// next hop -> prefixes, the paths the agent's route check accepted. Before
// the first call none do, and a default route never does. The export
// policy changes, and the routers' sessions are re-evaluated (a soft reset
// out), only when the set changed.
func (s *Speaker) SetReannounced(ctx context.Context, allowed map[netip.Addr][]netip.Prefix) error {
	if len(s.cfg.MemberRouters) == 0 {
		return nil
	}
	s.reMu.Lock()
	defer s.reMu.Unlock()
	want := make(map[netip.Addr][]netip.Prefix, len(allowed))
	for nh, ps := range allowed {
		var c []netip.Prefix
		for _, p := range ps {
			// A set holds one family; a default route never goes.
			if p.IsValid() && p.Bits() > 0 && p.Addr().Is4() == nh.Is4() {
				c = append(c, p.Masked())
			}
		}
		if len(c) == 0 || !nh.IsValid() {
			continue
		}
		slices.SortFunc(c, netip.Prefix.Compare)
		want[nh] = slices.Compact(c)
	}
	changed := false
	for nh, ps := range want {
		old, ok := s.reannounced[nh]
		if ok && slices.Equal(old, ps) {
			continue
		}
		// The set is changed in place (the statement holds it): new
		// prefixes first, then the old ones go, so it is never empty.
		var add, del []netip.Prefix
		for _, p := range ps {
			if _, found := slices.BinarySearchFunc(old, p, netip.Prefix.Compare); !found {
				add = append(add, p)
			}
		}
		for _, p := range old {
			if _, found := slices.BinarySearchFunc(ps, p, netip.Prefix.Compare); !found {
				del = append(del, p)
			}
		}
		if len(add) > 0 {
			if err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: prefixSet(nhSetName(nh), add)}); err != nil {
				return fmt.Errorf("speaker: re-announce set for %v: %w", nh, err)
			}
		}
		if len(del) > 0 {
			if err := s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: prefixSet(nhSetName(nh), del)}); err != nil {
				return fmt.Errorf("speaker: re-announce set for %v: %w", nh, err)
			}
		}
		if !ok {
			err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: policyExport, Statements: []*api.Statement{nhStatement(nh)}}})
			if err != nil {
				return fmt.Errorf("speaker: re-announce via %v: %w", nh, err)
			}
		}
		s.reannounced[nh] = ps
		changed = true
	}
	for nh, old := range s.reannounced {
		if _, ok := want[nh]; ok {
			continue
		}
		err := s.bgp.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policyExport, Statements: []*api.Statement{nhStatement(nh)}}})
		if err != nil {
			return fmt.Errorf("speaker: stop re-announcing via %v: %w", nh, err)
		}
		if err := s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: prefixSet(nhSetName(nh), old), All: true}); err != nil {
			return fmt.Errorf("speaker: re-announce set for %v: %w", nh, err)
		}
		delete(s.reannounced, nh)
		changed = true
	}
	if !changed {
		return nil
	}
	var errs []error
	for _, a := range s.cfg.MemberRouters {
		err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_OUT})
		if err != nil {
			errs = append(errs, fmt.Errorf("speaker: re-evaluate what member router %v gets: %w", a, err))
		}
	}
	return errors.Join(errs...)
}
