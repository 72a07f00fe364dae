package routeserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gaissmai/bart"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bwxchange/bwx/shared/clock"
)

// Member is a member network as the route server sees it.
type Member struct {
	// ASN is the member's AS number.
	ASN uint32
	// Addresses are its routers on the exchange LAN, IPv4 and IPv6; the
	// route server keeps one session per address.
	Addresses []netip.Addr
	// MaxPrefixes limits the routes each session may announce per
	// address family; above it the session is closed (CEASE) and stays
	// down until ResetMember. 0 means no limit.
	MaxPrefixes uint32
	// Password enables TCP MD5 signatures (RFC 2385) on the sessions; the
	// kernel must support TCP_MD5SIG.
	Password string
	// AddPathReceive offers ADD-PATH send on the sessions, so a router
	// that negotiates receive gets every path meant for it per prefix
	// (several sellers of one prefix), not only the best one.
	AddPathReceive bool
}

type member struct {
	Member
}

// neighbor is one session: a member router address.
type neighbor struct {
	addr  netip.Addr
	asn   uint32
	state api.PeerState_SessionState
	admin api.PeerState_AdminState
	since time.Time // of the last state change

	// routes is everything received, by prefix: a table, not a map, for
	// its memory and for the longest match among the accepted ones
	// (acceptedLPM).
	routes *bart.Table[heldRoute]
	nAcc   int // the accepted ones
	// tradePfx holds the prefixes of trade paths with this next hop.
	tradePfx *bart.Table[bool]
	// routers are the member's addresses (its routes' next hops must be
	// one of them); a change of them re-adds the member.
	routers []netip.Addr
	// downs are the times the session went down lately; while
	// dampedUntil is ahead it is held down for flapping.
	downs       []time.Time
	dampedUntil time.Time
	// gone, if set, is closed when the session is no longer established
	// (Stop waits for it).
	gone chan struct{}
}

func (n *neighbor) established() bool { return n.state == api.PeerState_ESTABLISHED }

// acceptedLPM is the most specific accepted route covering p.
func (n *neighbor) acceptedLPM(p netip.Prefix) (heldRoute, bool) {
	for _, h := range n.routes.Supernets(p) {
		if h.accepted {
			return h, true
		}
	}
	return heldRoute{}, false
}

