package delivery

import (
	"testing"

	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

// TestMain runs the package's tests on the store storetest selects
// (BWX_TEST_POSTGRES=1: PostgreSQL).
func TestMain(m *testing.M) { storetest.Main(m) }
