package labnet

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// SwitchName is the name of the switch "host"; the switch namespace is
	// <prefix>-sw and no host may be called that.
	SwitchName = "sw"
	// BridgeName is the bridge inside the switch namespace.
	BridgeName = "br0"
	// HostIface is the name of every host's link to the switch.
	HostIface = "eth0"
	// DefaultStopGrace is how long Close and Proc.Stop wait after SIGTERM
	// before they send SIGKILL.
	DefaultStopGrace = 3 * time.Second
)

// ErrClosed is returned by operations on a closed Lab.
var ErrClosed = errors.New("labnet: lab is closed")

// ErrNeedsRoot is what NeedsRoot returns (possibly wrapped) when this
// process cannot create network namespaces.
var ErrNeedsRoot = errors.New("labnet: needs root (CAP_SYS_ADMIN) to create network namespaces: run with sudo")

// NeedsRoot reports why this process cannot build labs, or nil if it can:
// it must run as root, be allowed to create network namespaces (which a
// restricted container may forbid even to root), and find the ip(8) command
// of iproute2, which runs commands inside the namespaces.
//
// In a test binary run with -short it says no: the short pass (the suite
// again with its clock moved, see scripts/test.sh) leaves the namespace
// tests to the full run.
func NeedsRoot() error {
	if testing.Testing() && flag.Parsed() && testing.Short() { // a TestMain helper runs before Parse
		return errShort
	}
	return needsRoot()
}

var errShort = errors.New("labnet: network namespace tests do not run with -short")

var needsRoot = sync.OnceValue(func() error {
	if os.Geteuid() != 0 {
		return ErrNeedsRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("labnet: the ip command (iproute2) is needed to run commands in network namespaces: %w", err)
	}
	// Probe: unshare a throw-away namespace on a scratch thread.
	err := runOnThread(func() error { return unix.Unshare(unix.CLONE_NEWNET) }, nil)
	if err != nil {
		return fmt.Errorf("%w (unshare(CLONE_NEWNET): %v)", ErrNeedsRoot, err)
	}
	return nil
})

// Lab is one exchange LAN: a switch namespace with a bridge and the hosts
// attached to it. Its methods are safe for concurrent use.
type Lab struct {
	// Label is the name given to New (informational only).
	Label string
	// Prefix is unique among all labs on the machine, e.g. "bx3f09a1";
	// all of the lab's namespaces are named <Prefix>-<host>.
	Prefix string

	hook func(l *Lab, step string) error // failure injection for tests

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // AddHost and Start calls in progress
	sw       *Host
	hosts    map[string]*Host // complete hosts
	order    []*Host
	names    map[string]bool // host names in use or being created
	ports    map[string]bool // switch port names in use or being created
	netns    map[string]nsID // namespaces created and not deleted yet
	procs    []*Proc         // processes started with Host.Start
	grace    time.Duration
	lock     *os.File

	closeOnce sync.Once
	closeErr  error
}

// New creates a lab: it reserves a unique prefix and creates the switch
// namespace <prefix>-sw with the bridge br0 up in it. label is a short
// description of the lab's purpose (say, the test name). On error nothing
// is left behind.
func New(label string) (*Lab, error) { return newLab(label, nil) }

func newLab(label string, hook func(*Lab, string) error) (_ *Lab, err error) {
	if err := NeedsRoot(); err != nil {
		return nil, err
	}
	prefix, lock, err := acquirePrefix(label)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		Label:  label,
		Prefix: prefix,
		hook:   hook,
		hosts:  map[string]*Host{},
		names:  map[string]bool{SwitchName: true},
		ports:  map[string]bool{"lo": true, BridgeName: true},
		netns:  map[string]nsID{},
		grace:  DefaultStopGrace,
		lock:   lock,
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("labnet: new lab %q: %w", label, err), l.Close())
		}
	}()
	if err := l.step("lock"); err != nil {
		return nil, err
	}
	l.sw = &Host{Name: SwitchName, Netns: prefix + "-" + SwitchName, Iface: BridgeName, lab: l}
	// The switch does no IP itself: keep it quiet (no router
	// solicitations, MLD reports or link-local addresses in captures).
	err = l.createNetns(l.sw.Netns,
		"net.ipv6.conf.default.disable_ipv6", "1",
		"net.ipv6.conf.all.disable_ipv6", "1")
	if err != nil {
		return nil, err
	}
	if err := l.step("netns"); err != nil {
		return nil, err
	}
	h, err := handleAt(l.sw.Netns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return nil, err
	}
	off := false
	br := &netlink.Bridge{
		LinkAttrs: netlink.LinkAttrs{Name: BridgeName},
		// Plain flooding switch: no querier on the LAN, so snooping could
		// only ever lose multicast (IPv6 neighbour discovery).
		MulticastSnooping: &off,
	}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s: %w", BridgeName, err)
	}
	if err := linkUp(h, BridgeName); err != nil {
		return nil, err
	}
	if err := l.step("bridge"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) step(name string) error {
	if l.hook == nil {
		return nil
	}
	return l.hook(l, name)
}

