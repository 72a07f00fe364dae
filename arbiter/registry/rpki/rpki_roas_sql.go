package rpki

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The rpki_roas table's SQL: the validated ROAs of the last import.

func countROAs(ctx context.Context, tx *sql.Tx) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM rpki_roas").Scan(&n)
	return n, err
}

func deleteROAs(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM rpki_roas")
	return err
}

// insert writes the ROAs in multi-row INSERTs: one cgo call per 200 rows.
func insert(ctx context.Context, tx *sql.Tx, roas []ROA) error {
	full, err := tx.PrepareContext(ctx, insertSQL(batchRows))
	if err != nil {
		return err
	}
	defer full.Close()
	args := make([]any, 0, 4*batchRows)
	for len(roas) > 0 {
		n := min(len(roas), batchRows)
		for _, roa := range roas[:n] {
			args = append(args, roa.Prefix.String(), roa.MaxLength, int64(roa.ASN), roa.TA)
		}
		if n == batchRows {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(n), args...)
		}
		if err != nil {
			return err
		}
		args = args[:0]
		roas = roas[n:]
	}
	return nil
}

func insertSQL(rows int) string {
	return store.InsertRows("rpki_roas", "prefix, max_length, asn, ta", "(?,?,?,?)", rows)
}

// Querier is what both *sql.DB and *sql.Tx offer.
type Querier = store.Querier

// LoadIndex reads every stored ROA into a new index.
func LoadIndex(ctx context.Context, q Querier) (*Index, error) {
	rows, err := q.QueryContext(ctx, "SELECT prefix, max_length, asn FROM rpki_roas")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ix := &Index{}
	var pfx string
	var ml int
	var asn int64
	for rows.Next() {
		if err := rows.Scan(&pfx, &ml, &asn); err != nil {
			return nil, err
		}
		p, err := netip.ParsePrefix(pfx)
		if err != nil {
			return nil, fmt.Errorf("stored ROA %q: %w", pfx, err)
		}
		if err := ix.Add(ROA{Prefix: p, MaxLength: ml, ASN: uint32(asn)}); err != nil {
			return nil, fmt.Errorf("stored %w", err)
		}
	}
	return ix, rows.Err()
}
