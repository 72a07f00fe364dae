package clidoc

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func tree() *cobra.Command {
	root := &cobra.Command{Use: "prog", Short: "a program"}
	root.PersistentFlags().StringP("config", "c", "/etc/prog.yaml", "config file")
	order := &cobra.Command{Use: "order", Short: "place and list orders"}
	buy := &cobra.Command{Use: "buy", Short: "place a buy order", Long: "Buy bandwidth toward a prefix.", RunE: func(*cobra.Command, []string) error { return nil }}
	buy.Flags().String("prefix", "", "the destination prefix")
	order.AddCommand(buy, &cobra.Command{Use: "secret", Short: "hidden", Hidden: true, Run: func(*cobra.Command, []string) {}})
	root.AddCommand(order)
	root.AddCommand(Command(root))
	return root
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	date := time.Date(2026, 12, 5, 0, 30, 0, 0, time.UTC)
	if err := Write(tree(), dir, Options{Date: date, Source: "bwx 1.2.3", Manual: "bwx manual"}); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "man/man1/*"))
	var names []string
	for _, p := range pages {
		names = append(names, filepath.Base(p))
	}
	sort.Strings(names)
	// Hidden commands (gendocs, secret) and help have none; completion
	// (cobra's) has its own.
	want := []string{"prog-completion-bash.1", "prog-completion-fish.1", "prog-completion-powershell.1", "prog-completion-zsh.1",
		"prog-completion.1", "prog-order-buy.1", "prog-order.1", "prog.1"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("pages %v\nwant %v", names, want)
	}
	buy, err := os.ReadFile(filepath.Join(dir, "man/man1/prog-order-buy.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`.TH "PROG-ORDER-BUY" "1" "Dec 2026" "bwx 1.2.3" "bwx manual"`, "prog-order-buy - place a buy order",
		"Buy bandwidth toward a prefix.", `\fB--prefix\fP`, `\fB--config\fP`, "\\fBprog-order(1)\\fP"} {
		if !strings.Contains(string(buy), w) {
			t.Errorf("prog-order-buy.1 lacks %q:\n%s", w, buy)
		}
	}
	if strings.Contains(string(buy), "Auto generated") {
		t.Errorf("prog-order-buy.1 has cobra's auto-generated tag:\n%s", buy)
	}
	for file, w := range map[string]string{
		"completions/bash/prog":      "__start_prog",
		"completions/zsh/_prog":      "#compdef prog",
		"completions/fish/prog.fish": "complete -c prog",
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), w) {
			t.Errorf("%s lacks %q", file, w)
		}
	}
	// The pages render without groff warnings (what lintian checks).
	if _, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command("groff", "-man", "-ww", "-z", filepath.Join(dir, "man/man1/prog-order-buy.1")).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww: %v\n%s", err, out)
		}
	}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	root := tree()
	root.SetArgs([]string{"gendocs", "--out", dir, "--date", "1796430600", "--version", "9.9"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "man/man1/prog.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Dec 2026" "bwx 9.9" "bwx manual"`) {
		t.Errorf("prog.1 header:\n%s", b)
	}
	root = tree()
	root.SetArgs([]string{"gendocs", "--out", dir, "--date", "yesterday"})
	root.SilenceErrors, root.SilenceUsage = true, true
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--date") {
		t.Errorf("--date yesterday: %v", err)
	}
}
