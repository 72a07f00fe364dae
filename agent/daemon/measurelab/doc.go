// Package measurelab holds the agent's measuring lab tests (issue 6): real
// packets in network namespaces, the agent's capture, probes and report
// spool against an in-process arbiter. A package of its own so the lab runs
// in its own test binary beside agent/daemon's.
package measurelab
