package federation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gaissmai/bart"
	"golang.org/x/time/rate"

	"github.com/bwxchange/bwx/arbiter/book"
)

// State is where the link to a peer stands.
type State string

const (
	Connecting State = "connecting" // dialing, nothing heard yet
	Syncing    State = "syncing"    // taking a snapshot
	Up         State = "up"         // the view follows the peer's changes
	Down       State = "down"       // the link failed: offers kept, not usable
)

// UpdateKind is what one message from a peer is.
type UpdateKind int

const (
	SnapshotPart UpdateKind = iota + 1
	SnapshotEnd
	ChangeUpdate
	Heartbeat
)

// Update is one message from a peer's book, converted but not yet judged.
type Update struct {
	Kind    UpdateKind
	Epoch   string
	Seq     int64
	Offers  []Offer
	Removed []int64
	// Invalid are offers that could not even be converted (a prefix that
	// does not parse): rejected like invalid offers.
	Invalid []Rejected
}

// Rejected is an offer refused, and why.
type Rejected struct {
	ID     int64
	Reason string
}

// ErrResync means the view of the peer no longer follows its book: the
// link must take a snapshot again.
var ErrResync = errors.New("resynchronise")

// PeerStatus is one peer as the view knows it.
type PeerStatus struct {
	Name, Address   string
	State           State
	Offers          int
	LastUpdate      time.Time
	Syncs, Resyncs  int64
	Rejected        int64
	LastError       string
	InterconnectBps int64
	AddedLatency    time.Duration
}

// Listed is an offer in the view with its exchange.
type Listed struct {
	Exchange string
	Offer    Offer
	// Usable: the peer is up, and the offer not over.
	Usable bool
}

// Candidate is a remote offer a buy toward a prefix could take, with what
// matching needs to rank it beside local ones.
type Candidate struct {
	Exchange string
	Offer    Offer
	// Prefixes are what a trade would carry: the buy's prefix, which one of
	// the offer's covers.
	Prefixes []netip.Prefix
	// AvailableBps is the offer's capacity, no more than the interconnect's
	// (its other trades are the next step's to subtract).
	AvailableBps int64
	// Measured is the path's quality as the buyer would see it: the
	// seller's exchange's measurement plus the interconnect's latency;
	// nil when unmeasured.
	Measured *book.Measured
	// InterconnectBps and AddedLatency describe the link to the exchange.
	InterconnectBps int64
	AddedLatency    time.Duration
}

type ref struct {
	peer string
	id   int64
}

type peerView struct {
	cfg        PeerConfig
	state      State
	epoch      string
	seq        int64
	offers     map[int64]Offer
	pending    map[int64]Offer // the snapshot being taken
	snapEpoch  string
	lastUpdate time.Time
	syncs      int64
	rejected   int64
	lastErr    string
	limit      *rate.Limiter
	logs       rate.Sometimes
}

// View is this exchange's live view of its peers' books.
type View struct {
	now       func() time.Time
	log       *slog.Logger
	maxOffers int

	mu    sync.RWMutex
	peers map[string]*peerView
	index bart.Table[map[ref]struct{}]
}

// NewView returns an empty view of the peers in cfg (WithDefaults
// applied). now is the view's clock.
func NewView(cfg Config, now func() time.Time, log *slog.Logger) *View {
	cfg = cfg.WithDefaults()
	v := &View{now: now, log: log, maxOffers: cfg.MaxOffers, peers: map[string]*peerView{}}
	for _, p := range cfg.Peers {
		burst := max(cfg.MaxOffersPerSecond, MaxItemsPerUpdate)
		v.peers[p.Name] = &peerView{cfg: p, state: Connecting, offers: map[int64]Offer{},
			limit: rate.NewLimiter(rate.Limit(cfg.MaxOffersPerSecond), burst), logs: rate.Sometimes{First: 20, Interval: time.Minute}}
	}
	return v
}

// Wait holds the reader of peer's stream until n more items (offers and
// removals) fit its rate.
func (v *View) Wait(ctx context.Context, peer string, n int) error {
	v.mu.RLock()
	p := v.peers[peer]
	v.mu.RUnlock()
	if p == nil {
		return fmt.Errorf("unknown peer %q", peer)
	}
	return p.limit.WaitN(ctx, min(n, p.limit.Burst()))
}

// Connecting marks peer's link as dialing.
func (v *View) Connecting(peer string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.peers[peer]; p != nil && p.state != Down {
		p.state = Connecting
	}
}