// createNetns creates a namespace, applies the sysctls kv in it and
// records it for Close.
func (l *Lab) createNetns(name string, kv ...string) error {
	id, err := createNetns(name, func() error { return writeSysctls(kv...) })
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.netns[name] = id
	l.mu.Unlock()
	return nil
}

// destroyNetns kills what runs in a namespace of the lab and deletes it.
func (l *Lab) destroyNetns(name string) error {
	l.mu.Lock()
	id, ok := l.netns[name]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	kerr := killNetnsProcs(map[nsID]bool{id: true}, 5*time.Second)
	derr := deleteNetns(name)
	if derr == nil {
		l.mu.Lock()
		delete(l.netns, name)
		l.mu.Unlock()
	}
	return errors.Join(kerr, derr)
}

// begin registers an operation that may create resources; Close waits for
// it to end.
func (l *Lab) begin() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.inflight.Add(1)
	return nil
}

// Switch returns the switch namespace as a Host (no addresses; its Iface
// is the bridge), for running tcpdump, bridge(8) and the like there.
func (l *Lab) Switch() *Host { return l.sw }

// Host returns the host called name, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hosts[name]
}

// Hosts returns the hosts in the order they were added.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.order)
}

// Namespaces returns the names of the lab's namespaces that currently
// exist, sorted.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.netns))
}

// SetStopGrace sets how long Close and Proc.Stop wait between SIGTERM and
// SIGKILL for processes started afterwards (default DefaultStopGrace).
func (l *Lab) SetStopGrace(d time.Duration) {
	l.mu.Lock()
	l.grace = d
	l.mu.Unlock()
}

// Close tears the lab down: it stops the processes started with
// Host.Start (SIGTERM to each process group, SIGKILL after the grace
// period), kills anything else still running in the lab's namespaces,
// deletes the namespaces (which removes the veths and the bridge) and
// releases the prefix. It waits for AddHost and Start calls in progress.
// Close is idempotent; later calls return nil. It is safe on a nil Lab.
func (l *Lab) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.closeOnce.Do(func() {
		l.closeErr = l.teardown()
		err = l.closeErr
	})
	return err
}

func (l *Lab) teardown() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.inflight.Wait()

	l.mu.Lock()
	procs := slices.Clone(l.procs)
	ids := map[nsID]bool{}
	for _, id := range l.netns {
		ids[id] = true
	}
	names := slices.Sorted(maps.Keys(l.netns))
	l.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	perr := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { perr[i] = p.Stop() })
	}
	wg.Wait()
	errs = append(errs, perr...)
	// Whatever else runs in the lab: Command leftovers, daemons that
	// left their process group.
	if err := killNetnsProcs(ids, 10*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("labnet: close %s: %w", l.Prefix, err))
	}
	// Hosts first, the switch last.
	slices.SortStableFunc(names, func(a, b string) int {
		switch {
		case a == l.Prefix+"-"+SwitchName:
			return 1
		case b == l.Prefix+"-"+SwitchName:
			return -1
		}
		return 0
	})
	for _, n := range names {
		if err := deleteNetns(n); err != nil {
			errs = append(errs, fmt.Errorf("labnet: close %s: %w", l.Prefix, err))
			continue
		}
		l.mu.Lock()
		delete(l.netns, n)
		l.mu.Unlock()
	}
	if l.lock != nil {
		l.mu.Lock()
		left := len(l.netns)
		l.mu.Unlock()
		// Keep the lock file if namespaces are left, so RemoveStale
		// knows they are ours until this process is gone.
		if left == 0 {
			if err := os.Remove(lockPath(l.Prefix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("labnet: close %s: %w", l.Prefix, err))
			}
		}
		l.lock.Close()
		l.lock = nil
	}
	return errors.Join(errs...)
}

// handleAt opens a netlink handle inside the named namespace.
func handleAt(name string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	if err := h.SetSocketTimeout(10 * time.Second); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	return h, nil
}

func linkUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
