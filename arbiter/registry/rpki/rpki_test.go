package rpki

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bwxchange/bwx/arbiter/store"
	"github.com/bwxchange/bwx/arbiter/store/storetest"
)

func parse(t *testing.T, in string) ([]ROA, Stats, error) {
	t.Helper()
	var got []ROA
	st, err := ParseJSON(strings.NewReader(in), ParseOptions{File: "vrps.json"}, func(r ROA) error {
		got = append(got, r)
		return nil
	})
	return got, st, err
}

func TestParseJSON(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name      string
		in        string
		want      []ROA
		malformed int
		errHas    string // in the first listed error
	}{
		{
			name: "rpki-client: numeric asn, metadata before and other arrays after",
			in: `{"metadata":{"buildmachine":"rp.example","roas":1,"generated":1700000000},
				"roas":[{"asn":64500,"prefix":"192.0.2.0/24","maxLength":24,"ta":"ripe","expires":1700086400},
				        {"asn":0,"prefix":"2001:db8::/32","maxLength":48,"ta":"arin"}],
				"aspas":[{"customer_asid":64500,"providers":[64501]}]}`,
			want: []ROA{{Prefix: pfx("192.0.2.0/24"), MaxLength: 24, ASN: 64500, TA: "ripe"}, {Prefix: pfx("2001:db8::/32"), MaxLength: 48, TA: "arin"}},
		},
		{
			name: "Routinator: string asn",
			in:   `{"metadata":{"generated":1700000000},"roas":[{"asn":"AS64501","prefix":"198.51.100.0/22","maxLength":24,"ta":"apnic"},{"asn":"as4294967295","prefix":"203.0.113.0/24","maxLength":24,"ta":""},{"asn":"64502","prefix":"2001:db8:1::/48","maxLength":48,"ta":"lacnic"}]}`,
			want: []ROA{
				{Prefix: pfx("198.51.100.0/22"), MaxLength: 24, ASN: 64501, TA: "apnic"},
				{Prefix: pfx("203.0.113.0/24"), MaxLength: 24, ASN: 4294967295},
				{Prefix: pfx("2001:db8:1::/48"), MaxLength: 48, ASN: 64502, TA: "lacnic"},
			},
		},
		{
			name: "no maxLength means the prefix length",
			in:   `{"roas":[{"asn":64500,"prefix":"192.0.2.0/24"}]}`,
			want: []ROA{{Prefix: pfx("192.0.2.0/24"), MaxLength: 24, ASN: 64500}},
		},
		{name: "empty set", in: `{"roas":[]}`},
		{name: "host bits", in: `{"roas":[{"asn":1,"prefix":"192.0.2.1/24","maxLength":24}]}`, malformed: 1, errHas: `roas[0] (before byte 57): prefix "192.0.2.1/24": host bits set (the prefix would be 192.0.2.0/24)`},
		{name: "maxLength below the prefix", in: `{"roas":[{"asn":1,"prefix":"192.0.2.0/24","maxLength":23}]}`, malformed: 1, errHas: "maxLength 23 outside 24..32"},
		{name: "maxLength beyond 128", in: `{"roas":[{"asn":1,"prefix":"2001:db8::/32","maxLength":129}]}`, malformed: 1, errHas: "maxLength 129 outside 32..128"},
		{name: "bad asn string", in: `{"roas":[{"asn":"ASX","prefix":"192.0.2.0/24","maxLength":24}]}`, malformed: 1, errHas: `asn "ASX": want a number`},
		{name: "asn too large", in: `{"roas":[{"asn":4294967296,"prefix":"192.0.2.0/24","maxLength":24}]}`, malformed: 1, errHas: "asn 4294967296"},
		{name: "no asn", in: `{"roas":[{"prefix":"192.0.2.0/24","maxLength":24}]}`, malformed: 1, errHas: "no asn"},
		{name: "not a prefix", in: `{"roas":[{"asn":1,"prefix":"192.0.2.0","maxLength":24}]}`, malformed: 1, errHas: "not a CIDR prefix"},
		{name: "wrong JSON type", in: `{"roas":[{"asn":1,"prefix":"192.0.2.0/24","maxLength":"24"}]}`, malformed: 1, errHas: "field maxLength: JSON string where a int belongs"},
		{
			name: "malformed ones do not stop the rest",
			in:   `{"roas":[{"asn":1,"prefix":"192.0.2.1/24","maxLength":24},{"asn":2,"prefix":"192.0.2.0/24","maxLength":25},{"asn":"AS","prefix":"10.0.0.0/8"}]}`,
			want: []ROA{{Prefix: pfx("192.0.2.0/24"), MaxLength: 25, ASN: 2}}, malformed: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st, err := parse(t, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v (errors %v)", got, tt.want, st.Errors)
			}
			if st.Malformed != tt.malformed || st.Accepted != len(tt.want) || st.ROAs != len(tt.want)+tt.malformed {
				t.Errorf("stats %+v, want %d malformed", st, tt.malformed)
			}
			if tt.errHas != "" && (len(st.Errors) == 0 || !strings.Contains(st.Errors[0].String(), tt.errHas)) {
				t.Errorf("errors %v, want the first to contain %q", st.Errors, tt.errHas)
			}
		})
	}
}

