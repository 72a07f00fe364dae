package pki

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/bwxchange/bwx/shared/clock"
)

// ServerTLS returns a TLS 1.3 server configuration presenting cert and
// requiring a client certificate verified against clientCAs. Use
// PeerIdentity on the connection state to learn who the client is.
func ServerTLS(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		Time:         clock.Now, // certificates are checked by the clock that issued them
	}
}

// ClientTLS returns a TLS 1.3 client configuration presenting the bundle's
// certificate and trusting only the bundle's CAs. serverName must match a
// SAN of the server certificate (an IP address or DNS name).
func ClientTLS(b *Bundle, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.Certificate},
		RootCAs:      b.CAs,
		ServerName:   serverName,
		Time:         clock.Now,
	}
}
