package settle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// The invoices table's SQL: each run's documents, one per member whose bill
// it changed; a member's invoice for a period is its latest run's.

func insertInvoice(ctx context.Context, tx *sql.Tx, runID, member int64, p Period, net int64, doc string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO invoices (run_id, member_id, period_start_us, net_micros, document) VALUES (?,?,?,?,?)`,
		runID, member, store.Micros(p.Start), net, doc)
	return err
}

// latestDocs is each member's latest invoice document for p.
func latestDocs(ctx context.Context, tx *sql.Tx, p Period) (map[int64]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT member_id, document FROM invoices i WHERE period_start_us = ?
		AND run_id = (SELECT max(run_id) FROM invoices j WHERE j.member_id = i.member_id AND j.period_start_us = i.period_start_us)`, store.Micros(p.Start))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[int64]string{}
	for rows.Next() {
		var id int64
		var doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, err
		}
		m[id] = doc
	}
	return m, rows.Err()
}

// Invoice is member asn's invoice for p as last settled. It takes only the
// member's own ASN: the API passes the caller's authenticated identity, so a
// member can never fetch another's.
func (s *Settlement) Invoice(ctx context.Context, asn uint32, p Period) (Invoice, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT i.document FROM invoices i JOIN members m ON m.id = i.member_id
		WHERE m.asn = ? AND i.period_start_us = ? ORDER BY i.run_id DESC LIMIT 1`, asn, store.Micros(p.Start)).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return Invoice{}, fmt.Errorf("invoice of AS%d for %s: %w", asn, p, registry.ErrNotFound)
	}
	if err != nil {
		return Invoice{}, err
	}
	var inv Invoice
	if err := json.Unmarshal([]byte(doc), &inv); err != nil {
		return Invoice{}, fmt.Errorf("invoice of AS%d for %s: %w", asn, p, err)
	}
	return inv, nil
}

// Invoices is every period's latest invoice of member asn, oldest first.
func (s *Settlement) Invoices(ctx context.Context, asn uint32) ([]Invoice, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT i.document FROM invoices i JOIN members m ON m.id = i.member_id
		WHERE m.asn = ? AND i.run_id = (SELECT max(run_id) FROM invoices j WHERE j.member_id = i.member_id AND j.period_start_us = i.period_start_us)
		ORDER BY i.period_start_us`, asn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Invoice
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var inv Invoice
		if err := json.Unmarshal([]byte(doc), &inv); err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}