func (m *Member) validate(routeServerASN uint32) error {
	switch {
	case m.ASN == 0 || m.ASN == asTrans:
		return fmt.Errorf("member AS%d: not a usable AS number", m.ASN)
	case m.ASN == routeServerASN:
		return fmt.Errorf("member AS%d: same as the route server's ASN (sessions must be eBGP)", m.ASN)
	case len(m.Addresses) == 0:
		return fmt.Errorf("member AS%d: no router addresses", m.ASN)
	case strings.ContainsAny(m.Password, "\x00"):
		return fmt.Errorf("member AS%d: password contains a NUL byte", m.ASN)
	case len(m.Password) > 80:
		return fmt.Errorf("member AS%d: password longer than 80 bytes (TCP MD5 key limit)", m.ASN)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range m.Addresses {
		switch {
		case !a.IsValid():
			return fmt.Errorf("member AS%d: invalid router address", m.ASN)
		case a.Is4In6():
			return fmt.Errorf("member AS%d: router address %v: use plain IPv4, not IPv4-mapped IPv6", m.ASN, a)
		case a.Zone() != "":
			return fmt.Errorf("member AS%d: router address %v: zones (link-local) are not supported", m.ASN, a)
		case a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast():
			return fmt.Errorf("member AS%d: router address %v: not a unicast LAN address", m.ASN, a)
		case seen[a]:
			return fmt.Errorf("member AS%d: router address %v listed twice", m.ASN, a)
		}
		seen[a] = true
	}
	return nil
}

// AddMember configures a member's sessions (one per address). Adding an
// ASN that is already a member replaces it: its sessions are reset. The
// member's routers may connect as soon as it returns (if started).
func (s *Server) AddMember(ctx context.Context, m Member) error {
	if err := m.validate(s.cfg.ASN); err != nil {
		return fmt.Errorf("routeserver: %w", err)
	}
	if m.Password != "" {
		if err := md5Supported(); err != nil {
			return fmt.Errorf("routeserver: member AS%d: password set but the kernel refuses TCP MD5 signatures: %w", m.ASN, err)
		}
	}
	m.Addresses = slices.Clone(m.Addresses)
	s.mu.Lock()
	for _, a := range m.Addresses {
		if n := s.nbrs[a]; n != nil && n.asn != m.ASN {
			s.mu.Unlock()
			return fmt.Errorf("routeserver: member AS%d: router address %v belongs to AS%d", m.ASN, a, n.asn)
		}
	}
	_, exists := s.members[m.ASN]
	s.mu.Unlock()
	if exists {
		if err := s.RemoveMember(ctx, m.ASN); err != nil {
			return err
		}
	}

	if err := s.addMember(ctx, m); err != nil {
		return err
	}
	// Its table gets its trades as a buyer, made while it was not on the
	// route server (a no-op before Start, which reconciles everything).
	return s.reconcile(ctx)
}

func (s *Server) addMember(ctx context.Context, m Member) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.state == lifeStopped {
		return ErrStopped
	}
	mem := &member{Member: m}
	s.mu.Lock()
	if _, ok := s.members[m.ASN]; ok {
		s.mu.Unlock()
		return fmt.Errorf("routeserver: member AS%d added twice concurrently", m.ASN)
	}
	s.members[m.ASN] = mem
	for _, a := range m.Addresses {
		n := &neighbor{
			addr:     a,
			asn:      m.ASN,
			state:    api.PeerState_IDLE,
			since:    clock.Now(),
			routes:   new(bart.Table[heldRoute]),
			tradePfx: new(bart.Table[bool]),
			routers:  m.Addresses,
		}
		for r := range s.buyersOf {
			if r.NextHop == a {
				n.tradePfx.Insert(r.Prefix, true)
			}
		}
		s.nbrs[a] = n
	}
	s.dirtyBuyer(m.ASN)
	s.judgeBuyer(m.ASN)
	s.mu.Unlock()
	if s.state != lifeStarted {
		return nil
	}
	if err := s.addMemberBGP(ctx, mem); err != nil {
		// Leave nothing half-configured.
		s.removeMemberBGP(ctx, mem)
		s.mu.Lock()
		delete(s.members, m.ASN)
		for _, a := range m.Addresses {
			delete(s.nbrs, a)
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// Policy object names of a member.
func memberNames(asn uint32) (policy, nbrSet, lcSet string) {
	return fmt.Sprintf("bwx-member-%d", asn), fmt.Sprintf("bwx-routers-%d", asn), fmt.Sprintf("bwx-buyer-%d", asn)
}

// vrfName is the member's own table, which holds the paths of its trades
// as a buyer, and nothing else.
func vrfName(asn uint32) string { return fmt.Sprintf("bwx-vrf-%d", asn) }

// vrfIDs are the member's table's route distinguisher and route target:
// type 1, the ASN written as an IPv4 address (any 32-bit ASN fits), 1.
func vrfIDs(asn uint32) (bgp.RouteDistinguisherInterface, bgp.ExtendedCommunityInterface) {
	a := netip.AddrFrom4([4]byte{byte(asn >> 24), byte(asn >> 16), byte(asn >> 8), byte(asn)}).String()
	return bgp.NewRouteDistinguisherIPAddressAS(a, 1), bgp.NewIPv4AddressSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, a, 1, true)
}

// addVRF makes the member's table, which its sessions are bound to: a
// session is sent the best of its own table's paths per prefix (or all of
// them with ADD-PATH), whatever other buyers of the prefix bought.
func (s *Server) addVRF(ctx context.Context, asn uint32) error {
	rd, rt := vrfIDs(asn)
	ard, err := apiutil.MarshalRD(rd)
	if err != nil {
		return err
	}
	art, err := apiutil.MarshalRT(rt)
	if err != nil {
		return err
	}
	err = s.bgp.AddVrf(ctx, &api.AddVrfRequest{Vrf: &api.Vrf{Name: vrfName(asn), Rd: ard, ImportRt: []*anypb.Any{art}, ExportRt: []*anypb.Any{art}}})
	if err != nil {
		return fmt.Errorf("routeserver: member AS%d: table %s: %w", asn, vrfName(asn), err)
	}
	return nil
}

// addMemberBGP adds the member's export statement and then its
// neighbors. The caller holds life shared with the server started.
func (s *Server) addMemberBGP(ctx context.Context, m *member) error {
	policy, nbrSet, lcSet := memberNames(m.ASN)
	var routers []string
	for _, a := range m.Addresses {
		routers = append(routers, netip.PrefixFrom(a, a.BitLen()).String())
	}
	sets := []*api.DefinedSet{
		{DefinedType: api.DefinedType_NEIGHBOR, Name: nbrSet, List: routers},
		{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: lcSet, List: []string{fmt.Sprintf("^%d:%d:%d$", s.cfg.ASN, lcDeliverTo, m.ASN)}},
	}
	for _, d := range sets {
		if err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: d}); err != nil {
			return fmt.Errorf("routeserver: member AS%d: defined set %s: %w", m.ASN, d.Name, err)
		}
	}
	err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: policy,
		Statements: []*api.Statement{{
			Name: policy,
			Conditions: &api.Conditions{
				NeighborSet:       &api.MatchSet{Type: api.MatchSet_ANY, Name: nbrSet},
				RouteType:         api.Conditions_ROUTE_TYPE_LOCAL,
				LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: lcSet},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}})
	if err != nil {
		return fmt.Errorf("routeserver: member AS%d: export policy: %w", m.ASN, err)
	}
	err = s.bgp.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          globalRIB,
		Direction:     api.PolicyDirection_EXPORT,
		Policies:      []*api.Policy{{Name: policy}},
		DefaultAction: api.RouteAction_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("routeserver: member AS%d: assign export policy: %w", m.ASN, err)
	}
	if !m.AddPathReceive {
		if err := s.addVRF(ctx, m.ASN); err != nil {
			return err
		}
	}
	for _, a := range m.Addresses {
		if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConfig(m, a)}); err != nil {
			return fmt.Errorf("routeserver: member AS%d: session %v: %w", m.ASN, a, err)
		}
	}
	return nil
}