// Lost marks peer's link down for err: its offers stay in the view, not
// usable, until a snapshot replaces them.
func (v *View) Lost(peer string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.peers[peer]
	if p == nil {
		return
	}
	if p.state != Down {
		v.log.Warn("federation peer down", "peer", peer, "error", err)
	}
	p.state, p.pending, p.snapEpoch = Down, nil, ""
	if err != nil {
		p.lastErr = err.Error()
	}
}

// Apply applies one message of peer's book. ErrResync (wrapped with the
// reason) means the link must start over with a snapshot.
func (v *View) Apply(peer string, u Update) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.peers[peer]
	if p == nil {
		return fmt.Errorf("unknown peer %q", peer)
	}
	now := v.now()
	if n := len(u.Offers) + len(u.Removed) + len(u.Invalid); n > MaxItemsPerUpdate {
		return fmt.Errorf("%w: a message of %d items, more than %d", ErrResync, n, MaxItemsPerUpdate)
	}
	p.lastUpdate = now
	for _, r := range u.Invalid {
		v.reject(p, r.ID, r.Reason)
		// What was held under that id is stale now.
		if u.Kind == SnapshotPart && p.pending != nil {
			delete(p.pending, r.ID)
		} else if o, ok := p.offers[r.ID]; ok && u.Kind == ChangeUpdate && p.state == Up {
			v.unindex(p.cfg.Name, r.ID, o)
			delete(p.offers, r.ID)
		}
	}
	switch u.Kind {
	case SnapshotPart:
		if p.pending == nil {
			p.pending, p.snapEpoch, p.state = map[int64]Offer{}, u.Epoch, Syncing
		} else if u.Epoch != p.snapEpoch {
			return fmt.Errorf("%w: snapshot of epoch %q continued in epoch %q", ErrResync, p.snapEpoch, u.Epoch)
		}
		if len(u.Removed) > 0 {
			return fmt.Errorf("%w: a snapshot part removes offers", ErrResync)
		}
		for _, o := range u.Offers {
			v.admit(p, p.pending, o, now, nil)
		}
		return nil
	case SnapshotEnd:
		if p.pending == nil {
			p.pending, p.snapEpoch = map[int64]Offer{}, u.Epoch // an empty book
		}
		if u.Epoch != p.snapEpoch {
			return fmt.Errorf("%w: snapshot of epoch %q ended in epoch %q", ErrResync, p.snapEpoch, u.Epoch)
		}
		if len(u.Offers)+len(u.Removed) > 0 {
			return fmt.Errorf("%w: a snapshot end carries offers", ErrResync)
		}
		for id, o := range p.offers {
			v.unindex(p.cfg.Name, id, o)
		}
		p.offers, p.pending = p.pending, nil
		for id, o := range p.offers {
			v.indexOffer(p.cfg.Name, id, o)
		}
		p.epoch, p.seq, p.state = u.Epoch, u.Seq, Up
		p.syncs++
		v.log.Info("federation peer synchronised", "peer", p.cfg.Name, "offers", len(p.offers), "epoch", u.Epoch, "seq", u.Seq, "syncs", p.syncs)
		return nil
	case ChangeUpdate, Heartbeat:
		if p.state != Up {
			return fmt.Errorf("%w: a change before the snapshot ended", ErrResync)
		}
		if u.Epoch != p.epoch {
			return fmt.Errorf("%w: the peer's book is a new one (epoch %q, was %q)", ErrResync, u.Epoch, p.epoch)
		}
		if u.Kind == Heartbeat {
			if u.Seq != p.seq {
				return fmt.Errorf("%w: the peer is at change %d, the view at %d", ErrResync, u.Seq, p.seq)
			}
			return nil
		}
		if u.Seq != p.seq+1 {
			return fmt.Errorf("%w: change %d after change %d", ErrResync, u.Seq, p.seq)
		}
		p.seq = u.Seq
		for _, id := range u.Removed {
			if o, ok := p.offers[id]; ok {
				v.unindex(p.cfg.Name, id, o)
				delete(p.offers, id)
			}
		}
		for _, o := range u.Offers {
			v.admit(p, p.offers, o, now, func(id int64, old, nw *Offer) {
				if old != nil {
					v.unindex(p.cfg.Name, id, *old)
				}
				if nw != nil {
					v.indexOffer(p.cfg.Name, id, *nw)
				}
			})
		}
		return nil
	}
	return fmt.Errorf("%w: unknown message kind %d", ErrResync, u.Kind)
}

