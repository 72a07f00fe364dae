package main

import (
	"testing"

	"github.com/bwxchange/bwx/shared/cli/clidoc/clidoctest"
)

// TestManualPages writes the pages and completions as the packaging script
// does and checks every command a user can run has its page.
func TestManualPages(t *testing.T) { clidoctest.CheckPages(t, newRoot()) }
