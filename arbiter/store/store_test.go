package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/clock"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func TestOpenIsWALWithForeignKeys(t *testing.T) {
	if storetest.Dialect() != store.SQLite {
		t.Skip("sqlite's settings; TestRefusesDanglingReference runs on postgres")
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "bwx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var mode string
	var fk int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
	}
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

func TestRefusesDanglingReference(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	// A dangling reference must be refused.
	_, err := db.ExecContext(ctx, "INSERT INTO ports (member_id, name, capacity_bps) VALUES (999, 'p', 1)")
	if !store.IsForeignKey(err) {
		t.Fatalf("insert with dangling member_id: err = %v, want a foreign key error", err)
	}
	if v, _ := db.Version(ctx); v != store.Latest() {
		t.Fatalf("version = %d, want %d", v, store.Latest())
	}
}

func TestMigratesOldDatabaseKeepingData(t *testing.T) {
	cfg := storetest.EmptyConfig(t)
	old, err := store.OpenConfigVersion(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := old.ExecContext(ctx, "INSERT INTO members (id, asn, name, created_us) VALUES (1, 64500, 'old-net', 1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, "INSERT INTO ports (member_id, name, capacity_bps) VALUES (1, 'swp1', 10000000000)"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, "SELECT 1 FROM orders"); err == nil {
		t.Fatal("a version-1 database already has the orders table")
	}
	old.Close()

	db, err := store.OpenConfig(cfg)
	if err != nil {
		t.Fatalf("migrating a version-1 database: %v", err)
	}
	defer db.Close()
	if v, _ := db.Version(ctx); v != store.Latest() {
		t.Fatalf("after migration version = %d, want %d", v, store.Latest())
	}
	var name string
	if err := db.QueryRowContext(ctx, "SELECT name FROM members WHERE asn = 64500").Scan(&name); err != nil || name != "old-net" {
		t.Fatalf("member after migration: %q, %v", name, err)
	}
	// The new tables work with the old rows.
	_, err = db.ExecContext(ctx, `INSERT INTO orders (member_id, side, dest_prefix, protocol, capacity_bps, min_block_bps,
		price_micros, traffic_type, start_us, end_us, order_type, priority, status, created_us, updated_us)
		VALUES (1, 1, '198.51.100.0/24', 1, 1000, 1000, 1, 1, 1, 2, 1, 1, 1, 1, 1)`)
	if err != nil {
		t.Fatalf("insert order into migrated database: %v", err)
	}
}

func TestRefusesNewerDatabase(t *testing.T) {
	cfg := storetest.Config(t)
	db, err := store.OpenConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if db.Dialect() == store.Postgres {
		_, err = db.Exec("UPDATE schema_version SET version = 999")
	} else {
		_, err = db.Exec("PRAGMA user_version = 999")
	}
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.OpenConfig(cfg); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("opening a newer database: err = %v, want a refusal", err)
	}
}

func TestTxRollsBackOnError(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO members (asn, name, created_us) VALUES (64501, 'x', 1)"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx err = %v, want boom", err)
	}
	var n int
	db.QueryRowContext(ctx, "SELECT count(*) FROM members").Scan(&n)
	if n != 0 {
		t.Fatalf("rolled-back insert left %d rows", n)
	}
}

// Committed transactions reach the database file without waiting for the
// writer's own checkpoint, which sqlite runs only once the WAL holds 1000
// frames: the background checkpointer copies them.
func TestCheckpointsInBackground(t *testing.T) {
	if storetest.Dialect() != store.SQLite {
		t.Skip("sqlite's WAL checkpointer")
	}
	path := filepath.Join(t.TempDir(), "bwx.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// About 1.6 MB: some 400 pages, well under the writer's 1000 frames.
	pad := strings.Repeat("x", 4000)
	err = db.Tx(context.Background(), func(tx *sql.Tx) error {
		for i := 0; i < 400; i++ {
			if _, err := tx.Exec("INSERT INTO members (asn, name, created_us) VALUES (?, ?, 0)", 64500+i, pad); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := clock.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= before.Size()+1_500_000 {
			break
		}
		if clock.Now().After(deadline) {
			t.Fatalf("database file is %d bytes 10 s after the commit (%d before): not checkpointed", fi.Size(), before.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close() // a second Close must not hang
}

// A list of hosts with target_session_attrs=read-write finds the writable
// one: the first host here does not exist.
func TestPostgresMultiHostDSN(t *testing.T) {
	if storetest.Dialect() != store.Postgres {
		t.Skip("postgres only (BWX_TEST_POSTGRES=1)")
	}
	cfg := storetest.Config(t)
	dir := strings.TrimPrefix(strings.Fields(cfg.DSN)[0], "host=")
	cfg.DSN = strings.Replace(cfg.DSN, "host="+dir, "host="+filepath.Join(t.TempDir(), "gone")+","+dir, 1) + " target_session_attrs=read-write"
	db, err := store.OpenConfig(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.DSN, err)
	}
	defer db.Close()
	if v, err := db.Version(context.Background()); err != nil || v != store.Latest() {
		t.Fatalf("version = %d, %v", v, err)
	}
}

// Read-write transactions run one at a time on both engines: the domain
// packages' read-then-write transactions rely on it.
func TestWritersRunOneAtATime(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "INSERT INTO members (asn, name, created_us) VALUES (64500, 'n', 0)"); err != nil {
		t.Fatal(err)
	}
	// Each writer reads the count and writes count+1: interleaved, two
	// would read the same count and the final value would fall short.
	const writers = 8
	errs := make(chan error, writers)
	for range writers {
		go func() {
			errs <- db.Tx(ctx, func(tx *sql.Tx) error {
				var n int64
				if err := tx.QueryRowContext(ctx, "SELECT created_us FROM members WHERE asn = 64500").Scan(&n); err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond)
				_, err := tx.ExecContext(ctx, "UPDATE members SET created_us = ? WHERE asn = 64500", n+1)
				return err
			})
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT created_us FROM members WHERE asn = 64500").Scan(&n); err != nil || n != writers {
		t.Fatalf("counter = %d, %v; want %d", n, err, writers)
	}
}
