package registry

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/invalid"
)

// revocations is the set of revoked serials, read from the store once and
// then kept by RevokeCertificate: authentication asks on every call, and a
// call must cost no store read. Revocations are made only through this
// registry (the API's operator call), so the set is complete in the
// arbiter that holds it.
type revocations struct {
	mu      sync.RWMutex
	loaded  bool
	serials map[string]bool
}

// Revoked reports whether the certificate with serial was revoked; it holds
// from the moment RevokeCertificate commits.
func (r *Registry) Revoked(ctx context.Context, serial string) (bool, error) {
	rv := &r.revoked
	rv.mu.RLock()
	loaded, revoked := rv.loaded, rv.serials[serial]
	rv.mu.RUnlock()
	if loaded {
		return revoked, nil
	}
	serials, err := revokedSerials(ctx, r.db)
	if err != nil {
		return false, err
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if !rv.loaded { // a revocation that committed meanwhile is in the store and in rv.serials
		for s := range rv.serials {
			serials[s] = true
		}
		rv.serials, rv.loaded = serials, true
	}
	return rv.serials[serial], nil
}

// RevokeCertificate revokes the certificate with serial from now on and
// returns what is recorded of it. A serial the registry did not sign (an
// operator bundle made from the CA's files) is recorded as revoked. Revoking
// twice keeps the first time.
func (r *Registry) RevokeCertificate(ctx context.Context, serial string) (Certificate, error) {
	if b, err := hex.DecodeString(serial); err != nil || len(b) == 0 || len(b) > 20 {
		return Certificate{}, &invalid.Error{Field: "serial", Msg: fmt.Sprintf("%q is not a certificate serial (hex, at most 20 bytes)", serial)}
	}
	var c Certificate
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := revokeSerial(ctx, tx, serial, store.Micros(r.now())); err != nil {
			return err
		}
		cs, err := certificates(ctx, tx, "WHERE c.serial = ?", serial)
		if err != nil {
			return err
		}
		c = cs[0]
		return nil
	})
	if err != nil {
		return Certificate{}, err
	}
	r.revoked.mu.Lock()
	if r.revoked.serials == nil {
		r.revoked.serials = map[string]bool{}
	}
	r.revoked.serials[serial] = true
	r.revoked.mu.Unlock()
	return c, nil
}

// Certificates lists the certificates recorded for member asn (0: all,
// operators' too), newest first.
func (r *Registry) Certificates(ctx context.Context, asn uint32) ([]Certificate, error) {
	if asn == 0 {
		return certificates(ctx, r.db, "")
	}
	if _, err := getMember(ctx, r.db, asn); err != nil {
		return nil, err
	}
	return certificates(ctx, r.db, "WHERE m.asn = ?", asn)
}
