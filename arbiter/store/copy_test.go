package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

// populated is a sqlite store with rows in every table: extremes (the
// largest ASN, negative amounts, NULLs, quotes and non-ASCII text) and
// enough orders to fill more than one COPY buffer.
func populated(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bwx.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{
		"INSERT INTO members (id, asn, name, created_us, membership, membership_us) VALUES (1, 64501, 'seller ''quoted''', 1, 'active', NULL), (2, 4294967295, 'bÜyer ✓', 2, 'suspended', 5), (7, 64510, 'x', 3, 'active', NULL)",
		"INSERT INTO ports (id, member_id, name, capacity_bps) VALUES (1, 1, 'swp1', 10000000000), (3, 2, 'swp2', 9223372036854775807)",
		"INSERT INTO routers (member_id, address) VALUES (1, '192.0.2.1'), (1, '2001:db8::1'), (2, '192.0.2.2')",
		"INSERT INTO prefixes (member_id, prefix, route_type, origin_asn, allowed_buyers) VALUES (1, '198.51.100.0/24', 1, 64501, '4294967295'), (1, '2001:db8:100::/48', 2, 64501, '')",
		"INSERT INTO certificates (serial, member_id, identity, not_after_us, created_us, revoked_us) VALUES ('0a', 1, 'AS64501', 10, 1, NULL), ('0B', NULL, 'operator', 10, 1, 7)",
		"INSERT INTO announced_routes (member_asn, neighbor, prefix, next_hop, as_path, origin_asn, accepted, reason, since_us) VALUES (64501, '192.0.2.1', '198.51.100.0/24', '192.0.2.1', '64501', 64501, 1, '', 1), (64501, '192.0.2.1', '10.0.0.0/8', '192.0.2.1', '64501 64502', 64502, 0, 'not registered', 1), (64501, '2001:db8::1', 'Z', '', '', 1, 0, 'z', 1)",
		"INSERT INTO irr_routes (source, prefix, origin, mnt_by) VALUES ('RIPE', '198.51.100.0/24', 64501, 'MNT-A')",
		"INSERT INTO rpki_roas (prefix, max_length, asn, ta) VALUES ('198.51.100.0/24', 24, 0, 'ripe')",
		"INSERT INTO registry_imports (kind, source, files, started_us, finished_us, objects, malformed, accepted, previous, error) VALUES ('irr', 'RIPE', 'a.db', 1, 2, 3, 1, 1, 0, ''), ('rpki', 'roas', 'b.json', 1, 2, 0, 0, 0, 1, 'bad \"json\"')",
		"INSERT INTO credit_limits (member_id, limit_micros, updated_us) VALUES (2, 5000000, 1)",
		"INSERT INTO measurements (source, reporter_id, idempotency_key, via_id, prefix, target, measured_us, latency_us, jitter_us, loss_ppm, as_hops, ip_hops, probes_sent) VALUES ('agent', 2, 'k1', 1, '198.51.100.0/24', '198.51.100.1', 5, 1000, 10, 0, 1, 3, 10), ('atlas', NULL, 'k1', 1, '198.51.100.0/24', '198.51.100.1', 6, 2000, 20, 1000000, 2, 4, 3)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// 3000 orders (one COPY of several buffers), 1500 trades and events.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= 3000; i++ {
		side, member := int64(1+i%2), int64(1+i%2)
		var dest any = "198.51.100.0/24"
		var origin any
		if i%7 == 0 {
			dest, origin = nil, int64(64501)
		}
		if _, err := tx.Exec(`INSERT INTO orders (id, member_id, client_order_id, side, dest_prefix, dest_origin_asn, protocol, capacity_bps, min_block_bps,
			price_micros, max_latency_us, traffic_type, start_us, end_us, order_type, priority, status, filled_bps, created_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, 1, 1000000000, 1000000, ?, ?, 1, 0, 3600000000, 1, ?, 3, 1000000000, ?, ?)`,
			i*2, member, fmt.Sprintf("c%d%s", i, strings.Repeat("'", int(i%3))), side, dest, origin, i*1000, nil, i, i, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(1); i <= 1500; i++ {
		if _, err := tx.Exec(`INSERT INTO trades (id, buy_order_id, sell_order_id, buyer_id, seller_id, prefixes, protocol, capacity_bps, price_micros,
			start_us, end_us, created_us, latency_us, end_reason) VALUES (?, ?, ?, 2, 1, '198.51.100.0/24', 1, 1000000, -5, 0, 3600000000, ?, ?, ?)`,
			i, i*4, i*4-2, i, i%3, map[bool]any{true: "member removed", false: nil}[i%100 == 0]); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO events (seq, member_id, type, trade_id, created_us, detail, dedup) VALUES (?, 2, 1, ?, ?, NULL, NULL)`, i*3, i, i); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		"INSERT INTO events (seq, member_id, type, created_us, detail, dedup) VALUES (99999, 1, 11, 1, '{\"a\":1}', 'credit-1')",
		"INSERT INTO usage_samples (reporter_id, idempotency_key, trade_id, role, start_us, end_us, bps, sample_count) VALUES (2, 'u1', 1, 1, 0, 60000000, 500000, 60)",
		"INSERT INTO settlement_runs (id, period_start_us, period_end_us, seq, policy, exchange, created_us) VALUES (1, 0, 10, 0, 'buyer', '{}', 11)",
		"INSERT INTO invoices (run_id, member_id, period_start_us, net_micros, document) VALUES (1, 2, 0, -1500, '{\"lines\":[]}')",
		"INSERT INTO ledger (run_id, member_id, period_start_us, trade_id, kind, amount_micros, memo, created_us) VALUES (1, 2, 0, 1, 1, -1500, '', 11), (1, NULL, 0, NULL, 4, 1500, 'fee', 11)",
		"INSERT INTO settlement_disputes (run_id, trade_id, slot_us, buyer_bps, buyer_samples, seller_bps, seller_samples, used_bps, policy) VALUES (1, 1, 0, 1, 2, 3, 4, 1, 'buyer')",
		"INSERT INTO deliveries (trade_id, session, from_us, to_us, delivered, reason, cause) VALUES (1, '192.0.2.2', 0, 5, 1, '', ''), (1, '192.0.2.2', 5, NULL, 0, 'withdrawn', 'seller')",
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return db, path
}

func TestCopyToPostgres(t *testing.T) {
	src, path := populated(t)
	target := storetest.PostgresConfig(t, false)
	ctx := context.Background()

	var seen []string
	copied, err := store.CopyToPostgres(ctx, path, target.DSN, func(c store.TableCopy) { seen = append(seen, c.Table) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(copied) {
		t.Fatalf("progress saw %d tables, result has %d", len(seen), len(copied))
	}
	dst, err := store.OpenConfig(target)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// Every table of the schema was copied, none is empty in this fixture
	// (a new table must be added to it), and the counts agree.
	byTable := map[string]store.TableCopy{}
	for _, c := range copied {
		byTable[c.Table] = c
	}
	rows, err := src.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) != len(copied) {
		t.Fatalf("sqlite has %d tables, %d copied", len(tables), len(copied))
	}
	for _, tb := range tables {
		var want, got int64
		src.QueryRow("SELECT count(*) FROM " + tb).Scan(&want)
		if err := dst.QueryRow("SELECT count(*) FROM " + tb).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want == 0 || got != want || byTable[tb].Rows != want || len(byTable[tb].Checksum) != 64 {
			t.Errorf("%s: sqlite %d rows, postgres %d, reported %+v", tb, want, got, byTable[tb])
		}
	}
	// Values survive exactly: the extremes, NULLs and text.
	var name string
	var capacity int64
	if err := dst.QueryRow("SELECT m.name, p.capacity_bps FROM members m JOIN ports p ON p.member_id = m.id WHERE m.asn = ?", int64(4294967295)).Scan(&name, &capacity); err != nil || name != "bÜyer ✓" || capacity != 9223372036854775807 {
		t.Fatalf("member AS4294967295: %q %d %v", name, capacity, err)
	}
	var nulls int
	dst.QueryRow("SELECT count(*) FROM orders WHERE dest_prefix IS NULL AND dest_origin_asn = 64501 AND max_latency_us IS NULL").Scan(&nulls)
	if nulls != 3000/7 {
		t.Errorf("%d orders with NULL destination prefix, want %d", nulls, 3000/7)
	}
	// The identity sequences continue after the copied ids.
	var id int64
	if err := dst.QueryRow("INSERT INTO members (asn, name, created_us) VALUES (64999, 'new', 1) RETURNING id").Scan(&id); err != nil || id != 8 {
		t.Fatalf("new member id %d, %v; want 8 (after the copied 7)", id, err)
	}
	// The append-only rules hold on the copy.
	if _, err := dst.Exec("DELETE FROM ledger"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("deleting the copied ledger: %v", err)
	}

	// A target in use is refused, and left as it was.
	if _, err := store.CopyToPostgres(ctx, path, target.DSN, nil); err == nil || !strings.Contains(err.Error(), "already has") {
		t.Fatalf("copy into a non-empty target: %v", err)
	}
	var members int
	dst.QueryRow("SELECT count(*) FROM members").Scan(&members)
	if members != 4 {
		t.Fatalf("refused copy changed the target: %d members", members)
	}
}

// A copy that fails half-way leaves the target empty: one transaction.
func TestCopyToPostgresAllOrNothing(t *testing.T) {
	src, path := populated(t)
	// A value PostgreSQL's schema refuses (sqlite let it in: a text in an
	// integer column without a CHECK): that table's copy fails.
	if _, err := src.Exec("INSERT INTO registry_imports (kind, source, files, started_us, finished_us, objects, malformed, accepted, previous) VALUES ('irr', 'X', 'x', 1, 2, 'many', 0, 0, 0)"); err != nil {
		t.Fatal(err)
	}
	target := storetest.PostgresConfig(t, false)
	if _, err := store.CopyToPostgres(context.Background(), path, target.DSN, nil); err == nil {
		t.Fatal("copy of a bad value succeeded")
	}
	dst, err := store.OpenConfig(target)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	var n int
	if err := dst.QueryRow("SELECT count(*) FROM members").Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed copy left %d members, %v", n, err)
	}
}
