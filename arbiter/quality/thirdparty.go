package quality

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/shared/invalid"
)

// Sources of third-party measurements (claim 10). They have no reporting
// member: they count in the pooled (exchange) view of PathQuality and
// Query, never as a member's own vantage, and Latest (the planner's input)
// ignores them, so they do not stop the agents' own revalidation.
const (
	SourceAgent = "agent"
	SourceAtlas = "atlas"
)

// ReportThirdParty stores a batch from a third-party source (SourceAtlas),
// all or nothing, validated like an agent's; a key the source sent before is
// a duplicate.
func (x *Matrix) ReportThirdParty(ctx context.Context, source string, ms []Measurement) (accepted, duplicates int, err error) {
	if source != SourceAtlas {
		return 0, 0, &invalid.Error{Field: "source", Msg: fmt.Sprintf("%q is not a third-party source (want %q)", source, SourceAtlas)}
	}
	return x.store(ctx, ms, insertThirdParty,
		func(*sql.Tx, time.Time) (any, error) { return source, nil })
}
