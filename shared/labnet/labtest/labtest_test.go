package labtest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/bwxchange/bwx/shared/labnet"
	"github.com/bwxchange/bwx/shared/labnet/labtest"
)

func nsLeft(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := labnet.List()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			left = append(left, n)
		}
	}
	return left
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

func TestNewClosesAtEndOfTest(t *testing.T) {
	t.Parallel()
	var prefix string
	t.Run("sub", func(t *testing.T) {
		lab := labtest.New(t, "sub")
		prefix = lab.Prefix
		a := labtest.AddHost(t, lab, "a", "192.0.2.1/24", "2001:db8::1/64")
		b := labtest.AddHost(t, lab, "b", "192.0.2.2/24", "2001:db8::2/64")
		if err := a.Ping(t.Context(), b.Addr6()); err != nil {
			t.Error(err)
		}
		if len(nsLeft(t, prefix)) != 3 {
			t.Errorf("namespaces %v, want 3", nsLeft(t, prefix))
		}
	})
	if prefix == "" {
		t.Skip("subtest skipped")
	}
	if left := nsLeft(t, prefix); len(left) != 0 {
		t.Errorf("namespaces left after the test: %v", left)
	}
}

// TestCleanupWhenTestFails runs a test that fails half-way (in a child
// process) and checks that its lab and processes are gone.
func TestCleanupWhenTestFails(t *testing.T) {
	t.Parallel()
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFailingTest$", "-test.v")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with this test, even if it is killed
	cmd.Env = append(os.Environ(), "LABTEST_FAILING_HELPER="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "induced failure") {
		t.Fatalf("helper test did not fail as planned (%v):\n%s", err, out)
	}
	var prefix string
	var pid int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "LAB" {
			prefix = f[1]
			pid, _ = strconv.Atoi(f[2])
		}
	}
	if prefix == "" || pid == 0 {
		t.Fatalf("no LAB line in helper output:\n%s", out)
	}
	if left := nsLeft(t, prefix); len(left) != 0 {
		t.Errorf("namespaces left after the failed test: %v", left)
	}
	if !pidGone(pid) {
		t.Errorf("process %d left running after the failed test", pid)
	}
}

// TestHelperFailingTest is run by TestCleanupWhenTestFails.
func TestHelperFailingTest(t *testing.T) {
	dir := os.Getenv("LABTEST_FAILING_HELPER")
	if dir == "" {
		t.Skip("helper of TestCleanupWhenTestFails")
	}
	lab := labtest.New(t, "failing")
	a := labtest.AddHost(t, lab, "a", "192.0.2.1/24")
	p, err := a.Start(t.Context(), filepath.Join(dir, "log"), "sleep", "1000")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LAB %s %d\n", lab.Prefix, p.Pid())
	if _, err := lab.AddHost("bad/name"); err != nil {
		t.Fatalf("induced failure: %v", err)
	}
	t.Error("not reached")
}
