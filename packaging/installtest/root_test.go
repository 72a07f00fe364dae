package installtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bwxchange/bwx/shared/clock"
)

// defaultCache keeps, between runs, the debootstrap tarball (the minbase
// .debs and man-db's, ~50 MB) and a tar of the root debootstrap made from it (~210 MB),
// which unpacks in seconds instead of the half minute debootstrap takes;
// BWX_TEST_CACHE overrides it.
const defaultCache = "/var/cache/bwx-test"

// debianRoot makes a fresh minbase Debian root of the machine's release
// with debootstrap, from the mirror apt uses here, and removes it when the
// test ends (after unmounting whatever the test mounted in it).
func debianRoot(t *testing.T) string {
	t.Helper()
	suite, err := codename("/etc/os-release")
	if err != nil {
		t.Skipf("cannot tell the Debian release to bootstrap: %v", err)
	}
	mirror := aptMirror(t, suite)
	cache := os.Getenv("BWX_TEST_CACHE")
	if cache == "" {
		cache = defaultCache
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp("", "bwx-installtest-root-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the daemons stopped and /proc
	// was unmounted. It never deletes through a mount.
	t.Cleanup(func() { removeRoot(t, root) })
	// MkdirTemp makes it 0700: the root's / must let bwx through.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}

	// One test run at a time fills the cache.
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	// minbase plus man-db, to read the packages' manual pages with man.
	debs := filepath.Join(cache, fmt.Sprintf("debootstrap-%s-minbase-man-db-amd64.tgz", suite))
	rootTar := filepath.Join(cache, fmt.Sprintf("root-%s-minbase-man-db-amd64.tar", suite))
	if fresh(rootTar, debs) {
		start := clock.Now()
		cmdOK(t, exec.CommandContext(t.Context(), "tar", "-C", root, "--numeric-owner", "-xpf", rootTar))
		t.Logf("Debian %s root unpacked from %s: %s", suite, rootTar, clock.Since(start).Round(time.Millisecond))
		return root
	}
	if _, err := os.Stat(debs); err != nil {
		work, err := os.MkdirTemp("", "bwx-installtest-debootstrap-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(work)
		start := clock.Now()
		cmdOK(t, exec.CommandContext(t.Context(), "debootstrap", "--variant=minbase", "--include=man-db", "--make-tarball="+debs+".tmp", suite, work, mirror))
		if err := os.Rename(debs+".tmp", debs); err != nil {
			t.Fatal(err)
		}
		t.Logf("downloaded %s minbase from %s into %s: %s", suite, mirror, debs, clock.Since(start).Round(time.Millisecond))
	}
	start := clock.Now()
	cmdOK(t, exec.CommandContext(t.Context(), "debootstrap", "--variant=minbase", "--include=man-db", "--unpack-tarball="+debs, suite, root, mirror))
	t.Logf("debootstrap %s from %s: %s", suite, debs, clock.Since(start).Round(time.Millisecond))
	cmdOK(t, exec.CommandContext(t.Context(), "tar", "-C", root, "--numeric-owner", "-cf", rootTar+".tmp", "."))
	if err := os.Rename(rootTar+".tmp", rootTar); err != nil {
		t.Fatal(err)
	}
	return root
}

// fresh reports whether file exists and is newer than its source.
func fresh(file, source string) bool {
	fi, err := os.Stat(file)
	if err != nil {
		return false
	}
	si, err := os.Stat(source)
	return err == nil && fi.ModTime().After(si.ModTime())
}

func cmdOK(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		for _, a := range cmd.Args {
			if a = a[strings.Index(a, "=")+1:]; strings.HasSuffix(a, ".tmp") {
				os.Remove(a)
			}
		}
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(out, 40))
	}
}

// removeRoot unmounts what is mounted under root and deletes it; if a
// mount cannot be undone it leaves the directory rather than delete
// through it.
func removeRoot(t *testing.T, root string) {
	for _, m := range mountsUnder(root) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
	if left := mountsUnder(root); len(left) > 0 {
		t.Errorf("not removing %s: still mounted: %v", root, left)
		return
	}
	if err := os.RemoveAll(root); err != nil {
		t.Errorf("remove %s: %v", root, err)
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		mp := unescapeMount(fs[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append([]string{mp}, out...)
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// codename reads VERSION_CODENAME from os-release.
func codename(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok && strings.Trim(v, `"`) != "" {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", fmt.Errorf("%s has no VERSION_CODENAME", path)
}

// aptMirror returns the first Debian archive apt on this machine uses for
// suite (deb822 .sources or one-line .list), so the test fetches from
// where apt-get does.
func aptMirror(t *testing.T, suite string) string {
	t.Helper()
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(append(files, "/etc/apt/sources.list"), lists...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorIn(string(b), suite, strings.HasSuffix(f, ".sources")); m != "" {
			return m
		}
	}
	t.Skipf("no apt source for %s main in /etc/apt; cannot pick a mirror for debootstrap", suite)
	return ""
}

// mirrorIn finds a "deb" source for suite with component main.
func mirrorIn(text, suite string, deb822 bool) string {
	if deb822 {
		for _, stanza := range strings.Split(text, "\n\n") {
			f := map[string]string{}
			for _, l := range strings.Split(stanza, "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, " ") {
					f[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
				}
			}
			if f["enabled"] == "no" || !hasWord(f["types"], "deb") || !hasWord(f["suites"], suite) || !hasWord(f["components"], "main") {
				continue
			}
			if uris := strings.Fields(f["uris"]); len(uris) > 0 {
				return uris[0]
			}
		}
		return ""
	}
	for _, l := range strings.Split(text, "\n") {
		fs := strings.Fields(l)
		if len(fs) < 4 || fs[0] != "deb" {
			continue
		}
		fs = fs[1:]
		if strings.HasPrefix(fs[0], "[") { // [ options ]
			for len(fs) > 0 && !strings.HasSuffix(fs[0], "]") {
				fs = fs[1:]
			}
			if len(fs) > 0 {
				fs = fs[1:]
			}
		}
		if len(fs) >= 3 && fs[1] == suite && hasWord(strings.Join(fs[2:], " "), "main") {
			return fs[0]
		}
	}
	return ""
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
