// Package irr imports IRR route and route6 objects (RPSL, RFC 2622/4012) as
// the registries publish them in their dumps, keeps them in the arbiter's
// database, and answers whether a route has a matching route object.
// The irr_routes table's SQL is in irr_routes_sql.go; imports are logged
// through registry/importlog.
package irr

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Route is one route or route6 object, reduced to what route filtering needs.
type Route struct {
	Prefix netip.Prefix
	Origin uint32
	Source string // upper case, e.g. "RIPE", "RADB"
	MntBy  string // the maintainers, comma separated as in the object; may be empty
	Line   int    // the object's first line in its file
}

// ObjectError is one malformed object: where it starts and what is wrong.
type ObjectError struct {
	File string
	Line int
	Msg  string
}

func (e ObjectError) String() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Stats counts what a parse saw.
type Stats struct {
	Lines     int
	Objects   int // route and route6 objects
	Accepted  int
	Malformed int
	Skipped   int           // objects of other classes (a full database dump has them)
	Errors    []ObjectError // the first ParseOptions.MaxErrors malformed objects
}

// DefaultMaxErrors is how many malformed objects a parse lists by default.
const DefaultMaxErrors = 20

// ParseOptions tunes Parse.
type ParseOptions struct {
	File      string // named in errors
	MaxErrors int    // malformed objects to list; 0 means DefaultMaxErrors, <0 none
}

// maxLine bounds one line; RPSL lines are short, a longer one means the file
// is not RPSL (or is corrupt) and is reported as such.
const maxLine = 1 << 20

// Decompress returns r itself, or a gzip reader over it when the stream
// starts with the gzip magic bytes.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// Parse reads RPSL from r (plain or gzip) and calls fn for each well-formed
// route or route6 object. Malformed objects are counted and listed in
// Stats, never fatal; a read error or an error from fn stops the parse.
func Parse(r io.Reader, opt ParseOptions, fn func(Route) error) (Stats, error) {
	p := newParser(opt)
	err := p.run(r, fn)
	return p.stats, err
}

type attr int

const (
	attrNone attr = iota
	attrRoute
	attrOrigin
	attrSource
	attrMntBy
)

type parser struct {
	opt   ParseOptions
	stats Stats

	// the object being read; the byte slices are reused from object to object
	in      bool // inside an object
	isRoute bool // its class is route or route6
	v6      bool // route6
	start   int  // its first line
	last    attr // the attribute a continuation line extends
	bad     string
	prefix  []byte
	origin  []byte
	source  []byte
	mnt     []byte
	seen    [attrMntBy + 1]bool

	// interned strings: few sources, and maintainers repeat a lot
	sources map[string]string
	mnts    map[string]string
}

func newParser(opt ParseOptions) *parser {
	if opt.MaxErrors == 0 {
		opt.MaxErrors = DefaultMaxErrors
	}
	return &parser{opt: opt, sources: map[string]string{}, mnts: map[string]string{}}
}

func (p *parser) run(r io.Reader, fn func(Route) error) error {
	r, err := Decompress(r)
	if err != nil {
		return p.wrap(err)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxLine)
	for sc.Scan() {
		p.stats.Lines++
		if err := p.line(sc.Bytes(), fn); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("a line longer than %d bytes: not an RPSL file", maxLine)
		}
		return p.wrap(err)
	}
	return p.end(fn)
}

func (p *parser) wrap(err error) error {
	name := p.opt.File
	if name == "" {
		name = "input"
	}
	return fmt.Errorf("%s: after line %d: %w", name, p.stats.Lines, err)
}

func (p *parser) line(b []byte, fn func(Route) error) error {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	if isBlank(b) {
		return p.end(fn)
	}
	switch b[0] {
	case '#', '%':
		return nil // comment lines, also RIPE's dump header
	case ' ', '\t', '+':
		if !p.in {
			p.begin()
			p.setBad("continuation line outside an object")
			return nil
		}
		if p.isRoute && p.bad == "" && p.last != attrNone {
			p.appendValue(p.last, b[1:], true)
		}
		return nil
	}
	if p.in && !p.isRoute {
		return nil // the rest of an object of another class
	}
	colon := bytes.IndexByte(b, ':')
	if !p.in {
		p.begin()
		if colon < 0 {
			p.isRoute = true // count it: a broken object may well be a route
			p.setBad(fmt.Sprintf("line %d: no \"key:\" attribute", p.stats.Lines))
			return nil
		}
		key := b[:colon]
		switch {
		case bytes.EqualFold(key, []byte("route")):
			p.isRoute = true
		case bytes.EqualFold(key, []byte("route6")):
			p.isRoute, p.v6 = true, true
		default:
			return nil
		}
		p.seen[attrRoute] = true
		p.last = attrRoute
		p.appendValue(attrRoute, b[colon+1:], false)
		return nil
	}
	if colon < 0 {
		p.setBad(fmt.Sprintf("line %d: no \"key:\" attribute", p.stats.Lines))
		return nil
	}
	var a attr
	switch key := b[:colon]; {
	case bytes.EqualFold(key, []byte("origin")):
		a = attrOrigin
	case bytes.EqualFold(key, []byte("source")):
		a = attrSource
	case bytes.EqualFold(key, []byte("mnt-by")):
		a = attrMntBy
	case bytes.EqualFold(key, []byte("route")), bytes.EqualFold(key, []byte("route6")):
		a = attrRoute
	}
	p.last = a
	if a == attrNone {
		return nil
	}
	if p.seen[a] && a != attrMntBy {
		p.setBad(fmt.Sprintf("line %d: %s: appears twice", p.stats.Lines, bytes.ToLower(b[:colon])))
		return nil
	}
	p.seen[a] = true
	p.appendValue(a, b[colon+1:], false)
	return nil
}

