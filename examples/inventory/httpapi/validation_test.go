package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	"github.com/stretchr/testify/require"
)

// validationCase is a request refused before it reaches the database.
type validationCase struct {
	name         string
	method, path string
	body         string
	header       []string // name, value pairs
	status       int
	code         string
	// field is the member named in details: "field" for a 400, a key of "fields" for a 422.
	field string
}

func validationCases() []validationCase {
	item := func(name, body string, status int, code, field string, header ...string) validationCase {
		return validationCase{name: name, method: "POST", path: "/items", body: body, header: header, status: status, code: code, field: field}
	}
	adjust := func(name, body string, status int, code, field string, header ...string) validationCase {
		return validationCase{name: name, method: "POST", path: "/items/v/adjustments", body: body, header: header, status: status, code: code, field: field}
	}
	get := func(name, path string, code string) validationCase {
		return validationCase{name: name, method: "GET", path: path, status: http.StatusBadRequest, code: code}
	}
	const (
		bad   = http.StatusBadRequest
		worse = http.StatusUnprocessableEntity
	)
	valid := `{"sku": "ok", "name": "Fine", "count": 1}`
	big := `{"sku": "big", "name": "` + strings.Repeat("x", 70<<10) + `", "count": 1}`
	return []validationCase{
		// 415, 413: checked before the body is read.
		item("no content type", valid, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMediaType, "", "Content-Type", ""),
		item("text/plain", valid, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMediaType, "", "Content-Type", "text/plain"),
		item("form", "sku=ok", http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMediaType, "", "Content-Type", "application/x-www-form-urlencoded"),
		item("another charset", valid, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMediaType, "", "Content-Type", "application/json; charset=latin1"),
		item("body over 64 KiB", big, http.StatusRequestEntityTooLarge, httpapi.CodeBodyTooLarge, ""),
		// 400: not one JSON object.
		item("empty body", "", bad, httpapi.CodeMalformedJSON, "", "Content-Type", "application/json"),
		item("truncated", `{"sku": "ok",`, bad, httpapi.CodeMalformedJSON, ""),
		item("an array", `[{"sku": "ok"}]`, bad, httpapi.CodeMalformedJSON, ""),
		item("null", `null`, bad, httpapi.CodeMalformedJSON, ""),
		item("a string", `"ok"`, bad, httpapi.CodeMalformedJSON, ""),
		item("two objects", valid+valid, bad, httpapi.CodeMalformedJSON, ""),
		item("trailing garbage", valid+" x", bad, httpapi.CodeMalformedJSON, ""),
		item("invalid UTF-8", "{\"sku\": \"ok\", \"name\": \"\xff\", \"count\": 1}", bad, httpapi.CodeMalformedJSON, ""),
		item("duplicate member", `{"sku": "ok", "sku": "other", "name": "Fine", "count": 1}`, bad, httpapi.CodeMalformedJSON, "sku"),
		// 400: unknown members, exact spelling only.
		item("unknown field", `{"sku": "ok", "name": "Fine", "count": 1, "colour": "red"}`, bad, httpapi.CodeUnknownField, "colour"),
		item("case-folded field", `{"SKU": "ok", "name": "Fine", "count": 1}`, bad, httpapi.CodeUnknownField, "SKU"),
		// 400: wrong JSON types.
		item("count as a string", `{"sku": "ok", "name": "Fine", "count": "1"}`, bad, httpapi.CodeInvalidType, "count"),
		item("count with a fraction", `{"sku": "ok", "name": "Fine", "count": 1.5}`, bad, httpapi.CodeInvalidType, "count"),
		item("count with an exponent", `{"sku": "ok", "name": "Fine", "count": 1e3}`, bad, httpapi.CodeInvalidType, "count"),
		item("count null", `{"sku": "ok", "name": "Fine", "count": null}`, bad, httpapi.CodeInvalidType, "count"),
		item("name a number", `{"sku": "ok", "name": 5, "count": 1}`, bad, httpapi.CodeInvalidType, "name"),
		item("sku a boolean", `{"sku": true, "name": "Fine", "count": 1}`, bad, httpapi.CodeInvalidType, "sku"),
		item("sku an object", `{"sku": {"id": 1}, "name": "Fine", "count": 1}`, bad, httpapi.CodeInvalidType, "sku"),
		// 422: well-formed, invalid values.
		item("missing count", `{"sku": "ok", "name": "Fine"}`, worse, httpapi.CodeValidationFailed, "count"),
		item("missing sku", `{"name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("empty object", `{}`, worse, httpapi.CodeValidationFailed, "name"),
		item("negative count", `{"sku": "ok", "name": "Fine", "count": -1}`, worse, httpapi.CodeValidationFailed, "count"),
		item("count over int4", `{"sku": "ok", "name": "Fine", "count": 2147483648}`, worse, httpapi.CodeValidationFailed, "count"),
		item("count over int8", `{"sku": "ok", "name": "Fine", "count": 99999999999999999999}`, worse, httpapi.CodeValidationFailed, "count"),
		item("empty sku", `{"sku": "", "name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("sku starting with -", `{"sku": "-ok", "name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("sku with a space", `{"sku": "o k", "name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("sku with a slash", `{"sku": "o/k", "name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("sku not ASCII", `{"sku": "ök", "name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("sku of 101", `{"sku": "`+strings.Repeat("k", 101)+`", "name": "Fine", "count": 1}`, worse, httpapi.CodeValidationFailed, "sku"),
		item("empty name", `{"sku": "ok", "name": "", "count": 1}`, worse, httpapi.CodeValidationFailed, "name"),
		item("blank name", `{"sku": "ok", "name": " \t ", "count": 1}`, worse, httpapi.CodeValidationFailed, "name"),
		item("NUL in name", `{"sku": "ok", "name": "a\u0000b", "count": 1}`, worse, httpapi.CodeValidationFailed, "name"),
		item("name of 201", `{"sku": "ok", "name": "`+strings.Repeat("é", 201)+`", "count": 1}`, worse, httpapi.CodeValidationFailed, "name"),

		adjust("adjust: text/plain", `{"delta": 1}`, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedMediaType, "", "Content-Type", "text/plain"),
		adjust("adjust: body over 64 KiB", `{"delta": 1, "reason": "`+strings.Repeat("x", 70<<10)+`"}`, http.StatusRequestEntityTooLarge, httpapi.CodeBodyTooLarge, ""),
		adjust("adjust: malformed", `{"delta": }`, bad, httpapi.CodeMalformedJSON, ""),
		adjust("adjust: unknown field", `{"delta": 1, "sku": "v"}`, bad, httpapi.CodeUnknownField, "sku"),
		adjust("adjust: delta as a string", `{"delta": "1"}`, bad, httpapi.CodeInvalidType, "delta"),
		adjust("adjust: reason a number", `{"delta": 1, "reason": 7}`, bad, httpapi.CodeInvalidType, "reason"),
		adjust("adjust: zero delta", `{"delta": 0, "reason": "nothing"}`, worse, httpapi.CodeValidationFailed, "delta"),
		adjust("adjust: missing delta", `{"reason": "what"}`, worse, httpapi.CodeValidationFailed, "delta"),
		adjust("adjust: delta over int4", `{"delta": -2147483648}`, worse, httpapi.CodeValidationFailed, "delta"),
		adjust("adjust: reason of 501", `{"delta": 1, "reason": "`+strings.Repeat("r", 501)+`"}`, worse, httpapi.CodeValidationFailed, "reason"),
		adjust("adjust: control character in reason", `{"delta": 1, "reason": "a\u001bb"}`, worse, httpapi.CodeValidationFailed, "reason"),
		// If-Match: a weak tag is well-formed (412, TestIfMatchForms); these are not.
		adjust("If-Match unquoted", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", "1"),
		adjust("If-Match empty", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", empty),
		adjust("If-Match list", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `"1", "2"`),
		adjust("If-Match not a version", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `"abc"`),
		adjust("If-Match zero", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `"0"`),
		adjust("If-Match leading zero", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `"01"`),
		adjust("If-Match unbalanced quote", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `"1`),
		adjust("If-Match * in a list", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `*, "1"`),
		adjust("If-Match weak, unquoted", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `W/1`),
		adjust("If-Match weak, not a version", `{"delta": 1}`, bad, httpapi.CodeInvalidParameter, "", "If-Match", `W/"abc"`),
		{name: "adjust: malformed sku in the path", method: "POST", path: "/items/-v/adjustments", body: `{"delta": 1}`,
			status: bad, code: httpapi.CodeInvalidParameter},

		{name: "delete: malformed sku in the path", method: "DELETE", path: "/items/a.b", status: bad, code: httpapi.CodeInvalidParameter},
		{name: "delete: If-Match unquoted", method: "DELETE", path: "/items/v", header: []string{"If-Match", "1"},
			status: bad, code: httpapi.CodeInvalidParameter},
		{name: "delete: If-Match list", method: "DELETE", path: "/items/v", header: []string{"If-Match", `"1","1"`},
			status: bad, code: httpapi.CodeInvalidParameter},

		get("malformed sku", "/items/a%20b", httpapi.CodeInvalidParameter),
		get("sku too long", "/items/"+strings.Repeat("k", 101), httpapi.CodeInvalidParameter),
		get("history of a malformed sku", "/items/a.b/history", httpapi.CodeInvalidParameter),
		get("as_of not a time", "/items/v?as_of=yesterday", httpapi.CodeInvalidParameter),
		get("as_of empty", "/items/v?as_of=", httpapi.CodeInvalidParameter),
		get("as_of without a zone", "/items/v?as_of=2025-01-02T03:04:05", httpapi.CodeInvalidParameter),
		get("as_of_version negative", "/items/v?as_of_version=-1", httpapi.CodeInvalidParameter),
		get("as_of_version not a number", "/items/v?as_of_version=two", httpapi.CodeInvalidParameter),
		get("as_of and as_of_version", "/items/v?as_of=2025-01-02T03:04:05Z&as_of_version=1", httpapi.CodeInvalidParameter),
		get("as_of_version twice", "/items/v?as_of_version=1&as_of_version=2", httpapi.CodeInvalidParameter),
		get("history from 0", "/items/v/history?from=0", httpapi.CodeInvalidParameter),
		get("history from a word", "/items/v/history?from=start", httpapi.CodeInvalidParameter),
		get("history limit 0", "/items/v/history?limit=0", httpapi.CodeInvalidParameter),
		get("history limit over 1000", "/items/v/history?limit=1001", httpapi.CodeInvalidParameter),
		get("list limit 0", "/items?limit=0", httpapi.CodeInvalidParameter),
		get("list limit negative", "/items?limit=-5", httpapi.CodeInvalidParameter),
		get("list limit over 1000", "/items?limit=1001", httpapi.CodeInvalidParameter),
		get("list limit a word", "/items?limit=all", httpapi.CodeInvalidParameter),
		get("list limit empty", "/items?limit=", httpapi.CodeInvalidParameter),
		get("list limit twice", "/items?limit=5&limit=6", httpapi.CodeInvalidParameter),
		get("list after empty", "/items?after=", httpapi.CodeInvalidParameter),
		get("list after not a SKU", "/items?after=a%20b", httpapi.CodeInvalidParameter),
		get("list after starting with -", "/items?after=-a", httpapi.CodeInvalidParameter),
		get("list after twice", "/items?after=a&after=b", httpapi.CodeInvalidParameter),
	}
}

func checkRefusal(t *testing.T, e *env, c validationCase) {
	t.Helper()
	resp := e.do(t, c.method, c.path, c.body, c.header...)
	require.Equal(t, c.status, resp.Status, resp)
	got := resp.err(t)
	require.Equal(t, c.code, got.Code, got.Message)
	switch {
	case c.field != "" && c.status == http.StatusUnprocessableEntity:
		require.Contains(t, got.Details["fields"], c.field, got.Message)
	case c.field != "":
		require.Equal(t, c.field, got.Details["field"], got.Message)
	}
	require.Empty(t, resp.Header.Get("ETag"))
}

// Every refused request is refused before the database: against a live database it changes
// nothing, and against a closed pool it gets the same answer.
func TestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	e.create(t, "v", "Validated", 10)
	streams, events := e.stored(t)
	dead := serve(t, closedPool(t), httpapi.Options{})

	t.Run("cases", func(t *testing.T) {
		for _, c := range validationCases() {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				checkRefusal(t, e, c)
				checkRefusal(t, dead, c)
			})
		}
	})
	// After every case (the group returns when its parallel cases are done): nothing was appended.
	s, n := e.stored(t)
	require.Equal(t, []int64{streams, events}, []int64{s, n}, "a refused request appended something")
	require.Equal(t, int64(1), e.version(t, "v"))
	for _, sku := range []string{"ok", "big", "-ok", "other"} {
		require.Equal(t, int64(0), e.version(t, sku), sku)
	}

	t.Run("the closed pool does fail requests that need the database", func(t *testing.T) {
		t.Parallel()
		resp := dead.do(t, "POST", "/items", `{"sku": "ok", "name": "Fine", "count": 1}`)
		require.GreaterOrEqual(t, resp.Status, 500, resp)
		resp = dead.do(t, "GET", "/items/v", "")
		require.GreaterOrEqual(t, resp.Status, 500, resp)
	})
	t.Run("several invalid values are reported together", func(t *testing.T) {
		t.Parallel()
		resp := e.do(t, "POST", "/items", `{"sku": "-", "name": "", "count": -5}`)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodeValidationFailed, got.Code)
		require.Len(t, got.Details["fields"], 3, got.Message)
	})
}
