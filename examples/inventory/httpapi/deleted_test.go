package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/stretchr/testify/require"
)

// gone checks a 410 for an item deleted at version.
func gone(t *testing.T, resp response, sku string, version int64) {
	t.Helper()
	require.Equal(t, http.StatusGone, resp.Status, resp)
	got := resp.err(t)
	require.Equal(t, httpapi.CodeStreamDeleted, got.Code)
	require.Equal(t, "item "+sku+" was deleted at version "+jsonInt(int(version))+"; its history stays readable", got.Message)
	require.Equal(t, map[string]any{"version": float64(version)}, got.Details)
	require.Empty(t, resp.Header.Get("ETag"))
}

func TestDeleteItem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})

	t.Run("If-Match is honoured; then the item says it was deleted, everywhere", func(t *testing.T) {
		t.Parallel()
		e.create(t, "del", "Discontinued", 5)
		require.Equal(t, http.StatusOK, e.adjust(t, "del", -2, "").Status) // version 2

		resp := e.do(t, "DELETE", "/items/del", "", "If-Match", `"1"`)
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		require.Equal(t, map[string]any{"expected": 1.0, "actual": 2.0}, resp.err(t).Details)
		require.Equal(t, http.StatusOK, e.do(t, "GET", "/items/del", "").Status, "still there")

		resp = e.do(t, "DELETE", "/items/del", "", "If-Match", `"2"`, "X-Request-Id", "delete-del-1")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.JSONEq(t, `{"sku": "del", "version": 2, "deleted": true}`, string(resp.Body))
		require.Empty(t, resp.Header.Get("ETag"))
		info, err := e.client.StreamInfo(t.Context(), inventory.StreamID("del"))
		require.NoError(t, err)
		require.Equal(t, "deleted", info.State)
		var reason string
		require.NoError(t, e.pool.QueryRow(t.Context(),
			`SELECT l.reason FROM annals_internal.lifecycle_log AS l WHERE l.stream_id = 'inventory-del' AND l.operation = 'delete'`).
			Scan(&reason))
		require.Equal(t, "DELETE /items/del, request delete-del-1", reason, "audited with the request id")

		// The read model still has the row (deleting appends no event), but it is not served.
		count, version := e.projected(t, "del")
		require.Equal(t, 3, count)
		require.Equal(t, int64(2), version)
		gone(t, e.do(t, "GET", "/items/del", ""), "del", 2)
		head := e.do(t, "HEAD", "/items/del", "")
		require.Equal(t, http.StatusGone, head.Status)

		// Every command answers 410, whatever the rules or the If-Match would have said.
		for _, ifMatch := range []string{"", `"2"`, `"1"`, `"9"`, "*", `W/"2"`} {
			gone(t, e.adjust(t, "del", 1, ifMatch), "del", 2)
			gone(t, e.adjust(t, "del", -100, ifMatch), "del", 2) // an overdraw: not 422
			gone(t, e.do(t, "DELETE", "/items/del", "", "If-Match", ifMatch), "del", 2)
		}
		gone(t, e.adjust(t, "del", 2147483647, ""), "del", 2) // over the maximum: not 422
		gone(t, e.do(t, "POST", "/items", `{"sku": "del", "name": "Again", "count": 1}`), "del", 2)
		require.Equal(t, int64(2), e.version(t, "del"), "nothing appended")

		// Its past stays readable.
		resp = e.do(t, "GET", "/items/del/history", "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		var h httpapi.History
		require.NoError(t, json.Unmarshal(resp.Body, &h))
		require.Len(t, h.Events, 2)
		resp = e.do(t, "GET", "/items/del?as_of_version=2", "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, 3, resp.item(t).Count)
	})

	t.Run("without If-Match: any version; a missing item is 404", func(t *testing.T) {
		t.Parallel()
		e.create(t, "del-any", "Any", 1)
		resp := e.do(t, "DELETE", "/items/del-any", "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.JSONEq(t, `{"sku": "del-any", "version": 1, "deleted": true}`, string(resp.Body))
		gone(t, e.do(t, "GET", "/items/del-any", ""), "del-any", 1)

		resp = e.do(t, "DELETE", "/items/del-never", "")
		require.Equal(t, http.StatusNotFound, resp.Status, resp)
		require.Equal(t, httpapi.CodeItemNotFound, resp.err(t).Code)
		require.Equal(t, int64(0), e.version(t, "del-never"))
	})

	t.Run("deleted by anyone (annals.delete_stream): the same 410", func(t *testing.T) {
		t.Parallel()
		e.create(t, "del-sql", "Operator", 4)
		require.Equal(t, http.StatusOK, e.adjust(t, "del-sql", 1, "").Status)
		require.Equal(t, http.StatusOK, e.adjust(t, "del-sql", 1, "").Status)
		_, err := e.client.DeleteStream(t.Context(), inventory.StreamID("del-sql"), annals.Exact(3), "by an operator")
		require.NoError(t, err)
		gone(t, e.do(t, "GET", "/items/del-sql", ""), "del-sql", 3)
		gone(t, e.adjust(t, "del-sql", -1, `"3"`), "del-sql", 3)
	})

	t.Run("deleted items are left out of GET /items", func(t *testing.T) {
		t.Parallel()
		e2 := newEnv(t, httpapi.Options{})
		for _, sku := range []string{"l1", "l2", "l3", "l4", "l5"} {
			e2.create(t, sku, "Listed", 1)
		}
		for _, sku := range []string{"l2", "l3", "l5"} {
			require.Equal(t, http.StatusOK, e2.do(t, "DELETE", "/items/"+sku, "").Status)
		}
		page, _ := e2.list(t, "")
		require.Equal(t, []string{"l1", "l4"}, skus(page))
		page, _ = e2.list(t, "?limit=1")
		require.Equal(t, []string{"l1"}, skus(page))
		require.Equal(t, "l1", *page.NextAfter)
		all, pages := e2.walk(t, "?limit=1", 1)
		require.Equal(t, []string{"l1", "l4"}, all)
		require.Equal(t, 2, pages, "the deleted l5 after l4 does not make a next page")
		page, _ = e2.list(t, "?after=l2") // a deleted SKU is a fine cursor
		require.Equal(t, []string{"l4"}, skus(page))
	})
}

// DELETE with If-Match is checked by delete_stream under the stream's lock: a writer that commits
// in between makes it 412, and the item stays.
func TestDeleteRacesAWriter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	e.create(t, "dr", "Raced", 5)
	commit := e.holdStream(t, "dr", 1)
	answer := make(chan response, 1)
	failed := make(chan error, 1)
	go func() {
		resp, err := e.send(t, "DELETE", "/items/dr", "", "If-Match", `"1"`)
		if err != nil {
			failed <- err
			return
		}
		answer <- resp
	}()
	waitForLockWaiter(t, e.pool)
	commit()
	select {
	case err := <-failed:
		require.NoError(t, err)
	case resp := <-answer:
		require.Equal(t, http.StatusPreconditionFailed, resp.Status, resp)
		require.Equal(t, map[string]any{"expected": 1.0, "actual": 2.0}, resp.err(t).Details)
	}
	resp := e.do(t, "GET", "/items/dr", "")
	require.Equal(t, http.StatusOK, resp.Status, resp)
	require.Equal(t, int64(2), resp.item(t).Version)
}
