package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Suspension and removal: the status is recorded with its reason and time,
// CheckActive answers from memory at once, removal revokes every
// certificate of the member in the same step and is final.
func TestMemberStatus(t *testing.T) {
	r, db := openRegistry(t)
	ctx := context.Background()
	if _, err := r.AddMember(ctx, validMember(64501), func() (Certificate, error) {
		return Certificate{Serial: "0a", Identity: "bwx://member/AS64501", NotAfter: now.AddDate(1, 0, 0)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordCertificate(ctx, 64501, Certificate{Serial: "0b", Identity: "bwx://member/AS64501", NotAfter: now.AddDate(1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckActive(ctx, 64501); err != nil {
		t.Fatalf("new member: %v", err)
	}
	if _, err := r.Suspend(ctx, 64501, strings.Repeat("x", MaxReasonLength+1)); err == nil {
		t.Fatal("an overlong reason was accepted")
	} else {
		wantInvalid(t, err, "reason")
	}
	if _, err := r.Suspend(ctx, 64999, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("suspend an unknown member: %v", err)
	}
	m, err := r.Suspend(ctx, 64501, " unpaid ")
	if err != nil || m.Status != Suspended || m.StatusReason != "unpaid" || !m.StatusSince.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("suspend: %+v %v", m, err)
	}
	var se *StandingError
	if err := r.CheckActive(ctx, 64501); !errors.As(err, &se) || se.Status != Suspended || err.Error() != "member AS64501 is suspended" {
		t.Fatalf("CheckActive of a suspended member: %v", err)
	}
	// A second registry over the same store reads the status from it.
	if err := New(db).CheckActive(ctx, 64501); !errors.As(err, &se) {
		t.Fatalf("CheckActive from the store: %v", err)
	}
	if got, _ := r.Member(ctx, 64501); got.Status != Suspended || got.StatusReason != "unpaid" {
		t.Errorf("stored member: %+v", got)
	}
	if m, err = r.Resume(ctx, 64501); err != nil || m.Status != Active || r.CheckActive(ctx, 64501) != nil {
		t.Fatalf("resume: %+v %v", m, err)
	}

	m, serials, err := r.Remove(ctx, 64501, "left")
	if err != nil || m.Status != Removed || strings.Join(serials, ",") != "0a,0b" {
		t.Fatalf("remove: %+v %v %v", m, serials, err)
	}
	for _, s := range serials {
		if revoked, err := r.Revoked(ctx, s); err != nil || !revoked {
			t.Errorf("certificate %s after the removal: revoked %v %v", s, revoked, err)
		}
	}
	if err := r.CheckActive(ctx, 64501); !errors.As(err, &se) || se.Status != Removed {
		t.Fatalf("CheckActive of a removed member: %v", err)
	}
	for what, err := range map[string]error{
		"resume":      second(r.Resume(ctx, 64501)),
		"suspend":     second(r.Suspend(ctx, 64501, "")),
		"certificate": r.RecordCertificate(ctx, 64501, Certificate{Serial: "0c", Identity: "bwx://member/AS64501", NotAfter: now.AddDate(1, 0, 0)}),
	} {
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("%s of a removed member: %v, want ErrRemoved", what, err)
		}
	}
	// Removing again revokes nothing more; the member stays on record.
	if m, serials, err = r.Remove(ctx, 64501, "again"); err != nil || len(serials) != 0 || m.StatusReason != "left" {
		t.Errorf("remove again: %+v %v %v", m, serials, err)
	}
	if ms, _ := r.Members(ctx); len(ms) != 1 || ms[0].Status != Removed {
		t.Errorf("members: %+v", ms)
	}
}

func second[T any](_ T, err error) error { return err }
