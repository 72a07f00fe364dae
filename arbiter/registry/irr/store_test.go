package irr

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
	"github.com/bwxchange/bwx/shared/clock"
)

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db := storetest.Open(t)
	return db
}

func input(name, s string) Input { return Input{Name: name, R: strings.NewReader(s)} }

func count(t *testing.T, db *store.DB, source string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM irr_routes WHERE source = ?", source).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

const ripeV4 = "route: 192.0.2.0/24\norigin: AS64500\nmnt-by: MNT-A\nsource: RIPE\n\nroute: 198.51.100.0/24\norigin: AS64501\nsource: RIPE\n\nroute: 192.0.2.1/24\norigin: AS1\nsource: RIPE\n"
const ripeV6 = "route6: 2001:db8::/32\norigin: AS64500\nsource: RIPE\n"
const radb = "route: 203.0.113.0/24\norigin: AS64502\nsource: RADB\n\nroute: 192.0.2.0/24\norigin: AS64503\nsource: RADB\n"

func TestImportReplacesEachSourceItBrings(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	rep, err := Import(ctx, db, []Input{input("ripe.db.route", ripeV4), input("ripe.db.route6", ripeV6), input("radb.db", radb)}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Objects != 6 || rep.Accepted != 5 || rep.Malformed != 1 || len(rep.Errors) != 1 || rep.Errors[0].File != "ripe.db.route" || rep.Errors[0].Line != 10 {
		t.Fatalf("report %+v: want 6 objects, 5 accepted, 1 malformed at ripe.db.route:10", rep)
	}
	want := []SetCount{{Source: "RADB", Accepted: 2}, {Source: "RIPE", Accepted: 3}}
	if fmt.Sprint(rep.Sets) != fmt.Sprint(want) {
		t.Fatalf("sets %v, want %v", rep.Sets, want)
	}

	// A new RIPE import replaces RIPE only; RADB stays.
	rep, err = Import(ctx, db, []Input{input("ripe2", "route: 192.0.2.0/24\norigin: AS64500\nsource: RIPE\n\nroute6: 2001:db8:1::/48\norigin: AS64510\nsource: RIPE\n")}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.Sets) != fmt.Sprint([]SetCount{{Source: "RIPE", Previous: 3, Accepted: 2}}) {
		t.Fatalf("sets %v", rep.Sets)
	}
	if count(t, db, "RIPE") != 2 || count(t, db, "RADB") != 2 {
		t.Fatalf("RIPE %d RADB %d, want 2 2", count(t, db, "RIPE"), count(t, db, "RADB"))
	}
	ix, err := LoadIndex(ctx, db, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 4 {
		t.Fatalf("index has %d objects, want 4", ix.Len())
	}
	if !ix.Valid(netip.MustParsePrefix("2001:db8:1::/48"), 64510) || ix.Valid(netip.MustParsePrefix("198.51.100.0/24"), 64501) {
		t.Fatal("the index does not reflect the replaced RIPE set")
	}
	r := ix.Lookup(netip.MustParsePrefix("192.0.2.0/24"), 64503)
	if r.Match != Exact || fmt.Sprint(r.Sources) != "[RADB]" {
		t.Fatalf("lookup %+v, want exact from RADB", r)
	}

	sets, err := Sets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].Source != "RADB" || sets[0].Objects != 2 || sets[1].Source != "RIPE" || sets[1].Objects != 2 || sets[1].Files != "ripe2" || sets[1].Imported.IsZero() {
		t.Fatalf("sets %+v", sets)
	}
}

func TestImportSourceOption(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	mixed := ripeV4 + "\n" + radb + "\nroute: 100.64.0.0/10\norigin: AS64999\n"
	rep, err := Import(ctx, db, []Input{input("mixed", mixed)}, ImportOptions{Source: "radb"})
	if err != nil {
		t.Fatal(err)
	}
	// RADB's two objects plus the one without a source, taken as RADB.
	if rep.Accepted != 3 || rep.OtherSource != 2 || rep.Malformed != 1 || count(t, db, "RADB") != 3 || count(t, db, "RIPE") != 0 {
		t.Fatalf("report %+v, RADB rows %d", rep, count(t, db, "RADB"))
	}

	// Without --source an object without a source attribute is malformed.
	rep, err = Import(ctx, db, []Input{input("nosrc", "route: 100.64.0.0/10\norigin: AS64999\n\n"+ripeV6)}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Malformed != 1 || rep.Accepted != 1 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].String(), "nosrc:1: 100.64.0.0/10: no source attribute") {
		t.Fatalf("report %+v", rep)
	}

	if _, err := Import(ctx, db, []Input{input("x", radb)}, ImportOptions{Source: "RIPE RADB"}); err == nil || !strings.Contains(err.Error(), "one IRR source name") {
		t.Fatalf("err = %v, want a bad --source error", err)
	}
}

// failAfter reads like r but fails once n bytes are read.
type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk read error")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestFailedImportKeepsTheOldSet(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	if _, err := Import(ctx, db, []Input{{Name: "good", R: bytes.NewReader(genRPSL(3000))}}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if count(t, db, "RIPE") != 3000 {
		t.Fatalf("%d rows after the first import", count(t, db, "RIPE"))
	}

	// A read error well after the first batches were inserted.
	data := genRPSL(6000)
	_, err := Import(ctx, db, []Input{{Name: "bad", R: &failAfter{r: bytes.NewReader(data), n: len(data) * 3 / 4}}}, ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk read error") || !strings.Contains(err.Error(), "bad: after line") {
		t.Fatalf("err = %v, want the read error naming the file", err)
	}
	if count(t, db, "RIPE") != 3000 {
		t.Fatalf("%d rows after a failed import, want the old 3000", count(t, db, "RIPE"))
	}

	// A truncated gzip file fails the same way.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	_, err = Import(ctx, db, []Input{{Name: "cut.gz", R: bytes.NewReader(gz.Bytes()[:gz.Len()*2/3])}}, ImportOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) || count(t, db, "RIPE") != 3000 {
		t.Fatalf("err = %v, rows %d; want unexpected EOF and the old 3000", err, count(t, db, "RIPE"))
	}

	// A much smaller set is refused unless allowed.
	_, err = Import(ctx, db, []Input{input("small", ripeV4)}, ImportOptions{})
	if !errors.Is(err, ErrShrink) || count(t, db, "RIPE") != 3000 {
		t.Fatalf("err = %v, rows %d; want ErrShrink and the old 3000", err, count(t, db, "RIPE"))
	}
	if _, err := Import(ctx, db, []Input{input("small", ripeV4)}, ImportOptions{AllowShrink: true}); err != nil || count(t, db, "RIPE") != 2 {
		t.Fatalf("err = %v, rows %d; want 2 with AllowShrink", err, count(t, db, "RIPE"))
	}

	// Nothing usable replaces nothing.
	_, err = Import(ctx, db, []Input{input("junk", "route: 192.0.2.1/24\norigin: AS1\nsource: RIPE\n")}, ImportOptions{AllowShrink: true})
	if err == nil || !strings.Contains(err.Error(), "no well-formed route objects in junk") || count(t, db, "RIPE") != 2 {
		t.Fatalf("err = %v, rows %d", err, count(t, db, "RIPE"))
	}

	// Every attempt is in the import log, the failures with their error.
	rows, err := db.Query("SELECT source, accepted, previous, error FROM registry_imports WHERE kind = 'irr' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var log []string
	for rows.Next() {
		var src, e string
		var acc, prev int
		rows.Scan(&src, &acc, &prev, &e)
		if len(e) > 20 {
			e = e[:20]
		}
		log = append(log, fmt.Sprintf("%s %d %d %q", src, acc, prev, e))
	}
	want := []string{`RIPE 3000 0 ""`, `RIPE 0 0 "bad: after line `, `RIPE 0 0 "cut.gz: after line`, `RIPE 0 0 "source RIPE: 2 objec"`, `RIPE 2 3000 ""`, ` 0 0 "no well-formed route"`}
	if len(log) != len(want) {
		t.Fatalf("log %q, want %q", log, want)
	}
	for i := range want {
		if !strings.HasPrefix(log[i], want[i]) {
			t.Errorf("log[%d] = %s, want like %s", i, log[i], want[i])
		}
	}
}

