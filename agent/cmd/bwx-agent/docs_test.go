package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/shared/cli/clidoc"
)

// TestManualPages writes the pages and completions as the packaging script
// does and checks every command a user can run has its page.
func TestManualPages(t *testing.T) {
	dir := t.TempDir()
	if err := clidoc.Write(newRoot(), dir, clidoc.Options{Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Source: "bwx test"}); err != nil {
		t.Fatal(err)
	}
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
	root := newRoot()
	root.InitDefaultCompletionCmd()
	walk(root)
	if n < 5 {
		t.Errorf("only %d pages", n)
	}
	for _, f := range []string{"completions/bash/bwx-agent", "completions/zsh/_bwx-agent", "completions/fish/bwx-agent.fish"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.Contains(string(b), "bwx-agent") {
			t.Errorf("%s: %v", f, err)
		}
	}
}
