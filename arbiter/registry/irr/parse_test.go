package irr

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func parseAll(t *testing.T, in string) ([]Route, Stats) {
	t.Helper()
	var got []Route
	st, err := Parse(strings.NewReader(in), ParseOptions{File: "test.db"}, func(r Route) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return got, st
}

func TestParse(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name      string
		in        string
		want      []Route // Line and MntBy are compared too
		malformed int
		skipped   int
		errHas    string // in the first error
	}{
		{
			name: "plain route",
			in:   "route: 192.0.2.0/24\norigin: AS64500\nmnt-by: MNT-EX\nsource: RIPE\n",
			want: []Route{{Prefix: pfx("192.0.2.0/24"), Origin: 64500, Source: "RIPE", MntBy: "MNT-EX", Line: 1}},
		},
		{
			name: "dump header, comments and several objects",
			in: "% This is the RIPE Database dump.\n%\n\n" +
				"route:          192.0.2.0/24\ndescr:          Example\norigin:         AS64500\n# a comment line\nsource:         RIPE # Filtered\n\n" +
				"route6:         2001:db8::/32\norigin:         AS64501\nsource:         RIPE\n\n\n",
			want: []Route{
				{Prefix: pfx("192.0.2.0/24"), Origin: 64500, Source: "RIPE", Line: 4},
				{Prefix: pfx("2001:db8::/32"), Origin: 64501, Source: "RIPE", Line: 10},
			},
		},
		{
			name: "mixed case keys and values",
			in:   "Route: 198.51.100.0/24\nORIGIN: as64500\nSource: radb\nMnt-By: MAINT-A\n",
			want: []Route{{Prefix: pfx("198.51.100.0/24"), Origin: 64500, Source: "RADB", MntBy: "MAINT-A", Line: 1}},
		},
		{
			name: "continuation lines with space, tab and plus",
			in:   "route: 203.0.113.0/24\ndescr: first\n  second\n+\n\tthird\norigin:\n AS64502\nmnt-by: MNT-A\n+ MNT-B\nmnt-by: MNT-C\nsource: RADB\n",
			want: []Route{{Prefix: pfx("203.0.113.0/24"), Origin: 64502, Source: "RADB", MntBy: "MNT-A, MNT-B, MNT-C", Line: 1}},
		},
		{
			name: "CRLF line ends and whitespace-only separator",
			in:   "route: 192.0.2.0/25\r\norigin: AS64500\r\nsource: ARIN\r\n \t\r\nroute: 192.0.2.128/25\r\norigin: AS64501\r\nsource: ARIN\r\n",
			want: []Route{
				{Prefix: pfx("192.0.2.0/25"), Origin: 64500, Source: "ARIN", Line: 1},
				{Prefix: pfx("192.0.2.128/25"), Origin: 64501, Source: "ARIN", Line: 5},
			},
		},
		{
			name: "IPv6 written long and upper case is canonicalised",
			in:   "route6: 2001:0DB8:0000::/48\norigin: AS64500\nsource: RIPE\n",
			want: []Route{{Prefix: pfx("2001:db8::/48"), Origin: 64500, Source: "RIPE", Line: 1}},
		},
		{
			name: "asdot origin",
			in:   "route: 192.0.2.0/24\norigin: AS1.10\nsource: RIPE\n",
			want: []Route{{Prefix: pfx("192.0.2.0/24"), Origin: 65546, Source: "RIPE", Line: 1}},
		},
		{
			name: "other classes are skipped",
			in:   "aut-num: AS64500\nas-name: EXAMPLE\nsource: RIPE\n\nmntner: MNT-EX\nauth: x\n\nroute: 192.0.2.0/24\norigin: AS64500\nsource: RIPE\n",
			want: []Route{{Prefix: pfx("192.0.2.0/24"), Origin: 64500, Source: "RIPE", Line: 8}}, skipped: 2,
		},
		{
			name: "missing origin", in: "route: 192.0.2.0/24\nsource: RIPE\n",
			malformed: 1, errHas: "test.db:1: route 192.0.2.0/24: no origin attribute",
		},
		{
			name: "host bits set", in: "route: 192.0.2.1/24\norigin: AS64500\nsource: RIPE\n",
			malformed: 1, errHas: "host bits set (the prefix would be 192.0.2.0/24)",
		},
		{
			name: "IPv6 host bits set", in: "route6: 2001:db8::1/32\norigin: AS64500\nsource: RIPE\n",
			malformed: 1, errHas: "host bits set (the prefix would be 2001:db8::/32)",
		},
		{
			name: "origin without AS", in: "route: 192.0.2.0/24\norigin: 64500\nsource: RIPE\n",
			malformed: 1, errHas: `origin "64500": want an AS number like AS64500`,
		},
		{
			name: "origin AS0", in: "route: 192.0.2.0/24\norigin: AS0\nsource: RIPE\n",
			malformed: 1, errHas: "AS0 cannot originate",
		},
		{
			name: "origin too large", in: "route: 192.0.2.0/24\norigin: AS4294967296\nsource: RIPE\n",
			malformed: 1, errHas: "want an AS number",
		},
		{
			name: "two origins", in: "route: 192.0.2.0/24\norigin: AS1\norigin: AS2\nsource: RIPE\n",
			malformed: 1, errHas: "line 3: origin: appears twice",
		},
		{
			name: "not a prefix", in: "route: 192.0.2.0\norigin: AS1\nsource: RIPE\n",
			malformed: 1, errHas: "route 192.0.2.0: not a CIDR prefix",
		},
		{
			name: "IPv6 prefix in route", in: "route: 2001:db8::/32\norigin: AS1\nsource: RIPE\n",
			malformed: 1, errHas: "an IPv6 prefix in a route object",
		},
		{
			name: "IPv4 prefix in route6", in: "route6: 192.0.2.0/24\norigin: AS1\nsource: RIPE\n",
			malformed: 1, errHas: "an IPv4 prefix in a route6 object",
		},
		{
			name: "line without key inside a route", in: "route: 192.0.2.0/24\norigin: AS1\ngarbage\nsource: RIPE\n",
			malformed: 1, errHas: `line 3: no "key:" attribute`,
		},
		{
			name: "malformed objects do not stop the rest",
			in:   "route: 192.0.2.1/24\norigin: AS1\n\nroute: 192.0.2.0/24\norigin: AS1\nsource: RIPE\n\nroute6: 2001:db8::/33\norigin: ASX\n",
			want: []Route{{Prefix: pfx("192.0.2.0/24"), Origin: 1, Source: "RIPE", Line: 4}}, malformed: 2,
			errHas: "test.db:1: route 192.0.2.1/24: host bits set",
		},
		{
			name: "no source is not the parser's concern",
			in:   "route: 192.0.2.0/24\norigin: AS1\n",
			want: []Route{{Prefix: pfx("192.0.2.0/24"), Origin: 1, Line: 1}},
		},
		{name: "empty input"},
		{name: "only comments", in: "% nothing\n# here\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := parseAll(t, tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d routes %+v, want %d %+v (errors %v)", len(got), got, len(tt.want), tt.want, st.Errors)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("route %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			if st.Malformed != tt.malformed || st.Skipped != tt.skipped {
				t.Errorf("malformed %d skipped %d, want %d %d (errors %v)", st.Malformed, st.Skipped, tt.malformed, tt.skipped, st.Errors)
			}
			if st.Objects != len(tt.want)+tt.malformed || st.Accepted != len(tt.want) {
				t.Errorf("objects %d accepted %d, want %d %d", st.Objects, st.Accepted, len(tt.want)+tt.malformed, len(tt.want))
			}
			if tt.errHas != "" {
				if len(st.Errors) == 0 || !strings.Contains(st.Errors[0].String(), tt.errHas) {
					t.Errorf("errors %v, want the first to contain %q", st.Errors, tt.errHas)
				}
			}
		})
	}
}

