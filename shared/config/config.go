// Package config loads the YAML configuration files of the bwx daemons.
//
// Decoding is strict: an unknown key, a value of the wrong type, a bad
// duration, a duplicate key or a second YAML document is an error. Every
// problem is reported as "<file>:<line>: <key path>: <problem>", for example
//
//	/etc/bwx/arbiter.yaml:4: listen.grpc: unknown key
//	/etc/bwx/agent.yaml:9: probe.interval: invalid duration "5x": use a number with a unit, such as "30s", "5m" or "1h30m"
//
// so that an operator can go straight to the line. After decoding, a value
// that implements Validator is validated, and the keys its errors name are
// looked up in the file the same way.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path into out, which must be a non-nil pointer
// (usually to a struct holding the defaults). See Decode.
//
// A file that cannot be read gives the *fs.PathError from os.ReadFile, which
// names the file.
func Load(path string, out any) error { return LoadThen(path, out, nil) }

// LoadThen is Load with then run after decoding and before validation:
// command-line flags that replace a key go there, so the file need not
// hold a key a flag gives, and validation judges the values in use. A
// missing file is an error only if validation then fails (every key from
// flags and defaults).
func LoadThen(path string, out any, then func()) error {
	data, err := os.ReadFile(path)
	missing := os.IsNotExist(err) && then != nil
	if err != nil && !missing {
		return err
	}
	if err := decode(path, data, out, then); err != nil {
		if missing {
			return fmt.Errorf("%s does not exist, and the flags do not give every required key: %w", path, err)
		}
		return err
	}
	return nil
}

// Decode decodes the YAML document data into out, which must be a non-nil
// pointer; name is the file name used in error messages.
//
// Keys that are not in the file keep the value out already had, so an empty
// document (or one with only comments) leaves the defaults in place. After a
// successful decode, if out implements Validator its Validate method is
// called (also for an empty document, so required keys are still checked).
//
// Errors are *Error, or several *Error joined with errors.Join. On error out
// may have been partly written.
func Decode(name string, data []byte, out any) error { return decode(name, data, out, nil) }

func decode(name string, data []byte, out any, then func()) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: decoding %s: need a non-nil pointer, got %T", name, out)
	}
	doc, err := parse(name, data)
	if err != nil {
		return err
	}
	idx := newIndex(doc, rv.Type().Elem())
	if doc != nil {
		// yaml truncates a number with a fraction into an integer key
		// (fee_bp: 2.5 would be 2): find those first, then report them
		// with whatever else is wrong, in the order of the file.
		errs := idx.notIntegers(name)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, decodeErrors(name, idx, err)...)
		}
		if len(errs) > 0 {
			slices.SortStableFunc(errs, func(a, b error) int { return errorLine(a) - errorLine(b) })
			// A value yaml refused too (1e30 into an int) is reported once.
			errs = slices.CompactFunc(errs, func(a, b error) bool {
				var ea, eb *Error
				return errors.As(a, &ea) && errors.As(b, &eb) && ea.Line == eb.Line && ea.Key == eb.Key && ea.Key != ""
			})
			return join(errs)
		}
	}
	if then != nil {
		then()
	}
	if v, ok := out.(Validator); ok {
		if err := v.Validate(); err != nil {
			return validationErrors(name, idx, err)
		}
	}
	return nil
}

// parse returns the node tree of the only document in data, or nil if there
// is none.
func parse(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, syntaxError(name, data, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{File: name, Line: next.Line, Msg: "a second YAML document; the file must hold exactly one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, data, err)
	}
	return &doc, nil
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func syntaxError(name string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: name, Msg: msg}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if strings.Contains(e.Msg, "tab character") {
		// yaml gives the line of the value before the tab; point at the
		// first line from there that is indented with a tab.
		for i, l := range strings.Split(string(data), "\n") {
			if i+1 >= e.Line && strings.Contains(l[:len(l)-len(strings.TrimLeft(l, " \t"))], "\t") {
				e.Line = i + 1
				break
			}
		}
		e.Msg = "indented with a tab; YAML needs spaces"
	}
	e.Msg = "invalid YAML: " + e.Msg
	return e
}

// The messages of *yaml.TypeError; the key path is found from the line.
var (
	unknownRE    = regexp.MustCompile(`^line (\d+): field (.+) not found in type .+$`)
	alreadySetRE = regexp.MustCompile(`^line (\d+): field (.+) already set in type .+$`)
	dupKeyRE     = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	typeRE       = regexp.MustCompile("^line (\\d+): cannot unmarshal (\\S+) (?:`(.*)` )?into (.+)$")
)

func errorLine(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

// notIntegers finds the values of integer keys written as a number that
// is not an integer (2.5, 1e3, .inf), which yaml would truncate or wrap
// instead of refusing.
func (idx *index) notIntegers(name string) []error {
	var out []error
	for _, e := range idx.entries {
		t := deref(e.typ)
		if t == nil || t == durationType || custom(t) || !isInteger(t.Kind()) {
			continue
		}
		v := e.value
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode || v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			continue
		}
		var x any
		if v.Decode(&x) != nil {
			continue
		}
		if _, ok := x.(float64); ok {
			idx.used[e] = true
			out = append(out, &Error{File: name, Line: e.line(), Key: e.path, Msg: "expected an integer, got " + v.Value})
		}
	}
	return out
}

func isInteger(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// decodeErrors turns what yaml's Decode returned into *Errors.
func decodeErrors(name string, idx *index, err error) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// yaml aborted, without a line: an UnmarshalText or UnmarshalYAML
		// method failed (a bad IP address, say), or an array had the wrong
		// length. Find the value that fails on its own.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			return []error{lineError(name, idx, line, m[2])}
		}
		if e := idx.culprit(err); e != nil {
			return []error{&Error{File: name, Line: e.line(), Key: e.path, Msg: msg}}
		}
		return []error{&Error{File: name, Msg: msg}}
	}
	var out []error
	for _, s := range te.Errors {
		out = append(out, typeError(name, idx, s))
	}
	return out
}

