package probe

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults for PathsConfig.
const (
	DefaultTableBase    = 20000
	DefaultMarkBase     = 0x62770000 // "bw" in the high half: clear of small marks others use
	DefaultRulePriority = 20000
	// DefaultProtocol marks our rules and routes (rtm_protocol / FRA_PROTOCOL),
	// the same number agent/fib uses ("bwx" in rt_protos).
	DefaultProtocol = 239
	// MaxSellerID bounds Seller.ID so table and mark ranges stay small and
	// recognisable.
	MaxSellerID = 4095
)

// Seller is one path to probe through: a member router on the exchange LAN.
type Seller struct {
	// Name is for messages and measurements (e.g. "AS64501").
	Name string
	// ASN of the seller.
	ASN uint32
	// ID is a small stable number (0..MaxSellerID), e.g. the registry's
	// member id: the seller's table is TableBase+ID and its mark MarkBase+ID,
	// so a restarted agent finds its own tables again.
	ID uint32
	// NextHop4 and NextHop6 are the seller's router addresses on the exchange
	// interface; at least one. A missing family gets no default route, so
	// probes of that family through this seller fail (unreachable).
	NextHop4, NextHop6 netip.Addr
}

// Table is the routing table number of seller s under cfg.
func (c PathsConfig) Table(s Seller) int { return int(c.TableBase) + int(s.ID) }

// Mark is the fwmark that steers a probe through seller s.
func (c PathsConfig) Mark(s Seller) uint32 { return c.MarkBase + s.ID }

// PathsConfig sets up per-seller policy routing.
type PathsConfig struct {
	// Link is the exchange interface (where the sellers' routers are).
	Link string
	// TableBase, MarkBase: see Seller.ID (defaults DefaultTableBase,
	// DefaultMarkBase).
	TableBase, MarkBase uint32
	// RulePriority of the fwmark rules (DefaultRulePriority): before the
	// main table (32766), after local (0).
	RulePriority int
	// Protocol tags our rules and routes (DefaultProtocol): anything else in
	// the rule list or in our tables is someone else's and left alone.
	Protocol int
	// Sysctl reads and writes sysctls of the namespace the handle is in
	// (nil: /proc/sys of this thread's namespace).
	Sysctl Sysctl
	// LeaveRPFilter makes Reconcile only check rp_filter and report a strict
	// setting as an error instead of loosening it.
	LeaveRPFilter bool
}

func (c *PathsConfig) defaults() error {
	if c.Link == "" {
		return errors.New("probe: paths: no exchange interface (Link)")
	}
	c.TableBase = cmp.Or(c.TableBase, DefaultTableBase)
	c.MarkBase = cmp.Or(c.MarkBase, DefaultMarkBase)
	c.RulePriority = cmp.Or(c.RulePriority, DefaultRulePriority)
	c.Protocol = cmp.Or(c.Protocol, DefaultProtocol)
	if c.Sysctl == nil {
		c.Sysctl = procSysctl{}
	}
	switch {
	case c.TableBase+MaxSellerID < c.TableBase, c.TableBase <= 255 && c.TableBase+MaxSellerID >= 253:
		return fmt.Errorf("probe: paths: table base %d: tables %d-%d overlap the kernel's (253-255) or overflow", c.TableBase, c.TableBase, c.TableBase+MaxSellerID)
	case c.MarkBase+MaxSellerID < c.MarkBase:
		return fmt.Errorf("probe: paths: mark base %#x overflows", c.MarkBase)
	case c.RulePriority < 1 || c.RulePriority >= 32766:
		return fmt.Errorf("probe: paths: rule priority %d: want 1-32765 (before the main table's 32766)", c.RulePriority)
	case c.Protocol < 5 || c.Protocol > 255:
		return fmt.Errorf("probe: paths: protocol %d: want 5-255 (0-4 belong to the kernel)", c.Protocol)
	}
	return nil
}

