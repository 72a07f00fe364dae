package fib

import (
	"fmt"
	"net/netip"
)

// Result says what one Sync (or repair, or SetNextHopDown) did. Lists are
// sorted by prefix.
type Result struct {
	// Added are routes that were missing and are now installed.
	Added []Route
	// Changed are routes of ours whose next hops were replaced in place
	// (IPv4: the route replaced; IPv6: its next-hop group's members), so
	// the prefix never lacked a route. An IPv6 route found with its next
	// hops in the route itself, or on a group that is not its own, is
	// changed once onto a group of its own (Old and New are then alike).
	Changed []Change
	// Removed are routes of ours that are no longer wanted, or whose every
	// next hop is unusable.
	Removed []Route
	// Refused are next hops, or whole routes, that were not installed, and
	// why. A route with some usable next hops is installed with those and
	// the others are listed here.
	Refused []Refusal
	// Failed are kernel errors; Sync's error joins them.
	Failed []Failure
}

// Changes is the number of kernel changes made.
func (r Result) Changes() int { return len(r.Added) + len(r.Changed) + len(r.Removed) }

// Change is a route replaced in place.
type Change struct{ Old, New Route }

// Reason is why a next hop or route was refused.
type Reason string

const (
	// ReasonOffLink: the next hop is not in a subnet of the exchange
	// interface's addresses.
	ReasonOffLink Reason = "off-link"
	// ReasonInterfaceDown: the exchange interface is down.
	ReasonInterfaceDown Reason = "interface-down"
	// ReasonOwnAddress: the next hop is one of the interface's own addresses.
	ReasonOwnAddress Reason = "own-address"
	// ReasonNeighborFailed: the kernel's neighbor entry for the next hop is
	// FAILED (it did not answer ARP/ND).
	ReasonNeighborFailed Reason = "neighbor-failed"
	// ReasonDown: SetNextHopDown marked the next hop down.
	ReasonDown Reason = "next-hop-down"
	// ReasonNoNextHop: no next hop of the route is usable; the route is
	// not installed and traffic takes the member's normal path.
	ReasonNoNextHop Reason = "no-usable-next-hop"
	// ReasonConflict: a route of another protocol holds the same prefix
	// and metric in our table. It is never replaced.
	ReasonConflict Reason = "conflict"
	// ReasonInvalid: the desired route itself is bad (an invalid or
	// unmasked prefix, a next hop of the other family or not unicast, a
	// prefix listed twice). It alone is refused; Detail names it.
	ReasonInvalid Reason = "invalid"
)

// Refusal is a next hop (or, with NextHop unset, a whole route) that was
// not installed.
type Refusal struct {
	Prefix  netip.Prefix
	NextHop netip.Addr // zero: the whole route
	Reason  Reason
	Detail  string
}

func (r Refusal) String() string {
	if r.NextHop.IsValid() {
		return fmt.Sprintf("%v next hop %v refused (%s): %s", r.Prefix, r.NextHop, r.Reason, r.Detail)
	}
	return fmt.Sprintf("%v refused (%s): %s", r.Prefix, r.Reason, r.Detail)
}

// Failure is a kernel error on one route.
type Failure struct {
	Route Route
	Op    string // "add", "replace" or "delete"
	Err   error
}

func (f Failure) Error() string { return fmt.Sprintf("fib: %s %v: %v", f.Op, f.Route, f.Err) }

// Stats are counters since New, for Prometheus CounterFuncs.
type Stats struct {
	Syncs    uint64 // reconciliations run (Sync, repairs, next-hop changes)
	Repairs  uint64 // reconciliations started by Watch that changed something
	Installs uint64 // routes added
	Replaces uint64 // routes replaced in place
	Removals uint64 // routes deleted
	Refusals uint64 // next hops or routes refused (counted per reconciliation)
	Errors   uint64 // kernel errors (per route) and failed reconciliations
}