func (s *Server) peerConfig(m *member, a netip.Addr) *api.Peer {
	fam := family4
	if a.Is6() {
		fam = family6
	}
	afi := &api.AfiSafi{
		Config: &api.AfiSafiConfig{Family: fam, Enabled: true},
		// Graceful restart for this family: a helping member keeps our
		// routes while the arbiter restarts.
		MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
	}
	if m.MaxPrefixes > 0 {
		afi.PrefixLimits = &api.PrefixLimit{Family: fam, MaxPrefixes: m.MaxPrefixes}
	}
	if m.AddPathReceive {
		afi.AddPaths = &api.AddPaths{Config: &api.AddPathsConfig{SendMax: addPathSendMax}}
	}
	hold := uint64(s.cfg.HoldTime / time.Second)
	vrf := vrfName(m.ASN)
	if m.AddPathReceive {
		vrf = "" // every path for it, from the global table (see doc.go)
	}
	return &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: a.String(),
			PeerAsn:         m.ASN,
			AuthPassword:    m.Password,
			Description:     fmt.Sprintf("AS%d", m.ASN),
			Vrf:             vrf,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          hold,
			KeepaliveInterval: max(hold/3, 1),
			ConnectRetry:      5,
		}},
		Transport: &api.Transport{PassiveMode: s.cfg.Passive},
		// RFC 4724 graceful restart: when the arbiter dies or restarts
		// (connections reset) a helping member keeps our routes for the
		// restart time. RFC 8538's flag keeps it graceful after a
		// NOTIFICATION too, except a Hard Reset, which GoBGP sends for
		// Stop's CEASE: a deliberate stop still flushes at once.
		GracefulRestart: &api.GracefulRestart{
			Enabled:             true,
			RestartTime:         s.restartTime(),
			NotificationEnabled: true,
		},
		AfiSafis: []*api.AfiSafi{afi},
	}
}

