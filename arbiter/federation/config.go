package federation

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/bwxchange/bwx/shared/config"
	"github.com/bwxchange/bwx/shared/pki"
)

// Config is the federation: section of the arbiter's config.
type Config struct {
	// Name is this exchange's name, as its federation certificate carries
	// it (bwx://exchange/<name>); empty disables federation.
	Name string `yaml:"name"`
	// Listen is where peer exchanges connect (mTLS, their CAs only).
	Listen string `yaml:"listen"`
	// Bundle is this exchange's federation certificate, key and CA
	// (bwx-arbiter ca exchange): served on Listen and presented to peers.
	Bundle string `yaml:"bundle"`
	// MaxOffers bounds the offers held per peer; past it a peer's offers
	// are rejected (and logged) until it removes some.
	MaxOffers int `yaml:"max_offers"`
	// MaxOffersPerSecond bounds how fast a peer's offers and removals are
	// read; past it the peer waits (its stream is read slower).
	MaxOffersPerSecond int `yaml:"max_offers_per_second"`
	// Heartbeat is how often a publisher says "nothing changed"; a peer
	// silent for three of them is taken as down.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Publish is how often the published book is read again when nothing
	// in it woke the publisher (measured quality changes that way).
	Publish time.Duration `yaml:"publish_interval"`
	Peers   []PeerConfig  `yaml:"peers"`
}

// PeerConfig is one peer exchange.
type PeerConfig struct {
	// Name is the peer exchange's name: its certificate must carry
	// bwx://exchange/<name> and chain to CA.
	Name string `yaml:"name"`
	// Address is the peer's federation listener, host:port.
	Address string `yaml:"address"`
	// CA is the peer exchange's CA certificate file, trusted for this peer
	// only (never for members).
	CA string `yaml:"ca"`
	// Bundle, if set, is the certificate this side presents when dialing
	// this peer instead of federation.bundle.
	Bundle string `yaml:"bundle"`
	// InterconnectBps is the capacity of the interconnect to this peer
	// (the link or stretched LAN that carries cross-exchange traffic).
	InterconnectBps int64 `yaml:"interconnect_bps"`
	// AddedLatency is what the interconnect adds to a path through it.
	AddedLatency time.Duration `yaml:"added_latency"`
}

// Defaults of the bounds.
const (
	DefaultMaxOffers          = 100_000
	DefaultMaxOffersPerSecond = 20_000
	DefaultHeartbeat          = 5 * time.Second
	DefaultPublish            = time.Minute
	// MaxPrefixesPerOffer bounds one offer's prefixes.
	MaxPrefixesPerOffer = 256
	// MaxItemsPerUpdate bounds the offers and removals of one message.
	MaxItemsPerUpdate = 1000
	// MaxMessageBytes bounds one message from a peer.
	MaxMessageBytes = 4 << 20
	// MaxAddedLatency bounds peers[].added_latency: more is a typo.
	MaxAddedLatency = 10 * time.Second
)

// DefaultConfig is federation off, with the default bounds.
func DefaultConfig() Config {
	return Config{MaxOffers: DefaultMaxOffers, MaxOffersPerSecond: DefaultMaxOffersPerSecond, Heartbeat: DefaultHeartbeat, Publish: DefaultPublish}
}

// Enabled reports whether this exchange federates.
func (c *Config) Enabled() bool { return c.Name != "" }

// WithDefaults fills the bounds left zero.
func (c Config) WithDefaults() Config {
	if c.MaxOffers == 0 {
		c.MaxOffers = DefaultMaxOffers
	}
	if c.MaxOffersPerSecond == 0 {
		c.MaxOffersPerSecond = DefaultMaxOffersPerSecond
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Publish == 0 {
		c.Publish = DefaultPublish
	}
	return c
}

// Validate names the key of the first bad value (keys under federation.).
func (c *Config) Validate() error {
	if !c.Enabled() {
		if c.Listen != "" || len(c.Peers) > 0 {
			return config.Errorf("federation.name", "required when federation.listen or federation.peers is set (this exchange's name)")
		}
		return nil
	}
	if err := pki.ValidExchangeName(c.Name); err != nil {
		return config.Errorf("federation.name", "%v", err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return config.Errorf("federation.listen", "want host:port, got %q", c.Listen)
	}
	if c.Bundle == "" {
		return config.Errorf("federation.bundle", "required: this exchange's federation certificate (bwx-arbiter ca exchange)")
	}
	switch {
	case c.MaxOffers < 0:
		return config.Errorf("federation.max_offers", "must not be negative, got %d", c.MaxOffers)
	case c.MaxOffersPerSecond < 0:
		return config.Errorf("federation.max_offers_per_second", "must not be negative, got %d", c.MaxOffersPerSecond)
	case c.Heartbeat < 0 || c.Heartbeat > 0 && c.Heartbeat < 100*time.Millisecond:
		return config.Errorf("federation.heartbeat", "want at least 100ms, got %v", c.Heartbeat)
	case c.Publish < 0 || c.Publish > 0 && c.Publish < 100*time.Millisecond:
		return config.Errorf("federation.publish_interval", "want at least 100ms, got %v", c.Publish)
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		k := fmt.Sprintf("federation.peers[%d]", i)
		if err := pki.ValidExchangeName(p.Name); err != nil {
			return config.Errorf(k+".name", "%v", err)
		}
		switch {
		case p.Name == c.Name:
			return config.Errorf(k+".name", "%q is this exchange's own name", p.Name)
		case seen[p.Name]:
			return config.Errorf(k+".name", "%q is listed twice", p.Name)
		case p.CA == "":
			return config.Errorf(k+".ca", "required: the peer exchange's CA certificate file")
		case p.InterconnectBps <= 0:
			return config.Errorf(k+".interconnect_bps", "must be positive (bits/s), got %d", p.InterconnectBps)
		case p.AddedLatency < 0 || p.AddedLatency > MaxAddedLatency:
			return config.Errorf(k+".added_latency", "want 0 to %v, got %v", MaxAddedLatency, p.AddedLatency)
		}
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			return config.Errorf(k+".address", "want host:port, got %q", p.Address)
		}
		seen[p.Name] = true
	}
	return nil
}

// LoadCAFile reads a peer's CA certificates (PEM): at least one, each a CA.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("%s: certificate %q is not a CA certificate", path, c.Subject.CommonName)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New(path + ": no CA certificate (PEM) in it")
	}
	return pool, nil
}
