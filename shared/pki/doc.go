// Package pki implements the bwx certificate authority and the identities
// carried in client certificates.
//
// Every participant authenticates with mutual TLS. A member or operator is
// identified by exactly one URI subject alternative name in its certificate:
//
//	bwx://member/<ASN>       e.g. bwx://member/64500
//	bwx://operator/<name>    e.g. bwx://operator/alice
//
// The CA lives in a directory holding ca.crt, ca.key and the arbiter's server
// certificate (server.crt, server.key). Agents and operators use a single PEM
// "bundle" file holding their certificate, private key and the CA certificate.
package pki
