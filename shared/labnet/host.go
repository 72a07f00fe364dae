package labnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is a network namespace attached to the lab's switch. The switch
// namespace itself is a Host too (see Lab.Switch), without addresses or
// port.
type Host struct {
	// Name is the host's name in the lab ("arbiter", "m1", ...).
	Name string
	// Netns is the name of its network namespace, for `ip netns exec`.
	Netns string
	// Addrs are the addresses on Iface, as given to AddHost.
	Addrs []netip.Prefix
	// Iface is the host's link to the switch (HostIface; BridgeName for
	// the switch).
	Iface string
	// Port is the host's bridge port in the switch namespace: Name,
	// truncated to 15 characters and made unique.
	Port string
	// MAC is the hardware address of Iface.
	MAC net.HardwareAddr

	lab *Lab
}

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// Addr4 returns the host's first IPv4 address, or the zero Addr.
func (h *Host) Addr4() netip.Addr {
	for _, p := range h.Addrs {
		if p.Addr().Is4() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// Addr6 returns the host's first IPv6 address that is not link-local, or
// the zero Addr.
func (h *Host) Addr6() netip.Addr {
	for _, p := range h.Addrs {
		if a := p.Addr(); a.Is6() && !a.IsLinkLocalUnicast() {
			return a
		}
	}
	return netip.Addr{}
}

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// AddHost creates the namespace <prefix>-<name>, links it to the switch
// with a veth pair (eth0 in the host, a bridge port in the switch), brings
// lo and both ends up and assigns addrs to eth0 (IPv6 ones without
// duplicate address detection, so they are usable at once). Names are 1-32
// letters, digits, '_', '.' or '-', starting with a letter or digit; "sw"
// is taken by the switch. On error nothing of the host is left behind.
func (l *Lab) AddHost(name string, addrs ...netip.Prefix) (*Host, error) {
	if err := checkHost(name, addrs); err != nil {
		return nil, fmt.Errorf("labnet: add host %q: %w", name, err)
	}
	if err := l.begin(); err != nil {
		return nil, err
	}
	defer l.inflight.Done()

	l.mu.Lock()
	if l.names[name] {
		l.mu.Unlock()
		return nil, fmt.Errorf("labnet: add host %q: name in use", name)
	}
	h := &Host{
		Name:  name,
		Netns: l.Prefix + "-" + name,
		Addrs: slices.Clone(addrs),
		Iface: HostIface,
		Port:  l.pickPort(name),
		lab:   l,
	}
	l.names[name] = true
	l.ports[h.Port] = true
	l.mu.Unlock()

	if err := l.buildHost(h); err != nil {
		l.mu.Lock()
		delete(l.names, name)
		delete(l.ports, h.Port)
		l.mu.Unlock()
		return nil, fmt.Errorf("labnet: add host %q: %w", name, err)
	}
	l.mu.Lock()
	l.hosts[name] = h
	l.order = append(l.order, h)
	l.mu.Unlock()
	return h, nil
}

func checkHost(name string, addrs []netip.Prefix) error {
	if !hostNameRE.MatchString(name) {
		return errors.New("invalid name: want 1-32 of [A-Za-z0-9_.-], starting with a letter or digit")
	}
	if name == SwitchName {
		return errors.New("name is reserved for the switch")
	}
	seen := map[netip.Addr]bool{}
	for _, p := range addrs {
		a := p.Addr()
		switch {
		case !p.IsValid():
			return fmt.Errorf("invalid prefix %v", p)
		case a.Is4In6():
			return fmt.Errorf("%v: use plain IPv4, not IPv4-mapped IPv6", p)
		case a.Zone() != "":
			return fmt.Errorf("%v: zones are not allowed", p)
		case a.IsUnspecified() || a.IsMulticast():
			return fmt.Errorf("%v: not a unicast address", p)
		case seen[a]:
			return fmt.Errorf("%v: duplicate address", p)
		}
		seen[a] = true
	}
	return nil
}

// pickPort chooses the switch-side veth name; l.mu must be held.
func (l *Lab) pickPort(name string) string {
	const max = unix.IFNAMSIZ - 1
	if p := name[:min(len(name), max)]; !l.ports[p] {
		return p
	}
	for i := 2; ; i++ {
		s := "-" + strconv.Itoa(i)
		if p := name[:min(len(name), max-len(s))] + s; !l.ports[p] {
			return p
		}
	}
}

// buildHost creates the host's namespace and links; on error it removes
// what it made.
func (l *Lab) buildHost(h *Host) (err error) {
	err = l.createNetns(h.Netns,
		// No DAD at all, also for link-local addresses: every address
		// is usable at once and ND never waits for a tentative source.
		"net.ipv6.conf.default.accept_dad", "0",
		"net.ipv6.conf.all.accept_dad", "0")
	if err != nil {
		return err
	}
	var sw *netlink.Handle
	portMade := false
	defer func() {
		if err != nil && portMade {
			// Remove the switch port explicitly: namespace destruction
			// is asynchronous and the name would stay taken a while.
			if link, lerr := sw.LinkByName(h.Port); lerr == nil {
				sw.LinkDel(link)
			}
		}
		if sw != nil {
			sw.Close()
		}
		if err != nil {
			err = errors.Join(err, l.destroyNetns(h.Netns))
		}
	}()
	if err := l.step("netns"); err != nil {
		return err
	}
	if sw, err = handleAt(l.sw.Netns); err != nil {
		return err
	}
	hostNs, err := netns.GetFromName(h.Netns)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", h.Netns, err)
	}
	defer hostNs.Close()
	hh, err := netlink.NewHandleAt(hostNs)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", h.Netns, err)
	}
	defer hh.Close()
	if err := hh.SetSocketTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("netlink in %s: %w", h.Netns, err)
	}

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: h.Port},
		PeerName:      HostIface,
		PeerNamespace: netlink.NsFd(hostNs),
	}
	if err := sw.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", h.Port, HostIface, err)
	}
	portMade = true
	if err := l.step("veth"); err != nil {
		return err
	}
	br, err := sw.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("find %s: %w", BridgeName, err)
	}
	port, err := sw.LinkByName(h.Port)
	if err != nil {
		return fmt.Errorf("find port %s: %w", h.Port, err)
	}
	if err := sw.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("add port %s to %s: %w", h.Port, BridgeName, err)
	}
	if err := sw.LinkSetUp(port); err != nil {
		return fmt.Errorf("set port %s up: %w", h.Port, err)
	}
	if err := l.step("port"); err != nil {
		return err
	}
	if err := linkUp(hh, "lo"); err != nil {
		return err
	}
	eth, err := hh.LinkByName(HostIface)
	if err != nil {
		return fmt.Errorf("find %s: %w", HostIface, err)
	}
	for _, p := range h.Addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := hh.AddrAdd(eth, a); err != nil {
			return fmt.Errorf("add address %v to %s: %w", p, HostIface, err)
		}
	}
	if err := l.step("addr"); err != nil {
		return err
	}
	if err := hh.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up: %w", HostIface, err)
	}
	h.MAC = eth.Attrs().HardwareAddr
	return l.step("up")
}