// Sysctl reads and writes sysctls (keys as paths below /proc/sys, e.g.
// "net/ipv4/conf/eth0/rp_filter"). labnet.Host implements it.
type Sysctl interface {
	Sysctl(key string) (string, error)
	SetSysctl(key, value string) error
}

type procSysctl struct{}

func (procSysctl) Sysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", key))
	return strings.TrimSpace(string(b)), err
}

func (procSysctl) SetSysctl(key, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0)
}

// Paths keeps one routing table per seller, holding a default route (IPv4
// and IPv6) via that seller's router, and one fwmark rule per table and
// family, so a probe sent with the seller's mark leaves through the seller
// (claim 6) whatever the main table says.
type Paths struct {
	cfg  PathsConfig
	h    *netlink.Handle
	link netlink.Link
}

// NewPaths prepares policy routing on h (a handle in the namespace to
// configure; netlink.NewHandle() for this one). It changes nothing until
// Reconcile.
func NewPaths(h *netlink.Handle, cfg PathsConfig) (*Paths, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := h.SetStrictCheck(true); err != nil {
		return nil, fmt.Errorf("probe: paths: netlink strict check: %w", err)
	}
	link, err := h.LinkByName(cfg.Link)
	if err != nil {
		return nil, fmt.Errorf("probe: paths: exchange interface %q: %w", cfg.Link, err)
	}
	return &Paths{cfg: cfg, h: h, link: link}, nil
}

// Config returns the configuration with defaults filled in.
func (p *Paths) Config() PathsConfig { return p.cfg }

// CheckSellers validates a seller list: unique names and IDs, IDs in
// range, next hops of the right family.
func CheckSellers(sellers []Seller) error {
	ids := map[uint32]string{}
	names := map[string]bool{}
	for _, s := range sellers {
		switch {
		case s.Name == "":
			return fmt.Errorf("probe: seller with ID %d has no name", s.ID)
		case names[s.Name]:
			return fmt.Errorf("probe: seller %q listed twice", s.Name)
		case s.ID > MaxSellerID:
			return fmt.Errorf("probe: seller %q: ID %d above %d", s.Name, s.ID, MaxSellerID)
		case ids[s.ID] != "":
			return fmt.Errorf("probe: sellers %q and %q share ID %d", ids[s.ID], s.Name, s.ID)
		case !s.NextHop4.IsValid() && !s.NextHop6.IsValid():
			return fmt.Errorf("probe: seller %q has no next hop", s.Name)
		case s.NextHop4.IsValid() && !s.NextHop4.Is4():
			return fmt.Errorf("probe: seller %q: IPv4 next hop %v is not IPv4", s.Name, s.NextHop4)
		case s.NextHop6.IsValid() && (!s.NextHop6.Is6() || s.NextHop6.Is4In6()):
			return fmt.Errorf("probe: seller %q: IPv6 next hop %v is not IPv6", s.Name, s.NextHop6)
		}
		ids[s.ID], names[s.Name] = s.Name, true
	}
	return nil
}

// Reconcile makes the kernel hold exactly the tables and rules for sellers:
// it adopts what is already right, replaces wrong default routes, adds what
// is missing and removes our rules and routes of sellers no longer listed.
// Rules and routes of other protocols are never touched. It also makes sure
// rp_filter does not drop the replies (see CheckRPFilter).
func (p *Paths) Reconcile(sellers []Seller) error {
	if err := CheckSellers(sellers); err != nil {
		return err
	}
	if err := p.rpFilter(); err != nil {
		return err
	}
	return p.reconcile(sellers)
}

func (p *Paths) reconcile(sellers []Seller) error {
	want := map[int]Seller{}
	for _, s := range sellers {
		want[p.cfg.Table(s)] = s
	}
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		errs = append(errs, p.reconcileFamily(fam, want))
	}
	return errors.Join(errs...)
}

func nextHop(s Seller, fam int) netip.Addr {
	if fam == netlink.FAMILY_V4 {
		return s.NextHop4
	}
	return s.NextHop6
}

func (p *Paths) ours(table int) bool {
	return table >= int(p.cfg.TableBase) && table <= int(p.cfg.TableBase)+MaxSellerID
}