func TestParseJSONFatal(t *testing.T) {
	for in, want := range map[string]string{
		``:                         `vrps.json: at byte 0: want '{', the input ends`,
		`[]`:                       `want '{', found [`,
		`{"metadata":{}}`:          `vrps.json: no "roas" array`,
		`{"roas":{}}`:              `"roas": want '[', found {`,
		`{"roas":[{"asn":1,"pre`:   `unexpected EOF`,
		`{"roas":[{"asn":1},,]}`:   `invalid character ','`,
		`{"roas":[{"asn":1}]`:      `want '}', the input ends`,
		`<html>not found</html>`:   `invalid character '<'`,
		"\x1f\x8b\x08garbagegzip!": `gzip`,
	} {
		if _, _, err := parse(t, in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseJSON(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestParseJSONGzip(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(genJSON(1000))
	zw.Close()
	n := 0
	st, err := ParseJSON(&gz, ParseOptions{}, func(ROA) error { n++; return nil })
	if err != nil || n != 1000 || st.Accepted != 1000 {
		t.Fatalf("%d ROAs, %+v, %v; want 1000", n, st, err)
	}
}

// TestParseJSONCorruptGzip: a gzip stream that is corrupt stops the
// parse with the read error: inside the ROAs it looped for ever, counting
// the same error as malformed ROAs (found by FuzzROAJSON, whose input is
// regression-corrupt-gzip-hang); in its checksum it was not read.
func TestParseJSONCorruptGzip(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(genJSON(1000))
	zw.Close()
	b := bytes.Clone(gz.Bytes())
	b = b[:len(b)-8] // the trailer: checksum and length
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	done := make(chan error, 1)
	go func() {
		_, err := ParseJSON(bytes.NewReader(b), ParseOptions{File: "vrps.json.gz"}, func(ROA) error { return nil })
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "vrps.json.gz") || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("corrupt gzip: %v, want the checksum error naming the file", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the parse of a corrupt gzip stream does not end")
	}
	// Corrupt in the middle of the deflate stream.
	b = gz.Bytes()
	mid := bytes.Clone(b)
	for i := len(mid) / 2; i < len(mid)/2+16; i++ {
		mid[i] ^= 0xff
	}
	go func() {
		_, err := ParseJSON(bytes.NewReader(mid), ParseOptions{File: "vrps.json.gz"}, func(ROA) error { return nil })
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a gzip stream corrupt in the middle was accepted")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the parse of a corrupt gzip stream does not end")
	}
}

// TestValidate follows RFC 6811 section 2, with IPv4 and IPv6.
func TestValidate(t *testing.T) {
	roas := []ROA{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), MaxLength: 24, ASN: 64500},
		{Prefix: netip.MustParsePrefix("198.51.100.0/22"), MaxLength: 24, ASN: 64501},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), MaxLength: 24, ASN: 64502}, // a second origin for a more specific
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), MaxLength: 24, ASN: 0},      // AS0: nobody may originate it
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), MaxLength: 8, ASN: 0},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), MaxLength: 24, ASN: 64503}, // an AS0 covering ROA does not spoil a matching one
		{Prefix: netip.MustParsePrefix("2001:db8::/32"), MaxLength: 48, ASN: 64500},
		{Prefix: netip.MustParsePrefix("2001:db8:ff00::/40"), MaxLength: 40, ASN: 64510},
		{Prefix: netip.MustParsePrefix("2001:db8:ff00::/40"), MaxLength: 40, ASN: 64510}, // duplicate
		{Prefix: netip.MustParsePrefix("2001:db8:dead::/48"), MaxLength: 48, ASN: 0},
	}
	ix, err := NewIndex(roas)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 9 {
		t.Fatalf("Len = %d, want 9 (one duplicate)", ix.Len())
	}
	tests := []struct {
		prefix string
		origin uint32
		want   State
	}{
		{"192.0.2.0/24", 64500, Valid},
		{"192.0.2.0/24", 64999, Invalid}, // wrong origin
		{"192.0.2.0/25", 64500, Invalid}, // right origin, longer than maxLength
		{"192.0.2.128/25", 64999, Invalid},
		{"192.0.0.0/16", 64500, NotFound}, // less specific than the ROA: not covered
		{"192.0.3.0/24", 64500, NotFound}, // beside it
		{"198.51.100.0/22", 64501, Valid},
		{"198.51.101.0/24", 64501, Valid}, // within maxLength
		{"198.51.100.0/23", 64501, Valid},
		{"198.51.100.0/25", 64501, Invalid},
		{"198.51.100.0/24", 64502, Valid}, // the more specific ROA matches
		{"198.51.100.0/24", 64501, Valid}, // and so does the covering one
		{"198.51.101.0/24", 64502, Invalid},
		{"203.0.113.0/24", 0, Invalid}, // origin NONE never matches, not even AS0
		{"203.0.113.0/24", 64500, Invalid},
		{"203.0.113.0/25", 64500, Invalid},
		{"10.2.0.0/16", 64503, Invalid},
		{"10.1.2.0/24", 64503, Valid},
		{"10.1.2.0/25", 64503, Invalid},
		{"192.0.2.1/24", 64500, Valid}, // host bits are masked off
		{"192.0.2.0/24", 0, Invalid},   // origin NONE
		{"2001:db8::/32", 64500, Valid},
		{"2001:db8:1::/48", 64500, Valid},
		{"2001:db8:1::/49", 64500, Invalid},
		{"2001:db8:ff00::/40", 64510, Valid},
		{"2001:db8:ff00::/40", 64500, Valid}, // the /32 ROA covers it too, maxLength 48
		{"2001:db8:ff00::/41", 64510, Invalid},
		{"2001:db8:dead::/48", 64500, Valid}, // the /32 matches; AS0 covering does not matter
		{"2001:db8:dead::/48", 64999, Invalid},
		{"2001:db9::/32", 64500, NotFound},
		{"2001:db8::/31", 64500, NotFound},
		{"::/0", 64500, NotFound},
		{"0.0.0.0/0", 64500, NotFound},
	}
	for _, tt := range tests {
		if got := ix.Validate(netip.MustParsePrefix(tt.prefix), tt.origin); got != tt.want {
			t.Errorf("Validate(%s, AS%d) = %v, want %v", tt.prefix, tt.origin, got, tt.want)
		}
	}
	if got := ix.Validate(netip.Prefix{}, 64500); got != NotFound {
		t.Errorf("invalid prefix: %v", got)
	}
	if got := (&Index{}).Validate(netip.MustParsePrefix("192.0.2.0/24"), 64500); got != NotFound {
		t.Errorf("empty index: %v", got)
	}
	if _, err := NewIndex([]ROA{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), MaxLength: 33, ASN: 1}}); err == nil {
		t.Error("NewIndex took maxLength 33")
	}
	if _, err := NewIndex([]ROA{{Prefix: netip.MustParsePrefix("192.0.2.1/24"), MaxLength: 24, ASN: 1}}); err == nil {
		t.Error("NewIndex took a prefix with host bits")
	}
}

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db := storetest.Open(t)
	return db
}