// Command returns a command that runs prog inside the host's namespace
// (via `ip netns exec`). It runs in its own process group, and when ctx is
// done the whole group is killed; Wait then returns within a few seconds
// even if something still holds its output pipes. Keep SysProcAttr.Setpgid
// set if you replace SysProcAttr. Close kills whatever is left running in
// the lab's namespaces.
func (h *Host) Command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Netns, prog}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// killGroup signals the process group led by pid.
func killGroup(pid int, sig unix.Signal) error {
	err := unix.Kill(-pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Do runs fn on an OS thread that is inside the host's network namespace
// (only the network namespace: the filesystem, /sys included, is the
// caller's). Sockets opened in fn stay in the namespace and can be used
// anywhere after Do returns. Goroutines started by fn do NOT run in the
// namespace, and name resolution may use other goroutines: dial IP
// literals. A panic or runtime.Goexit (t.FailNow) in fn carries over to the
// caller.
func (h *Host) Do(fn func() error) error {
	return runOnThread(func() error { return enterNetns(h.Netns) }, fn)
}

// Listen is net.Listen inside the host's namespace.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket is net.ListenPacket inside the host's namespace.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() (err error) {
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// DialContext dials from the host's namespace. address must have an IP
// literal as host (a name could resolve to several addresses, which are
// dialled from goroutines outside the namespace).
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("labnet: dial %s: %w", address, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("labnet: dial %s from %s: host must be an IP address", address, h.Name)
	}
	var c net.Conn
	err = h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// SetSysctl sets a sysctl of the host's network namespace; key is in
// sysctl(8) form ("net.ipv4.ip_forward") or a path below /proc/sys
// ("net/ipv4/conf/eth0.100/rp_filter").
func (h *Host) SetSysctl(key, value string) error {
	err := h.Do(func() error { return writeSysctl(key, value) })
	if err != nil {
		return fmt.Errorf("labnet: %s: sysctl %s=%s: %w", h.Name, key, value, err)
	}
	return nil
}

// Sysctl reads a sysctl of the host's network namespace (see SetSysctl).
func (h *Host) Sysctl(key string) (string, error) {
	var v string
	err := h.Do(func() (err error) {
		v, err = readSysctl(key)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("labnet: %s: sysctl %s: %w", h.Name, key, err)
	}
	return v, nil
}

func (h *Host) String() string { return h.Name + "@" + h.Netns }
