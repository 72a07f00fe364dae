package quality

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
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
	if len(ms) > MaxBatch {
		return 0, 0, &registry.InvalidError{Field: "measurements", Msg: fmt.Sprintf("at most %d per report", MaxBatch)}
	}
	now := x.now()
	for i, m := range ms {
		if err := m.Validate(i, now); err != nil {
			return 0, 0, err
		}
	}
	err = x.db.Tx(ctx, func(tx *sql.Tx) error {
		accepted, duplicates = 0, 0
		for i, m := range ms {
			via, err := registry.GetMember(ctx, tx, m.ViaASN)
			if err != nil {
				return &registry.InvalidError{Field: fmt.Sprintf("measurements[%d].via_asn", i), Msg: fmt.Sprintf("AS%d is not a member", m.ViaASN)}
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO measurements (source, reporter_id, idempotency_key, via_id, prefix, target,
				measured_us, latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent) VALUES (?,NULL,?,?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT (source, idempotency_key) WHERE reporter_id IS NULL DO NOTHING`,
				source, m.IdempotencyKey, via.ID, m.Prefix.Masked().String(), m.Target.String(), store.Micros(m.At),
				m.LatencyUs, m.JitterUs, m.LossPPM, m.ASHops, m.IPHops, m.ProbesSent)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				accepted++
			} else {
				duplicates++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return accepted, duplicates, nil
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