// DefaultGracefulRestartTime is the restart time offered when
// Config.GracefulRestartTime is 0.
const DefaultGracefulRestartTime = 120 * time.Second

func (s *Server) restartTime() uint32 {
	if s.cfg.GracefulRestartTime == 0 {
		return uint32(DefaultGracefulRestartTime / time.Second)
	}
	return uint32(s.cfg.GracefulRestartTime / time.Second)
}

// addPathSendMax is how many paths per prefix an ADD-PATH peer may get
// (GoBGP's limit is a byte).
const addPathSendMax = 255

// RemoveMember closes the member's sessions and removes its export
// statement. Its trades stay registered (WithdrawTrade them) but nothing
// is delivered through or to it any more.
func (s *Server) RemoveMember(ctx context.Context, asn uint32) error {
	s.mu.Lock()
	m, ok := s.members[asn]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("routeserver: AS%d is not a member", asn)
	}
	delete(s.members, asn)
	var gone []*neighbor
	for _, a := range m.Addresses {
		if n := s.nbrs[a]; n != nil {
			gone = append(gone, n)
			delete(s.nbrs, a)
			s.dirtyNeighbor(n)
		}
	}
	s.dirtyBuyer(asn)
	s.judgeBuyer(asn)
	s.mu.Unlock()
	for _, n := range gone {
		s.dropRoutes(n)
	}
	// Its paths as a buyer and as a seller go first, then its sessions
	// and its table.
	err := s.reconcile(ctx)
	s.life.RLock()
	if s.state == lifeStarted {
		err = errors.Join(err, s.removeMemberBGP(ctx, m))
	}
	s.life.RUnlock()
	return err
}

// removeMemberBGP deletes the member's neighbors and then its export
// statement and sets. The caller holds life shared with the server started.
func (s *Server) removeMemberBGP(ctx context.Context, m *member) error {
	var errs []error
	for _, a := range m.Addresses {
		err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()})
		if err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, fmt.Errorf("routeserver: member AS%d: delete session %v: %w", m.ASN, a, err))
		}
	}
	policy, nbrSet, lcSet := memberNames(m.ASN)
	s.bgp.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: globalRIB, Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: policy}},
	}})
	s.bgp.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: policy}, All: true})
	s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: nbrSet}, All: true})
	s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: lcSet}, All: true})
	// Its table goes with whatever paths are left in it (the member's
	// trades as a buyer, which RemoveMember has withdrawn already).
	if m.AddPathReceive {
		return errors.Join(errs...)
	}
	err := s.bgp.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: vrfName(m.ASN)})
	if err != nil {
		errs = append(errs, fmt.Errorf("routeserver: member AS%d: delete table: %w", m.ASN, err))
	}
	return errors.Join(errs...)
}

// ResetMember re-enables the member's sessions after a max-prefix
// shutdown or flap damping and resets the others (the routers reconnect).
func (s *Server) ResetMember(ctx context.Context, asn uint32) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	s.mu.Lock()
	m, ok := s.members[asn]
	var addrs []netip.Addr
	var pfxct []bool
	if ok {
		addrs = m.Addresses
		for _, a := range addrs {
			n := s.nbrs[a]
			// Max-prefix or flap damping holds it down.
			pfxct = append(pfxct, n != nil && (n.admin != api.PeerState_UP || !n.dampedUntil.IsZero()))
			if n != nil {
				// The operator's reset starts the flap count afresh.
				n.dampedUntil, n.downs = time.Time{}, nil
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("routeserver: AS%d is not a member", asn)
	}
	var errs []error
	for i, a := range addrs {
		var err error
		if pfxct[i] {
			err = s.bgp.EnablePeer(ctx, &api.EnablePeerRequest{Address: a.String()})
		} else {
			err = s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Communication: "reset by the exchange operator"})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("routeserver: reset %v: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

// Members returns the configured members, by ASN.
func (s *Server) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		c := m.Member
		c.Addresses = slices.Clone(c.Addresses)
		c.Password = ""
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ASN, b.ASN) })
	return out
}
