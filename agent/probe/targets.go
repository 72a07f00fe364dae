package probe

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/bwxchange/bwx/shared/netx"
)

// Path is a destination prefix to measure through one seller.
type Path struct {
	Prefix netip.Prefix
	Seller Seller
	// ASHops is the AS path length of the seller's route toward Prefix
	// (0: unknown).
	ASHops int32
}

// SelectTargets picks up to perPrefix addresses for each path's prefix:
// the configured ones first, then the addresses the capture saw most
// (seen, most seen first: capture.Meter.TopAddresses, addresses only), and
// returns one Target per (path, address), ordered by prefix, address and
// seller, so one address is probed through every seller close together in
// time. missing lists the prefixes for which no address was known: they
// need a configured target. A configured address outside its prefix is an
// error; seen addresses outside it are skipped.
func SelectTargets(paths []Path, configured, seen map[netip.Prefix][]netip.Addr, perPrefix int, pc PathsConfig) (targets []Target, missing []netip.Prefix, err error) {
	if perPrefix < 1 {
		return nil, nil, fmt.Errorf("probe: %d targets per prefix: want at least 1", perPrefix)
	}
	for p, as := range configured {
		for _, a := range as {
			if !p.Contains(a) {
				return nil, nil, fmt.Errorf("probe: configured target %v is not in its prefix %v", a, p)
			}
		}
	}
	if pc.MarkBase == 0 {
		pc.MarkBase = DefaultMarkBase
	}
	chosen := map[netip.Prefix][]netip.Addr{}
	for _, path := range paths {
		p := path.Prefix
		if !p.IsValid() || p.Masked() != p {
			return nil, nil, fmt.Errorf("probe: path via %q: bad prefix %v", path.Seller.Name, p)
		}
		if _, done := chosen[p]; done {
			continue
		}
		var as []netip.Addr
		for _, a := range slices.Concat(configured[p], seen[p]) {
			if len(as) == perPrefix {
				break
			}
			if p.Contains(a) && !slices.Contains(as, a) {
				as = append(as, a)
			}
		}
		chosen[p] = as
		if len(as) == 0 {
			missing = append(missing, p)
		}
	}
	for _, path := range paths {
		for _, a := range chosen[path.Prefix] {
			targets = append(targets, Target{Addr: a, Prefix: path.Prefix, Seller: path.Seller.Name, ASN: path.Seller.ASN,
				Mark: pc.Mark(path.Seller), ASHops: path.ASHops})
		}
	}
	slices.SortFunc(targets, func(x, y Target) int {
		return cmp.Or(netx.ComparePrefix(x.Prefix, y.Prefix),
			x.Addr.Compare(y.Addr), cmp.Compare(x.Seller, y.Seller))
	})
	slices.SortFunc(missing, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	return targets, missing, nil
}
