package speaker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults for zero Config values.
const (
	DefaultPort         = 179
	DefaultHoldTime     = 90 * time.Second
	DefaultRestartTime  = 120 * time.Second
	DefaultConnectRetry = 5 * time.Second
)

// Config configures a Speaker.
type Config struct {
	// ASN is the member's AS number (from its certificate).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr
	// RouteServerASN is the route server's AS number.
	RouteServerASN uint32
	// RouteServers are the route server's addresses; one session each
	// (an IPv4 address carries ipv4-unicast, an IPv6 one ipv6-unicast).
	RouteServers []netip.Addr
	// LocalAddresses, optional, are the source addresses of the
	// sessions: the first of each family is used for that family.
	LocalAddresses []netip.Addr
	// Port is the route server's TCP port (default 179).
	Port uint16
	// HoldTime is the BGP hold time offered (default 90 s).
	HoldTime time.Duration
	// RestartTime is the graceful restart time offered, and the longest
	// the speaker keeps a departed route server's routes (default 120 s).
	RestartTime time.Duration
	// ConnectRetry is the delay between connection attempts (default 5 s).
	ConnectRetry time.Duration
	// MemberRouters, optional, are the member's own routers: the speaker
	// re-announces the traded routes to each over iBGP (our ASN, IPv4 and
	// IPv6 on every session), unchanged: next hop the seller's router,
	// NO_EXPORT and the large communities kept; only the paths
	// SetReannounced lets through (the agent's checked ones), never a
	// default route. Nothing else is sent, and nothing is taken from them.
	MemberRouters []netip.Addr
	// MemberRouterPort is their BGP port (default 179).
	MemberRouterPort uint16
	// MemberRouterLocal, optional, is the source address of those sessions.
	MemberRouterLocal netip.Addr
	// MemberRouterAddPath offers ADD-PATH send to them: every seller of a
	// prefix, not only GoBGP's best path.
	MemberRouterAddPath bool
	// Log receives the speaker's and GoBGP's messages; nil discards.
	Log *slog.Logger
}

func (c *Config) check() error {
	switch {
	case c.ASN == 0 || c.ASN == 23456:
		return fmt.Errorf("speaker: own ASN %d is not a usable AS number", c.ASN)
	case c.RouteServerASN == 0 || c.RouteServerASN == 23456:
		return fmt.Errorf("speaker: route server ASN %d is not a usable AS number", c.RouteServerASN)
	case c.RouteServerASN == c.ASN:
		return fmt.Errorf("speaker: route server ASN %d is our own (sessions must be eBGP)", c.ASN)
	case !c.RouterID.Is4() || c.RouterID.IsUnspecified():
		return fmt.Errorf("speaker: router ID %v: want a non-zero IPv4 address", c.RouterID)
	case len(c.RouteServers) == 0:
		return errors.New("speaker: no route server address")
	case c.HoldTime != 0 && (c.HoldTime < 3*time.Second || c.HoldTime > 65535*time.Second):
		return fmt.Errorf("speaker: hold time %v: want 3s to 65535s", c.HoldTime)
	case c.RestartTime < 0 || c.RestartTime > 4095*time.Second || c.RestartTime%time.Second != 0:
		return fmt.Errorf("speaker: restart time %v: want whole seconds up to 4095s", c.RestartTime)
	case c.ConnectRetry < 0 || c.ConnectRetry%time.Second != 0:
		return fmt.Errorf("speaker: connect retry %v: want whole seconds", c.ConnectRetry)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range c.RouteServers {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("speaker: route server address %v: %w", a, err)
		}
		if seen[a] {
			return fmt.Errorf("speaker: route server address %v listed twice", a)
		}
		seen[a] = true
	}
	for _, a := range c.LocalAddresses {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("speaker: local address %v: %w", a, err)
		}
	}
	for _, a := range c.MemberRouters {
		// Loopback is fine here: the member's router may run on this host.
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("speaker: member router %v: %w", a, err)
		}
		if seen[a] {
			return fmt.Errorf("speaker: member router %v is also a route server or listed twice", a)
		}
		seen[a] = true
	}
	if c.MemberRouterLocal.IsValid() {
		if err := checkAddr(c.MemberRouterLocal); err != nil {
			return fmt.Errorf("speaker: member router local address %v: %w", c.MemberRouterLocal, err)
		}
	}
	return nil
}

func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("invalid address")
	case a.Is4In6():
		return errors.New("use plain IPv4, not IPv4-mapped IPv6")
	case a.Zone() != "" || a.IsLinkLocalUnicast():
		return errors.New("link-local addresses are not supported")
	case a.IsUnspecified() || a.IsMulticast():
		return errors.New("not a unicast address")
	}
	return nil
}
