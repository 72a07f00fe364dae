package installtest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bwxchange/bwx/shared/clock"
	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

const (
	v1 = "1.0.0~installtest1"
	v2 = "1.0.0~installtest2"
	// chrootPath is PATH inside the root (the caller's may name nothing there).
	chrootPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

func TestInstallUpgradeRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: debootstrap, chroot, dpkg in the root, network namespaces")
	}
	if runtime.GOARCH != "amd64" {
		t.Skipf("builds and installs the amd64 packages; this is %s", runtime.GOARCH)
	}
	for _, tool := range []string{"debootstrap", "chroot", "dpkg-deb", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install debootstrap gcc); cannot make the Debian root", tool)
		}
	}
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	start := clock.Now()
	debs := map[string][]string{}
	for _, v := range []string{v1, v2} {
		debs[v] = buildPackages(t, repo, v)
	}
	t.Logf("packages built in %s", clock.Since(start).Round(time.Millisecond))
	// lintian reads the packages while the rest of the test runs; its
	// verdict is the lintian subtest at the end.
	lint := startLintian(t, debs[v2])

	start = clock.Now()
	root := debianRoot(t)
	t.Logf("Debian root ready in %s", clock.Since(start).Round(time.Millisecond))
	r := &chroot{t: t, dir: root}

	// The maintainer scripts take their systemd branch where
	// /run/systemd/system exists; systemd cannot run here, so a stand-in
	// systemctl (first on PATH) records what they ask of it.
	r.fakeSystemd()

	// Install.
	start = clock.Now()
	r.install(debs[v1])
	checkInstalled(t, r, repo, v1)
	checkDocs(t, r)
	r.checkSystemctl("install", []string{"--system daemon-reload", "--system daemon-reload"})

	t.Logf("installed %s and checked files, user, conffiles: %s", v1, clock.Since(start).Round(time.Millisecond))

	// Run both daemons as the units would, on a lab LAN.
	start = clock.Now()
	lab := labtest.New(t, "install")
	arbHost := labtest.AddHost(t, lab, "arbiter", "192.0.2.1/24", "2001:db8::1/64")
	memHost := labtest.AddHost(t, lab, "member", "192.0.2.10/24", "2001:db8::10/64")
	r.mountProc()
	r.runtimeDir("bwx-arbiter")
	// The CA first (as the README says), as bwx so it owns the files.
	r.run("setpriv", "--reuid=bwx", "--regid=bwx", "--init-groups", "--",
		"bwx-arbiter", "ca", "init", "--host", "192.0.2.1", "--host", "2001:db8::1")
	arb := r.startDaemon(arbHost, "bwx-arbiter", "net_bind_service")
	// Type=notify: once READY=1 is sent, /healthz answers at once.
	arb.waitReady(t)
	if body, err := httpGet(t, arbHost, "http://127.0.0.1:9470/healthz"); err != nil || strings.TrimSpace(body) != "ok" {
		t.Errorf("bwx-arbiter sent READY=1 but /healthz says %q, %v", body, err)
	}
	waitHealthy(t, arbHost, arb)
	checkOperatorSocket(t, r)
	// Register the member through the operator socket (root, like an
	// operator with sudo) and hand the bundle to the agent.
	r.run("bwx-arbiter", "member", "add", "--asn", "64500", "--name", "Install Test Net", "--port", "swp1",
		"--capacity", "10G", "--router", "192.0.2.10", "--router", "2001:db8::10", "--bundle-out", "/etc/bwx/agent.pem")
	r.run("chown", "root:bwx", "/etc/bwx/agent.pem")
	r.run("chmod", "0640", "/etc/bwx/agent.pem")
	agent := r.startDaemon(memHost, "bwx-agent", "net_admin,net_raw")
	agent.waitReady(t)
	waitStreams(t, arbHost, arb, agent, 1)
	// What the daemons made under umask 0027, as bwx.
	checkMode(t, r, "/var/lib/bwx-arbiter/bwx.db", 0o640, "bwx", "bwx")
	checkMode(t, r, "/var/lib/bwx-agent/agent.sock", os.ModeSocket|0o600, "bwx", "bwx")
	// ExecReload (kill -HUP) re-reads the config; both keep serving.
	for _, d := range []*daemon{arb, agent} {
		reload(t, d)
	}
	waitHealthy(t, arbHost, arb)
	waitStreams(t, arbHost, arb, agent, 1)

	// Stop cleanly (SIGTERM, exit status 0), as systemctl stop does.
	stopClean(t, agent, "bwx-agent")
	stopClean(t, arb, "bwx-arbiter")

	t.Logf("arbiter healthy, operator socket answers, member added, agent connected, both stopped cleanly: %s", clock.Since(start).Round(time.Millisecond))

	// Upgrade: a local edit to a conffile and the database survive.
	start = clock.Now()
	const edit = "\n# edited by the install test\n"
	arbConf := r.path("/etc/bwx/arbiter.yaml")
	appendFile(t, arbConf, edit)
	before := readFile(t, arbConf)
	dbBefore := statOf(t, r.path("/var/lib/bwx-arbiter/bwx.db"))
	// The admin enables the agent (the link `systemctl enable` makes); the
	// upgrade keeps it enabled and still enables nothing else.
	agentLink := "/etc/systemd/system/multi-user.target.wants/bwx-agent.service"
	if err := os.MkdirAll(filepath.Dir(r.path(agentLink)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/bwx-agent.service", r.path(agentLink)); err != nil {
		t.Fatal(err)
	}
	r.install(debs[v2])
	if m, _ := filepath.Glob(r.path("/etc/systemd/system/*/bwx-*")); len(m) != 1 || m[0] != r.path(agentLink) {
		t.Errorf("after upgrade the enabled units are %v, want only the admin's %s", m, agentLink)
	}
	if got := r.out("dpkg-query", "-W", "-f=${Version}", "bwx-arbiter"); got != v2 {
		t.Fatalf("after upgrade bwx-arbiter is %q, want %s", got, v2)
	}
	// try-restart: only a service that was running is restarted.
	r.checkSystemctl("upgrade", []string{"--system daemon-reload", "try-restart bwx-arbiter.service",
		"--system daemon-reload", "try-restart bwx-agent.service"})
	if got := readFile(t, arbConf); !bytes.Equal(got, before) {
		t.Errorf("upgrade changed the edited /etc/bwx/arbiter.yaml:\n%s", got)
	}
	checkMode(t, r, "/etc/bwx/arbiter.yaml", 0o640, "root", "bwx")
	checkMode(t, r, "/etc/bwx/agent.yaml", 0o640, "root", "bwx") // unedited: replaced by dpkg, regrouped by postinst
	checkMode(t, r, "/etc/bwx/agent.pem", 0o640, "root", "bwx")
	if dbAfter := statOf(t, r.path("/var/lib/bwx-arbiter/bwx.db")); dbAfter.Ino != dbBefore.Ino || dbAfter.Size != dbBefore.Size {
		t.Errorf("upgrade replaced the database (inode %d size %d, was %d size %d)", dbAfter.Ino, dbAfter.Size, dbBefore.Ino, dbBefore.Size)
	}
	arb = r.startDaemon(arbHost, "bwx-arbiter", "net_bind_service")
	waitHealthy(t, arbHost, arb)
	if out := r.out("bwx-arbiter", "member", "list", "-o", "json"); !strings.Contains(out, "64500") {
		t.Errorf("after upgrade the member is gone from the database:\n%s", out)
	}
	agent = r.startDaemon(memHost, "bwx-agent", "net_admin,net_raw")
	waitStreams(t, arbHost, arb, agent, 1)
	stopClean(t, agent, "bwx-agent")
	stopClean(t, arb, "bwx-arbiter")

	t.Logf("upgraded to %s, config edit and database kept, daemons ran again: %s", v2, clock.Since(start).Round(time.Millisecond))

	// Remove: programs go; config, state and the user stay.
	start = clock.Now()
	r.run("dpkg", "--remove", "bwx-agent", "bwx-arbiter")
	r.checkSystemctl("remove", []string{"stop bwx-agent.service", "--system daemon-reload",
		"stop bwx-arbiter.service", "--system daemon-reload"})
	for _, p := range []string{"/usr/bin/bwx-arbiter", "/usr/bin/bwx-agent", "/lib/systemd/system/bwx-arbiter.service",
		"/lib/systemd/system/bwx-agent.service", "/usr/lib/sysusers.d/bwx-arbiter.conf", "/usr/lib/sysusers.d/bwx-agent.conf",
		"/usr/share/doc/bwx-agent/README.md"} {
		checkGone(t, r, p)
	}
	for _, p := range []string{"/etc/bwx/arbiter.yaml", "/etc/bwx/agent.yaml", "/etc/iproute2/rt_protos.d/bwx.conf",
		"/var/lib/bwx-arbiter/bwx.db", "/var/lib/bwx-agent"} {
		checkThere(t, r, p)
	}
	if got := readFile(t, arbConf); !bytes.Equal(got, before) {
		t.Errorf("remove changed /etc/bwx/arbiter.yaml")
	}
	for _, pkg := range []string{"bwx-agent", "bwx-arbiter"} {
		if got := r.out("dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg); strings.TrimSpace(got) != "rc" {
			t.Errorf("%s after remove: dpkg status %q, want rc (config files kept)", pkg, got)
		}
	}
	checkUser(t, r)

	// Purge: the conffiles go; the databases, the admin's bundle and the user
	// stay (postrm says so).
	r.run("dpkg", "--purge", "bwx-agent", "bwx-arbiter")
	// deb-systemd-helper purge reloads systemd after removing the agent's
	// links (the arbiter had none).
	r.checkSystemctl("purge", []string{"daemon-reload"})
	// deb-systemd-helper purge removes the links and its state.
	checkGone(t, r, agentLink)
	checkGone(t, r, "/var/lib/systemd/deb-systemd-helper-enabled/bwx-agent.service.dsh-also")
	for _, p := range []string{"/etc/bwx/arbiter.yaml", "/etc/bwx/agent.yaml", "/etc/iproute2/rt_protos.d/bwx.conf"} {
		checkGone(t, r, p)
	}
	for _, p := range []string{"/etc/bwx/agent.pem", "/var/lib/bwx-arbiter/bwx.db", "/var/lib/bwx-arbiter/ca", "/var/lib/bwx-agent"} {
		checkThere(t, r, p)
	}
	for _, pkg := range []string{"bwx-agent", "bwx-arbiter"} {
		if out, err := r.cmd("dpkg-query", "-W", pkg).CombinedOutput(); err == nil {
			t.Errorf("%s still known to dpkg after purge: %s", pkg, out)
		}
	}
	checkUser(t, r)
	t.Logf("removed and purged: %s", clock.Since(start).Round(time.Millisecond))

	t.Run("lintian", lint)
}

