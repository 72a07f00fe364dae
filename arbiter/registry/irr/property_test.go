package irr

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestParseRoundTrip writes random route objects in the forms registries
// use (key case, spacing, comments, continuation lines, asdot) and parses
// them back.
func TestParseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 40).Draw(t, "n")
		var b strings.Builder
		var want []Route
		line := 1
		emit := func(s string) {
			b.WriteString(s + "\n")
			line++
		}
		for i := range n {
			if rapid.Bool().Draw(t, fmt.Sprint("comment", i)) {
				emit("% a comment between objects")
			}
			var p netip.Prefix
			v6 := rapid.Bool().Draw(t, fmt.Sprint("v6", i))
			if v6 {
				var a [16]byte
				for k := range a {
					a[k] = rapid.Byte().Draw(t, fmt.Sprint("a6", i, k))
				}
				p = netip.PrefixFrom(netip.AddrFrom16(a), rapid.IntRange(0, 128).Draw(t, fmt.Sprint("len", i))).Masked()
			} else {
				var a [4]byte
				for k := range a {
					a[k] = rapid.Byte().Draw(t, fmt.Sprint("a4", i, k))
				}
				p = netip.PrefixFrom(netip.AddrFrom4(a), rapid.IntRange(0, 32).Draw(t, fmt.Sprint("len", i))).Masked()
			}
			origin := rapid.Uint32Range(1, 1<<32-1).Draw(t, fmt.Sprint("origin", i))
			src := rapid.SampledFrom([]string{"RIPE", "radb", "Arin", "NTTCOM"}).Draw(t, fmt.Sprint("src", i))
			key := rapid.SampledFrom([]string{"route", "ROUTE", "Route"}).Draw(t, fmt.Sprint("key", i))
			if v6 {
				key += "6"
			}
			start := line
			emit(fmt.Sprintf("%s:%s%v", key, strings.Repeat(" ", rapid.IntRange(0, 10).Draw(t, fmt.Sprint("sp", i))), p))
			emit("descr: some text")
			originText := fmt.Sprintf("AS%d", origin)
			if rapid.Bool().Draw(t, fmt.Sprint("asdot", i)) && origin > 65535 {
				originText = fmt.Sprintf("as%d.%d", origin>>16, origin&0xffff)
			}
			if rapid.Bool().Draw(t, fmt.Sprint("cont", i)) {
				emit("origin:")
				emit(rapid.SampledFrom([]string{" ", "\t", "+"}).Draw(t, fmt.Sprint("cc", i)) + originText + " # the origin")
			} else {
				emit("Origin:\t" + originText)
			}
			emit("source: " + src)
			emit("")
			want = append(want, Route{Prefix: p, Origin: origin, Source: strings.ToUpper(src), Line: start})
		}
		var got []Route
		st, err := Parse(strings.NewReader(b.String()), ParseOptions{}, func(r Route) error {
			got = append(got, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Malformed != 0 || len(got) != len(want) {
			t.Fatalf("got %d routes, %d malformed (%v), want %d\n%s", len(got), st.Malformed, st.Errors, len(want), b.String())
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("route %d = %+v, want %+v\n%s", i, got[i], want[i], b.String())
			}
		}
	})
}

// FuzzRPSL: any bytes, plain or gzip, as an IRR dump. Every route
// yielded is canonical (masked, IPv4 in dotted form, the family its class
// names) with a non-zero origin and an upper-case source, on a line of the
// input; the counts add up; a second parse gives the same; and the routes,
// written back as RPSL, parse to themselves.
func FuzzRPSL(f *testing.F) {
	f.Add([]byte("route: 192.0.2.0/24\norigin: AS64500\nsource: RIPE\n"))
	f.Add([]byte("route6: 2001:db8::/32\n+origin: AS1\n\n%x\n  \n:"))
	f.Fuzz(func(t *testing.T, in []byte) {
		parse := func(in []byte) ([]Route, Stats, error) {
			var rs []Route
			st, err := Parse(bytes.NewReader(in), ParseOptions{File: "dump"}, func(r Route) error {
				rs = append(rs, r)
				return nil
			})
			return rs, st, err
		}
		rs, st, err := parse(in)
		for _, r := range rs {
			a := r.Prefix.Addr()
			if !r.Prefix.IsValid() || r.Prefix != r.Prefix.Masked() || a.Is4In6() || a.Zone() != "" || r.Origin == 0 {
				t.Fatalf("bad route %+v", r)
			}
			if r.Source != strings.ToUpper(r.Source) || strings.ContainsAny(r.Source, " \t,") {
				t.Fatalf("source %q is not one upper-case name", r.Source)
			}
			if r.Line < 1 || r.Line > st.Lines {
				t.Fatalf("route %+v on line %d of %d", r, r.Line, st.Lines)
			}
		}
		if st.Objects != st.Accepted+st.Malformed || st.Accepted < len(rs) || len(st.Errors) > DefaultMaxErrors || len(st.Errors) > st.Malformed {
			t.Fatalf("stats %+v do not add up (%d routes)", st, len(rs))
		}
		for _, e := range st.Errors {
			if e.File != "dump" || e.Line < 1 || e.Line > st.Lines {
				t.Fatalf("error %v is not on a line of the input", e)
			}
		}
		rs2, st2, err2 := parse(in)
		if (err == nil) != (err2 == nil) || !slices.Equal(rs, rs2) || fmt.Sprint(st) != fmt.Sprint(st2) {
			t.Fatalf("a second parse differs: %v %+v / %v %+v", err, st, err2, st2)
		}
		var b strings.Builder
		for _, r := range rs {
			key := "route"
			if r.Prefix.Addr().Is6() {
				key = "route6"
			}
			fmt.Fprintf(&b, "%s: %v\norigin: AS%d\n", key, r.Prefix, r.Origin)
			if r.Source != "" {
				fmt.Fprintf(&b, "source: %s\n", r.Source)
			}
			b.WriteString("\n")
		}
		back, bst, err := parse([]byte(b.String()))
		if err != nil || bst.Malformed != 0 || len(back) != len(rs) {
			t.Fatalf("routes written back: %v, %+v, %d routes of %d\n%s", err, bst, len(back), len(rs), b.String())
		}
		for i := range rs {
			if back[i].Prefix != rs[i].Prefix || back[i].Origin != rs[i].Origin || back[i].Source != rs[i].Source {
				t.Fatalf("route %d written back reads %+v, was %+v", i, back[i], rs[i])
			}
		}
	})
}
