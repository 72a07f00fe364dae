package registry

import (
	"context"
	"sync"
)

// IDs maps ASNs to member ids, reading the store once per ASN. A member's
// id never changes and a removed member keeps its row, so an
// id once found holds for good; an ASN not found is asked again next time
// (it may have joined since).
type IDs struct {
	q   Querier
	mu  sync.Mutex
	ids map[uint32]int64
}

// NewIDs returns an empty cache over q.
func NewIDs(q Querier) *IDs { return &IDs{q: q, ids: map[uint32]int64{}} }

// ID returns asn's member id, or 0 if asn is not a member.
func (c *IDs) ID(ctx context.Context, asn uint32) (int64, error) {
	c.mu.Lock()
	id, ok := c.ids[asn]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := MemberIDOf(ctx, c.q, asn)
	if err != nil || id == 0 {
		return 0, err
	}
	c.mu.Lock()
	c.ids[asn] = id
	c.mu.Unlock()
	return id, nil
}
