// Package storetest opens stores for tests on either engine: sqlite by
// default, PostgreSQL when BWX_TEST_POSTGRES=1. For PostgreSQL a package's
// TestMain calls Main, which starts one server from the installed binaries
// (initdb and postgres, as an unprivileged user when run as root) in a
// temporary directory on a unix socket, and each test gets a fresh database
// copied from a migrated template.
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/shared/clock"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver for the admin connection
)

// Env is the variable that selects PostgreSQL.
const Env = "BWX_TEST_POSTGRES"

// Dialect is the engine this test binary runs its stores on.
func Dialect() store.Dialect {
	if os.Getenv(Env) == "1" {
		return store.Postgres
	}
	return store.SQLite
}

var (
	mainRan bool
	srvOnce sync.Once
	srv     *Server
	srvErr  error
	dbSeq   atomic.Int64
)

// Main runs a package's tests and stops the PostgreSQL server they
// started, if any; call it from TestMain.
func Main(m *testing.M) {
	mainRan = true
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

// Config names a fresh, migrated store for t on the selected engine; open
// it with store.OpenConfig (as often as the test likes: reopening finds the
// same data).
func Config(t testing.TB) store.Config {
	t.Helper()
	if Dialect() == store.SQLite {
		return store.Config{Driver: store.SQLite, Path: filepath.Join(t.TempDir(), "bwx.db")}
	}
	return PostgresConfig(t, true)
}

// EmptyConfig is Config for a database without any schema yet (tests of
// the migrations).
func EmptyConfig(t testing.TB) store.Config {
	t.Helper()
	if Dialect() == store.SQLite {
		return store.Config{Driver: store.SQLite, Path: filepath.Join(t.TempDir(), "bwx.db")}
	}
	return PostgresConfig(t, false)
}

// Open opens a fresh, migrated store for t, closed when t ends.
func Open(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.OpenConfig(Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresConfig names a fresh PostgreSQL database on the package's server,
// migrated or empty; it skips t where the binaries are missing.
func PostgresConfig(t testing.TB, migrated bool) store.Config {
	t.Helper()
	if !mainRan {
		t.Fatal("storetest: PostgreSQL needs the package's TestMain to call storetest.Main")
	}
	srvOnce.Do(func() { srv, srvErr = Start() })
	if errors.Is(srvErr, ErrNoBinaries) {
		t.Skip(srvErr.Error())
	}
	if srvErr != nil {
		t.Fatalf("storetest: starting PostgreSQL: %v", srvErr)
	}
	name := fmt.Sprintf("t%d", dbSeq.Add(1))
	template := "template0"
	if migrated {
		template = "bwx_template"
	}
	if _, err := srv.admin.Exec("CREATE DATABASE " + name + " TEMPLATE " + template + " STRATEGY FILE_COPY"); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	return store.Config{Driver: store.Postgres, DSN: srv.DSN(name)}
}

// ErrNoBinaries says PostgreSQL is not installed.
var ErrNoBinaries = errors.New("PostgreSQL binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin: install Debian's postgresql package")

// Server is a PostgreSQL server of a test binary's own.
type Server struct {
	Dir   string // data directory, also the socket directory
	cmd   *exec.Cmd
	admin *sql.DB
	user  string
}

// bins finds the directory with initdb and postgres.
func bins() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", ErrNoBinaries
}

// Start initializes and starts a server in a new temporary directory. The
// server dies with the process that started it (it is its child, with a
// parent-death signal), so a killed test binary leaves none behind.
func Start() (*Server, error) {
	bin, err := bins()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bwx-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, user: "bwx"}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// postgres refuses to run as root.
		u, err := user.Lookup("nobody")
		if err != nil {
			return fail(fmt.Errorf("running as root and no user nobody to run postgres as: %w", err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", s.user, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v: %s", err, out))
	}
	// Unix socket only; durability is the server's business and not under
	// test here, so fsync is off for speed.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=400",
		"-c", "shared_buffers=64MB")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	s.cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return fail(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fail(fmt.Errorf("postgres: %w", err))
	}
	logf.Close()
	s.admin, err = sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return fail(err)
	}
	deadline := clock.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = s.admin.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		if clock.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			return fail(fmt.Errorf("postgres not up after 30 s: %v\n%s", err, log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The template every test's database is copied from, migrated once.
	if _, err := s.admin.Exec("CREATE DATABASE bwx_template TEMPLATE template0"); err != nil {
		return fail(err)
	}
	db, err := store.OpenConfig(store.Config{Driver: store.Postgres, DSN: s.DSN("bwx_template")})
	if err != nil {
		return fail(fmt.Errorf("migrating the template database: %w", err))
	}
	db.Close()
	return s, nil
}

// DSN is the connection string for database name.
func (s *Server) DSN(name string) string {
	return "host=" + s.Dir + " port=5432 user=" + s.user + " dbname=" + name + " sslmode=disable"
}

// Stop stops the server (immediately: nothing in it is kept) and removes
// its directory.
func (s *Server) Stop() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if strings.HasPrefix(filepath.Base(s.Dir), "bwx-pgtest-") {
		os.RemoveAll(s.Dir)
	}
}

// Encode writes c as one string, for a child process's environment.
func Encode(c store.Config) string {
	if c.Driver == store.Postgres {
		return "postgres:" + c.DSN
	}
	return "sqlite:" + c.Path
}

// Decode reads what Encode wrote.
func Decode(s string) store.Config {
	driver, where, _ := strings.Cut(s, ":")
	if store.Dialect(driver) == store.Postgres {
		return store.Config{Driver: store.Postgres, DSN: where}
	}
	return store.Config{Driver: store.SQLite, Path: where}
}
