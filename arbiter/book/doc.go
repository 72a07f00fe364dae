// Package book is the order database and the matching engine. It knows
// nothing of gRPC or BGP: orders and trades are plain values, and every
// change happens in one store transaction.
//
// It owns the orders, trades and events tables (see arbiter/store): all
// their SQL is here, each table's in the file named for it, and the other
// packages call the functions there.
//
// The files:
//
//	order.go        orders: sides, protocols, destinations, specs, validation
//	engine.go       the in-memory engine: indexes, place, cancel, modify, expire
//	match.go        matching: candidates, what each can fill, the fills, and
//	                the order terms a sell must meet to serve a buy
//	rank.go         how candidates are ranked (price, quality, weighted)
//	wake.go         what time makes tradable: resting orders matched again
//	curve.go        the load on each port over time
//	quality.go      measured path quality: the matrix adapter, what a trade
//	                records, whether limits are met
//	book.go         Book: the engine serialized, its operations and reads
//	commit.go       the commit queue: changes queued in engine order, group
//	                commits, recovery from a failed commit, the snapshot
//	                loaded at start
//	credit.go       the credit check on buys (Options.CreditCheck), before and
//	                under the book's lock
//	events.go       the members' event logs: reads, settlement's notices
//	commit_sql.go   the committer's batched multi-row statements
//	orders_sql.go   trades_sql.go   events_sql.go
//	                each table's SQL: the commit's writes, the book's reads,
//	                and the reads other packages call
//	members.go      the registry as matching needs it (through registry)
package book