func (p *parser) begin() {
	p.in, p.isRoute, p.v6 = true, false, false
	p.start = p.stats.Lines
	p.last = attrNone
	p.bad = ""
	p.prefix, p.origin, p.source, p.mnt = p.prefix[:0], p.origin[:0], p.source[:0], p.mnt[:0]
	p.seen = [attrMntBy + 1]bool{}
}

func (p *parser) setBad(msg string) {
	if p.bad == "" {
		p.bad = msg
	}
}

// appendValue adds a value (or a continuation of one) with its comment cut.
func (p *parser) appendValue(a attr, v []byte, cont bool) {
	if i := bytes.IndexByte(v, '#'); i >= 0 {
		v = v[:i]
	}
	v = bytes.TrimSpace(v)
	var dst *[]byte
	switch a {
	case attrRoute:
		dst = &p.prefix
	case attrOrigin:
		dst = &p.origin
	case attrSource:
		dst = &p.source
	case attrMntBy:
		dst = &p.mnt
		if len(*dst) > 0 && len(v) > 0 {
			// a second mnt-by attribute or a continuation: both extend the list
			*dst = append(*dst, ',', ' ')
		}
		*dst = append(*dst, v...)
		return
	default:
		return
	}
	if cont && len(*dst) > 0 && len(v) > 0 {
		*dst = append(*dst, ' ')
	}
	*dst = append(*dst, v...)
}

// end finishes the current object, if any.
func (p *parser) end(fn func(Route) error) error {
	if !p.in {
		return nil
	}
	p.in = false
	if !p.isRoute {
		p.stats.Skipped++
		return nil
	}
	p.stats.Objects++
	r, msg := p.route()
	if msg != "" {
		p.stats.Malformed++
		if p.opt.MaxErrors > 0 && len(p.stats.Errors) < p.opt.MaxErrors {
			p.stats.Errors = append(p.stats.Errors, ObjectError{File: p.opt.File, Line: p.start, Msg: msg})
		}
		return nil
	}
	p.stats.Accepted++
	return fn(r)
}

// route checks the object just read; a non-empty message says what is wrong.
func (p *parser) route() (Route, string) {
	if p.bad != "" {
		if len(p.prefix) == 0 {
			return Route{}, p.bad
		}
		return Route{}, p.what(p.bad)
	}
	if len(p.prefix) == 0 {
		return Route{}, p.class() + ": empty prefix"
	}
	pfx, err := netip.ParsePrefix(string(p.prefix))
	if err != nil {
		return Route{}, p.what("not a CIDR prefix")
	}
	if pfx.Addr().Is4In6() {
		return Route{}, p.what("an IPv4-mapped IPv6 prefix")
	}
	if pfx.Addr().Is4() == p.v6 {
		if p.v6 {
			return Route{}, p.what("an IPv4 prefix in a route6 object")
		}
		return Route{}, p.what("an IPv6 prefix in a route object")
	}
	if pfx != pfx.Masked() {
		return Route{}, p.what(fmt.Sprintf("host bits set (the prefix would be %v)", pfx.Masked()))
	}
	if !p.seen[attrOrigin] {
		return Route{}, p.what("no origin attribute")
	}
	asn, err := ParseASN(p.origin)
	if err != nil {
		return Route{}, p.what("origin " + err.Error())
	}
	r := Route{Prefix: pfx, Origin: asn, Line: p.start}
	if len(p.source) > 0 {
		if bytes.ContainsAny(p.source, " \t,") {
			return Route{}, p.what(fmt.Sprintf("source %q is not one name", p.source))
		}
		s, ok := p.sources[string(p.source)]
		if !ok {
			s = strings.ToUpper(string(p.source))
			p.sources[string(p.source)] = s
		}
		r.Source = s
	}
	if len(p.mnt) > 0 {
		m, ok := p.mnts[string(p.mnt)]
		if !ok {
			m = string(p.mnt)
			p.mnts[m] = m
		}
		r.MntBy = m
	}
	return r, ""
}

func (p *parser) class() string {
	if p.v6 {
		return "route6"
	}
	return "route"
}

// what names the object in a message: "route 192.0.2.0/24: msg".
func (p *parser) what(msg string) string {
	return p.class() + " " + string(p.prefix) + ": " + msg
}

// ParseASN reads an RPSL AS number: "AS64500" in any case, or the asdot
// form "AS1.10" (RFC 5396). The "AS" is required, as RPSL writes it; AS0 is
// refused because it cannot originate a route.
func ParseASN(b []byte) (uint32, error) {
	if len(b) < 3 || (b[0] != 'A' && b[0] != 'a') || (b[1] != 'S' && b[1] != 's') {
		return 0, fmt.Errorf("%q: want an AS number like AS64500", b)
	}
	d := b[2:]
	var v uint64
	if dot := bytes.IndexByte(d, '.'); dot >= 0 {
		hi, ok1 := digits(d[:dot], 0xffff)
		lo, ok2 := digits(d[dot+1:], 0xffff)
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("%q: want an AS number like AS64500", b)
		}
		v = hi<<16 | lo
	} else {
		var ok bool
		if v, ok = digits(d, 0xffffffff); !ok {
			return 0, fmt.Errorf("%q: want an AS number like AS64500", b)
		}
	}
	if v == 0 {
		return 0, fmt.Errorf("%q: AS0 cannot originate a route", b)
	}
	return uint32(v), nil
}

// digits parses a decimal of at most max without allocating.
func digits(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, v <= max
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}
