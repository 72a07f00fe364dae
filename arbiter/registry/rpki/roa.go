// Package rpki imports the validated ROA payloads that a relying party
// (rpki-client, Routinator) exports as JSON, keeps them in the arbiter's
// database, and performs route origin validation (RFC 6811).
// The rpki_roas table's SQL is in rpki_roas_sql.go; imports are logged
// through registry/importlog.
package rpki

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// ROA is one validated ROA payload (VRP): prefix, max length, origin AS.
type ROA struct {
	Prefix    netip.Prefix
	MaxLength int
	ASN       uint32 // 0 for an AS0 ROA: nobody may originate the prefix
	TA        string // the trust anchor, e.g. "ripe"; may be empty
}

// ROAError is one malformed ROA in the file.
type ROAError struct {
	Index  int   // its position in the "roas" array, from 0
	Offset int64 // byte offset just after it in the (decompressed) JSON
	Msg    string
}

func (e ROAError) String() string {
	return fmt.Sprintf("roas[%d] (before byte %d): %s", e.Index, e.Offset, e.Msg)
}

// Stats counts what a parse saw.
type Stats struct {
	ROAs      int
	Accepted  int
	Malformed int
	Errors    []ROAError // the first ParseOptions.MaxErrors
}

// DefaultMaxErrors is how many malformed ROAs a parse lists by default.
const DefaultMaxErrors = 20

// ParseOptions tunes ParseJSON.
type ParseOptions struct {
	File      string // named in errors
	MaxErrors int    // 0 means DefaultMaxErrors, <0 none
}

// jsonROA is one element as both exporters write it: rpki-client writes the
// asn as a number, Routinator as "AS64500".
type jsonROA struct {
	ASN       jsonASN `json:"asn"`
	Prefix    string  `json:"prefix"`
	MaxLength *int    `json:"maxLength"`
	TA        string  `json:"ta"`
}

type jsonASN struct {
	v   uint32
	set bool
}

func (a *jsonASN) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if len(s) > 2 && strings.EqualFold(s[:2], "AS") {
			s = s[2:]
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("asn %s: want a number or \"AS\" and a number up to 4294967295", b)
	}
	a.v, a.set = uint32(v), true
	return nil
}

// ParseJSON reads an rpki-client or Routinator JSON export (plain or gzip),
// {"roas": [{"asn": ..., "prefix": ..., "maxLength": ..., "ta": ...}, ...]},
// streaming the array, and calls fn for each well-formed ROA. Malformed
// ROAs are counted and listed; broken JSON, a file without a "roas" array,
// or an error from fn stops the parse.
func ParseJSON(r io.Reader, opt ParseOptions, fn func(ROA) error) (Stats, error) {
	if opt.MaxErrors == 0 {
		opt.MaxErrors = DefaultMaxErrors
	}
	name := opt.File
	if name == "" {
		name = "input"
	}
	var st Stats
	r, err := decompress(r)
	if err != nil {
		return st, fmt.Errorf("%s: %w", name, err)
	}
	rr := &readErr{r: r}
	dec := json.NewDecoder(rr)
	fail := func(err error) (Stats, error) {
		return st, fmt.Errorf("%s: at byte %d: %w", name, dec.InputOffset(), err)
	}
	if err := expectDelim(dec, '{'); err != nil {
		return fail(fmt.Errorf("%w (want a JSON object with a \"roas\" array, as rpki-client and Routinator export)", err))
	}
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		key, _ := tok.(string)
		if key != "roas" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail(err)
			}
			continue
		}
		found = true
		if err := expectDelim(dec, '['); err != nil {
			return fail(fmt.Errorf("\"roas\": %w", err))
		}
		for i := 0; dec.More(); i++ {
			var j jsonROA
			before := dec.InputOffset()
			err := dec.Decode(&j)
			var se *json.SyntaxError
			if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fail(err)
			}
			// A read error (a corrupt gzip stream) is the file's, not the
			// element's: the decoder would return it again and again.
			if err != nil && (rr.err != nil || dec.InputOffset() == before) {
				if rr.err != nil {
					err = rr.err
				}
				return fail(err)
			}
			st.ROAs++
			roa, msg := check(j, err)
			if msg != "" {
				st.Malformed++
				if opt.MaxErrors > 0 && len(st.Errors) < opt.MaxErrors {
					st.Errors = append(st.Errors, ROAError{Index: i, Offset: dec.InputOffset(), Msg: msg})
				}
				continue
			}
			st.Accepted++
			if err := fn(roa); err != nil {
				return st, err
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return fail(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fail(err)
	}
	// Read to the end, so that a gzip file's checksum is checked.
	if _, err := io.Copy(io.Discard, rr); err != nil {
		return fail(err)
	}
	if !found {
		return st, fmt.Errorf("%s: no \"roas\" array: not an rpki-client or Routinator JSON export", name)
	}
	return st, nil
}

// check validates one decoded element; a non-empty message says what is wrong.
func check(j jsonROA, decodeErr error) (ROA, string) {
	what := "prefix " + strconv.Quote(j.Prefix)
	if decodeErr != nil {
		var te *json.UnmarshalTypeError
		if errors.As(decodeErr, &te) {
			return ROA{}, fmt.Sprintf("%s: field %s: JSON %s where a %s belongs", what, te.Field, te.Value, te.Type)
		}
		return ROA{}, what + ": " + decodeErr.Error()
	}
	if j.Prefix == "" {
		return ROA{}, "no prefix"
	}
	p, err := netip.ParsePrefix(j.Prefix)
	if err != nil {
		return ROA{}, what + ": not a CIDR prefix"
	}
	if p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return ROA{}, what + ": not a plain IPv4 or IPv6 prefix"
	}
	if p != p.Masked() {
		return ROA{}, fmt.Sprintf("%s: host bits set (the prefix would be %v)", what, p.Masked())
	}
	if !j.ASN.set {
		return ROA{}, what + ": no asn"
	}
	ml := p.Bits() // RFC 6482: without maxLength only the prefix itself
	if j.MaxLength != nil {
		ml = *j.MaxLength
	}
	if ml < p.Bits() || ml > p.Addr().BitLen() {
		return ROA{}, fmt.Sprintf("%s: maxLength %d outside %d..%d", what, ml, p.Bits(), p.Addr().BitLen())
	}
	return ROA{Prefix: p, MaxLength: ml, ASN: j.ASN.v, TA: j.TA}, ""
}

// readErr remembers the first error of its reader other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && r.err == nil {
		r.err = err
	}
	return n, err
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("want '%c', the input ends", rune(d))
		}
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return fmt.Errorf("want '%c', found %v", rune(d), tok)
	}
	return nil
}

func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}
