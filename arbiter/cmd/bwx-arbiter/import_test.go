package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/arbiter/registry/irr"
	"github.com/bwxchange/bwx/arbiter/registry/rpki"
	"github.com/bwxchange/bwx/arbiter/store"
)

// runImport runs the command as main would wire it, with the config at cfg.
func runImport(t *testing.T, cfg string, args ...string) (string, string, error) {
	t.Helper()
	g := &globals{}
	root := &cobra.Command{Use: "bwx-arbiter", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "")
	root.PersistentFlags().StringVarP(&g.out.Format, "output", "o", "table", "")
	root.AddCommand(importCmd(g))
	root.SetArgs(append([]string{"--config", cfg}, args...))
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// lab makes a state dir with a config and a database the "daemon" holds open.
func lab(t *testing.T) (cfg string, daemonDB *store.DB, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "arbiter.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "state_dir: %s\n", dir), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "bwx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return cfg, db, dir
}

func writeFile(t *testing.T, path string, data []byte, gz bool) {
	t.Helper()
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// genRoutes writes n good route/route6 objects of source and the given
// malformed ones after them.
func genRoutes(n int, source string, bad ...string) []byte {
	var b bytes.Buffer
	b.WriteString("% generated\n\n")
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&b, "route: 10.%d.%d.0/24\norigin: AS%d\nmnt-by: MNT-T\nsource: %s\n\n", i>>8&0xff, i&0xff, 64500+i%10, source)
		} else {
			fmt.Fprintf(&b, "route6: 2001:db8:%x::/48\norigin: AS%d\nsource: %s\n\n", i, 64500+i%10, source)
		}
	}
	for _, o := range bad {
		b.WriteString(o + "\n\n")
	}
	return b.Bytes()
}

func TestImportIRRCommand(t *testing.T) {
	cfg, daemon, dir := lab(t)
	v4 := filepath.Join(dir, "ripe.db.route.gz")
	v6 := filepath.Join(dir, "ripe.db.route6")
	writeFile(t, v4, genRoutes(300, "RIPE", "route: 192.0.2.1/24\norigin: AS64500\nsource: RIPE", "route: 192.0.2.0/24\nsource: RIPE"), true)
	writeFile(t, v6, []byte("route6: 2001:db8:ffff::/48\norigin: AS64501\nsource: RIPE\n\nroute6: 2001:db8::/32\norigin: 64500\nsource: RIPE\n"), false)

	out, progress, err := runImport(t, cfg, "import", "irr", v4, v6)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"304 route objects: 301 accepted, 3 malformed",
		"RIPE         301 objects (was 0)",
		"malformed:\n  " + v4 + ":1353: route 192.0.2.1/24: host bits set (the prefix would be 192.0.2.0/24)",
		v4 + ":1357: route 192.0.2.0/24: no origin attribute",
		v6 + `:5: route6 2001:db8::/32: origin "64500": want an AS number like AS64500`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Not a terminal: plain progress lines.
	for _, want := range []string{"reading " + v4, v4 + ": read ", v6 + ": read ", "writing 301 route objects to " + filepath.Join(dir, "bwx.db")} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress lacks %q:\n%s", want, progress)
		}
	}

	// The daemon's own connection sees the data.
	ix, err := irr.LoadIndex(context.Background(), daemon, irr.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 301 || !ix.Valid(netip.MustParsePrefix("2001:db8:ffff::/48"), 64501) || !ix.Valid(netip.MustParsePrefix("10.0.2.0/24"), 64502) {
		t.Fatalf("the daemon sees %d objects, or not the imported ones", ix.Len())
	}

	// --max-errors and JSON output.
	out, _, err = runImport(t, cfg, "-o", "json", "import", "irr", "--max-errors", "1", v4)
	if err != nil {
		t.Fatal(err)
	}
	var rep irr.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if rep.Accepted != 300 || rep.Malformed != 2 || len(rep.Errors) != 1 || len(rep.Sets) != 1 || rep.Sets[0].Previous != 301 {
		t.Fatalf("JSON report %+v", rep)
	}

	// A file of another source with --source RIPE changes nothing and says so.
	other := filepath.Join(dir, "radb.db")
	writeFile(t, other, genRoutes(10, "RADB"), false)
	_, errOut, err := runImport(t, cfg, "import", "irr", "--source", "ripe", other)
	if err == nil || !strings.Contains(err.Error(), "no well-formed route objects of source RIPE") || !strings.Contains(err.Error(), "unchanged") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(errOut, "10 of other sources skipped") {
		t.Errorf("stderr lacks the counts:\n%s", errOut)
	}
	// The RADB file alone adds RADB and keeps RIPE.
	if _, _, err := runImport(t, cfg, "import", "irr", other); err != nil {
		t.Fatal(err)
	}
	// A short RIPE file is refused unless allowed.
	short := filepath.Join(dir, "short.db")
	writeFile(t, short, genRoutes(20, "RIPE"), false)
	if _, _, err := runImport(t, cfg, "import", "irr", short); err == nil || !strings.Contains(err.Error(), "--allow-shrink") {
		t.Fatalf("shrinking import: err = %v", err)
	}
	sets, err := irr.Sets(context.Background(), daemon)
	if err != nil || len(sets) != 2 || fmt.Sprintf("%d %s %d %s %d", len(sets), sets[0].Source, sets[0].Objects, sets[1].Source, sets[1].Objects) != "2 RADB 10 RIPE 300" {
		t.Fatalf("sets %+v, %v", sets, err)
	}
	if _, _, err := runImport(t, cfg, "import", "irr", "--allow-shrink", short); err != nil {
		t.Fatal(err)
	}
	var ripe int
	daemon.QueryRow("SELECT COUNT(*) FROM irr_routes WHERE source = 'RIPE'").Scan(&ripe)
	if ripe != 20 {
		t.Fatalf("%d RIPE objects after --allow-shrink, want 20", ripe)
	}
}