// buildPackages runs scripts/package for amd64 with the given version and
// returns the two .deb paths.
func buildPackages(t *testing.T, repo, version string) []string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), filepath.Join(repo, "scripts/package"), "--arch", "amd64", "--out", out)
	// gzip: xz takes most of the build time and proves nothing here, and
	// lintian refuses an uncompressed data.tar.
	cmd.Env = append(os.Environ(), "VERSION="+version, "DEB_COMPRESSION=gzip")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, b)
	}
	var debs []string
	for _, pkg := range []string{"bwx-arbiter", "bwx-agent"} {
		p := filepath.Join(out, fmt.Sprintf("%s_%s_amd64.deb", pkg, version))
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("scripts/package did not make %s: %v", p, err)
		}
		debs = append(debs, p)
	}
	return debs
}

// checkInstalled checks files, modes, the user and the conffiles after the
// first install.
func checkInstalled(t *testing.T, r *chroot, repo, version string) {
	t.Helper()
	for _, pkg := range []string{"bwx-agent", "bwx-arbiter"} {
		if got := r.out("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", pkg); strings.TrimSpace(got) != "ii  "+version {
			t.Errorf("%s: dpkg says %q, want installed %s", pkg, got, version)
		}
	}
	checkUser(t, r)
	for _, f := range shippedFiles() {
		owner, grp := cmp.Or(f.owner, "root"), cmp.Or(f.grp, "root")
		checkMode(t, r, f.path, f.mode, owner, grp)
		if f.sameAs != "" {
			if !bytes.Equal(readFile(t, r.path(f.path)), readFile(t, filepath.Join(repo, f.sameAs))) {
				t.Errorf("%s differs from %s", f.path, f.sameAs)
			}
		}
		if f.mustContain != "" && !strings.Contains(string(readFile(t, r.path(f.path))), f.mustContain) {
			t.Errorf("%s does not contain %q", f.path, f.mustContain)
		}
	}
	// The conffiles dpkg keeps across upgrades, installed as shipped.
	for pkg, want := range map[string][]string{
		"bwx-arbiter": {"/etc/bwx/arbiter.yaml"},
		"bwx-agent":   {"/etc/bwx/agent.yaml", "/etc/iproute2/rt_protos.d/bwx.conf"},
	} {
		sums := conffiles(r.out("dpkg-query", "-W", "-f=${Conffiles}", pkg))
		var got []string
		for _, c := range sums {
			got = append(got, c.path)
			if sum := fmt.Sprintf("%x", md5.Sum(readFile(t, r.path(c.path)))); sum != c.md5 {
				t.Errorf("%s: md5 %s, dpkg registered %s", c.path, sum, c.md5)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s conffiles = %v, want %v", pkg, got, want)
		}
	}
	// A fresh install enables nothing: no wants symlinks in the root.
	if m, _ := filepath.Glob(r.path("/etc/systemd/system/*/bwx-*")); len(m) > 0 {
		t.Errorf("install enabled units: %v", m)
	}
}

// shipped is a path the packages install: its mode, owner and group (root
// unless given) and, optionally, what it holds.
type shipped struct {
	path        string
	mode        os.FileMode
	owner, grp  string
	sameAs      string // repository file with the same content
	mustContain string
}

// shippedFiles is what checkInstalled checks after the first install: what
// both packages ship, each under its own name, and the rest.
func shippedFiles() []shipped {
	files := []shipped{
		{path: "/etc/bwx", mode: os.ModeDir | 0o750, grp: "bwx"},
		{path: "/etc/iproute2/rt_protos.d/bwx.conf", mode: 0o644, mustContain: "239\tbwx"},
		{path: "/usr/share/doc/bwx-agent/copyright", mode: 0o644, mustContain: "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"},
		{path: "/usr/share/doc/bwx-arbiter/copyright", mode: 0o644, mustContain: "\nFiles: github.com/osrg/gobgp/v3/*\n"},
		{path: "/usr/share/man/man1/bwx-agent.1.gz", mode: 0o644},
		{path: "/usr/share/man/man1/bwx-arbiter-member-add.1.gz", mode: 0o644},
	}
	for _, pkg := range []string{"bwx-arbiter", "bwx-agent"} {
		files = append(files,
			shipped{path: "/usr/bin/" + pkg, mode: 0o755},
			shipped{path: "/lib/systemd/system/" + pkg + ".service", mode: 0o644, sameAs: "systemd/" + pkg + ".service"},
			shipped{path: "/usr/lib/sysusers.d/" + pkg + ".conf", mode: 0o644, sameAs: "systemd/bwx.sysusers"},
			// Its content is checked against dpkg's conffile checksums below.
			shipped{path: "/etc/bwx/" + strings.TrimPrefix(pkg, "bwx-") + ".yaml", mode: 0o640, grp: "bwx"},
			shipped{path: "/var/lib/" + pkg, mode: os.ModeDir | 0o750, owner: "bwx", grp: "bwx"},
			shipped{path: "/usr/share/doc/" + pkg + "/README.md", mode: 0o644},
			shipped{path: "/usr/share/doc/" + pkg + "/changelog.gz", mode: 0o644},
			shipped{path: "/usr/share/bash-completion/completions/" + pkg, mode: 0o644, mustContain: "__start_" + pkg},
			shipped{path: "/usr/share/zsh/vendor-completions/_" + pkg, mode: 0o644, mustContain: "#compdef " + pkg},
			shipped{path: "/usr/share/fish/vendor_completions.d/" + pkg + ".fish", mode: 0o644, mustContain: "complete -c " + pkg},
			shipped{path: "/usr/share/lintian/overrides/" + pkg, mode: 0o644, sameAs: "packaging/lintian/" + pkg},
			// deb-systemd-helper update-state: what a purge will clean up.
			shipped{path: "/var/lib/systemd/deb-systemd-helper-enabled/" + pkg + ".service.dsh-also", mode: 0o644},
		)
	}
	return files
}

type conffile struct{ path, md5 string }

// conffiles parses dpkg-query's ${Conffiles}: " /path md5" lines.
func conffiles(s string) []conffile {
	var out []conffile
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			out = append(out, conffile{f[0], f[1]})
		}
	}
	return out
}

