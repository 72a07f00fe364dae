package labnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces live (the iproute2 convention,
// so `ip netns exec` and `ip netns list` see them).
const NetnsDir = "/run/netns"

// nsID identifies a network namespace independently of its name, so that
// processes inside it can still be found after the name is gone.
type nsID struct{ dev, ino uint64 }

func nsIDOfPath(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// runOnThread runs enter and then, if it succeeded, fn on a dedicated goroutine
// locked to its OS thread. Afterwards the thread is moved back to the network
// namespace it started in, whether enter and fn succeeded or not; if that
// fails the thread stays locked and the Go runtime destroys it when the
// goroutine exits, so a thread in the wrong namespace never runs other
// goroutines. A panic in fn is re-raised in the caller, and runtime.Goexit in
// fn (t.FailNow, t.Skip) is propagated to the caller too.
func runOnThread(enter, fn func() error) error {
	type outcome struct {
		err      error
		panicked bool
		pval     any
		exited   bool
	}
	ch := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- outcome{err: fmt.Errorf("get current network namespace: %w", err)}
			return
		}
		var out outcome
		normal := false
		defer func() {
			if err := netns.Set(orig); err == nil {
				runtime.UnlockOSThread()
			}
			orig.Close()
			if !normal {
				if r := recover(); r != nil {
					out.panicked, out.pval = true, r
				} else {
					out.exited = true
				}
			}
			ch <- out
		}()
		if out.err = enter(); out.err == nil && fn != nil {
			out.err = fn()
		}
		normal = true
	}()
	out := <-ch
	switch {
	case out.panicked:
		panic(out.pval)
	case out.exited:
		runtime.Goexit()
	}
	return out.err
}

// enterNetns moves the calling (locked) thread into the named namespace.
func enterNetns(name string) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	return nil
}

// createNetns creates the named network namespace (like `ip netns add`) and
// runs setup inside it. It is netns.NewNamed, but it never leaves an empty
// name file behind on failure. If setup fails the namespace is deleted again.
func createNetns(name string, setup func() error) (nsID, error) {
	if err := ensureNetnsDir(); err != nil {
		return nsID{}, err
	}
	path := filepath.Join(NetnsDir, name)
	var id nsID
	created := false
	enter := func() error {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return fmt.Errorf("create network namespace %s: %w", name, err)
		}
		f.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			os.Remove(path)
			return fmt.Errorf("create network namespace %s: unshare: %w", name, err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			os.Remove(path)
			return fmt.Errorf("create network namespace %s: bind mount: %w", name, err)
		}
		created = true
		id, err = nsIDOfPath(path)
		if err != nil {
			return fmt.Errorf("stat network namespace %s: %w", name, err)
		}
		return nil
	}
	err := runOnThread(enter, setup)
	if err != nil {
		if created {
			err = errors.Join(err, deleteNetns(name))
		}
		return nsID{}, err
	}
	return id, nil
}

// deleteNetns removes the name of a namespace (like `ip netns delete`). The
// kernel destroys the namespace, and the virtual links in it, once nothing
// else refers to it. A missing namespace is not an error.
func deleteNetns(name string) error {
	path := filepath.Join(NetnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete network namespace %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// ensureNetnsDir creates NetnsDir and makes it a shared mount point, as
// iproute2 does, so that deleting a namespace also drops its bind mount in
// the mount namespaces `ip netns exec` creates for its children.
var ensureNetnsDir = sync.OnceValue(func() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("labnet: %w", err)
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("labnet: %w", err)
	}
	// Serialise with other processes doing the same, so the directory is
	// not bind-mounted onto itself twice.
	f, err := os.OpenFile(filepath.Join(lockDir, ".setup"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("labnet: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("labnet: lock %s: %w", f.Name(), err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("labnet: make %s a shared mount: %w", NetnsDir, err)
		}
		// EINVAL: not a mount point yet.
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("labnet: bind mount %s: %w", NetnsDir, err)
		}
	}
})

// signalNetnsProcs sends sig to every process (other than this one) whose
// network namespace is one of ids and reports how many it found.
func signalNetnsProcs(ids map[nsID]bool, sig unix.Signal) int {
	if len(ids) == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		// Zombies have no namespaces any more and do not match.
		id, err := nsIDOfPath("/proc/" + e.Name() + "/ns/net")
		if err != nil || !ids[id] {
			continue
		}
		n++
		unix.Kill(pid, sig)
	}
	return n
}

// killNetnsProcs SIGKILLs every process inside the namespaces ids and waits
// (up to timeout) until none is left.
func killNetnsProcs(ids map[nsID]bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n := signalNetnsProcs(ids, unix.SIGKILL)
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still running in lab namespaces after SIGKILL", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSysctl writes a sysctl of the calling thread's network namespace;
// key is in sysctl(8) form ("net.ipv6.conf.all.forwarding") or a path
// relative to /proc/sys. Keys of the form net.ipv4.conf.eth0.100.rp_filter
// (interface names containing dots) must be given as paths.
func writeSysctl(key, value string) error {
	return os.WriteFile(sysctlPath(key), []byte(value), 0o644)
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n "), nil
}

func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}

// writeSysctls applies kv (key, value pairs) and ignores keys the kernel does
// not have (for example net.ipv6.* when IPv6 is disabled).
func writeSysctls(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if err := writeSysctl(kv[i], kv[i+1]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sysctl %s=%s: %w", kv[i], kv[i+1], err)
		}
	}
	return nil
}