// admit puts o into into if it is valid and fits; an invalid or refused
// offer also takes out the version held before (it is stale). moved, if
// set, hears of each change to into.
func (v *View) admit(p *peerView, into map[int64]Offer, o Offer, now time.Time, moved func(id int64, old, nw *Offer)) {
	old, had := into[o.ID]
	drop := func(reason string) {
		v.reject(p, o.ID, reason)
		if had {
			delete(into, o.ID)
			if moved != nil {
				moved(o.ID, &old, nil)
			}
		}
	}
	if err := o.Validate(now); err != nil {
		drop(err.Error())
		return
	}
	if !had && len(into) >= v.maxOffers {
		drop(fmt.Sprintf("the view holds %d offers of this peer already (federation.max_offers)", v.maxOffers))
		return
	}
	o.Prefixes = slices.Clone(o.Prefixes)
	into[o.ID] = o
	if moved != nil {
		if had {
			moved(o.ID, &old, &o)
		} else {
			moved(o.ID, nil, &o)
		}
	}
}

func (v *View) reject(p *peerView, id int64, reason string) {
	p.rejected++
	p.lastErr = fmt.Sprintf("offer %d rejected: %s", id, reason)
	p.logs.Do(func() { v.log.Warn("federation offer rejected", "peer", p.cfg.Name, "order_id", id, "reason", reason) })
}

func (v *View) indexOffer(peer string, id int64, o Offer) {
	r := ref{peer, id}
	for _, pfx := range o.Prefixes {
		m, ok := v.index.Get(pfx)
		if !ok {
			m = map[ref]struct{}{}
			v.index.Insert(pfx, m)
		}
		m[r] = struct{}{}
	}
}

func (v *View) unindex(peer string, id int64, o Offer) {
	r := ref{peer, id}
	for _, pfx := range o.Prefixes {
		if m, ok := v.index.Get(pfx); ok {
			delete(m, r)
			if len(m) == 0 {
				v.index.Delete(pfx)
			}
		}
	}
}

// Toward returns the usable remote offers a buy for dest could take now:
// offers of peers that are up, not over, with a prefix covering dest (a
// buy for a prefix is served by a covering route and trades exactly that
// prefix, as in the local book). Their order is by exchange and id;
// ranking them is matching's.
func (v *View) Toward(dest netip.Prefix, now time.Time) []Candidate {
	dest = dest.Masked()
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Candidate
	seen := map[ref]bool{}
	for _, m := range v.index.Supernets(dest) {
		for r := range m {
			if seen[r] {
				continue
			}
			seen[r] = true
			p := v.peers[r.peer]
			o := p.offers[r.id]
			if p.state != Up || !o.End.After(now) {
				continue
			}
			c := Candidate{Exchange: r.peer, Offer: o, Prefixes: []netip.Prefix{dest}, AvailableBps: min(o.CapacityBps, p.cfg.InterconnectBps),
				InterconnectBps: p.cfg.InterconnectBps, AddedLatency: p.cfg.AddedLatency}
			if o.Measured != nil {
				m := *o.Measured
				m.LatencyUs += p.cfg.AddedLatency.Microseconds()
				c.Measured = &m
			}
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		return cmp.Or(cmp.Compare(a.Exchange, b.Exchange), cmp.Compare(a.Offer.ID, b.Offer.ID))
	})
	return out
}

// Offers lists the view: exchange "" for every peer's, prefix invalid
// for every offer (else those with a prefix covering it), by exchange and
// id.
func (v *View) Offers(exchange string, prefix netip.Prefix) []Listed {
	now := v.now()
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Listed
	for name, p := range v.peers {
		if exchange != "" && name != exchange {
			continue
		}
		for _, o := range p.offers {
			if prefix.IsValid() && !slices.ContainsFunc(o.Prefixes, func(q netip.Prefix) bool {
				return q.Bits() <= prefix.Bits() && q.Contains(prefix.Addr())
			}) {
				continue
			}
			out = append(out, Listed{Exchange: name, Offer: o, Usable: p.state == Up && o.End.After(now)})
		}
	}
	slices.SortFunc(out, func(a, b Listed) int {
		return cmp.Or(cmp.Compare(a.Exchange, b.Exchange), cmp.Compare(a.Offer.ID, b.Offer.ID))
	})
	return out
}

// Peers lists the configured peers, by name.
func (v *View) Peers() []PeerStatus {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]PeerStatus, 0, len(v.peers))
	for _, p := range v.peers {
		out = append(out, PeerStatus{Name: p.cfg.Name, Address: p.cfg.Address, State: p.state, Offers: len(p.offers), LastUpdate: p.lastUpdate,
			Syncs: p.syncs, Resyncs: max(p.syncs-1, 0), Rejected: p.rejected, LastError: p.lastErr,
			InterconnectBps: p.cfg.InterconnectBps, AddedLatency: p.cfg.AddedLatency})
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