// checkUser checks bwx is a system user without a login shell, in group bwx.
func checkUser(t *testing.T, r *chroot) {
	t.Helper()
	line := r.out("getent", "passwd", "bwx")
	f := strings.Split(strings.TrimSpace(line), ":")
	if len(f) != 7 {
		t.Fatalf("getent passwd bwx: %q", line)
	}
	uid, _ := strconv.Atoi(f[2])
	if uid == 0 || uid >= 1000 {
		t.Errorf("bwx uid %d is not a system uid (1-999)", uid)
	}
	if f[6] != "/usr/sbin/nologin" {
		t.Errorf("bwx shell %q, want /usr/sbin/nologin", f[6])
	}
	g := strings.Split(strings.TrimSpace(r.out("getent", "group", "bwx")), ":")
	if len(g) < 3 || g[2] != f[3] {
		t.Errorf("bwx primary group %s is not group bwx %v", f[3], g)
	}
}

func checkMode(t *testing.T, r *chroot, path string, mode os.FileMode, owner, group string) {
	t.Helper()
	fi, err := os.Lstat(r.path(path))
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if got := fi.Mode() & (os.ModeType | os.ModePerm | os.ModeSetuid | os.ModeSetgid); got != mode {
		t.Errorf("%s: mode %v, want %v", path, got, mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if u := r.name("passwd", st.Uid); u != owner {
		t.Errorf("%s: owner %s, want %s", path, u, owner)
	}
	if g := r.name("group", st.Gid); g != group {
		t.Errorf("%s: group %s, want %s", path, g, group)
	}
}

func checkGone(t *testing.T, r *chroot, path string) {
	t.Helper()
	if _, err := os.Lstat(r.path(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (err %v)", path, err)
	}
}

func checkThere(t *testing.T, r *chroot, path string) {
	t.Helper()
	if _, err := os.Lstat(r.path(path)); err != nil {
		t.Errorf("%s is gone: %v", path, err)
	}
}

// checkOperatorSocket checks the arbiter's operator socket: a socket of
// bwx, mode 0600, that answers.
func checkOperatorSocket(t *testing.T, r *chroot) {
	t.Helper()
	checkMode(t, r, "/run/bwx-arbiter/operator.sock", os.ModeSocket|0o600, "bwx", "bwx")
	c, err := net.DialTimeout("unix", r.path("/run/bwx-arbiter/operator.sock"), 5*time.Second)
	if err != nil {
		t.Fatalf("operator socket: %v", err)
	}
	c.Close()
	if out := r.out("bwx-arbiter", "member", "list", "-o", "json"); !strings.HasPrefix(strings.TrimSpace(out), "[") && !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("member list over the operator socket: %q", out)
	}
}

// waitHealthy polls the arbiter's /healthz (metrics.listen 127.0.0.1:9470
// in the shipped config) until it says ok.
func waitHealthy(t *testing.T, h *labnet.Host, d *daemon) {
	t.Helper()
	poll(t, d, "arbiter /healthz ok", func() (bool, string) {
		body, err := httpGet(t, h, "http://127.0.0.1:9470/healthz")
		return err == nil && strings.TrimSpace(body) == "ok", fmt.Sprint(body, err)
	})
}

var streamsRE = regexp.MustCompile(`(?m)^bwx_arbiter_event_streams ([0-9]+)$`)

// waitStreams polls the arbiter's metrics until n agents hold a trade event
// stream open: the agent reached it over the LAN with its mTLS bundle.
func waitStreams(t *testing.T, h *labnet.Host, arb, agent *daemon, n int) {
	t.Helper()
	poll(t, agent, fmt.Sprintf("%d agent event streams at the arbiter", n), func() (bool, string) {
		if arb.proc.Exited() {
			t.Fatalf("bwx-arbiter exited; log:\n%s", arb.log())
		}
		body, err := httpGet(t, h, "http://127.0.0.1:9470/metrics")
		if err != nil {
			return false, err.Error()
		}
		m := streamsRE.FindStringSubmatch(body)
		return m != nil && m[1] == strconv.Itoa(n), fmt.Sprint(m)
	})
}

func poll(t *testing.T, d *daemon, what string, f func() (bool, string)) {
	t.Helper()
	deadline := clock.Now().Add(30 * time.Second)
	var last string
	for {
		ok, got := f()
		if ok {
			return
		}
		last = got
		if d.proc.Exited() {
			t.Fatalf("%s exited before %s (last: %s); log:\n%s", d.name, what, last, d.log())
		}
		if clock.Now().After(deadline) {
			t.Fatalf("no %s after 30s (last: %s); %s log:\n%s", what, last, d.name, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(t *testing.T, h *labnet.Host, url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return h.DialContext(ctx, network, addr)
		},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}

// reload sends SIGHUP, as the units' ExecReload does, and waits for the
// daemon to log that it re-read its config.
func reload(t *testing.T, d *daemon) {
	t.Helper()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("%s: SIGHUP: %v", d.name, err)
	}
	poll(t, d, "config reloaded in the log after SIGHUP", func() (bool, string) {
		return strings.Contains(d.log(), "config reloaded"), ""
	})
}

func stopClean(t *testing.T, d *daemon, name string) {
	t.Helper()
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", name, err)
	}
	select {
	case <-d.proc.Done():
	case <-time.After(30 * time.Second): // TimeoutStopSec
		t.Fatalf("%s did not stop within 30s of SIGTERM; log:\n%s", name, d.log())
	}
	if err := d.proc.Wait(); err != nil {
		t.Errorf("%s stopped with %v; log:\n%s", name, err, d.log())
	}
}

// chroot is the Debian root the packages are installed in.
type chroot struct {
	t   *testing.T
	dir string
}

func (r *chroot) path(p string) string { return filepath.Join(r.dir, p) }

// cmd is a command run inside the root with a clean environment.
func (r *chroot) cmd(args ...string) *exec.Cmd {
	cmd := exec.CommandContext(r.t.Context(), "chroot", append([]string{r.dir, "/usr/bin/env", "-i", chrootPath,
		"LANG=C.UTF-8", "HOME=/root", "DEBIAN_FRONTEND=noninteractive", "TZ=UTC"}, args...)...)
	cmd.Stdin = nil
	return cmd
}

func (r *chroot) out(args ...string) string {
	r.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := r.cmd(args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("in the root: %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

func (r *chroot) run(args ...string) {
	r.t.Helper()
	if b, err := r.cmd(args...).CombinedOutput(); err != nil {
		r.t.Fatalf("in the root: %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// install copies the packages into the root and installs them with dpkg -i
// (their dependencies are in minbase, so no apt-get -f).
func (r *chroot) install(debs []string) {
	r.t.Helper()
	args := []string{"dpkg", "--install", "--force-confdef", "--force-confold"}
	for _, d := range debs {
		dst := r.path("/tmp/" + filepath.Base(d))
		if err := os.WriteFile(dst, readFile(r.t, d), 0o644); err != nil {
			r.t.Fatal(err)
		}
		args = append(args, "/tmp/"+filepath.Base(d))
	}
	r.run(args...)
}

const systemctlLog = "/var/log/systemctl-calls"

// fakeSystemd makes the root look as if systemd ran it and puts a
// systemctl there that only logs its arguments.
func (r *chroot) fakeSystemd() {
	r.t.Helper()
	if err := os.MkdirAll(r.path("/run/systemd/system"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$*\" >>" + systemctlLog + "\n"
	if err := os.WriteFile(r.path("/usr/local/sbin/systemctl"), []byte(script), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// checkSystemctl checks the systemctl calls since the last check (in
// dpkg's order) and clears the log.
func (r *chroot) checkSystemctl(step string, want []string) {
	r.t.Helper()
	b, err := os.ReadFile(r.path(systemctlLog))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.t.Fatal(err)
	}
	var got []string
	if t := strings.TrimSpace(string(b)); t != "" {
		got = strings.Split(t, "\n")
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		r.t.Errorf("%s: systemctl was called with\n%q\nwant\n%q", step, got, want)
	}
	for _, c := range got {
		if strings.Contains(c, "enable") || strings.HasPrefix(c, "start") {
			r.t.Errorf("%s: the maintainer scripts ran systemctl %s", step, c)
		}
	}
	os.Remove(r.path(systemctlLog))
}

// name maps a uid or gid to its name in the root's passwd or group file.
func (r *chroot) name(db string, id uint32) string {
	f, err := os.Open(r.path("/etc/" + db))
	if err != nil {
		return strconv.Itoa(int(id))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) >= 3 && fs[2] == strconv.Itoa(int(id)) {
			return fs[0]
		}
	}
	return strconv.Itoa(int(id))
}

// mountProc mounts a proc filesystem in the root (setpriv reads
// /proc/sys/kernel/cap_last_cap) and unmounts it at the end, before the
// root is deleted.
func (r *chroot) mountProc() {
	r.t.Helper()
	p := r.path("/proc")
	if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		r.t.Fatalf("mount proc on %s: %v", p, err)
	}
	r.t.Cleanup(func() {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			r.t.Errorf("unmount %s: %v", p, err)
		}
	})
}

// runtimeDir makes /run/<name> as RuntimeDirectory= would.
func (r *chroot) runtimeDir(name string) {
	r.t.Helper()
	r.run("install", "-d", "-o", "bwx", "-g", "bwx", "-m", "0750", "/run/"+name)
}

type daemon struct {
	name    string
	proc    *labnet.Proc
	logPath string
	notify  net.PacketConn // NOTIFY_SOCKET, as systemd gives a Type=notify service
}

// waitReady waits for the daemon's sd_notify READY=1.
func (d *daemon) waitReady(t *testing.T) {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := clock.Now().Add(30 * time.Second)
	for {
		d.notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) //bwx:wallclock: a socket deadline
		n, _, err := d.notify.ReadFrom(buf)
		if err == nil && strings.Contains("\n"+string(buf[:n])+"\n", "\nREADY=1\n") {
			return
		}
		if d.proc.Exited() {
			t.Fatalf("%s exited before READY=1; log:\n%s", d.name, d.log())
		}
		if clock.Now().After(deadline) {
			t.Fatalf("%s sent no READY=1 in 30s; log:\n%s", d.name, d.log())
		}
	}
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// startDaemon runs `<name> run --config /etc/bwx/<short>.yaml` in the root,
// in host's network namespace, as the unit does: user and group bwx, the
// unit's capabilities (bounding and ambient), no new privileges, umask 0027.
func (r *chroot) startDaemon(h *labnet.Host, name, caps string) *daemon {
	r.t.Helper()
	conf := "/etc/bwx/" + strings.TrimPrefix(name, "bwx-") + ".yaml"
	logPath := filepath.Join(r.t.TempDir(), name+".log")
	capList := "+" + strings.ReplaceAll(caps, ",", ",+")
	notifyPath := "/run/" + name + ".notify"
	os.Remove(r.path(notifyPath))
	notify, err := net.ListenPacket("unixgram", r.path(notifyPath))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { notify.Close() })
	if err := os.Chmod(r.path(notifyPath), 0o666); err != nil {
		r.t.Fatal(err)
	}
	p, err := h.Start(r.t.Context(), logPath, "chroot", r.dir, "/usr/bin/env", "-i", chrootPath, "LANG=C.UTF-8", "TZ=UTC",
		"NOTIFY_SOCKET="+notifyPath,
		"setpriv", "--reuid=bwx", "--regid=bwx", "--init-groups", "--no-new-privs",
		"--inh-caps=-all,"+capList, "--ambient-caps=-all,"+capList, "--bounding-set=-all,"+capList, "--",
		"sh", "-c", `umask 0027 && exec "$@"`, "sh", name, "run", "--config", conf)
	if err != nil {
		r.t.Fatalf("start %s: %v", name, err)
	}
	d := &daemon{name: name, proc: p, logPath: logPath, notify: notify}
	r.t.Cleanup(func() { p.Stop() })
	return d
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func statOf(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
