package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/invalid"
)

// MemberStatus is where a member stands with the exchange.
//
//   - Active: it trades.
//   - Suspended: its resting orders are cancelled and every new commitment
//     (orders, measurements, breach reports) is refused until it is resumed;
//     it reads as before, and its trades run to their end, since they are
//     contracts its counterparties rely on.
//   - Removed: it left. Every certificate of it is revoked, its orders are
//     cancelled and its trades end at the removal. The member stays on
//     record (invoices and the ledger refer to it) and can never be resumed.
type MemberStatus int

const (
	Active    MemberStatus = 1
	Suspended MemberStatus = 2
	Removed   MemberStatus = 3
)

var statusNames = map[MemberStatus]string{Active: "active", Suspended: "suspended", Removed: "removed"}

func (s MemberStatus) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("MemberStatus(%d)", int(s))
}

func parseStatus(s string) (MemberStatus, error) {
	for st, n := range statusNames {
		if n == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("stored member status %q", s)
}

// StandingError is a member that may not do what it asked because it is
// suspended or was removed.
type StandingError struct {
	ASN    uint32
	Status MemberStatus
}

func (e *StandingError) Error() string {
	if e.Status == Removed {
		return fmt.Sprintf("member AS%d was removed from the exchange", e.ASN)
	}
	return fmt.Sprintf("member AS%d is %v", e.ASN, e.Status)
}

// MaxReasonLength bounds the reason given for a suspension or removal.
const MaxReasonLength = 500

// standings is every member that is not active, read from the store once
// and then kept by SetStatus: the check runs on every order, so it must
// cost no store read. Status changes are made only through this registry
// (the API's operator calls), so the set is complete in the arbiter that
// holds it.
type standings struct {
	mu     sync.RWMutex
	loaded bool
	status map[uint32]MemberStatus
}

// CheckActive returns a *StandingError if member asn is suspended or was
// removed, nil if it is active (or not a member: that is for the caller's
// own lookup to say).
func (r *Registry) CheckActive(ctx context.Context, asn uint32) error {
	st := &r.standing
	st.mu.RLock()
	loaded, s := st.loaded, st.status[asn]
	st.mu.RUnlock()
	if !loaded {
		if err := r.loadStandings(ctx); err != nil {
			return err
		}
		st.mu.RLock()
		s = st.status[asn]
		st.mu.RUnlock()
	}
	if s == 0 || s == Active {
		return nil
	}
	return &StandingError{ASN: asn, Status: s}
}

func (r *Registry) loadStandings(ctx context.Context) error {
	m, err := inactiveMembers(ctx, r.db)
	if err != nil {
		return err
	}
	st := &r.standing
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.loaded { // a change that committed meanwhile is in the store and in st.status
		for a, s := range st.status {
			m[a] = s
		}
		st.status, st.loaded = m, true
	}
	return nil
}

func (r *Registry) keepStanding(asn uint32, s MemberStatus) {
	st := &r.standing
	st.mu.Lock()
	if st.status == nil {
		st.status = map[uint32]MemberStatus{}
	}
	st.status[asn] = s
	st.mu.Unlock()
}

// ErrRemoved refuses a change to a member that was removed: removal is
// final.
var ErrRemoved = errors.New("was removed from the exchange: removal is final")

func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if len(reason) > MaxReasonLength {
		return "", invalid.New("reason", "longer than %d characters", MaxReasonLength)
	}
	return reason, nil
}

// Suspend suspends member asn from now on, with reason. Suspending a
// suspended member changes nothing (the first reason and time stay). The
// order book's part (cancelling the resting orders) is the caller's: the
// book refuses the member's orders from the moment this returns.
func (r *Registry) Suspend(ctx context.Context, asn uint32, reason string) (Member, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return Member{}, err
	}
	return r.setStatus(ctx, asn, Suspended, reason, nil)
}

// Resume makes a suspended member active again; resuming an active member
// changes nothing. A removed member cannot be resumed.
func (r *Registry) Resume(ctx context.Context, asn uint32) (Member, error) {
	return r.setStatus(ctx, asn, Active, "", nil)
}

// Remove marks member asn removed and revokes every certificate of it, in
// one transaction: from the moment it returns every call with any of them
// is refused. It returns the serials it revoked now. Removing a removed
// member changes nothing but revokes a certificate recorded since (so a
// removal that failed half-way in the order book can be run again).
func (r *Registry) Remove(ctx context.Context, asn uint32, reason string) (Member, []string, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return Member{}, nil, err
	}
	var serials []string
	m, err := r.setStatus(ctx, asn, Removed, reason, func(tx *sql.Tx, m Member, now int64) error {
		var err error
		serials, err = revokeMemberCerts(ctx, tx, m.ID, now)
		return err
	})
	if err != nil {
		return Member{}, nil, err
	}
	r.revoked.mu.Lock()
	if r.revoked.serials == nil {
		r.revoked.serials = map[string]bool{}
	}
	for _, s := range serials {
		r.revoked.serials[s] = true
	}
	r.revoked.mu.Unlock()
	return m, serials, nil
}

// setStatus moves asn to status `to` (with also, if set, in the same
// transaction) and keeps the new status for CheckActive once committed.
func (r *Registry) setStatus(ctx context.Context, asn uint32, to MemberStatus, reason string, also func(tx *sql.Tx, m Member, now int64) error) (Member, error) {
	var m Member
	err := r.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if m, err = getMember(ctx, tx, asn); err != nil {
			return err
		}
		if m.Status == Removed && to != Removed {
			return fmt.Errorf("member AS%d %w", asn, ErrRemoved)
		}
		now := r.now().UTC().Truncate(time.Microsecond)
		if m.Status != to {
			if err := updateStatus(ctx, tx, m.ID, to, reason, now); err != nil {
				return err
			}
			m.Status, m.StatusReason, m.StatusSince = to, reason, now
		}
		if also != nil {
			return also(tx, m, store.Micros(now))
		}
		return nil
	})
	if err != nil {
		return Member{}, err
	}
	r.keepStanding(asn, m.Status)
	return m, nil
}
