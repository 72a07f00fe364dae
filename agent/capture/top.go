package capture

import (
	"cmp"
	"net/netip"
	"slices"
)

// AddrCount is a destination address and how many sampled frames went to
// it (an estimate: see MeterConfig.TopAddresses).
type AddrCount struct {
	Addr    netip.Addr
	Samples int64
}

// topK keeps the most frequent addresses of one prefix in a fixed number of
// slots (Space-Saving, Metwally et al. 2005): an address not in a full set
// replaces the least counted one and inherits its count plus one, so the
// memory per prefix is bounded, heavy hitters are never missed, and a
// count overestimates by at most the replaced minimum.
type topK struct {
	slots []AddrCount
}

func (k *topK) add(a netip.Addr, size int) {
	min := 0
	for i := range k.slots {
		if k.slots[i].Addr == a {
			k.slots[i].Samples++
			return
		}
		if k.slots[i].Samples < k.slots[min].Samples {
			min = i
		}
	}
	if len(k.slots) < size {
		k.slots = append(k.slots, AddrCount{a, 1})
		return
	}
	k.slots[min] = AddrCount{a, k.slots[min].Samples + 1}
}

// topSlots is how many slots each prefix gets for n addresses asked: an
// address is sure to be kept once its count exceeds (frames of the prefix)
// / slots, so spare slots keep a long tail of one-off destinations from
// crowding out the real heavy hitters.
func topSlots(n int) int { return 4*n + 4 }

// countTop records a matched frame's destination; s.mu is held.
func (s *Shard) countTop(p netip.Prefix, a netip.Addr) {
	k := s.top[p]
	if k == nil {
		k = &topK{}
		s.top[p] = k
	}
	k.add(a, topSlots(s.m.topN))
}

// TopAddresses returns, for each destination prefix of the table that
// sampled frames went to, up to n of its most sampled destination
// addresses, most sampled first (ties by address), counted since the Meter
// started or since ResetTopAddresses. It is nil unless
// MeterConfig.TopAddresses is set; n is capped at that number. Probing
// picks its targets from these (claim 6).
func (m *Meter) TopAddresses(n int) map[netip.Prefix][]AddrCount {
	if m.topN == 0 || n <= 0 {
		return nil
	}
	n = min(n, m.topN)
	m.mu.Lock()
	shards := slices.Clone(m.shards)
	m.mu.Unlock()
	sum := map[netip.Prefix]map[netip.Addr]int64{}
	for _, s := range shards {
		s.mu.Lock()
		for p, k := range s.top {
			ps := sum[p]
			if ps == nil {
				ps = map[netip.Addr]int64{}
				sum[p] = ps
			}
			for _, c := range k.slots {
				ps[c.Addr] += c.Samples
			}
		}
		s.mu.Unlock()
	}
	out := make(map[netip.Prefix][]AddrCount, len(sum))
	for p, ps := range sum {
		l := make([]AddrCount, 0, len(ps))
		for a, c := range ps {
			l = append(l, AddrCount{a, c})
		}
		slices.SortFunc(l, func(x, y AddrCount) int { return cmp.Or(cmp.Compare(y.Samples, x.Samples), x.Addr.Compare(y.Addr)) })
		out[p] = l[:min(n, len(l))]
	}
	return out
}

// ResetTopAddresses forgets the address counts, so TopAddresses follows
// where the traffic goes now.
func (m *Meter) ResetTopAddresses() {
	m.mu.Lock()
	shards := slices.Clone(m.shards)
	m.mu.Unlock()
	for _, s := range shards {
		s.mu.Lock()
		clear(s.top)
		s.mu.Unlock()
	}
}