func roaCount(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM rpki_roas").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportReplacesAtomically(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	rep, err := Import(ctx, db, "first.json", bytes.NewReader(genJSON(1000)), ImportOptions{})
	if err != nil || rep.Accepted != 1000 || rep.Previous != 0 || roaCount(t, db) != 1000 {
		t.Fatalf("first import: %+v, %v, %d rows", rep, err, roaCount(t, db))
	}

	// Broken JSON after many ROAs were inserted: nothing changes.
	broken := genJSON(1500)
	broken = broken[:len(broken)-200]
	if _, err := Import(ctx, db, "broken.json", bytes.NewReader(broken), ImportOptions{}); err == nil || !strings.Contains(err.Error(), "broken.json: at byte") {
		t.Fatalf("broken import: err = %v", err)
	}
	if roaCount(t, db) != 1000 {
		t.Fatalf("%d rows after a failed import, want the old 1000", roaCount(t, db))
	}

	// A much smaller set is refused unless allowed.
	small := `{"roas":[{"asn":"AS64500","prefix":"192.0.2.0/24","maxLength":24,"ta":"ripe"},{"asn":64501,"prefix":"2001:db8::/32","maxLength":48,"ta":"ripe"},{"asn":1,"prefix":"192.0.2.1/24","maxLength":24}]}`
	if _, err := Import(ctx, db, "small.json", strings.NewReader(small), ImportOptions{}); !errors.Is(err, ErrShrink) || roaCount(t, db) != 1000 {
		t.Fatalf("err = %v, rows %d; want ErrShrink and 1000", err, roaCount(t, db))
	}
	rep, err = Import(ctx, db, "small.json", strings.NewReader(small), ImportOptions{AllowShrink: true})
	if err != nil || rep.Accepted != 2 || rep.Malformed != 1 || rep.Previous != 1000 || roaCount(t, db) != 2 {
		t.Fatalf("%+v, %v, rows %d", rep, err, roaCount(t, db))
	}
	if _, err := Import(ctx, db, "none.json", strings.NewReader(`{"roas":[]}`), ImportOptions{AllowShrink: true}); err == nil || !strings.Contains(err.Error(), "no valid ROA") || roaCount(t, db) != 2 {
		t.Fatalf("empty import: %v, rows %d", err, roaCount(t, db))
	}

	ix, err := LoadIndex(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 2 || ix.Validate(netip.MustParsePrefix("2001:db8:1::/48"), 64501) != Valid || ix.Validate(netip.MustParsePrefix("192.0.2.0/24"), 64501) != Invalid {
		t.Fatalf("loaded index of %d ROAs does not validate as stored", ix.Len())
	}

	var ok, failed int
	if err := db.QueryRow("SELECT count(CASE WHEN error = '' THEN 1 END), count(CASE WHEN error <> '' THEN 1 END) FROM registry_imports WHERE kind = 'rpki' AND source = 'roas'").Scan(&ok, &failed); err != nil || ok != 2 || failed != 3 {
		t.Fatalf("import log: %d ok, %d failed, %v; want 2 and 3", ok, failed, err)
	}
}

func TestImportCancelled(t *testing.T) {
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, db, "x.json", bytes.NewReader(genJSON(10)), ImportOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// genJSON writes n distinct ROAs, IPv4 and IPv6, Routinator style.
func genJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"metadata":{"generated":1700000000},"roas":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, `{"asn":"AS%d","prefix":"10.%d.%d.0/24","maxLength":24,"ta":"ripe"}`, 64500+i, i>>8&0xff, i&0xff)
		} else {
			fmt.Fprintf(&b, `{"asn":%d,"prefix":"2001:db8:%x::/48","maxLength":48,"ta":"arin"}`, 64500+i, i)
		}
	}
	b.WriteString("]}\n")
	return b.Bytes()
}
