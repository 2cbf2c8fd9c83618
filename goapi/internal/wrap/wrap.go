// Package wrap says which call failed around an error that says what went wrong, each once, for
// the annals package and its domain layer alike.
package wrap

import (
	"fmt"
	"strings"
)

// opError keeps the package prefix "annals: " at the front only.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string {
	return "annals: " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "annals: ")
}

func (e *opError) Unwrap() error { return e.err }

// Errorf wraps err with the call it came from (format and args, as for fmt.Sprintf).
func Errorf(err error, format string, args ...any) error {
	return &opError{op: fmt.Sprintf(format, args...), err: err}
}