func TestImportCancelled(t *testing.T) {
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, db, []Input{{Name: "x", R: bytes.NewReader(genRPSL(5000))}}, ImportOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if count(t, db, "RIPE") != 0 {
		t.Fatal("a cancelled import stored rows")
	}
}

// BenchmarkParseMillion is the baseline for BenchmarkImportMillion: parsing
// a generated million-object gzip dump without storing it.
func BenchmarkParseMillion(b *testing.B) {
	path := millionFile(b)
	b.ResetTimer()
	start := clock.Now()
	for range b.N {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		st, err := Parse(f, ParseOptions{}, func(Route) error { return nil })
		f.Close()
		if err != nil || st.Accepted != million {
			b.Fatalf("accepted %d, %v", st.Accepted, err)
		}
	}
	report(b, start)
}

// BenchmarkImportMillion parses the same file and stores it, replacing a
// set of the same size as a daily re-import does (the old set's delete is
// part of the cost).
func BenchmarkImportMillion(b *testing.B) {
	path := millionFile(b)
	db := openDB(b)
	ctx := context.Background()
	imp := func() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		rep, err := Import(ctx, db, []Input{{Name: path, R: f}}, ImportOptions{})
		if err != nil || rep.Accepted != million {
			b.Fatalf("accepted %d, %v", rep.Accepted, err)
		}
	}
	imp() // the first import into an empty table is not the steady state
	b.ResetTimer()
	start := clock.Now()
	for range b.N {
		imp()
	}
	report(b, start)
}

// BenchmarkLoadIndexMillion is the route server's reload: a million stored
// route objects into the in-memory index.
func BenchmarkLoadIndexMillion(b *testing.B) {
	path := millionFile(b)
	db := openDB(b)
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := Import(ctx, db, []Input{{Name: path, R: f}}, ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := clock.Now()
	for range b.N {
		ix, err := LoadIndex(ctx, db, Policy{})
		if err != nil || ix.Len() != million {
			b.Fatalf("%d objects, %v", ix.Len(), err)
		}
	}
	report(b, start)
}

const million = 1_000_000

func millionFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "million.db.gz")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	writeRPSL(zw, million)
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

func report(b *testing.B, start time.Time) {
	sec := clock.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(million/sec, "objects/s")
	b.ReportMetric(sec, "s/million")
}
