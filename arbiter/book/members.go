package book

import (
	"context"

	"github.com/bwxchange/bwx/arbiter/registry"
)

// LoadMembers reads the registry as matching needs it.
func LoadMembers(ctx context.Context, q registry.Querier) (map[uint32]*MemberInfo, error) {
	ms, err := registry.MemberPorts(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[uint32]*MemberInfo{}
	byID := map[int64]*MemberInfo{}
	for _, p := range ms {
		m := &MemberInfo{ID: p.ID, ASN: p.ASN, PortID: p.PortID, Capacity: p.CapacityBps}
		out[m.ASN], byID[m.ID] = m, m
	}
	routers, err := registry.Routers(ctx, q)
	if err != nil {
		return nil, err
	}
	for id, as := range routers {
		if byID[id] != nil {
			byID[id].Routers = as
		}
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
