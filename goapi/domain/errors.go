package domain

import (
	"fmt"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/internal/names"
	"github.com/annals-db/annals/goapi/internal/wrap"
)

var (
	wrapf       = wrap.Errorf
	nameProblem = names.Problem
)

// invalid builds a client-side InvalidArgumentError (no database round trip was made).
func invalid(argument, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	return &annals.InvalidArgumentError{BaseError: annals.BaseError{Kind: annals.ErrInvalidArgument,
		Message: argument + ": " + reason}, Argument: argument, Reason: reason}
}
