// Package clidoctest checks, in a program's tests, the manual pages and
// shell completions clidoc writes from its command tree:
//
//	func TestManualPages(t *testing.T) { clidoctest.CheckPages(t, newRoot()) }
package clidoctest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/shared/cli/clidoc"
)

// CheckPages writes root's pages and completions as the packaging script
// does and checks every command a user can run has its page (hidden
// commands and help have none) and each shell's completion script names the
// program.
func CheckPages(t *testing.T, root *cobra.Command) {
	t.Helper()
	dir := t.TempDir()
	if err := clidoc.Write(root, dir, clidoc.Options{Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Source: "bwx test"}); err != nil {
		t.Fatal(err)
	}
	// Write added cobra's completion command to root, as Execute does, so
	// the walk sees every command a user can run.
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		page := filepath.Join(dir, "man/man1", strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		_, err := os.Stat(page)
		switch {
		case c.Hidden || c.Name() == "help":
			if err == nil {
				t.Errorf("%s is hidden but has a page", c.CommandPath())
			}
			return
		case err != nil:
			t.Errorf("%s: no manual page: %v", c.CommandPath(), err)
		}
		n++
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 5 {
		t.Errorf("only %d pages", n)
	}
	name := root.Name()
	for _, f := range []string{"completions/bash/" + name, "completions/zsh/_" + name, "completions/fish/" + name + ".fish"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.Contains(string(b), name) {
			t.Errorf("%s: %v", f, err)
		}
	}
}
