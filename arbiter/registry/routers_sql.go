package registry

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
)

// The routers table's SQL: members' router addresses on the exchange LAN.

func insertRouter(ctx context.Context, tx *sql.Tx, memberID int64, a netip.Addr) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO routers (member_id, address) VALUES (?, ?)", memberID, a.String())
	return err
}

// routersOf reads member id's router addresses in the order they were added.
func routersOf(ctx context.Context, q Querier, id int64) ([]netip.Addr, error) {
	rows, err := q.QueryContext(ctx, "SELECT address FROM routers WHERE member_id = ? ORDER BY id", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []netip.Addr
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("stored router address %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Routers is every member's router addresses by member id, each member's
// in the order they were added; a stored address that does not parse is
// left out.
func Routers(ctx context.Context, q Querier) (map[int64][]netip.Addr, error) {
	rows, err := q.QueryContext(ctx, "SELECT member_id, address FROM routers ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]netip.Addr{}
	for rows.Next() {
		var id int64
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			return nil, err
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out[id] = append(out[id], a)
		}
	}
	return out, rows.Err()
}
