package labnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/shared/clock"
)

// TestMain doubles as the helper process of TestRemoveStale.
func TestMain(m *testing.M) {
	if os.Getenv("LABNET_STALE_HELPER") == "1" {
		staleHelper()
		return
	}
	os.Exit(m.Run())
}

// staleHelper builds a lab with a running process and exits without
// closing it, like a test binary killed on timeout.
func staleHelper() {
	fail := func(err error) { fmt.Fprintln(os.Stderr, err); os.Exit(2) }
	lab, err := New("stale-helper")
	if err != nil {
		fail(err)
	}
	h, err := lab.AddHost("a", netip.MustParsePrefix("192.0.2.1/24"))
	if err != nil {
		fail(err)
	}
	p, err := h.Start(context.Background(), os.Getenv("LABNET_STALE_LOG"), "sleep", "1000")
	if err != nil {
		fail(err)
	}
	fmt.Println(lab.Prefix, p.Pid())
	os.Exit(0)
}

func skipUnlessRoot(t *testing.T) {
	t.Helper()
	if err := NeedsRoot(); err != nil {
		t.Skip(err)
	}
}

func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			mine = append(mine, n)
		}
	}
	return mine
}

func pidGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

var errInjected = errors.New("injected failure")

// TestNewFailureCleansUp fails New after each step and checks that nothing
// is left behind.
func TestNewFailureCleansUp(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	for _, step := range []string{"lock", "netns", "bridge"} {
		var prefix string
		l, err := newLab("inject-"+step, func(l *Lab, s string) error {
			prefix = l.Prefix
			if s == step {
				return errInjected
			}
			return nil
		})
		if !errors.Is(err, errInjected) || l != nil {
			t.Errorf("step %s: newLab = %v, %v; want nil, injected error", step, l, err)
			l.Close()
			continue
		}
		if prefix == "" {
			t.Fatalf("step %s: hook never ran", step)
		}
		if ns := labNamespaces(t, prefix); len(ns) != 0 {
			t.Errorf("step %s: namespaces left: %v", step, ns)
		}
		if _, err := os.Stat(lockPath(prefix)); !os.IsNotExist(err) {
			t.Errorf("step %s: lock file left (%v)", step, err)
		}
	}
}

// TestAddHostFailureCleansUp fails AddHost after each step and checks that
// the host's namespace and switch port are gone and the name is free again.
func TestAddHostFailureCleansUp(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	l, err := New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		if ns := labNamespaces(t, l.Prefix); len(ns) != 0 {
			t.Errorf("namespaces left after Close: %v", ns)
		}
	}()
	addrs := []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("2001:db8::2/64")}
	for _, step := range []string{"netns", "veth", "port", "addr", "up"} {
		l.hook = func(_ *Lab, s string) error {
			if s == step {
				return errInjected
			}
			return nil
		}
		if _, err := l.AddHost("b", addrs...); !errors.Is(err, errInjected) {
			t.Fatalf("step %s: AddHost = %v, want injected error", step, err)
		}
		l.hook = nil
		if ns := labNamespaces(t, l.Prefix); len(ns) != 1 || ns[0] != l.Prefix+"-sw" {
			t.Errorf("step %s: namespaces %v, want only the switch", step, ns)
		}
		out, err := l.Switch().Command(t.Context(), "ip", "-o", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if strings.Contains(string(out), " b@") {
			t.Errorf("step %s: switch port left:\n%s", step, out)
		}
		if l.Host("b") != nil || len(l.Hosts()) != 0 {
			t.Errorf("step %s: failed host registered", step)
		}
	}
	// The name and port are free again.
	h, err := l.AddHost("b", addrs...)
	if err != nil {
		t.Fatal(err)
	}
	if h.Port != "b" {
		t.Errorf("port %q, want b", h.Port)
	}
}

// TestRemoveStale removes the lab of a process that exited without Close,
// and leaves live labs alone.
func TestRemoveStale(t *testing.T) {
	t.Parallel()
	skipUnlessRoot(t)
	live, err := New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
	cmd.Env = append(os.Environ(), "LABNET_STALE_HELPER=1", "LABNET_STALE_LOG="+filepath.Join(t.TempDir(), "log"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var prefix string
	var pid int
	if _, err := fmt.Sscan(string(out), &prefix, &pid); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if ns := labNamespaces(t, prefix); len(ns) != 2 {
		t.Fatalf("stale lab has namespaces %v, want 2", ns)
	}
	if pidGone(pid) {
		t.Fatalf("process %d of the stale lab is not running", pid)
	}

	removed, err := RemoveStale()
	if err != nil {
		t.Error(err)
	}
	t.Logf("removed %v", removed)
	if ns := labNamespaces(t, prefix); len(ns) != 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	if _, err := os.Stat(lockPath(prefix)); !os.IsNotExist(err) {
		t.Errorf("lock file left (%v)", err)
	}
	deadline := clock.Now().Add(5 * time.Second)
	for !pidGone(pid) && clock.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !pidGone(pid) {
		t.Errorf("process %d of the stale lab still running", pid)
	}
	if ns := labNamespaces(t, live.Prefix); len(ns) != 1 {
		t.Errorf("live lab lost its namespaces: %v", ns)
	}
	if _, err := os.Stat(lockPath(live.Prefix)); err != nil {
		t.Errorf("live lab lost its lock: %v", err)
	}
}

// TestThreadsStayHome checks that Do never leaves an OS thread of the
// process in a lab namespace. Not parallel: another test's Do, running
// for a moment on the process's main thread, would make /proc/self (the
// main thread) look away from home and fail every check.
func TestThreadsStayHome(t *testing.T) {
	skipUnlessRoot(t)
	l, err := New(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, err := l.AddHost("a")
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			h.Do(func() error { return nil })
			h.Do(func() error { return errInjected })
			func() {
				defer func() { recover() }()
				h.Do(func() error { panic("x") })
			}()
		})
	}
	wg.Wait()
	var bad atomic.Int32
	for range 200 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			fi, err := os.Stat("/proc/thread-self/ns/net")
			if err != nil || !os.SameFile(fi, home) {
				bad.Add(1)
			}
			time.Sleep(time.Millisecond)
		})
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d goroutines ran on a thread outside the home namespace", n)
	}
}
