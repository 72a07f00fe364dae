// Package manager is the access manager's decision logic (claims 23-25): from
// measured demand (capture figures), path quality (probe rounds), the market
// (offers, own orders and trades) and the member's port it decides what to
// buy, renew, let lapse, cancel and sell, and where each destination's
// traffic should go, with hysteresis, hold-downs and a cap on changes so
// that noisy measurements do not make it flap.
//
// It is pure: no gRPC, BGP or netlink; its one I/O is the journal file
// (journalfile.go). The daemon drives it each round:
//
//	m.AddDemand(...)              // each capture interval's figures, MAC mapped to seller ASN
//	m.AddQuality(...)             // each probe round, the default path as seller 0
//	for _, d := range m.Wanted(now) { ListOffers(d.Prefix) }
//	for _, d := range m.Step(Inputs{Now, Offers, Orders, Trades, Port}) {
//		log d; carry out d.Intents in order; on an RPC error m.Failed(clientOrderID, now, err)
//	}
//	AppendJournalFile(path, m.Journal().Since(lastPersisted), size)
//	on start: m.Restore(ReadJournalFile(path, size))
//
// In shadow mode the same decisions are made and journaled, marked Shadow,
// with no intents: what would have been bought, at what price, and what it
// would have gained and saved (Summarize totals it).
//
// Units: bandwidth in bits/s, money in micro-units, prices per Mbps per
// month, latency and jitter in microseconds, loss in parts per million,
// times UTC. Seller 0 (DefaultPath) stands for the member's own path.
package manager