func TestParseGzip(t *testing.T) {
	plain := genRPSL(1000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	// A second gzip member, as concatenated dumps have.
	zw = gzip.NewWriter(&gz)
	zw.Write([]byte("\nroute6: 2001:db8:ffff::/48\norigin: AS64999\nsource: RIPE\n"))
	zw.Close()

	var n4, n6 int
	st, err := Parse(&gz, ParseOptions{}, func(r Route) error {
		if r.Prefix.Addr().Is4() {
			n4++
		} else {
			n6++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted != 1001 || n4 != 500 || n6 != 501 || st.Malformed != 0 {
		t.Errorf("accepted %d (v4 %d v6 %d) malformed %d, want 1001 (500, 501) 0", st.Accepted, n4, n6, st.Malformed)
	}
	plainSt, err := Parse(bytes.NewReader(plain), ParseOptions{}, func(Route) error { return nil })
	if err != nil || plainSt.Accepted != 1000 {
		t.Errorf("plain: %d accepted, %v", plainSt.Accepted, err)
	}
}

func TestParseTruncatedGzipFails(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(genRPSL(2000))
	zw.Close()
	cut := gz.Bytes()[:gz.Len()/2]
	_, err := Parse(bytes.NewReader(cut), ParseOptions{File: "ripe.db.route.gz"}, func(Route) error { return nil })
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "ripe.db.route.gz: after line") {
		t.Fatalf("err = %v, want an unexpected EOF naming the file and line", err)
	}
}

func TestParseStopsOnCallbackError(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	_, err := Parse(bytes.NewReader(genRPSL(100)), ParseOptions{}, func(Route) error {
		n++
		if n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("err %v after %d routes, want boom after 3", err, n)
	}
}

func TestParseErrorListIsBounded(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "route: 192.0.2.%d/24\norigin: AS1\nsource: RIPE\n\n", i+1)
	}
	st, err := Parse(strings.NewReader(b.String()), ParseOptions{MaxErrors: 5}, func(Route) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Malformed != 50 || len(st.Errors) != 5 || st.Errors[4].Line != 17 {
		t.Fatalf("malformed %d, errors %v; want 50 and the first 5 (the fifth at line 17)", st.Malformed, st.Errors)
	}
}

func TestParseASN(t *testing.T) {
	for in, want := range map[string]uint32{"AS1": 1, "as64500": 64500, "As4294967295": 4294967295, "AS0.1": 1, "AS65535.65535": 4294967295} {
		got, err := ParseASN([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseASN(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "AS", "64500", "AS-FOO", "AS 1", "AS1.65536", "AS.1", "AS1.", "AS0", "AS0.0", "AS4294967296", "AS12345678901"} {
		if got, err := ParseASN([]byte(in)); err == nil {
			t.Errorf("ParseASN(%q) = %d, want an error", in, got)
		}
	}
}

// genRPSL writes n route objects, alternately route and route6, each with
// the attributes a RIPE dump has; prefixes are distinct.
func genRPSL(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 200)
	b.WriteString("% Generated RPSL for tests\n\n")
	writeRPSL(&b, n)
	return b.Bytes()
}

func writeRPSL(w io.Writer, n int) {
	bw := &bytes.Buffer{}
	for i := range n {
		if i%2 == 0 {
			v := i / 2
			fmt.Fprintf(bw, "route:          %d.%d.%d.0/24\n", 1+v>>16&0x7f, v>>8&0xff, v&0xff)
		} else {
			v := i / 2
			fmt.Fprintf(bw, "route6:         2001:db8:%x:%x::/64\n", v>>16, v&0xffff)
		}
		fmt.Fprintf(bw, "descr:          Example route %d\norigin:         AS%d\nmnt-by:         MNT-EX%d\ncreated:        2020-01-01T00:00:00Z\nlast-modified:  2024-01-01T00:00:00Z\nsource:         RIPE\n\n", i, 64500+i%1000, i%5000)
		if bw.Len() > 1<<16 {
			w.Write(bw.Bytes())
			bw.Reset()
		}
	}
	w.Write(bw.Bytes())
}