// backstopMetric is the metric of the unreachable default route in every
// seller table: it stays when the seller's own default route is missing
// (no next hop of that family, or deleted by someone), so a marked probe
// fails instead of falling through to the main table and measuring the
// member's usual path under the seller's name.
const backstopMetric = 0xffffffff

// viaMetric is the metric of a seller's default route (IPv6's usual
// default, set explicitly for both families so adoption compares alike).
const viaMetric = 1024

func (p *Paths) reconcileFamily(fam int, want map[int]Seller) error {
	var errs []error
	// Rules: ours carry our protocol at our priority. Every seller gets one
	// per family, also without a next hop of that family (the backstop
	// then answers).
	rules, err := p.rules(fam)
	if err != nil {
		return err
	}
	have := map[int]bool{}
	for _, r := range rules {
		if int(r.Protocol) != p.cfg.Protocol {
			continue
		}
		s, ok := want[r.Table]
		if ok && r.Mark == p.cfg.Mark(s) && r.Mask != nil && *r.Mask == 0xffffffff && !have[r.Table] {
			have[r.Table] = true
			continue
		}
		if err := p.h.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("probe: paths: remove rule %v: %w", r, err))
		}
	}
	for table, s := range want {
		if have[table] {
			continue
		}
		r := netlink.NewRule()
		r.Family, r.Priority, r.Table, r.Protocol = fam, p.cfg.RulePriority, table, uint8(p.cfg.Protocol)
		r.Mark = p.cfg.Mark(s)
		mask := uint32(0xffffffff)
		r.Mask = &mask
		if err := p.h.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("probe: paths: add rule fwmark %#x lookup %d for seller %q: %w", r.Mark, table, s.Name, err))
		}
	}
	// Routes: our protocol, in any table of our range.
	routes, err := p.h.RouteListFiltered(fam, &netlink.Route{Protocol: netlink.RouteProtocol(p.cfg.Protocol), Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("probe: paths: list routes: %w", err))...)
	}
	good, backstop := map[int]bool{}, map[int]bool{}
	for _, r := range routes {
		if !p.ours(r.Table) {
			continue
		}
		s, ok := want[r.Table]
		switch {
		case ok && isDefault(r.Dst) && r.Type == unix.RTN_UNREACHABLE && r.Priority == backstopMetric && !backstop[r.Table]:
			backstop[r.Table] = true
			continue
		case ok && isDefault(r.Dst) && r.Type == unix.RTN_UNICAST && r.Priority == viaMetric && r.LinkIndex == p.link.Attrs().Index &&
			nextHop(s, fam).IsValid() && ipEqual(r.Gw, nextHop(s, fam)) && !good[r.Table]:
			good[r.Table] = true
			continue
		}
		if err := p.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("probe: paths: remove route %v table %d: %w", r.Dst, r.Table, err))
		}
	}
	for table, s := range want {
		if !backstop[table] {
			r := p.defaultRoute(fam, table)
			r.Type, r.Priority = unix.RTN_UNREACHABLE, backstopMetric
			if err := p.h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
				errs = append(errs, fmt.Errorf("probe: paths: unreachable backstop in table %d (seller %q): %w", table, s.Name, err))
			}
		}
		nh := nextHop(s, fam)
		if !nh.IsValid() || good[table] {
			continue
		}
		r := p.defaultRoute(fam, table)
		r.LinkIndex, r.Gw, r.Priority = p.link.Attrs().Index, nh.AsSlice(), viaMetric
		if err := p.h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("probe: paths: default route via %v (seller %q) in table %d on %s: %w", nh, s.Name, table, p.cfg.Link, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Paths) defaultRoute(fam, table int) *netlink.Route {
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if fam == netlink.FAMILY_V6 {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &netlink.Route{Dst: dst, Table: table, Protocol: netlink.RouteProtocol(p.cfg.Protocol), Family: fam}
}

// rules lists the rules at our priority. The kernel refuses rule dumps on
// a strict-checking socket, so strict checking (wanted for route dumps) is
// off for the call.
func (p *Paths) rules(fam int) ([]netlink.Rule, error) {
	if err := p.h.SetStrictCheck(false); err != nil {
		return nil, fmt.Errorf("probe: paths: netlink strict check: %w", err)
	}
	rules, err := p.h.RuleListFiltered(fam, &netlink.Rule{Priority: p.cfg.RulePriority}, netlink.RT_FILTER_PRIORITY)
	if serr := p.h.SetStrictCheck(true); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("probe: paths: list rules: %w", err)
	}
	return rules, nil
}

