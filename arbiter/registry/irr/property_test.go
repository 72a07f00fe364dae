package irr

import (
	"fmt"
	"net/netip"
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

// FuzzParse: any input parses without panic, and every route it yields is
// canonical with a non-zero origin.
func FuzzParse(f *testing.F) {
	f.Add("route: 192.0.2.0/24\norigin: AS64500\nsource: RIPE\n")
	f.Add("route6: 2001:db8::/32\n+origin: AS1\n\n%x\n  \n:")
	f.Fuzz(func(t *testing.T, in string) {
		st, err := Parse(strings.NewReader(in), ParseOptions{}, func(r Route) error {
			if r.Prefix != r.Prefix.Masked() || r.Origin == 0 {
				t.Fatalf("bad route %+v", r)
			}
			return nil
		})
		if err == nil && st.Objects != st.Accepted+st.Malformed {
			t.Fatalf("stats %+v do not add up", st)
		}
	})
}
