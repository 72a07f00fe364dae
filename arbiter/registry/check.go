package registry

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bwxchange/bwx/arbiter/registry/importlog"
	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
	"github.com/bwxchange/bwx/arbiter/store"
)

// Verdict is what the registry knows of one announcement: member M
// announcing prefix P with origin O. It does not decide; the route server's
// import policy does, from these facts.
type Verdict struct {
	Member uint32
	Prefix netip.Prefix
	Origin uint32

	// Registered: M registered exactly P. Type and RegisteredOrigin are the
	// registration's; OriginMatches says O is the registered origin.
	Registered       bool
	Type             RouteType
	RegisteredOrigin uint32
	OriginMatches    bool

	IRR  irr.Result // IRR.Valid applies the checker's irr.Policy
	RPKI rpki.State
}

func (v Verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v from AS%d origin AS%d: ", v.Prefix, v.Member, v.Origin)
	switch {
	case !v.Registered:
		b.WriteString("not registered")
	case v.OriginMatches:
		fmt.Fprintf(&b, "registered %v", v.Type)
	default:
		fmt.Fprintf(&b, "registered %v with origin AS%d", v.Type, v.RegisteredOrigin)
	}
	switch v.IRR.Match {
	case irr.Exact:
		fmt.Fprintf(&b, ", IRR exact (%s)", strings.Join(v.IRR.Sources, ","))
	case irr.LessSpecific:
		fmt.Fprintf(&b, ", IRR only less specific %v (%s)", v.IRR.Object, strings.Join(v.IRR.Sources, ","))
	default:
		b.WriteString(", no IRR route object")
	}
	fmt.Fprintf(&b, ", RPKI %v", v.RPKI)
	return b.String()
}

// Checker answers, for member M announcing P with origin O, whether M
// registered P, whether an IRR route object backs it and its RPKI state.
// Check works from memory and is safe for concurrent use: the route server
// calls it for every received route.
type Checker interface {
	Check(member uint32, prefix netip.Prefix, origin uint32) Verdict
}

// PrefixChecker is the Checker over the arbiter's database: registered
// prefixes, imported IRR route objects and ROAs, held in memory and
// replaced whole by Reload.
type PrefixChecker struct {
	db     *store.DB
	policy irr.Policy
	cur    atomic.Pointer[snapshot]
	mu     sync.Mutex // one reload at a time
	seen   fingerprint
}

type regKey struct {
	member uint32
	prefix netip.Prefix
}

type snapshot struct {
	reg  map[regKey]Prefix
	irr  *irr.Index
	rpki *rpki.Index
}

// NewPrefixChecker loads the data; policy is how strictly IRR route objects
// must match (the zero irr.Policy is exact match).
func NewPrefixChecker(ctx context.Context, db *store.DB, policy irr.Policy) (*PrefixChecker, error) {
	c := &PrefixChecker{db: db, policy: policy}
	if err := c.Reload(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads everything again and swaps it in; checks running meanwhile
// use the previous data. Call it after a prefix was registered or removed.
func (c *PrefixChecker) Reload(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reload(ctx)
}

// ReloadIfChanged reloads when the registered prefixes or the import log
// changed since the last load (an import by `bwx-arbiter import` from
// another process, say), so the daemon can call it on a timer.
func (c *PrefixChecker) ReloadIfChanged(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fp, err := c.fingerprint(ctx)
	if err != nil {
		return false, err
	}
	if fp == c.seen {
		return false, nil
	}
	return true, c.reload(ctx)
}

// fingerprint changes when a prefix is added or removed (ids only grow) or
// an import commits.
type fingerprint struct{ prefixes, prefixMax, prefixSum, imports int64 }

func (c *PrefixChecker) fingerprint(ctx context.Context) (fingerprint, error) {
	var fp fingerprint
	var err error
	if fp.prefixes, fp.prefixMax, fp.prefixSum, err = prefixFingerprint(ctx, c.db); err != nil {
		return fp, err
	}
	fp.imports, err = importlog.LastOK(ctx, c.db)
	return fp, err
}

func (c *PrefixChecker) reload(ctx context.Context) error {
	// Read before loading: a change during the load is then seen next time.
	fp, err := c.fingerprint(ctx)
	if err != nil {
		return err
	}
	// Plain reads, not a transaction: the store's transactions take the
	// write lock, and a million route objects take a moment to read.
	ps, err := MemberPrefixes(ctx, c.db, 0)
	if err != nil {
		return fmt.Errorf("load registered prefixes: %w", err)
	}
	s := &snapshot{reg: make(map[regKey]Prefix, len(ps))}
	for _, p := range ps {
		s.reg[regKey{p.MemberASN, p.Prefix}] = p
	}
	if s.irr, err = irr.LoadIndex(ctx, c.db, c.policy); err != nil {
		return fmt.Errorf("load IRR route objects: %w", err)
	}
	if s.rpki, err = rpki.LoadIndex(ctx, c.db); err != nil {
		return fmt.Errorf("load ROAs: %w", err)
	}
	c.cur.Store(s)
	c.seen = fp
	return nil
}

// Sizes reports what is loaded: registered prefixes, IRR route objects, ROAs.
func (c *PrefixChecker) Sizes() (registered, irrObjects, roas int) {
	s := c.cur.Load()
	return len(s.reg), s.irr.Len(), s.rpki.Len()
}

// Check implements Checker.
func (c *PrefixChecker) Check(member uint32, prefix netip.Prefix, origin uint32) Verdict {
	s := c.cur.Load()
	prefix = prefix.Masked()
	v := Verdict{Member: member, Prefix: prefix, Origin: origin}
	if p, ok := s.reg[regKey{member, prefix}]; ok {
		v.Registered, v.Type, v.RegisteredOrigin = true, p.Type, p.OriginASN
		v.OriginMatches = p.OriginASN == origin
	}
	v.IRR = s.irr.Lookup(prefix, origin)
	v.RPKI = s.rpki.Validate(prefix, origin)
	return v
}
