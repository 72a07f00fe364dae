package quality

import (
	"context"
	"database/sql"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
)

// Paths answers PathQuality for the matching engine, which asks it for
// every trade and every quality-limited candidate, mostly from memory.
//
// It knows, per path (via, prefix), when each reporter last measured it,
// so "nothing fresh" and "no own measurement: the pooled view" need no
// store read; and it keeps each computed average until a measurement of
// one of its paths arrives or its oldest measurement leaves the window.
// It reads the recent measurements' paths once, at the first Refresh;
// arrivals after that are found by reading the table past the last id
// seen (Refresh), so measurements stored by another process (bwx-arbiter
// import atlas) count as well as the agents'. The answers are exactly
// Matrix.PathQuality's.
type Paths struct {
	m       *Matrix
	horizon time.Duration
	now     func() time.Time

	tail    sync.Mutex    // one reader of new measurements at a time
	started atomic.Uint64 // Refresh calls that read the table

	mu     sync.Mutex
	gen    int   // resets so far: a read begun before one is dropped
	seen   int64 // measurements read up to this id (-1: not yet)
	broken bool  // the last Refresh failed: answers come from the store
	// bound: windows starting before it are answered from the store (what
	// is in memory covers measurements taken from then on).
	bound  int64
	pruned time.Time
	// complete: newest and own hold every path measured since bound;
	// otherwise only the loaded ones.
	complete bool
	loaded   map[pathKey]bool // paths whose history has been read
	newest   map[pathKey]int64
	own      map[ownKey]int64 // newest measurement per path and reporter (µs)
	// touched: per path, the newest measurement id read by Refresh.
	touched map[pathKey]int64
	answers map[answerKey]answer
	ids     *registry.IDs

	computed, loads int // store reads of averages and of path histories (tests)
}

// pathKey is one path as measurements name it: via member id and prefix.
type pathKey struct {
	via    int64
	prefix string
}

type ownKey struct {
	reporter int64
	path     pathKey
}

// answerKey: vantage is 0 for the pooled view, shared by every vantage
// without measurements of its own.
type answerKey struct {
	vantage, via uint32
	prefixes     string
}

// answer is an average for since, computed from the measurements up to id
// asOf; oldest is its oldest measurement's time (µs), so it holds for any
// since in [since, oldest].
type answer struct {
	cell          *Cell
	asOf          int64
	since, oldest int64
	paths         []pathKey
}

// Bounds on what Paths keeps: past them it forgets the averages (one store
// read per path asked next) or, for the freshness index, starts again.
const (
	maxAnswers = 200_000
	maxPaths   = 2_000_000
	pruneEvery = time.Minute
)

// NewPaths returns the cached view of m for windows up to horizon long
// (the freshness the book asks for); longer ones go to the store. It
// reads m's clock.
func NewPaths(m *Matrix, horizon time.Duration) *Paths {
	p := &Paths{m: m, horizon: horizon, now: m.now, seen: -1, ids: registry.NewIDs(m.db)}
	p.reset()
	return p
}

// reset forgets everything but the member ids; p.mu held (or p unshared).
// Paths are then read when first asked.
func (p *Paths) reset() {
	p.gen++
	p.complete = false
	p.loaded, p.newest, p.own = map[pathKey]bool{}, map[pathKey]int64{}, map[ownKey]int64{}
	p.touched, p.answers = map[pathKey]int64{}, map[answerKey]answer{}
	p.pruned = p.now()
	p.bound = store.Micros(p.pruned.Add(-p.horizon))
}

// Refresh reads the measurements stored since the last Refresh, so that
// the answers after it count every measurement committed before it was
// called. Concurrent callers share a read that began after they called.
func (p *Paths) Refresh(ctx context.Context) (err error) {
	arrived := p.started.Load()
	p.tail.Lock()
	defer p.tail.Unlock()
	if p.started.Load() != arrived {
		return nil // a read that began after this call has finished
	}
	p.started.Add(1)
	p.mu.Lock()
	seen := p.seen
	p.mu.Unlock()
	defer func() {
		// Until a read succeeds, nothing says which answers still hold.
		p.mu.Lock()
		p.broken = err != nil
		p.mu.Unlock()
	}()
	if seen < 0 {
		return p.start(ctx)
	}
	rs, err := measurementsAfter(ctx, p.m.db, seen)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rs {
		p.touched[r.path] = r.id
		if r.at >= p.bound {
			p.note(r.reporter, r.path, r.at)
		}
	}
	if len(rs) > 0 {
		p.seen = rs[len(rs)-1].id
	}
	p.prune()
	return nil
}

// start reads who measured which path within the horizon, and when last:
// from then on a path it does not know has nothing fresh. Past maxPaths
// it keeps nothing and reads each path when first asked instead.
func (p *Paths) start(ctx context.Context) error {
	last, err := lastMeasurementID(ctx, p.m.db)
	if err != nil {
		return err
	}
	p.mu.Lock()
	bound := p.bound
	p.mu.Unlock()
	// Measurements committed after this read have ids above last, and
	// Refresh notes them: together they miss none.
	ss, err := latestOfPaths(ctx, p.m.db, bound, maxPaths)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen, p.complete = last, len(ss) <= maxPaths
	if p.complete {
		for _, s := range ss {
			p.note(s.reporter, s.path, s.at)
		}
	}
	return nil
}

