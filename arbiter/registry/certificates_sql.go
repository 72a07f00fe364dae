package registry

import (
	"context"
	"database/sql"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The certificates table's SQL: the certificates the registry signed or
// revoked.

func certificates(ctx context.Context, q Querier, where string, args ...any) ([]Certificate, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.serial, c.identity, c.not_after_us, coalesce(m.asn, 0), c.created_us, c.revoked_us
		FROM certificates c LEFT JOIN members m ON m.id = c.member_id `+where+` ORDER BY c.created_us DESC, c.serial`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		var c Certificate
		var notAfter, created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&c.Serial, &c.Identity, &notAfter, &c.MemberASN, &created, &revoked); err != nil {
			return nil, err
		}
		if notAfter != 0 {
			c.NotAfter = store.Time(notAfter)
		}
		c.Created = store.Time(created)
		if revoked.Valid {
			c.Revoked = store.Time(revoked.Int64)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func recordCert(ctx context.Context, tx *sql.Tx, memberID int64, c Certificate, now time.Time) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO certificates (serial, member_id, identity, not_after_us, created_us) VALUES (?, ?, ?, ?, ?)",
		c.Serial, memberID, c.Identity, store.Micros(c.NotAfter), store.Micros(now))
	return err
}

// revokedSerials is the set of revoked serials.
func revokedSerials(ctx context.Context, q Querier) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT serial FROM certificates WHERE revoked_us IS NOT NULL")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	serials := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		serials[s] = true
	}
	return serials, rows.Err()
}

// revokeSerial revokes serial at now (µs), recording it if the registry
// did not sign it; a revoked serial keeps its first time.
func revokeSerial(ctx context.Context, tx *sql.Tx, serial string, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, member_id, identity, not_after_us, created_us, revoked_us)
			VALUES (?, NULL, '', 0, ?, ?) ON CONFLICT (serial) DO UPDATE SET revoked_us = coalesce(revoked_us, excluded.revoked_us)`,
		serial, now, now)
	return err
}

// revokeMemberCerts revokes every valid certificate of member id at now
// (µs) and returns their serials.
func revokeMemberCerts(ctx context.Context, tx *sql.Tx, id, now int64) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT serial FROM certificates WHERE member_id = ? AND revoked_us IS NULL ORDER BY serial", id)
	if err != nil {
		return nil, err
	}
	var serials []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		serials = append(serials, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, "UPDATE certificates SET revoked_us = ? WHERE member_id = ? AND revoked_us IS NULL", now, id)
	return serials, err
}
