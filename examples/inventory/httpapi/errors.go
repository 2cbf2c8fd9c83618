package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error codes, the "code" of an error body. Clients branch on them, never on the message.
const (
	CodeMalformedJSON         = "malformed_json"         // 400: not one JSON object, or a duplicate key
	CodeUnknownField          = "unknown_field"          // 400: a member the endpoint does not take
	CodeInvalidType           = "invalid_type"           // 400: a member of the wrong JSON type
	CodeInvalidParameter      = "invalid_parameter"      // 400: a malformed path, query or header value
	CodeNotFound              = "not_found"              // 404: no such endpoint
	CodeItemNotFound          = "item_not_found"         // 404: no such item (at that point in time)
	CodeMethodNotAllowed      = "method_not_allowed"     // 405
	CodeItemExists            = "item_exists"            // 409: POST /items for an existing SKU
	CodeConflict              = "conflict"               // 409: concurrent writers kept winning
	CodeStreamDeleted         = "stream_deleted"         // 410: the item was deleted (its stream)
	CodePreconditionFailed    = "precondition_failed"    // 412: If-Match does not hold
	CodeBodyTooLarge          = "body_too_large"         // 413
	CodeUnsupportedMediaType  = "unsupported_media_type" // 415: Content-Type is not application/json
	CodeValidationFailed      = "validation_failed"      // 422: well-formed, but values are invalid
	CodeInvalidCommand        = "invalid_command"        // 422: the inventory rules refuse the values
	CodeInsufficientInventory = "insufficient_inventory" // 422: an adjustment below zero
	CodeCanceled              = "canceled"               // 499: the client went away
	CodeInternal              = "internal"               // 500
	CodeUnavailable           = "unavailable"            // 503: the database is unreachable or not set up
)

// statusClientClosedRequest is logged when the client gave up before the answer (nginx's 499).
const statusClientClosedRequest = 499

// apiError is an error answer: its status and the body {"error": {...}}.
type apiError struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// cause is logged with the request (500s and 503s), never sent.
	cause error
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *apiError) with(key string, value any) *apiError {
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	e.Details[key] = value
	return e
}

// preconditionError: an If-Match that does not hold, found before or by the write: a version
// that is not the item's, * or a version for an item that does not exist, or a weak tag.
type preconditionError struct {
	SKU     string
	IfMatch ifMatch
	// Actual is the item's version, 0 when it does not exist.
	Actual int64
}

func (e *preconditionError) Error() string {
	return fmt.Sprintf("item %s is at version %d; If-Match: %s does not match", e.SKU, e.Actual, e.IfMatch.header)
}

func (e *preconditionError) apiError() *apiError {
	failed := func(format string, args ...any) *apiError {
		return newError(http.StatusPreconditionFailed, CodePreconditionFailed, format, args...)
	}
	switch m := e.IfMatch; {
	case m.any:
		return failed("If-Match: * requires the item to exist, but item %s does not", e.SKU).
			with("if_match", m.header).with("actual", e.Actual)
	case m.weak:
		return failed(`If-Match: %s never matches: it is a weak entity tag, and If-Match compares entity tags strongly; send the ETag as this API gives it, If-Match: "%d"`, m.header, m.version).
			with("if_match", m.header).with("actual", e.Actual)
	case e.Actual == 0:
		return failed("If-Match expected version %d, but item %s does not exist", m.version, e.SKU).
			with("expected", m.version).with("actual", e.Actual)
	}
	return failed("If-Match expected version %d, but item %s is at version %d; read it again", e.IfMatch.version, e.SKU, e.Actual).
		with("expected", e.IfMatch.version).with("actual", e.Actual)
}

// deletedError: the item's stream was deleted (annals.delete_stream) at Version. Reads of its
// current state and every command for it answer 410; its history and past states stay readable.
type deletedError struct {
	SKU     string
	Version int64
}

func (e *deletedError) Error() string {
	return fmt.Sprintf("item %s was deleted at version %d", e.SKU, e.Version)
}

// toAPIError is the one place that turns errors from the inventory domain, Annals and the request
// checks into answers. Errors it does not know are 500s, with the cause kept for the log only.
func toAPIError(err error) *apiError {
	var (
		api          *apiError
		precondition *preconditionError
		deleted      *deletedError
		insufficient *inventory.InsufficientInventoryError
		wrongVersion *annals.WrongExpectedVersionError
		tooLarge     *annals.TooLargeError
	)
	switch {
	case errors.As(err, &api):
		return api
	case errors.As(err, &deleted):
		return newError(http.StatusGone, CodeStreamDeleted, "%s; its history stays readable", deleted.Error()).
			with("version", deleted.Version)
	case errors.As(err, &precondition):
		return precondition.apiError()
	case errors.As(err, &insufficient):
		return newError(http.StatusUnprocessableEntity, CodeInsufficientInventory,
			"item %s has %d, %d requested", insufficient.SKU, insufficient.Available, insufficient.Requested).
			with("available", insufficient.Available).with("requested", insufficient.Requested)
	case errors.Is(err, inventory.ErrItemNotFound):
		return newError(http.StatusNotFound, CodeItemNotFound, "%s", trimPrefix(err, "inventory: "))
	case errors.Is(err, inventory.ErrItemExists):
		return newError(http.StatusConflict, CodeItemExists, "%s", trimPrefix(err, "inventory: "))
	case errors.Is(err, inventory.ErrInvalidCommand):
		return newError(http.StatusUnprocessableEntity, CodeInvalidCommand, "%s", trimPrefix(err, "inventory: "))
	case errors.As(err, &wrongVersion): // the repository's retries ran out
		return newError(http.StatusConflict, CodeConflict,
			"the item kept changing under concurrent writers (now at version %d); try again", wrongVersion.Actual).
			with("actual", wrongVersion.Actual)
	case errors.Is(err, annals.ErrStreamDeleted):
		return newError(http.StatusGone, CodeStreamDeleted, "the item's stream is deleted")
	case errors.As(err, &tooLarge):
		return newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the event is over the store's %s limit", tooLarge.Setting)
	case errors.Is(err, annals.ErrInvalidArgument), errors.Is(err, annals.ErrReserved):
		// The request checks should have caught it; the database did.
		return &apiError{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
			Message: err.Error(), cause: err}
	case errors.Is(err, annals.ErrSchemaNotInstalled), errors.Is(err, annals.ErrSchemaTooNew):
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "the database is not set up for this service", cause: err}
	case errors.As(err, new(*pgconn.ConnectError)):
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the database is unreachable", cause: err}
	case errors.Is(err, context.Canceled):
		return &apiError{Status: statusClientClosedRequest, Code: CodeCanceled, Message: "request canceled", cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the database did not answer in time", cause: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", cause: err}
}

// trimPrefix is err's message without the package prefix a client has no use for.
func trimPrefix(err error, prefix string) string { return strings.TrimPrefix(err.Error(), prefix) }
