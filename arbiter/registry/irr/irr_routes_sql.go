package irr

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"

	"github.com/bwxchange/bwx/arbiter/registry/importlog"
	"github.com/bwxchange/bwx/arbiter/store"
)

// The irr_routes table's SQL: the imported route objects, one set per
// source.

func countSource(ctx context.Context, tx *sql.Tx, src string) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM irr_routes WHERE source = ?", src).Scan(&n)
	return n, err
}

func deleteSource(ctx context.Context, tx *sql.Tx, src string) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM irr_routes WHERE source = ?", src)
	return err
}

func insertSQL(rows int) string {
	return store.InsertRows("irr_routes", "source, prefix, origin, mnt_by", "(?,?,?,?)", rows)
}

// Querier is what both *sql.DB and *sql.Tx offer.
type Querier = store.Querier

// LoadIndex reads every stored route object into a new index.
func LoadIndex(ctx context.Context, q Querier, policy Policy) (*Index, error) {
	rows, err := q.QueryContext(ctx, "SELECT source, prefix, origin FROM irr_routes")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ix := NewIndex(policy)
	var src, pfx string
	var origin int64
	for rows.Next() {
		if err := rows.Scan(&src, &pfx, &origin); err != nil {
			return nil, err
		}
		p, err := netip.ParsePrefix(pfx)
		if err != nil {
			return nil, fmt.Errorf("stored route object %q: %w", pfx, err)
		}
		ix.Add(Route{Prefix: p, Origin: uint32(origin), Source: src})
	}
	return ix, rows.Err()
}

// Sets lists the stored sources.
func Sets(ctx context.Context, q Querier) ([]SetInfo, error) {
	latest, err := importlog.LatestOK(ctx, q, "irr")
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT r.source, COUNT(*) FROM irr_routes r GROUP BY r.source ORDER BY r.source`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SetInfo
	for rows.Next() {
		var s SetInfo
		if err := rows.Scan(&s.Source, &s.Objects); err != nil {
			return nil, err
		}
		if l, ok := latest[s.Source]; ok {
			if l.Finished.UnixMicro() != 0 {
				s.Imported = l.Finished
			}
			s.Files = l.Files
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
