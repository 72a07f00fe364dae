package registry

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
)

// The prefixes table's SQL: the registered prefixes and their routing
// policy.

// MemberPrefixes reads registered prefixes inside the caller's transaction;
// asn 0 lists every member's.
func MemberPrefixes(ctx context.Context, q Querier, asn uint32) ([]Prefix, error) {
	rows, err := q.QueryContext(ctx, `SELECT p.prefix, m.asn, p.route_type, p.origin_asn, p.allowed_buyers, p.prepends, p.no_export
		FROM prefixes p JOIN members m ON m.id = p.member_id
		WHERE CAST(? AS BIGINT) = 0 OR m.asn = ? ORDER BY m.asn, p.prefix`, asn, asn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Prefix
	for rows.Next() {
		var s, allowed string
		var p Prefix
		var noExport bool
		if err := rows.Scan(&s, &p.MemberASN, &p.Type, &p.OriginASN, &allowed, &p.Prepends, &noExport); err != nil {
			return nil, err
		}
		p.AllowExport = !noExport
		if p.AllowedBuyers, err = parseASNs(allowed); err != nil {
			return nil, err
		}
		if p.Prefix, err = netip.ParsePrefix(s); err != nil {
			return nil, fmt.Errorf("stored prefix %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func insertPrefix(ctx context.Context, tx *sql.Tx, memberID int64, p Prefix) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO prefixes (member_id, prefix, route_type, origin_asn, allowed_buyers, prepends, no_export)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
		memberID, p.Prefix.String(), int(p.Type), p.OriginASN, formatASNs(p.AllowedBuyers), p.Prepends, !p.AllowExport)
	return err
}

// deletePrefix removes asn's registration of p and says how many it removed.
func deletePrefix(ctx context.Context, tx *sql.Tx, asn uint32, p netip.Prefix) (int64, error) {
	res, err := tx.ExecContext(ctx, "DELETE FROM prefixes WHERE prefix = ? AND member_id = (SELECT id FROM members WHERE asn = ?)", p.String(), asn)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// PrefixesOfMember reads the prefixes member id registered, in the caller's
// transaction; a stored prefix that does not parse is left out.
func PrefixesOfMember(ctx context.Context, q Querier, id int64) ([]netip.Prefix, error) {
	rows, err := q.QueryContext(ctx, "SELECT prefix FROM prefixes WHERE member_id = ?", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []netip.Prefix
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		if pp, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pp)
		}
	}
	return out, rows.Err()
}

// PrefixCounts is how many prefixes each member registered (members
// without one are left out).
func PrefixCounts(ctx context.Context, q Querier) (map[uint32]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.asn, count(*) FROM prefixes p JOIN members m ON m.id = p.member_id GROUP BY m.asn`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uint32]int{}
	for rows.Next() {
		var asn uint32
		var n int
		if err := rows.Scan(&asn, &n); err != nil {
			return nil, err
		}
		out[asn] = n
	}
	return out, rows.Err()
}

// prefixFingerprint changes when a prefix is added or removed (ids only
// grow): their count, highest and summed ids.
func prefixFingerprint(ctx context.Context, q Querier) (n, maxID, sumID int64, err error) {
	err = q.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM prefixes), (SELECT COALESCE(MAX(id), 0) FROM prefixes), (SELECT COALESCE(SUM(id), 0) FROM prefixes)`).Scan(&n, &maxID, &sumID)
	return n, maxID, sumID, err
}
