package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
)

// The members table's SQL. A member is read with its port (a join for the
// key) and its routers (routers_sql.go).

// GetMember reads a member inside the caller's transaction.
func GetMember(ctx context.Context, q Querier, asn uint32) (Member, error) {
	return getMember(ctx, q, asn)
}

func getMember(ctx context.Context, q Querier, asn uint32) (Member, error) {
	m := Member{ASN: asn}
	var created int64
	var status string
	var since sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT m.id, m.name, m.created_us, p.id, p.name, p.capacity_bps, m.membership, m.membership_reason, m.membership_us
		FROM members m JOIN ports p ON p.member_id = m.id WHERE m.asn = ?`, asn).
		Scan(&m.ID, &m.Name, &created, &m.Port.ID, &m.Port.Name, &m.Port.CapacityBps, &status, &m.StatusReason, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return Member{}, fmt.Errorf("member AS%d: %w", asn, ErrNotFound)
	}
	if err != nil {
		return Member{}, err
	}
	m.Created = store.Time(created)
	if m.Status, err = parseStatus(status); err != nil {
		return Member{}, fmt.Errorf("member AS%d: %w", asn, err)
	}
	if since.Valid {
		m.StatusSince = store.Time(since.Int64)
	}
	if m.Routers, err = routersOf(ctx, q, m.ID); err != nil {
		return Member{}, err
	}
	return m, nil
}

func insertMember(ctx context.Context, tx *sql.Tx, m Member) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, "INSERT INTO members (asn, name, created_us) VALUES (?, ?, ?) RETURNING id", m.ASN, m.Name, store.Micros(m.Created)).Scan(&id)
	return id, err
}

func memberASNs(ctx context.Context, q Querier) ([]uint32, error) {
	rows, err := q.QueryContext(ctx, "SELECT asn FROM members ORDER BY asn")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var asns []uint32
	for rows.Next() {
		var a uint32
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		asns = append(asns, a)
	}
	return asns, rows.Err()
}

// MemberIDOf is asn's member id, 0 if asn is not a member.
func MemberIDOf(ctx context.Context, q Querier, asn uint32) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, "SELECT id FROM members WHERE asn = ?", asn).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// MemberASN is the ASN of the member with id.
func MemberASN(ctx context.Context, q Querier, id int64) (uint32, error) {
	var asn uint32
	err := q.QueryRowContext(ctx, "SELECT asn FROM members WHERE id = ?", id).Scan(&asn)
	return asn, err
}

// MemberPort is a member's id and ASN with its port, as matching needs them.
type MemberPort struct {
	ID, PortID  int64
	ASN         uint32
	CapacityBps int64
}

// MemberPorts lists every member with its port.
func MemberPorts(ctx context.Context, q Querier) ([]MemberPort, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.id, m.asn, p.id, p.capacity_bps FROM members m JOIN ports p ON p.member_id = m.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MemberPort
	for rows.Next() {
		var m MemberPort
		if err := rows.Scan(&m.ID, &m.ASN, &m.PortID, &m.CapacityBps); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// inactiveMembers is every member that is not active, with its status.
func inactiveMembers(ctx context.Context, q Querier) (map[uint32]MemberStatus, error) {
	rows, err := q.QueryContext(ctx, "SELECT asn, membership FROM members WHERE membership <> 'active'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[uint32]MemberStatus{}
	for rows.Next() {
		var asn uint32
		var s string
		if err := rows.Scan(&asn, &s); err != nil {
			return nil, err
		}
		if m[asn], err = parseStatus(s); err != nil {
			return nil, err
		}
	}
	return m, rows.Err()
}

func updateStatus(ctx context.Context, tx *sql.Tx, id int64, to MemberStatus, reason string, now time.Time) error {
	_, err := tx.ExecContext(ctx, "UPDATE members SET membership = ?, membership_reason = ?, membership_us = ? WHERE id = ?",
		to.String(), reason, store.Micros(now), id)
	return err
}
