// Package federation lets exchanges share their order books (claim 26):
// each arbiter publishes its open sell orders to the peer exchanges it is
// configured with, and keeps a live view of theirs, which matching will
// query (View.Toward) for remote offers toward a destination.
//
// It knows nothing of gRPC: the Publisher turns the book's open sells into
// a snapshot and a numbered stream of changes, the View applies what a
// peer sends (validated and bounded: a peer cannot make it grow without
// limit), and the TLS configuration admits only a configured peer, by its
// own CA and the exchange name in its certificate. arbiter/federation/wire
// carries both over gRPC.
//
// Offers in the view are never published again: the Publisher reads the
// local book only, so books are shared between peers, never passed on.
package federation
