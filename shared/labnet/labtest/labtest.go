// Package labtest wires labnet labs into tests.
//
//	func TestPeering(t *testing.T) {
//		t.Parallel()
//		lab := labtest.New(t, "peering")
//		a := labtest.AddHost(t, lab, "a", "192.0.2.1/24", "2001:db8::1/64")
//		...
//	}
//
// Tests skip, with the reason, where labs cannot be built (not root).
package labtest

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/bwxchange/bwx/shared/labnet"
)

// removeStale runs once per test binary: it clears labs left by test
// processes that crashed or were killed on timeout. Labs of live processes
// are not touched, so tests of other packages running at the same time are
// safe.
var removeStale = sync.OnceValues(labnet.RemoveStale)

// New creates a lab for the test and closes it when the test and its
// subtests are done, failed or not. It skips the test if the process may
// not create network namespaces, and fails it if the lab cannot be built.
func New(t testing.TB, label string) *labnet.Lab {
	t.Helper()
	if err := labnet.NeedsRoot(); err != nil {
		t.Skip(err)
	}
	if removed, err := removeStale(); len(removed) > 0 || err != nil {
		t.Logf("labtest: removed stale lab namespaces %v (err: %v)", removed, err)
	}
	lab, err := labnet.New(label)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("labtest: close lab %s: %v", lab.Prefix, err)
		}
	})
	return lab
}

// AddHost adds a host with the given addresses (prefixes such as
// "192.0.2.1/24") and fails the test on error.
func AddHost(t testing.TB, lab *labnet.Lab, name string, addrs ...string) *labnet.Host {
	t.Helper()
	ps := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			t.Fatalf("labtest: host %s: %v", name, err)
		}
		ps = append(ps, p)
	}
	h, err := lab.AddHost(name, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
