package quality

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
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
		return 0, 0, &registry.InvalidError{Field: "source", Msg: fmt.Sprintf("%q is not a third-party source (want %q)", source, SourceAtlas)}
	}
	return x.store(ctx, ms, `INSERT INTO measurements (source, reporter_id, idempotency_key, via_id, prefix, target,
		measured_us, latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent) VALUES (?,NULL,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (source, idempotency_key) WHERE reporter_id IS NULL DO NOTHING`,
		func(*sql.Tx, time.Time) (any, error) { return source, nil })
}

// Counts returns how many stored measurements each source has (agent,
// atlas): for the import's summary and tests.
func (x *Matrix) Counts(ctx context.Context) (map[string]int, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT source, count(*) FROM measurements GROUP BY source`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}
