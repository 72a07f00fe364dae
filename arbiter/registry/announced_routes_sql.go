package registry

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The announced_routes table's SQL: the route server's view of what
// members announce, written by AnnouncedSync.

// ClearAnnounced empties the announced routes: on start nothing is known
// until the sessions come up again.
func (r *Registry) ClearAnnounced(ctx context.Context) error {
	_, err := r.db.ExecContext(ctx, "DELETE FROM announced_routes")
	return err
}

// UpdateAnnounced stores or replaces routes and deletes the removed keys,
// in one transaction.
func (r *Registry) UpdateAnnounced(ctx context.Context, upsert []AnnouncedRoute, remove []AnnouncedKey) error {
	if len(upsert) == 0 && len(remove) == 0 {
		return nil
	}
	return r.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, k := range remove {
			if _, err := tx.ExecContext(ctx, "DELETE FROM announced_routes WHERE neighbor = ? AND prefix = ?",
				k.Neighbor.String(), k.Prefix.String()); err != nil {
				return err
			}
		}
		// A key twice in one statement is an error on PostgreSQL: the last
		// one sent wins, as it would row by row.
		last := make(map[AnnouncedKey]int, len(upsert))
		for i, a := range upsert {
			last[AnnouncedKey{Neighbor: a.Neighbor, Prefix: a.Prefix}] = i
		}
		if len(last) < len(upsert) {
			kept := make([]AnnouncedRoute, 0, len(last))
			for i, a := range upsert {
				if last[AnnouncedKey{Neighbor: a.Neighbor, Prefix: a.Prefix}] == i {
					kept = append(kept, a)
				}
			}
			upsert = kept
		}
		// Rows per statement stay under sqlite's 32766 variables.
		const cols, per = 9, 500
		for len(upsert) > 0 {
			n := min(len(upsert), per)
			args := make([]any, 0, n*cols)
			for _, a := range upsert[:n] {
				path := make([]string, len(a.ASPath))
				for i, as := range a.ASPath {
					path[i] = strconv.FormatUint(uint64(as), 10)
				}
				args = append(args, a.MemberASN, a.Neighbor.String(), a.Prefix.String(), addrString(a.NextHop),
					strings.Join(path, " "), a.OriginASN, a.Accepted, a.Reason, store.Micros(a.Since))
			}
			q := store.InsertRows("announced_routes",
				"member_asn, neighbor, prefix, next_hop, as_path, origin_asn, accepted, reason, since_us",
				"(?, ?, ?, ?, ?, ?, ?, ?, ?)", n) + ` ON CONFLICT (neighbor, prefix) DO UPDATE SET member_asn = excluded.member_asn,
				next_hop = excluded.next_hop, as_path = excluded.as_path, origin_asn = excluded.origin_asn,
				accepted = excluded.accepted, reason = excluded.reason, since_us = excluded.since_us`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			upsert = upsert[n:]
		}
		return nil
	})
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Announced lists the routes members announce now, by member, prefix and
// session; asn 0 lists every member's.
func (r *Registry) Announced(ctx context.Context, asn uint32) ([]AnnouncedRoute, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT member_asn, neighbor, prefix, next_hop, as_path, origin_asn, accepted, reason, since_us
		FROM announced_routes WHERE CAST(? AS BIGINT) = 0 OR member_asn = ?`, asn, asn)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AnnouncedRoute
	for rows.Next() {
		var a AnnouncedRoute
		var nbr, pfx, nh, path string
		var since int64
		if err := rows.Scan(&a.MemberASN, &nbr, &pfx, &nh, &path, &a.OriginASN, &a.Accepted, &a.Reason, &since); err != nil {
			return nil, err
		}
		if a.Neighbor, err = netip.ParseAddr(nbr); err != nil {
			return nil, fmt.Errorf("stored neighbor %q: %w", nbr, err)
		}
		if a.Prefix, err = netip.ParsePrefix(pfx); err != nil {
			return nil, fmt.Errorf("stored prefix %q: %w", pfx, err)
		}
		if nh != "" {
			if a.NextHop, err = netip.ParseAddr(nh); err != nil {
				return nil, fmt.Errorf("stored next hop %q: %w", nh, err)
			}
		}
		if a.ASPath, err = parseASNs(path); err != nil {
			return nil, err
		}
		a.Since = store.Time(since)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sortAnnounced(out)
	return out, nil
}