func typeError(name string, idx *index, s string) *Error {
	if m := unknownRE.FindStringSubmatch(s); m != nil {
		return keyLineError(name, idx, m[1], m[2], "unknown key")
	}
	if m := alreadySetRE.FindStringSubmatch(s); m != nil {
		return keyLineError(name, idx, m[1], m[2], "duplicate key")
	}
	if m := dupKeyRE.FindStringSubmatch(s); m != nil {
		k, err := strconv.Unquote(m[2])
		if err != nil {
			k = m[2]
		}
		return keyLineError(name, idx, m[1], k, "duplicate key (first set on line "+m[3]+")")
	}
	if m := typeRE.FindStringSubmatch(s); m != nil {
		line, _ := strconv.Atoi(m[1])
		return valueError(name, idx, line, m[2], m[3], m[4])
	}
	if m := lineRE.FindStringSubmatch(s); m != nil {
		line, _ := strconv.Atoi(m[1])
		return lineError(name, idx, line, m[2])
	}
	return &Error{File: name, Msg: s}
}

// keyLineError reports a problem with mapping key k on the given line.
func keyLineError(name string, idx *index, lineStr, k, msg string) *Error {
	line, _ := strconv.Atoi(lineStr)
	e := &Error{File: name, Line: line, Msg: msg}
	if en := idx.find(func(en *entry) bool {
		return en.key != nil && en.key.Line == line && en.key.Value == k
	}); en != nil {
		e.Key = en.path
	} else {
		e.Key = k
	}
	return e
}

// lineError reports msg on line, naming the key if one value starts there.
func lineError(name string, idx *index, line int, msg string) *Error {
	e := &Error{File: name, Line: line, Msg: msg}
	if en := idx.find(func(en *entry) bool { return en.value.Line == line && en.path != "" }); en != nil {
		e.Key = en.path
	}
	return e
}

// valueError reports that the value on line, of YAML tag tag (text the
// start of its value as yaml quoted it), does not fit Go type goType.
func valueError(name string, idx *index, line int, tag, text, goType string) *Error {
	en := idx.find(func(en *entry) bool {
		v := en.value
		if v.Line != line {
			return false
		}
		switch tag {
		case "!!seq":
			return v.Kind == yaml.SequenceNode
		case "!!map":
			return v.Kind == yaml.MappingNode
		}
		if v.Kind != yaml.ScalarNode {
			return false
		}
		if prefix, ok := strings.CutSuffix(text, "..."); ok && len(v.Value) > 10 {
			return strings.HasPrefix(v.Value, prefix)
		}
		return v.Value == text
	})
	e := &Error{File: name, Line: line}
	var t reflect.Type
	if en != nil {
		e.Line = en.line()
		e.Key = en.path
		t = en.typ
		text = en.value.Value
	}
	e.Msg = mismatch(tag, text, t, goType)
	return e
}

var durationType = reflect.TypeFor[time.Duration]()

// mismatch says why a value of YAML tag tag and text cannot be decoded into
// t (nil if unknown; goType is yaml's name for it).
func mismatch(tag, text string, t reflect.Type, goType string) string {
	var got string
	switch tag {
	case "!!seq":
		got = "a list"
	case "!!map":
		got = "a mapping"
	case "!!null":
		got = "nothing (null)"
	case "!!str":
		got = strconv.Quote(text)
	default:
		got = text
	}
	t = deref(t)
	if t == durationType || (t == nil && strings.TrimLeft(goType, "*") == "time.Duration") {
		if tag == "!!int" || tag == "!!float" {
			return fmt.Sprintf("invalid duration %s: a unit is required, such as %q", text, text+"s")
		}
		if tag == "!!str" {
			return fmt.Sprintf("invalid duration %s: use a number with a unit, such as \"30s\", \"5m\" or \"1h30m\"", got)
		}
		return "expected a duration such as \"30s\", got " + got
	}
	if t == nil {
		return fmt.Sprintf("expected %s, got %s", goType, got)
	}
	var want string
	switch t.Kind() {
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag == "!!int" {
			bits := t.Bits()
			return fmt.Sprintf("%s is out of range (%d to %d)", text, int64(-1)<<(bits-1), int64(1)<<(bits-1)-1)
		}
		want = "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if tag == "!!int" {
			return fmt.Sprintf("%s is out of range (0 to %d)", text, uint64(math.MaxUint64)>>(64-t.Bits()))
		}
		want = "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.String:
		want = "a string"
	case reflect.Slice, reflect.Array:
		want = "a list"
	case reflect.Map, reflect.Struct:
		want = "a mapping"
	default:
		want = "a value of type " + t.String()
	}
	return fmt.Sprintf("expected %s, got %s", want, got)
}

// culprit finds the innermost value that fails to decode on its own with
// the same error as the whole document did.
func (idx *index) culprit(err error) *entry {
	var best *entry
	for _, e := range idx.entries {
		if e.typ == nil || (best != nil && e.depth <= best.depth) {
			continue
		}
		if derr := e.value.Decode(reflect.New(e.typ).Interface()); derr != nil && derr.Error() == err.Error() {
			best = e
		}
	}
	return best
}
