// Package invalid is the one error type for bad input, shared by every
// domain package on both sides: Field names what is wrong the way the
// caller spells it (a gRPC field path, a config key), so the API maps it to
// InvalidArgument with that field, and a config loader to the key's line.
package invalid

import (
	"errors"
	"fmt"
)

// Error is bad input in one field.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

// New is an Error for field, its message formatted.
func New(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// As finds the Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
