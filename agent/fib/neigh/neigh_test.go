package neigh

import (
	"testing"

	"github.com/vishvananda/netlink"
)

// StateName's first set bit wins, in the order the kernel's states are
// worst to best news: FAILED before any other.
func TestStateName(t *testing.T) {
	for _, c := range []struct {
		s    int
		want string
	}{
		{0, "none"},
		{netlink.NUD_FAILED | netlink.NUD_REACHABLE, "failed"},
		{netlink.NUD_REACHABLE, "reachable"},
		{netlink.NUD_STALE | netlink.NUD_PERMANENT, "stale"},
		{netlink.NUD_DELAY, "delay"},
		{netlink.NUD_PROBE, "probe"},
		{netlink.NUD_INCOMPLETE, "incomplete"},
		{netlink.NUD_PERMANENT | netlink.NUD_NOARP, "permanent"},
		{netlink.NUD_NOARP, "noarp"},
	} {
		if got := StateName(c.s); got != c.want {
			t.Errorf("StateName(%#x) = %q, want %q", c.s, got, c.want)
		}
	}
}
