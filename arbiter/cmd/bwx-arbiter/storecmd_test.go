package main

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/bwxchange/bwx/arbiter/registry"
	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func runStore(cfg string, args ...string) (string, error) {
	g := &globals{}
	root := &cobra.Command{Use: "bwx-arbiter", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "", "")
	root.AddCommand(storeCmd(g))
	root.SetArgs(append([]string{"--config", cfg}, args...))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// The exchange's sqlite database, open by the "daemon", is copied to
// PostgreSQL, and a second copy into the now used target is refused.
func TestStoreMigrateToPostgres(t *testing.T) {
	target := storetest.PostgresConfig(t, false)
	cfg, daemonDB, _ := lab(t)
	ctx := context.Background()
	reg := registry.New(daemonDB)
	for i, asn := range []uint32{64501, 4200000000} {
		m := registry.Member{ASN: asn, Name: "net", Port: registry.Port{Name: "swp", CapacityBps: 1e10},
			Routers: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)}), netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(1 + i)})}}
		if _, err := reg.AddMember(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.AddPrefix(ctx, registry.Prefix{Prefix: netip.MustParsePrefix("2001:db8:100::/48"), MemberASN: 64501, Type: registry.Customer}); err != nil {
		t.Fatal(err)
	}

	if out, err := runStore(cfg, "store", "migrate-to-postgres", "--dsn", "host=a port=notaport"); err == nil || !strings.Contains(err.Error(), "--dsn") {
		t.Fatalf("bad dsn: %v\n%s", err, out)
	}
	out, err := runStore(cfg, "store", "migrate-to-postgres", "--dsn", target.DSN)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "members                       2 rows") || !strings.Contains(out, "routers                       4 rows") || !strings.Contains(out, "copied ") {
		t.Fatalf("output:\n%s", out)
	}
	pg, err := store.OpenConfig(target)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	m, err := registry.New(pg).Member(ctx, 4200000000)
	if err != nil || len(m.Routers) != 2 || m.Port.CapacityBps != 1e10 {
		t.Fatalf("member read from postgres: %+v %v", m, err)
	}
	if _, err := runStore(cfg, "store", "migrate-to-postgres", "--dsn", target.DSN); err == nil || !strings.Contains(err.Error(), "already has") {
		t.Fatalf("second copy: %v", err)
	}
}
