package routeserver

import (
	"context"
	"fmt"

	api "github.com/osrg/gobgp/v3/api"
)

const globalRIB = "global"

var (
	family4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	family6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// importPolicy keeps every learned route out of the Loc-RIB: only the
// route server's own (trade) paths are accepted. Learned routes are read
// from the pre-policy Adj-RIB-In instead.
const importPolicy = "bwx-import"

// installBasePolicy sets the import policy and the export default
// (reject); members add their export statements.
func (s *Server) installBasePolicy(ctx context.Context) error {
	err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: importPolicy,
		Statements: []*api.Statement{{
			Name:       importPolicy + "-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}})
	if err != nil {
		return fmt.Errorf("routeserver: import policy: %w", err)
	}
	err = s.bgp.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          globalRIB,
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicy}},
		DefaultAction: api.RouteAction_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("routeserver: assign import policy: %w", err)
	}
	// The export default: nothing leaves without a member's statement.
	err = s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          globalRIB,
		Direction:     api.PolicyDirection_EXPORT,
		DefaultAction: api.RouteAction_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("routeserver: export default: %w", err)
	}
	return nil
}