func isDefault(n *net.IPNet) bool {
	if n == nil {
		return true
	}
	ones, _ := n.Mask.Size()
	return ones == 0
}

func ipEqual(ip net.IP, a netip.Addr) bool {
	b, ok := netip.AddrFromSlice(ip)
	return ok && b.Unmap() == a.Unmap()
}

// Close removes every rule and route Reconcile made (those of our protocol
// in our tables and at our priority).
func (p *Paths) Close() error { return p.reconcile(nil) }

// Owned lists our rules' (family, table, mark) as the kernel has them, for
// status output and tests.
func (p *Paths) Owned() ([]netlink.Rule, error) {
	var out []netlink.Rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := p.rules(fam)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if int(r.Protocol) == p.cfg.Protocol {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b netlink.Rule) int { return (a.Family*1e6 + a.Table) - (b.Family*1e6 + b.Table) })
	return out, nil
}

// ErrStrictRPFilter is wrapped by the error of a strict reverse-path filter
// on the exchange interface.
var ErrStrictRPFilter = errors.New("strict rp_filter")

// CheckRPFilter reports the effective IPv4 reverse-path filter mode of link:
// the kernel applies max(all, link), 0 off, 1 strict, 2 loose. Strict mode
// drops probe replies, which come in on the exchange interface while the
// main table routes their source elsewhere, so probes see 100 % loss.
func CheckRPFilter(sys Sysctl, link string) (mode int, err error) {
	all, err := readInt(sys, "net/ipv4/conf/all/rp_filter")
	if err != nil {
		return 0, err
	}
	dev, err := readInt(sys, "net/ipv4/conf/"+link+"/rp_filter")
	if err != nil {
		return 0, err
	}
	mode = max(all, dev)
	if mode == 1 {
		return mode, fmt.Errorf("probe: %w on %s (effective %d = max(all=%d, %s=%d)): replies to probes sent through a seller arrive on %s while the main table routes their source elsewhere, so the kernel drops them (100 %% loss); set net.ipv4.conf.%s.rp_filter=2 (loose)",
			ErrStrictRPFilter, link, mode, all, link, dev, link, link)
	}
	return mode, nil
}

func readInt(sys Sysctl, key string) (int, error) {
	s, err := sys.Sysctl(key)
	if err != nil {
		return 0, fmt.Errorf("probe: read sysctl %s: %w", key, err)
	}
	var v int
	if _, err := fmt.Sscan(s, &v); err != nil {
		return 0, fmt.Errorf("probe: sysctl %s: %q is not a number", key, s)
	}
	return v, nil
}

// rpFilter loosens a strict filter on the exchange interface: setting the
// interface to 2 makes the effective mode max(all, 2) = 2 whatever "all" is.
func (p *Paths) rpFilter() error {
	mode, err := CheckRPFilter(p.cfg.Sysctl, p.cfg.Link)
	if err == nil || mode != 1 || p.cfg.LeaveRPFilter {
		return err
	}
	key := "net/ipv4/conf/" + p.cfg.Link + "/rp_filter"
	if serr := p.cfg.Sysctl.SetSysctl(key, "2"); serr != nil {
		return fmt.Errorf("%w; setting it loose failed: %v", err, serr)
	}
	if _, err := CheckRPFilter(p.cfg.Sysctl, p.cfg.Link); err != nil {
		return fmt.Errorf("probe: set %s=2 but the filter is still strict: %w", key, err)
	}
	return nil
}
