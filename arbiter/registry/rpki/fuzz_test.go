package rpki

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// FuzzROAJSON: any bytes, plain or gzip, as a relying party's JSON export.
// Every ROA yielded is canonical (masked, IPv4 in dotted form) with a max
// length between its prefix length and the family's; the counts add up;
// and the ROAs, written back out as rpki-client writes them, parse to
// themselves.
func FuzzROAJSON(f *testing.F) {
	f.Add([]byte(`{"roas":[{"asn":64500,"prefix":"192.0.2.0/24","maxLength":24,"ta":"ripe"}]}`))
	f.Add([]byte(`{"roas":[{"asn":"AS64501","prefix":"2001:db8::/32","maxLength":48}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		parse := func(in []byte) ([]ROA, Stats, error) {
			var rs []ROA
			st, err := ParseJSON(bytes.NewReader(in), ParseOptions{File: "vrps.json"}, func(r ROA) error {
				rs = append(rs, r)
				return nil
			})
			return rs, st, err
		}
		rs, st, err := parse(in)
		for _, r := range rs {
			a := r.Prefix.Addr()
			if !r.Prefix.IsValid() || r.Prefix != r.Prefix.Masked() || a.Is4In6() || a.Zone() != "" ||
				r.MaxLength < r.Prefix.Bits() || r.MaxLength > a.BitLen() {
				t.Fatalf("bad ROA %+v", r)
			}
		}
		if st.ROAs != st.Accepted+st.Malformed || st.Accepted != len(rs) || len(st.Errors) > DefaultMaxErrors || len(st.Errors) > st.Malformed {
			t.Fatalf("stats %+v do not add up (%d ROAs)", st, len(rs))
		}
		for _, e := range st.Errors {
			if e.Index < 0 || e.Offset < 0 || e.Offset > int64(len(in)) && !gzipped(in) {
				t.Fatalf("error %v is not in the input", e)
			}
		}
		if err != nil {
			return
		}
		type out struct {
			ASN       uint32 `json:"asn"`
			Prefix    string `json:"prefix"`
			MaxLength int    `json:"maxLength"`
			TA        string `json:"ta"`
		}
		var w struct {
			ROAs []out `json:"roas"`
		}
		w.ROAs = []out{}
		for _, r := range rs {
			w.ROAs = append(w.ROAs, out{r.ASN, r.Prefix.String(), r.MaxLength, r.TA})
		}
		b, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		back, bst, err := parse(b)
		if err != nil || bst.Malformed != 0 || !slices.Equal(back, rs) {
			t.Fatalf("ROAs written back: %v, %+v\n%v\n%v\n%s", err, bst, back, rs, b)
		}
	})
}

func gzipped(b []byte) bool { return len(b) > 1 && b[0] == 0x1f && b[1] == 0x8b }