// note records a measurement of path at (µs) by reporter (NULL: a third
// party); p.mu held. Reads of a path's history and Refresh may both note
// the same measurement: keeping the newest makes that harmless.
func (p *Paths) note(reporter sql.NullInt64, path pathKey, at int64) {
	p.newest[path] = max(p.newest[path], at)
	if reporter.Valid {
		k := ownKey{reporter.Int64, path}
		p.own[k] = max(p.own[k], at)
	}
}

// prune drops what has left every window Paths answers, once a minute;
// p.mu held.
func (p *Paths) prune() {
	now := p.now()
	if len(p.loaded)+len(p.newest)+len(p.own)+len(p.touched) > maxPaths {
		p.reset() // answers made before are void: touched is gone
		return
	}
	if now.Sub(p.pruned) < pruneEvery {
		return
	}
	p.pruned = now
	p.bound = store.Micros(now.Add(-p.horizon))
	for k, at := range p.newest {
		if at < p.bound {
			delete(p.newest, k)
		}
	}
	for k, at := range p.own {
		if at < p.bound {
			delete(p.own, k)
		}
	}
}

// PathQuality is Matrix.PathQuality, answered from memory where it can be.
// Measurements stored after the last Refresh may not count yet.
func (p *Paths) PathQuality(ctx context.Context, vantage, via uint32, prefixes []netip.Prefix, since time.Time) (*Cell, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	at := store.Micros(since)
	p.mu.Lock()
	direct := p.broken || p.seen < 0 || at < p.bound
	p.mu.Unlock()
	if direct {
		// No refresh to be valid as of, or a window longer than what is
		// kept: the store answers.
		c, _, err := p.m.pathQuality(ctx, vantage, via, prefixes, at)
		return c, err
	}
	viaID, err := p.ids.ID(ctx, via)
	if err != nil || viaID == 0 {
		return nil, err // not a member: nothing measured through it
	}
	var vantageID int64
	if vantage != 0 {
		if vantageID, err = p.ids.ID(ctx, vantage); err != nil {
			return nil, err
		}
	}
	ps := make([]string, len(prefixes))
	paths := make([]pathKey, len(prefixes))
	for i, pf := range prefixes {
		ps[i] = pf.Masked().String()
		paths[i] = pathKey{viaID, ps[i]}
	}
	if err := p.load(ctx, paths); err != nil {
		return nil, err
	}

	p.mu.Lock()
	if at < p.bound {
		p.mu.Unlock() // pruned meanwhile
		c, _, err := p.m.pathQuality(ctx, vantage, via, prefixes, at)
		return c, err
	}
	var fresh, own bool
	for _, k := range paths {
		fresh = fresh || p.newest[k] >= at
		own = own || vantageID != 0 && p.own[ownKey{vantageID, k}] >= at
	}
	if !fresh {
		p.mu.Unlock()
		return nil, nil
	}
	key := answerKey{0, via, strings.Join(ps, ",")}
	if own {
		key.vantage = vantage
	}
	a, ok := p.answers[key]
	if ok && p.valid(a, at) {
		p.mu.Unlock()
		return a.cell.clone(), nil
	}
	asOf, gen := p.seen, p.gen
	p.mu.Unlock()

	// Computed after asOf was read: a measurement stored in between may be
	// in it, or not; either way its id is above asOf, and reading it voids
	// this answer.
	c, oldest, err := p.m.cell(ctx, key.vantage, via, prefixes, at)
	if err != nil {
		return nil, err
	}
	a = answer{cell: c, asOf: asOf, since: at, oldest: oldest, paths: paths}
	if c == nil {
		a.oldest = 1<<63 - 1
	}
	p.mu.Lock()
	p.computed++
	if len(p.answers) >= maxAnswers {
		clear(p.answers)
	}
	if gen == p.gen {
		p.answers[key] = a
	}
	p.mu.Unlock()
	return c.clone(), nil
}

// load reads the recent history of the paths not read yet: who measured
// each, and when last.
func (p *Paths) load(ctx context.Context, paths []pathKey) error {
	for _, k := range paths {
		p.mu.Lock()
		done, bound, gen := p.complete || p.loaded[k], p.bound, p.gen
		p.mu.Unlock()
		if done {
			continue
		}
		ss, err := latestOfPath(ctx, p.m.db, k, bound)
		if err != nil {
			return err
		}
		// Measurements committed after this read are above the id Refresh
		// has read to, so it notes them: together they miss none.
		p.mu.Lock()
		p.loads++
		if gen != p.gen {
			// A reset dropped what Refresh noted meanwhile: read again.
			p.mu.Unlock()
			return p.load(ctx, paths)
		}
		for _, s := range ss {
			p.note(s.reporter, k, s.at)
		}
		p.loaded[k] = true
		p.mu.Unlock()
	}
	return nil
}

// valid reports whether a still answers for since at: no measurement of
// its paths arrived after it was computed, and the window moved neither
// back (older measurements would count) nor past its oldest measurement.
func (p *Paths) valid(a answer, at int64) bool {
	if at < a.since || at > a.oldest {
		return false
	}
	for _, k := range a.paths {
		if p.touched[k] > a.asOf {
			return false
		}
	}
	return true
}

func (c *Cell) clone() *Cell {
	if c == nil {
		return nil
	}
	d := *c
	return &d
}
