package book

import (
	"context"
	"net/netip"

	"github.com/bwxchange/bwx/arbiter/registry"
)

// LoadMembers reads the registry as matching needs it.
func LoadMembers(ctx context.Context, q registry.Querier) (map[uint32]*MemberInfo, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.id, m.asn, p.id, p.capacity_bps FROM members m JOIN ports p ON p.member_id = m.id`)
	if err != nil {
		return nil, err
	}
	out := map[uint32]*MemberInfo{}
	byID := map[int64]*MemberInfo{}
	for rows.Next() {
		m := &MemberInfo{}
		if err := rows.Scan(&m.ID, &m.ASN, &m.PortID, &m.Capacity); err != nil {
			rows.Close()
			return nil, err
		}
		out[m.ASN], byID[m.ID] = m, m
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = q.QueryContext(ctx, "SELECT member_id, address FROM routers ORDER BY id")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id int64
		var s string
		if err := rows.Scan(&id, &s); err != nil {
			rows.Close()
			return nil, err
		}
		if a, err := netip.ParseAddr(s); err == nil && byID[id] != nil {
			byID[id].Routers = append(byID[id].Routers, a)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	routes, err := registry.MemberPrefixes(ctx, q, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if m := out[r.MemberASN]; m != nil {
			m.Routes = append(m.Routes, r)
		}
	}
	return out, nil
}
