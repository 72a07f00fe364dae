// Package probe measures path quality toward destination prefixes through
// each seller separately (claim 6: test messages through the member
// networks).
//
// Paths gives every seller a routing table whose default route (IPv4 and
// IPv6) points at that seller's router on the exchange interface, and an
// fwmark rule per table; it loosens rp_filter on that interface, since
// strict reverse-path filtering drops the replies. Prober sends ICMP echo
// requests carrying a seller's mark at a bounded number of targets per
// minute and folds the replies into a Measurement per (seller, prefix):
// latency, jitter, loss, IP hops. Targets come from configuration or from
// the addresses the capture saw most in each prefix (SelectTargets).
package probe
