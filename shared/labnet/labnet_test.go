package labnet_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
)

var (
	a4 = netip.MustParsePrefix("192.0.2.1/24")
	a6 = netip.MustParsePrefix("2001:db8::1/64")
	b4 = netip.MustParsePrefix("192.0.2.2/24")
	b6 = netip.MustParsePrefix("2001:db8::2/64")
)

// newLab builds a lab closed at the end of the test (labtest.New does the
// same; these tests exercise labnet without it).
func newLab(t *testing.T) *labnet.Lab {
	t.Helper()
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	lab, err := labnet.New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return lab
}

func addHost(t *testing.T, lab *labnet.Lab, name string, addrs ...netip.Prefix) *labnet.Host {
	t.Helper()
	h, err := lab.AddHost(name, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// assertGone checks that no namespace of the lab with this prefix is left,
// according to both List and `ip netns list`.
func assertGone(t *testing.T, prefix string) {
	t.Helper()
	names, err := labnet.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			t.Errorf("namespace %s left behind (List)", n)
		}
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if strings.Contains(string(out), prefix+"-") {
		t.Errorf("namespaces of %s left behind (ip netns list):\n%s", prefix, out)
	}
}

// procGone reports whether pid has exited (zombies count as exited: this
// process may not be their parent).
func procGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func hasLine(b []byte, line string) bool {
	return slices.Contains(strings.Split(string(b), "\n"), line)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := clock.Now().Add(10 * time.Second)
	for !cond() {
		if clock.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

func TestNeedsRoot(t *testing.T) {
	err := labnet.NeedsRoot()
	if os.Geteuid() != 0 {
		if !errors.Is(err, labnet.ErrNeedsRoot) {
			t.Fatalf("NeedsRoot as uid %d = %v, want ErrNeedsRoot", os.Geteuid(), err)
		}
		return
	}
	t.Logf("NeedsRoot() = %v", err)
}

// TestTCPAcrossSwitch sends real TCP traffic between two hosts over the
// bridge, in both address families, with sockets opened in the hosts'
// namespaces with Do.
func TestTCPAcrossSwitch(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	a := addHost(t, lab, "a", a4, a6)
	b := addHost(t, lab, "b", b4, b6)

	for _, tc := range []struct{ from, to netip.Addr }{
		{b.Addr4(), a.Addr4()},
		{b.Addr6(), a.Addr6()},
	} {
		var ln net.Listener
		err := a.Do(func() (err error) {
			ln, err = net.Listen("tcp", netip.AddrPortFrom(tc.to, 0).String())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				accepted <- err
				return
			}
			_, err = fmt.Fprintf(c, "%s from %s\n", strings.TrimSpace(line), c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
			accepted <- err
		}()

		var c net.Conn
		err = b.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("dial %s from b: %v", ln.Addr(), err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //bwx:wallclock: a socket deadline
		if local := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); local != tc.from {
			t.Errorf("b dialled from %v, want %v", local, tc.from)
		}
		fmt.Fprintf(c, "hello\n")
		reply, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("read reply: %v", err)
		}
		if want := fmt.Sprintf("hello from %s\n", tc.from); reply != want {
			t.Errorf("reply %q, want %q", reply, want)
		}
		if err := <-accepted; err != nil {
			t.Fatalf("server: %v", err)
		}
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	a := addHost(t, lab, "a", a4, a6)
	b := addHost(t, lab, "b", b4, b6)
	ctx := t.Context()
	for _, c := range []struct {
		h   *labnet.Host
		dst netip.Addr
	}{
		{a, b.Addr4()}, {a, b.Addr6()}, {b, a.Addr4()}, {b, a.Addr6()}, {a, a.Addr4()},
	} {
		if err := c.h.Ping(ctx, c.dst); err != nil {
			t.Errorf("%s: %v", c.h.Name, err)
		}
	}
	for _, dst := range []string{"192.0.2.99", "2001:db8::99", "198.51.100.1"} {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if err := a.Ping(ctx, netip.MustParseAddr(dst)); err == nil {
			t.Errorf("ping %s succeeded, want failure", dst)
		}
		cancel()
	}
}

func TestHostHelpers(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	a := addHost(t, lab, "a", a4, a6)
	b := addHost(t, lab, "b", b4, b6)
	none := addHost(t, lab, "noaddr")
	ctx := t.Context()

	if a.Netns != lab.Prefix+"-a" || a.Port != "a" || a.Iface != "eth0" || len(a.MAC) != 6 {
		t.Errorf("host a = %+v", a)
	}
	if none.Addr4().IsValid() || none.Addr6().IsValid() {
		t.Errorf("noaddr has addresses %v %v", none.Addr4(), none.Addr6())
	}
	if got := lab.Host("b"); got != b {
		t.Errorf("Host(b) = %v", got)
	}
	if got := lab.Hosts(); !slices.Equal(got, []*labnet.Host{a, b, none}) {
		t.Errorf("Hosts() = %v", got)
	}
	if got, want := lab.Namespaces(), []string{lab.Prefix + "-a", lab.Prefix + "-b", lab.Prefix + "-noaddr", lab.Prefix + "-sw"}; !slices.Equal(got, want) {
		t.Errorf("Namespaces() = %v, want %v", got, want)
	}

	// Command runs in the namespace.
	out, err := a.Command(ctx, "ip", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr: %v: %s", err, out)
	}
	for _, want := range []string{"inet 192.0.2.1/24", "inet6 2001:db8::1/64"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ip addr in a lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "tentative") {
		t.Errorf("tentative address (DAD not disabled):\n%s", out)
	}
	out, err = lab.Switch().Command(ctx, "ip", "-o", "link", "show", "master", "br0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	for _, p := range []string{"a@", "b@", "noaddr@"} {
		if !strings.Contains(string(out), p) {
			t.Errorf("switch port %s missing:\n%s", p, out)
		}
	}

	out, err = lab.Switch().Command(ctx, "cat", "/sys/class/net/br0/bridge/multicast_snooping", "/sys/class/net/br0/bridge/stp_state").CombinedOutput()
	if err != nil || string(out) != "0\n0\n" {
		t.Errorf("br0 multicast_snooping, stp_state = %q, %v; want 0, 0", out, err)
	}
	if v, err := lab.Switch().Sysctl("net.ipv6.conf.br0.disable_ipv6"); err != nil || v != "1" {
		t.Errorf("switch br0 disable_ipv6 = %q, %v", v, err)
	}

	// Do runs in the namespace.
	err = a.Do(func() error {
		self, err := os.Stat("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		want, err := os.Stat(filepath.Join(labnet.NetnsDir, a.Netns))
		if err != nil {
			return err
		}
		if !os.SameFile(self, want) {
			return errors.New("Do is not in the host's namespace")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	errX := errors.New("x")
	if err := a.Do(func() error { return errX }); err != errX {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		a.Do(func() error { panic("boom") })
	}()

	// Listen / DialContext wrappers.
	ln, err := a.Listen("tcp", "[2001:db8::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := b.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	c.SetDeadline(time.Now().Add(5 * time.Second)) //bwx:wallclock: a socket deadline
	if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
		t.Errorf("read %q, %v", buf, err)
	}
	c.Close()
	if _, err := b.DialContext(ctx, "tcp", "localhost:80"); err == nil {
		t.Error("DialContext accepted a host name")
	}

	// Sysctls are per namespace.
	if err := a.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Sysctl("net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Errorf("a ip_forward = %q, %v", v, err)
	}
	if v, err := b.Sysctl("net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Errorf("b ip_forward = %q, %v", v, err)
	}
	if v, err := a.Sysctl("net/ipv6/conf/eth0/accept_dad"); err != nil || v != "0" {
		t.Errorf("a accept_dad = %q, %v", v, err)
	}
}

func TestPortNames(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	for name, port := range map[string]string{
		"lo":                        "lo-2",
		"br0":                       "br0-2",
		"member-with-a-long-name-1": "member-with-a-l",
	} {
		if h := addHost(t, lab, name); h.Port != port {
			t.Errorf("host %s: port %q, want %q", name, h.Port, port)
		}
	}
	if h := addHost(t, lab, "member-with-a-long-name-2"); h.Port != "member-with-a-2" {
		t.Errorf("port %q, want member-with-a-2", h.Port)
	}
	// Stdout only: ip warns on stderr about peers in namespaces that other
	// tests are deleting at the same moment.
	out, err := lab.Switch().Command(t.Context(), "ip", "-o", "link", "show", "master", "br0").Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if n := strings.Count(string(out), " master br0 "); n != 4 {
		t.Errorf("%d bridge ports, want 4:\n%s", n, out)
	}
}

// TestConcurrentAddHost builds a lab with many hosts added at once and
// checks that they all reach each other.
func TestConcurrentAddHost(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	const n = 12
	hosts := make([]*labnet.Host, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			hosts[i], errs[i] = lab.AddHost(fmt.Sprintf("m%d", i+1),
				netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/24", i+1)),
				netip.MustParsePrefix(fmt.Sprintf("fd00::%d/64", i+1)))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := len(lab.Hosts()); got != n {
		t.Fatalf("%d hosts, want %d", got, n)
	}
	for i, h := range hosts {
		dst := hosts[(i+1)%n]
		wg.Go(func() {
			if err := h.Ping(t.Context(), dst.Addr4()); err != nil {
				t.Error(err)
			}
			if err := h.Ping(t.Context(), dst.Addr6()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestLabsAreIsolated runs two labs with the same addresses side by side.
func TestLabsAreIsolated(t *testing.T) {
	t.Parallel()
	l1, l2 := newLab(t), newLab(t)
	if l1.Prefix == l2.Prefix {
		t.Fatalf("two labs with prefix %s", l1.Prefix)
	}
	a1 := addHost(t, l1, "a", a4, a6)
	addHost(t, l2, "a", a4, a6)
	b2 := addHost(t, l2, "b", b4, b6)
	ln, err := a1.Listen("tcp", "192.0.2.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := b2.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("host of lab 2 reached a listener in lab 1")
	}
	if err := b2.Ping(ctx, a4.Addr()); err != nil { // lab 2's own a
		t.Error(err)
	}
}

// TestCloseStopsEverything checks that Close stops tracked processes,
// kills untracked ones (even daemons in their own session), deletes all
// namespaces and is idempotent.
func TestCloseStopsEverything(t *testing.T) {
	t.Parallel()
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	lab, err := labnet.New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close() // in case of t.Fatal
	dir := t.TempDir()
	ctx := t.Context()
	a := addHost(t, lab, "a", a4, a6)
	addHost(t, lab, "b", b4, b6)

	logPath := filepath.Join(dir, "a.log")
	sleeper, err := a.Start(ctx, logPath, "sh", "-c", "echo out-$((6*7)); echo err-$((6*7)) >&2; exec sleep 1000")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "log output", func() bool {
		b, _ := os.ReadFile(logPath)
		return hasLine(b, "out-42") && hasLine(b, "err-42")
	})
	// A child of a tracked process, and a daemon that left the group.
	childPidFile := filepath.Join(dir, "child.pid")
	if _, err := a.Start(ctx, filepath.Join(dir, "b.log"), "sh", "-c", "sleep 1000 & echo $! > "+childPidFile+"; wait"); err != nil {
		t.Fatal(err)
	}
	daemonPidFile := filepath.Join(dir, "daemon.pid")
	if err := a.Command(ctx, "setsid", "-f", "sh", "-c", "echo $$ > "+daemonPidFile+"; exec sleep 1000").Run(); err != nil {
		t.Fatalf("setsid: %v", err)
	}
	pids := []int{sleeper.Pid(), readPid(t, childPidFile), readPid(t, daemonPidFile)}
	for _, pid := range pids {
		if procGone(pid) {
			t.Fatalf("pid %d not running before Close", pid)
		}
	}

	start := clock.Now()
	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", clock.Since(start))
	for _, pid := range pids {
		if !procGone(pid) {
			t.Errorf("pid %d still running after Close", pid)
		}
	}
	if !sleeper.Exited() {
		t.Error("Proc not marked exited")
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("Wait = nil for a killed process")
	}
	assertGone(t, lab.Prefix)
	if ns := lab.Namespaces(); len(ns) != 0 {
		t.Errorf("Namespaces() after Close = %v", ns)
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := lab.AddHost("c"); !errors.Is(err, labnet.ErrClosed) {
		t.Errorf("AddHost after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Start(ctx, logPath, "true"); !errors.Is(err, labnet.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	var nilLab *labnet.Lab
	if err := nilLab.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
}

// TestCleanupAfterAddHostError: a test that fails half-way through building
// its lab still gets everything removed by Close.
func TestCleanupAfterAddHostError(t *testing.T) {
	t.Parallel()
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	lab, err := labnet.New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	a := addHost(t, lab, "a", a4)
	if _, err := a.Start(t.Context(), filepath.Join(t.TempDir(), "log"), "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name  string
		addrs []netip.Prefix
	}{
		{"bad/name", nil},
		{"", nil},
		{"-x", nil},
		{"a", nil},  // taken
		{"sw", nil}, // the switch
		{"c", []netip.Prefix{b4, b4}},
		{"c", []netip.Prefix{{}}},
		{"c", []netip.Prefix{netip.MustParsePrefix("::ffff:192.0.2.3/120")}},
		{"c", []netip.Prefix{netip.MustParsePrefix("224.0.0.1/24")}},
		{"this-name-is-much-too-long-for-a-host", nil},
	} {
		if h, err := lab.AddHost(bad.name, bad.addrs...); err == nil {
			t.Errorf("AddHost(%q, %v) = %v, want error", bad.name, bad.addrs, h)
		}
	}
	if got, want := lab.Namespaces(), []string{lab.Prefix + "-a", lab.Prefix + "-sw"}; !slices.Equal(got, want) {
		t.Errorf("Namespaces() = %v, want %v", got, want)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, lab.Prefix)
}

func TestProcStop(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	a := addHost(t, lab, "a")
	dir := t.TempDir()

	// Cancelling the context stops the process.
	ctx, cancel := context.WithCancel(t.Context())
	p, err := a.Start(ctx, filepath.Join(dir, "1.log"), "sleep", "1000")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process still running after its context was cancelled")
	}

	// A process that ignores SIGTERM is killed after the grace period.
	lab.SetStopGrace(200 * time.Millisecond)
	log := filepath.Join(dir, "2.log")
	p, err = a.Start(t.Context(), log, "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready", func() bool { b, _ := os.ReadFile(log); return hasLine(b, "ready") })
	start := clock.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := clock.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Stop took %v, want about the 200ms grace period", d)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// A process that exits on its own.
	p, err = a.Start(t.Context(), filepath.Join(dir, "3.log"), "sh", "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after exit: %v", err)
	}
}

func TestCommandContextKillsGroup(t *testing.T) {
	t.Parallel()
	lab := newLab(t)
	a := addHost(t, lab, "a")
	pidFile := filepath.Join(t.TempDir(), "pid")
	// Long enough for the shell to start its child on a loaded machine.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := clock.Now()
	out, err := a.Command(ctx, "sh", "-c", "sleep 1000 & echo $! > "+pidFile+"; wait").CombinedOutput()
	if err == nil {
		t.Fatalf("command survived its context: %s", out)
	}
	if d := clock.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v", d)
	}
	pid := readPid(t, pidFile)
	waitFor(t, "background child to die", func() bool { return procGone(pid) })
}