func TestImportROAsCommand(t *testing.T) {
	cfg, daemon, dir := lab(t)
	path := filepath.Join(dir, "vrps.json.gz")
	var b strings.Builder
	b.WriteString(`{"metadata":{"generated":1700000000},"roas":[`)
	for i := range 100 {
		fmt.Fprintf(&b, `{"asn":"AS%d","prefix":"10.0.%d.0/24","maxLength":24,"ta":"ripe"},`, 64500+i, i)
	}
	b.WriteString(`{"asn":64999,"prefix":"2001:db8::/32","maxLength":48,"ta":"arin"},{"asn":1,"prefix":"10.0.0.1/24","maxLength":24,"ta":"x"}]}`)
	writeFile(t, path, []byte(b.String()), true)

	out, progress, err := runImport(t, cfg, "import", "roas", path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress, "writing 101 ROAs to "+filepath.Join(dir, "bwx.db")) {
		t.Errorf("progress:\n%s", progress)
	}
	if !strings.Contains(out, "102 ROAs: 101 accepted, 1 malformed; had 0") || !strings.Contains(out, `prefix "10.0.0.1/24": host bits set`) {
		t.Fatalf("output:\n%s", out)
	}
	ix, err := rpki.LoadIndex(context.Background(), daemon)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 101 || ix.Validate(netip.MustParsePrefix("2001:db8:1::/48"), 64999) != rpki.Valid || ix.Validate(netip.MustParsePrefix("10.0.5.0/24"), 64500) != rpki.Invalid {
		t.Fatalf("the daemon's index of %d ROAs does not validate as imported", ix.Len())
	}

	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, []byte(`<html>502 Bad Gateway</html>`), false)
	if _, _, err := runImport(t, cfg, "import", "roas", bad); err == nil || !strings.Contains(err.Error(), "bad.json: at byte") || !strings.Contains(err.Error(), "the stored ROAs are unchanged") {
		t.Fatalf("err = %v", err)
	}
	if ix, _ := rpki.LoadIndex(context.Background(), daemon); ix.Len() != 101 {
		t.Fatalf("%d ROAs after a failed import", ix.Len())
	}
}

func TestImportCommandErrors(t *testing.T) {
	cfg, _, dir := lab(t)
	if _, _, err := runImport(t, cfg, "import", "irr", filepath.Join(dir, "nope.db")); err == nil || !strings.Contains(err.Error(), "nope.db: no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := runImport(t, cfg, "import", "roas", dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if _, _, err := runImport(t, cfg, "import", "roas"); err == nil {
		t.Error("roas without a file")
	}
	// No state directory: not an install here; nothing is created.
	empty := t.TempDir()
	cfg2 := filepath.Join(empty, "arbiter.yaml")
	os.WriteFile(cfg2, fmt.Appendf(nil, "state_dir: %s\n", filepath.Join(empty, "state")), 0o600)
	f := filepath.Join(empty, "x.db")
	writeFile(t, f, genRoutes(2, "RIPE"), false)
	if _, _, err := runImport(t, cfg2, "import", "irr", f); err == nil || !strings.Contains(err.Error(), "nor its directory") {
		t.Errorf("missing state directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "state")); err == nil {
		t.Error("the import created a state directory")
	}
}

// On a fresh install (the state directory is there, the daemon has not run
// yet) an import creates the database where the daemon will look, owned
// as the directory is, and the daemon then finds the import in it.
func TestImportOnAFreshInstall(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o750); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	root := os.Geteuid() == 0
	if root {
		// As the package leaves it: the state directory is the daemon's user's.
		if err := os.Chown(state, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "arbiter.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "state_dir: %s\n", state), 0o600)
	f := filepath.Join(dir, "x.db")
	writeFile(t, f, genRoutes(4, "RIPE"), false)
	_, stderr, err := runImport(t, cfg, "import", "irr", f)
	if err != nil {
		t.Fatalf("import on a fresh install: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "created the database") {
		t.Errorf("the import did not say it created the database: %s", stderr)
	}
	path := filepath.Join(state, "bwx.db")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); root && (st.Uid != nobody || st.Gid != nobody) {
		t.Errorf("database owned by %d:%d, want the state directory's %d:%d", st.Uid, st.Gid, nobody, nobody)
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM irr_routes").Scan(&n); err != nil || n != 4 {
		t.Errorf("the daemon's database holds %d route objects (%v), want 4", n, err)
	}
}
