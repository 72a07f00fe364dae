// Package labnet builds small, disposable exchange LANs out of Linux network
// namespaces for the bwx lab command and integration tests.
//
// A [Lab] consists of a "trading switch" namespace (<prefix>-sw) holding a
// Linux bridge br0, and any number of hosts (arbiter, members, probes...),
// each in its own namespace (<prefix>-<name>) and joined to the switch by a
// veth pair: eth0 inside the host, <name> (truncated to 15 characters) as a
// bridge port inside the switch namespace.
//
//	lab, err := labnet.New("peering")
//	if err != nil { ... }
//	defer lab.Close()
//	a, err := lab.AddHost("arbiter", netip.MustParsePrefix("192.0.2.1/24"),
//		netip.MustParsePrefix("2001:db8::1/64"))
//	p, err := a.Start(ctx, "/tmp/bird.log", "bird", "-f", "-c", conf)
//	err = a.Ping(ctx, netip.MustParseAddr("192.0.2.2"))
//
// Every lab picks a random prefix ("bx" + 6 hex digits) so labs of tests that
// run in parallel, in one process or many, never collide. The prefix is
// reserved by a lock file under /run/bwx-labnet that the owning process holds
// (flock) for the lab's lifetime; [RemoveStale] uses it to tell labs of
// crashed processes from live ones.
//
// [Lab.Close] stops the processes started with [Host.Start] (SIGTERM to the
// process group, SIGKILL after a grace period), kills anything else still
// running inside the lab's namespaces, and deletes the namespaces, which
// removes the veths and the bridge.
//
// Everything needs root (CAP_SYS_ADMIN); see [NeedsRoot] and the labtest
// subpackage for tests.
package labnet
