package daemon_test

import (
	"testing"

	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

// TestMain starts PostgreSQL for the tests that run the arbiter on it.
func TestMain(m *testing.M) { storetest.Main(m) }
