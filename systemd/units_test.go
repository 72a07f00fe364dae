package systemd_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unit is what the test knows about each shipped unit.
type unit struct {
	file    string  // in this directory
	binary  string  // ExecStart's program
	maxRisk float64 // highest acceptable `systemd-analyze security` exposure
}

// The exposure limits sit a little above the scores on Debian 12 (systemd
// 252): arbiter 1.4, agent 2.0 (5 and up is "MEDIUM"). Loosening the sandbox
// noticeably fails the test; a newer systemd that scores new checks may need
// them raised.
var units = []unit{
	{file: "bwx-arbiter.service", binary: "/usr/bin/bwx-arbiter", maxRisk: 2.0},
	{file: "bwx-agent.service", binary: "/usr/bin/bwx-agent", maxRisk: 2.5},
}

// parseUnit reads a unit file into section → key → values (a key may be
// given several times; an empty assignment resets it, as in systemd).
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	var section string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			if strings.HasSuffix(v, `\`) {
				t.Fatalf("%s:%d: continuation lines are not supported by this test", path, n)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				out[section][k] = nil
			} else {
				out[section][k] = append(out[section][k], v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitSettings checks the settings the daemons and the packaging rely on,
// without needing systemd.
func TestUnitSettings(t *testing.T) {
	common := map[string]string{
		"Type":                   "notify",
		"NotifyAccess":           "main",
		"User":                   "bwx",
		"Group":                  "bwx",
		"ConfigurationDirectory": "bwx",
		// The package makes /etc/bwx 0750; systemd must not widen it.
		"ConfigurationDirectoryMode": "0750",
		"StateDirectoryMode":         "0750",
		"UMask":                      "0027",
		"Restart":                    "on-failure",
		"RestartSec":                 "5s",
		"ExecReload":                 "/bin/kill -HUP $MAINPID",
		"NoNewPrivileges":            "yes",
		"ProtectSystem":              "strict",
		"ProtectHome":                "yes",
		"PrivateTmp":                 "yes",
		"PrivateDevices":             "yes",
		"ProtectKernelModules":       "yes",
		"ProtectKernelLogs":          "yes",
		"ProtectControlGroups":       "yes",
		"ProtectClock":               "yes",
		"ProtectHostname":            "yes",
		"RestrictNamespaces":         "yes",
		"LockPersonality":            "yes",
		"MemoryDenyWriteExecute":     "yes",
		"RestrictRealtime":           "yes",
		"RestrictSUIDSGID":           "yes",
		"SystemCallArchitectures":    "native",
	}
	tests := []struct {
		file    string
		service map[string]string
		absent  []string // keys that must not be set
		caps    []string // both bounding and ambient set
		afs     []string
	}{{
		file: "bwx-arbiter.service",
		service: map[string]string{
			"ExecStart":             "/usr/bin/bwx-arbiter run --config /etc/bwx/arbiter.yaml",
			"StateDirectory":        "bwx-arbiter",
			"RuntimeDirectory":      "bwx-arbiter",
			"ProtectKernelTunables": "yes",
		},
		absent: []string{"PrivateUsers", "PrivateNetwork"},
		caps:   []string{"CAP_NET_BIND_SERVICE"},
		afs:    []string{"AF_UNIX", "AF_INET", "AF_INET6"},
	}, {
		file: "bwx-agent.service",
		service: map[string]string{
			"ExecStart":      "/usr/bin/bwx-agent run --config /etc/bwx/agent.yaml",
			"StateDirectory": "bwx-agent",
		},
		// The agent writes rp_filter under /proc/sys.
		absent: []string{"ProtectKernelTunables", "ProcSubset", "PrivateUsers", "PrivateNetwork"},
		caps:   []string{"CAP_NET_ADMIN", "CAP_NET_RAW"},
		afs:    []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			u := parseUnit(t, tt.file)
			svc := u["Service"]
			if svc == nil {
				t.Fatal("no [Service] section")
			}
			for k, want := range common {
				checkOne(t, svc, k, want)
			}
			for k, want := range tt.service {
				checkOne(t, svc, k, want)
			}
			for _, k := range tt.absent {
				if v, ok := svc[k]; ok {
					t.Errorf("%s=%v is set; it must not be", k, v)
				}
			}
			for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
				if got := words(svc[k]); !sameSet(got, tt.caps) {
					t.Errorf("%s = %v, want exactly %v", k, got, tt.caps)
				}
			}
			if got := words(svc["RestrictAddressFamilies"]); !sameSet(got, tt.afs) {
				t.Errorf("RestrictAddressFamilies = %v, want exactly %v", got, tt.afs)
			}
			if f := svc["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
				t.Errorf("SystemCallFilter = %v, want @system-service first", f)
			}
			if svc["TimeoutStopSec"] == nil {
				t.Error("TimeoutStopSec is not set")
			}
			unitSec := u["Unit"]
			for _, k := range []string{"StartLimitIntervalSec", "StartLimitBurst"} {
				if unitSec[k] == nil {
					t.Errorf("[Unit] %s is not set", k)
				}
			}
			if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
				t.Errorf("WantedBy = %v", got)
			}
		})
	}
}

func checkOne(t *testing.T, sec map[string][]string, k, want string) {
	t.Helper()
	if got := sec[k]; len(got) != 1 || got[0] != want {
		t.Errorf("%s = %q, want %q", k, got, want)
	}
}

func words(vals []string) []string {
	var out []string
	for _, v := range vals {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func need(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed (Debian package systemd); cannot check the units with it", tool)
	}
	return path
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testCopy copies the unit into a temporary directory with ExecStart
// pointing at a dummy executable, since `systemd-analyze verify` fails when
// the real binary is not installed.
func testCopy(t *testing.T, u unit) string {
	t.Helper()
	dir := t.TempDir()
	dummy := filepath.Join(dir, filepath.Base(u.binary))
	if err := os.WriteFile(dummy, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(u.file)
	if err != nil {
		t.Fatal(err)
	}
	old := "\nExecStart=" + u.binary + " "
	if strings.Count(string(data), old) != 1 {
		t.Fatalf("%s: want exactly one line starting %q", u.file, strings.TrimSpace(old))
	}
	data = []byte(strings.Replace(string(data), old, "\nExecStart="+dummy+" ", 1))
	path := filepath.Join(dir, u.file)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerify(t *testing.T) {
	analyze := need(t, "systemd-analyze")
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			path := testCopy(t, u)
			out, err := run(t, analyze, "verify", "--man=no", "--generators=no", path)
			if err != nil {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", u.file, err, out)
			}
			// Other units on the machine may draw complaints; ours must not.
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, u.file) || strings.Contains(line, filepath.Dir(path)) {
					t.Errorf("systemd-analyze verify: %s", line)
				}
			}
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

func TestSecurityExposure(t *testing.T) {
	analyze := need(t, "systemd-analyze")
	out, err := run(t, analyze, "--version")
	if err != nil {
		t.Fatalf("systemd-analyze --version: %v\n%s", err, out)
	}
	// "systemd 252 (252.38-1~deb12u1)"
	f := strings.Fields(out)
	v := 0
	if len(f) >= 2 && f[0] == "systemd" {
		v, _ = strconv.Atoi(f[1])
	}
	if v < 250 {
		t.Skipf("systemd-analyze security --offline needs systemd 250 or later; have %q", strings.SplitN(out, "\n", 2)[0])
	}
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			path := testCopy(t, u)
			out, err := run(t, analyze, "security", "--offline=true", "--no-pager", path)
			if err != nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", u.file, err, out)
			}
			m := exposureRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no overall exposure level in:\n%s", out)
			}
			score, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: exposure %.1f (limit %.1f)", u.file, score, u.maxRisk)
			if score > u.maxRisk {
				var open []string
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "✗") {
						open = append(open, strings.Join(strings.Fields(l), " "))
					}
				}
				t.Errorf("%s: exposure %.1f is above %.1f; open items:\n%s", u.file, score, u.maxRisk, strings.Join(open, "\n"))
			}
		})
	}
}

// TestSysusers creates the user from bwx.sysusers in an empty root and checks
// it is the system user the units run as.
func TestSysusers(t *testing.T) {
	sysusers := need(t, "systemd-sysusers")
	if os.Geteuid() != 0 {
		t.Skip("systemd-sysusers --root needs root")
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("bwx.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, sysusers, "--root="+root, abs); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	// bwx:x:999:999:bwx exchange daemons:/:/usr/sbin/nologin
	var found bool
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == "bwx" {
			found = true
			if uid, _ := strconv.Atoi(f[2]); uid == 0 || uid >= 1000 {
				t.Errorf("uid %d is not a system uid", uid)
			}
			if !strings.HasSuffix(f[6], "nologin") {
				t.Errorf("shell %q, want nologin", f[6])
			}
		}
	}
	if !found {
		t.Fatalf("no bwx user in:\n%s", passwd)
	}
	group, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(group), "\nbwx:") {
		t.Errorf("no bwx group in:\n%s", group)
	}
}
