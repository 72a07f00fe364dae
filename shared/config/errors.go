package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem found in a configuration file. Load and Decode return
// either a single *Error or several joined with errors.Join; use errors.As to
// get at the first one.
//
// Its text is "<file>:<line>: <key>: <msg>"; the line is left out when it is
// not known (for example a required key that is missing from the file) and
// the key is left out when the problem is not about a key (a syntax error).
type Error struct {
	File string // as passed to Load or Decode
	Line int    // 1-based; 0 when unknown
	Key  string // dotted key path such as "routers[1].address"; "" when unknown
	Msg  string
	Err  error // the validation error this was made from, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("<config>")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Validator is implemented by configuration structs that check their own
// values after decoding. Decode calls Validate on the value it decoded into.
//
// Validate reports problems about a key with *FieldError (see Errorf and
// Required), several of them joined with errors.Join; Decode then adds the
// file name and the line the key is on. Other errors are reported with the
// file name only.
type Validator interface {
	Validate() error
}

// FieldError is a validation problem about one key. Key is the dotted path
// of YAML key names, with list indices in brackets: "listen.grpc",
// "routers[1].address". Map keys are used as they are.
type FieldError struct {
	Key string
	Msg string
	err error // what Msg was formatted from, for errors.Is/As
}

func (e *FieldError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.err }

// Errorf returns a *FieldError for key with a message formatted as by
// fmt.Errorf (so %w wraps).
func Errorf(key, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &FieldError{Key: key, Msg: err.Error(), err: err}
}

// Required returns the error for a required key that has no value.
func Required(key string) error {
	return &FieldError{Key: key, Msg: "is required"}
}

// Prefix puts prefix in front of the keys of the field errors in err, so that
// a nested struct can validate itself without knowing where it sits:
//
//	for i, r := range c.Routers {
//		errs = append(errs, config.Prefix(fmt.Sprintf("routers[%d]", i), r.Validate()))
//	}
//	return errors.Join(errs...)
//
// An error that is not a field error becomes one about prefix itself.
// Prefix(p, nil) is nil.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	if fe, ok := err.(*FieldError); ok {
		c := *fe
		c.Key = joinKey(prefix, fe.Key)
		return &c
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Prefix(prefix, e))
		}
		return errors.Join(out...)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Key = joinKey(prefix, fe.Key)
		return &c
	}
	return &FieldError{Key: prefix, Msg: err.Error(), err: err}
}

// joinKey joins a key path and a child path: "a" + "b" = "a.b",
// "a" + "[1].b" = "a[1].b".
func joinKey(parent, child string) string {
	switch {
	case parent == "":
		return child
	case child == "":
		return parent
	case strings.HasPrefix(child, "["):
		return parent + child
	}
	return parent + "." + child
}

// parentKey strips the last element of a key path: "a.b[1].c" → "a.b[1]" →
// "a.b" → "a" → "".
func parentKey(key string) string {
	if strings.HasSuffix(key, "]") {
		if i := strings.LastIndexByte(key, '['); i >= 0 {
			return key[:i]
		}
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// validationErrors turns what Validate returned into *Errors for file name,
// finding the line of each key in entries.
func validationErrors(name string, idx *index, err error) error {
	var out []error
	var collect func(error)
	collect = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, idx.keyError(name, fe.Key, fe.Msg, fe))
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				collect(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			out = append(out, idx.keyError(name, fe.Key, fe.Msg, err))
			return
		}
		out = append(out, &Error{File: name, Msg: err.Error(), Err: err})
	}
	collect(err)
	return join(out)
}

// join is errors.Join that returns a lone error as itself.
func join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
