package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	"github.com/stretchr/testify/require"
)

// The forms of If-Match: the quoted tag this API issues is honoured; an unquoted version is
// refused with the exact fix; a weak tag never matches (If-Match compares strongly); lists, empty
// values and tags this API never issues are refused. Nothing refused appends anything.
func TestIfMatchForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	e.create(t, "f", "Forms", 100)
	require.Equal(t, http.StatusOK, e.adjust(t, "f", -1, "").Status) // version 2

	t.Run("quoted: honoured", func(t *testing.T) {
		resp := e.adjust(t, "f", -1, `"2"`)
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, `"3"`, resp.Header.Get("ETag"))
		// Whitespace around it and an empty list element are HTTP's own leniencies (RFC 9110, 5.6.1).
		resp = e.adjust(t, "f", -1, ` "3" ,`)
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, `"4"`, resp.Header.Get("ETag"))
	})

	refused := func(t *testing.T, ifMatch string) apiError {
		t.Helper()
		before := e.version(t, "f")
		resp := e.adjust(t, "f", -1, ifMatch)
		require.Equal(t, http.StatusBadRequest, resp.Status, "If-Match: %s: %s", ifMatch, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodeInvalidParameter, got.Code)
		require.Equal(t, map[string]any{"parameter": "If-Match"}, got.Details)
		require.Equal(t, before, e.version(t, "f"), "nothing appended")
		return got
	}

	t.Run("unquoted: refused, saying exactly what to send", func(t *testing.T) {
		got := refused(t, "4")
		require.Equal(t, `If-Match: 4 is not an entity tag: entity tags are in double quotes, as in the ETag header; quote it: If-Match: "4"`, got.Message)
		require.Contains(t, got.Message, `quote it: If-Match: "4"`)
		// The advice is only given when it would work.
		for _, v := range []string{"0", "04", "-4", "four", "W/4"} {
			got := refused(t, v)
			require.NotContains(t, got.Message, "quote it", v)
			require.Contains(t, got.Message, "If-Match: "+v, "the value as sent, quotes and all")
		}
	})

	t.Run("weak: never matches, even the current version: 412", func(t *testing.T) {
		before := e.version(t, "f")
		resp := e.adjust(t, "f", -1, `W/"4"`)
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodePreconditionFailed, got.Code)
		require.Equal(t, map[string]any{"if_match": `W/"4"`, "actual": 4.0}, got.Details)
		require.Equal(t, `If-Match: W/"4" never matches: it is a weak entity tag, and If-Match compares entity tags strongly; send the ETag as this API gives it, If-Match: "4"`, got.Message)
		require.Empty(t, resp.Header.Get("ETag"))
		require.Equal(t, before, e.version(t, "f"), "nothing appended")

		resp = e.adjust(t, "missing-weak", 1, `W/"1"`)
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		require.Equal(t, map[string]any{"if_match": `W/"1"`, "actual": 0.0}, resp.err(t).Details)
		require.Equal(t, int64(0), e.version(t, "missing-weak"))
	})

	t.Run("lists: refused, even when a tag would match", func(t *testing.T) {
		got := refused(t, `"1", "4"`)
		require.Equal(t, `If-Match lists 2 entity tags; this API takes one, the ETag of the version you read (such as "3"), or *`, got.Message)
		refused(t, `"4", "4"`)
		refused(t, `"4",W/"4"`)

		// Two If-Match lines are one list (RFC 9110, 5.3).
		req, err := http.NewRequestWithContext(t.Context(), "POST", e.url+"/items/f/adjustments", strings.NewReader(`{"delta": -1}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("If-Match", `"4"`)
		req.Header.Add("If-Match", `"4"`)
		resp, err := e.http.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
		require.Contains(t, string(body), "lists 2 entity tags")
	})

	t.Run("empty: refused, not taken as absent", func(t *testing.T) {
		got := refused(t, empty)
		require.Contains(t, got.Message, "If-Match is empty")
		refused(t, " ")
	})

	t.Run("malformed or not this API's: refused, showing the value as sent", func(t *testing.T) {
		for _, v := range []string{`""`, `"abc"`, `"0"`, `"04"`, `"+4"`, `"-1"`, `"4`, `4"`, `W/"abc"`, `W/ "4"`, `*, "4"`, `**`, `,`, `"4" "4"`} {
			got := refused(t, v)
			require.Contains(t, got.Message, "If-Match: "+v, "the value as sent, quotes and all")
		}
		got := refused(t, "\"4\u00e9\"")
		require.Contains(t, got.Message, `"\"4\u00e9\""`, "not printable ASCII: Go-quoted")
	})
}

// If-Match: * holds when the item exists, at any version, and fails (412) when it does not.
func TestIfMatchStar(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})

	t.Run("the item exists: any version matches", func(t *testing.T) {
		t.Parallel()
		e.create(t, "star", "Starred", 10)
		require.Equal(t, http.StatusOK, e.adjust(t, "star", 1, "").Status)
		resp := e.adjust(t, "star", -4, "*")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, `"3"`, resp.Header.Get("ETag"))
		require.Equal(t, httpapi.Item{SKU: "star", Name: "Starred", Count: 7, Version: 3}, resp.item(t))

		resp = e.do(t, "DELETE", "/items/star", "", "If-Match", "*")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.JSONEq(t, `{"sku": "star", "version": 3, "deleted": true}`, string(resp.Body))
	})

	t.Run("the item does not exist: 412, and no stream is started", func(t *testing.T) {
		t.Parallel()
		resp := e.adjust(t, "nostar", 1, "*")
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodePreconditionFailed, got.Code)
		require.Equal(t, "If-Match: * requires the item to exist, but item nostar does not", got.Message)
		require.Equal(t, map[string]any{"if_match": "*", "actual": 0.0}, got.Details)
		require.Equal(t, int64(0), e.version(t, "nostar"))

		resp = e.do(t, "DELETE", "/items/nostar", "", "If-Match", "*")
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		require.Equal(t, map[string]any{"if_match": "*", "actual": 0.0}, resp.err(t).Details)

		// Without If-Match the same requests are plain 404s.
		resp = e.adjust(t, "nostar", 1, "")
		require.Equal(t, http.StatusNotFound, resp.Status, resp)
		resp = e.do(t, "DELETE", "/items/nostar", "")
		require.Equal(t, http.StatusNotFound, resp.Status, resp)
		require.Equal(t, httpapi.CodeItemNotFound, resp.err(t).Code)
		require.Equal(t, int64(0), e.version(t, "nostar"))
	})
}

// A version for an item that does not exist cannot match either: 412, like *, with actual 0.
func TestIfMatchOnMissingItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	resp := e.adjust(t, "never", 1, `"1"`)
	require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
	got := resp.err(t)
	require.Equal(t, "If-Match expected version 1, but item never does not exist", got.Message)
	require.Equal(t, map[string]any{"expected": 1.0, "actual": 0.0}, got.Details)
	resp = e.do(t, "DELETE", "/items/never", "", "If-Match", `"1"`)
	require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
	require.Equal(t, map[string]any{"expected": 1.0, "actual": 0.0}, resp.err(t).Details)
	require.Equal(t, int64(0), e.version(t, "never"), "no stream was started")
}
