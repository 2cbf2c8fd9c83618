package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})

	t.Run("create, read, adjust: every answer reads its own write", func(t *testing.T) {
		t.Parallel()
		resp := e.do(t, "POST", "/items", `{"sku": "42", "name": "Blue widget", "count": 10}`)
		require.Equal(t, http.StatusCreated, resp.Status, resp)
		require.Equal(t, `"1"`, resp.Header.Get("ETag"))
		require.Equal(t, "/items/42", resp.Header.Get("Location"))
		require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
		require.Equal(t, httpapi.Item{SKU: "42", Name: "Blue widget", Count: 10, Version: 1}, resp.item(t))

		resp = e.do(t, "GET", "/items/42", "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, `"1"`, resp.Header.Get("ETag"))
		got := resp.item(t)
		require.NotNil(t, got.UpdatedAt, "the read model's row")
		require.WithinDuration(t, time.Now(), *got.UpdatedAt, time.Minute)
		got.UpdatedAt = nil
		require.Equal(t, httpapi.Item{SKU: "42", Name: "Blue widget", Count: 10, Version: 1}, got)

		for i, step := range []struct {
			delta, count int
		}{{5, 15}, {-3, 12}, {-12, 0}, {7, 7}} {
			resp = e.adjust(t, "42", step.delta, "")
			require.Equal(t, http.StatusOK, resp.Status, resp)
			version := int64(i + 2)
			require.Equal(t, `"`+jsonInt(int(version))+`"`, resp.Header.Get("ETag"))
			require.Equal(t, httpapi.Item{SKU: "42", Name: "Blue widget", Count: step.count, Version: version}, resp.item(t))

			resp = e.do(t, "GET", "/items/42", "") // straight from inventory.item_counts
			require.Equal(t, http.StatusOK, resp.Status, resp)
			require.Equal(t, step.count, resp.item(t).Count)
			require.Equal(t, version, resp.item(t).Version)
			require.Equal(t, `"`+jsonInt(int(version))+`"`, resp.Header.Get("ETag"))
		}
		count, version := e.projected(t, "42")
		require.Equal(t, 7, count)
		require.Equal(t, int64(5), version)

		resp = e.do(t, "POST", "/items", `{"sku": "42", "name": "Again", "count": 1}`)
		require.Equal(t, http.StatusConflict, resp.Status, resp)
		require.Equal(t, httpapi.CodeItemExists, resp.err(t).Code)
		require.Equal(t, int64(5), e.version(t, "42"))
	})

	t.Run("an overdraw is 422 with what is available, and changes nothing", func(t *testing.T) {
		t.Parallel()
		e.create(t, "few", "Scarce", 3)
		resp := e.adjust(t, "few", -5, "")
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodeInsufficientInventory, got.Code)
		require.Equal(t, map[string]any{"available": 3.0, "requested": 5.0}, got.Details)
		require.Empty(t, resp.Header.Get("ETag"))
		require.Equal(t, int64(1), e.version(t, "few"))
		count, _ := e.projected(t, "few")
		require.Equal(t, 3, count)

		resp = e.adjust(t, "few", -3, "") // exactly to zero is fine
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.Equal(t, 0, resp.item(t).Count)
	})

	t.Run("a count the read model cannot hold is refused by the rules, not by a failing append", func(t *testing.T) {
		t.Parallel()
		e.create(t, "full", "Full", 2147483647)
		resp := e.adjust(t, "full", 1, "")
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, resp)
		require.Equal(t, httpapi.CodeInvalidCommand, resp.err(t).Code)
		require.Equal(t, int64(1), e.version(t, "full"))
	})

	t.Run("unknown items are 404 everywhere", func(t *testing.T) {
		t.Parallel()
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/items/nope", ""},
			{"GET", "/items/nope?as_of_version=1", ""},
			{"GET", "/items/nope?as_of=2030-01-01T00:00:00Z", ""},
			{"GET", "/items/nope/history", ""},
			{"GET", "/items/nope/history?from=5", ""},
			{"POST", "/items/nope/adjustments", `{"delta": 1}`},
			{"DELETE", "/items/nope", ""},
		} {
			resp := e.do(t, req.method, req.path, req.body)
			require.Equal(t, http.StatusNotFound, resp.Status, "%s %s: %s", req.method, req.path, resp)
			require.Equal(t, httpapi.CodeItemNotFound, resp.err(t).Code)
		}
		require.Equal(t, int64(0), e.version(t, "nope"), "no stream was started")
		// With If-Match the precondition speaks first: 412 (TestIfMatchOnMissingItems).
	})

	t.Run("the request id is echoed and stamped on the events as correlation_id", func(t *testing.T) {
		t.Parallel()
		resp := e.do(t, "POST", "/items", `{"sku": "rid", "name": "Traced", "count": 1}`,
			"X-Request-Id", "order-7781", "Content-Type", "application/json; charset=utf-8")
		require.Equal(t, http.StatusCreated, resp.Status, resp)
		require.Equal(t, "order-7781", resp.Header.Get("X-Request-Id"))
		resp = e.do(t, "POST", "/items/rid/adjustments", `{"delta": 2}`, "X-Request-Id", "bad id with spaces")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		generated := resp.Header.Get("X-Request-Id")
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, generated, "replaced")

		var ids []string
		for ev, err := range e.client.ReadStream(t.Context(), "inventory-rid", annals.ReadOptions{}) {
			require.NoError(t, err)
			md, err := domain.ParseMetadata(ev.Metadata)
			require.NoError(t, err)
			ids = append(ids, md.CorrelationID)
		}
		require.Equal(t, []string{"order-7781", generated}, ids)
	})

	t.Run("HEAD and other methods", func(t *testing.T) {
		t.Parallel()
		e.create(t, "m", "Methods", 1)
		resp := e.do(t, "HEAD", "/items/m", "")
		require.Equal(t, http.StatusOK, resp.Status)
		require.Equal(t, `"1"`, resp.Header.Get("ETag"))
		require.Empty(t, resp.Body)
		for _, c := range []struct{ method, path, allow string }{
			{"PUT", "/items/m", "DELETE, GET, HEAD"},
			{"PATCH", "/items/m", "DELETE, GET, HEAD"},
			{"DELETE", "/items", "GET, HEAD, POST"},
			{"PUT", "/items", "GET, HEAD, POST"},
			{"GET", "/items/m/adjustments", "POST"},
			{"POST", "/items/m/history", "GET, HEAD"},
			{"POST", "/healthz", "GET, HEAD"},
		} {
			resp := e.do(t, c.method, c.path, "")
			require.Equal(t, http.StatusMethodNotAllowed, resp.Status, "%s %s", c.method, c.path)
			require.Equal(t, c.allow, resp.Header.Get("Allow"))
			require.Equal(t, httpapi.CodeMethodNotAllowed, resp.err(t).Code)
		}
		for _, path := range []string{"/", "/nope", "/items/m/extra", "/items/"} {
			resp := e.do(t, "GET", path, "")
			require.Equal(t, http.StatusNotFound, resp.Status, path)
			require.Equal(t, httpapi.CodeNotFound, resp.err(t).Code)
		}
	})
}

func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	e.create(t, "h", "History", 10)
	for delta := 1; delta <= 6; delta++ {
		require.Equal(t, http.StatusOK, e.adjust(t, "h", delta, "").Status)
	}

	page := func(t *testing.T, query string) (httpapi.History, response) {
		t.Helper()
		resp := e.do(t, "GET", "/items/h/history"+query, "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		var h httpapi.History
		require.NoError(t, json.Unmarshal(resp.Body, &h))
		require.Equal(t, "h", h.SKU)
		return h, resp
	}
	versions := func(h httpapi.History) []int64 {
		var vs []int64
		for _, ev := range h.Events {
			vs = append(vs, ev.Version)
		}
		return vs
	}

	all, _ := page(t, "")
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, versions(all))
	require.Nil(t, all.NextFrom)
	require.Equal(t, "ItemAdded", all.Events[0].Type)
	require.JSONEq(t, `{"sku": "h", "name": "History", "count": 10}`, string(all.Events[0].Data))
	require.Equal(t, "ItemAdjusted", all.Events[3].Type)
	require.JSONEq(t, `{"delta": 3, "reason": "test"}`, string(all.Events[3].Data))
	for i, ev := range all.Events {
		require.WithinDuration(t, time.Now(), ev.RecordedAt, time.Minute)
		require.NotEmpty(t, ev.Metadata, "the request id")
		if i > 0 {
			require.False(t, ev.RecordedAt.Before(all.Events[i-1].RecordedAt))
		}
	}

	// Paging by three: the Link header and next_from lead from page to page.
	var walked []int64
	query := "?limit=3"
	for range 5 {
		p, resp := page(t, query)
		walked = append(walked, versions(p)...)
		if p.NextFrom == nil {
			require.Empty(t, resp.Header.Get("Link"))
			break
		}
		link := resp.Header.Get("Link")
		require.Equal(t, `</items/h/history?from=`+jsonInt(int(*p.NextFrom))+`&limit=3>; rel="next"`, link)
		query = "?from=" + jsonInt(int(*p.NextFrom)) + "&limit=3"
	}
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, walked)

	mid, _ := page(t, "?from=4&limit=2")
	require.Equal(t, []int64{4, 5}, versions(mid))
	require.Equal(t, int64(6), *mid.NextFrom)
	last, _ := page(t, "?from=7&limit=1")
	require.Equal(t, []int64{7}, versions(last))
	require.Nil(t, last.NextFrom, "exactly at the end: no next page")
	past, _ := page(t, "?from=8")
	require.Empty(t, past.Events, "past the end of an existing item: an empty page")
	_, resp := page(t, "?from=8")
	require.Contains(t, string(resp.Body), `"events":[]`, "an empty list, not null")
}

func TestAsOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	e.create(t, "t", "Timely", 10)
	require.Equal(t, http.StatusOK, e.adjust(t, "t", 5, "").Status)
	require.Equal(t, http.StatusOK, e.adjust(t, "t", -3, "").Status)
	resp := e.do(t, "GET", "/items/t/history", "")
	var h httpapi.History
	require.NoError(t, json.Unmarshal(resp.Body, &h))
	require.Len(t, h.Events, 3)

	at := func(t *testing.T, query string) httpapi.Item {
		t.Helper()
		resp := e.do(t, "GET", "/items/t?"+query, "")
		require.Equal(t, http.StatusOK, resp.Status, "%s: %s", query, resp)
		require.Empty(t, resp.Header.Get("ETag"), "a past state is no precondition for a write")
		return resp.item(t)
	}
	v := func(n int64) *int64 { return &n }

	t.Run("by version", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			version, count int
		}{{1, 10}, {2, 15}, {3, 12}} {
			got := at(t, "as_of_version="+jsonInt(c.version))
			require.Equal(t, httpapi.Item{SKU: "t", Name: "Timely", Count: c.count, Version: int64(c.version), AsOfVersion: v(int64(c.version))}, got)
		}
		got := at(t, "as_of_version=99")
		require.Equal(t, int64(3), got.Version, "beyond the end: the current state")
		require.Equal(t, 12, got.Count)

		resp := e.do(t, "GET", "/items/t?as_of_version=0", "")
		require.Equal(t, http.StatusNotFound, resp.Status, "before its first event the item did not exist")
		require.Equal(t, httpapi.CodeItemNotFound, resp.err(t).Code)
	})

	t.Run("by time", func(t *testing.T) {
		t.Parallel()
		second := h.Events[1].RecordedAt
		got := at(t, "as_of="+url.QueryEscape(second.Format(time.RFC3339Nano)))
		require.Equal(t, 15, got.Count)
		require.Equal(t, int64(2), got.Version)
		require.True(t, second.Equal(*got.AsOf))

		// The same instant with an offset, its '+' percent-encoded or (as curl users write it) not.
		plus2 := second.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
		require.Contains(t, plus2, "+02:00")
		require.Equal(t, 15, at(t, "as_of="+url.QueryEscape(plus2)).Count)
		require.Equal(t, 15, at(t, "as_of="+plus2).Count)

		require.Equal(t, 12, at(t, "as_of=2999-01-01T00:00:00Z").Count, "the future: the current state")
		require.Equal(t, 10, at(t, "as_of="+url.QueryEscape(h.Events[1].RecordedAt.Add(-time.Microsecond).Format(time.RFC3339Nano))).Count)

		before := h.Events[0].RecordedAt.Add(-time.Microsecond).Format(time.RFC3339Nano)
		resp := e.do(t, "GET", "/items/t?as_of="+url.QueryEscape(before), "")
		require.Equal(t, http.StatusNotFound, resp.Status, resp)
		require.Equal(t, httpapi.CodeItemNotFound, resp.err(t).Code)
	})
}

func TestHealthz(t *testing.T) {
	t.Parallel()

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, httpapi.Options{})
		resp := e.do(t, "GET", "/healthz", "")
		require.Equal(t, http.StatusOK, resp.Status, resp)
		require.JSONEq(t, `{"status": "ok", "schema_version": `+jsonInt(int(annals.SchemaVersion()))+`}`, string(resp.Body))
	})

	t.Run("read models missing", func(t *testing.T) {
		t.Parallel()
		e := serve(t, annalstest.NewDB(t), httpapi.Options{}) // Annals, but no readmodels.Install
		resp := e.do(t, "GET", "/healthz", "")
		require.Equal(t, http.StatusServiceUnavailable, resp.Status, resp)
		got := resp.err(t)
		require.Equal(t, httpapi.CodeUnavailable, got.Code)
		require.Contains(t, got.Message, "read models are not installed")
	})

	t.Run("database gone", func(t *testing.T) {
		t.Parallel()
		e := serve(t, closedPool(t), httpapi.Options{})
		resp := e.do(t, "GET", "/healthz", "")
		require.Equal(t, http.StatusServiceUnavailable, resp.Status, resp)
		require.Equal(t, httpapi.CodeUnavailable, resp.err(t).Code)
	})
}

// An unreachable database is 503, for the health check and for requests.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg) // connects lazily: no error yet
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	e := serve(t, pool, httpapi.Options{})
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/healthz", ""},
		{"GET", "/items/42", ""},
		{"GET", "/items", ""},
		{"POST", "/items", `{"sku": "42", "name": "Blue widget", "count": 10}`},
		{"DELETE", "/items/42", ""},
		{"POST", "/items/42/adjustments", `{"delta": 1}`},
	} {
		resp := e.do(t, req.method, req.path, req.body)
		require.Equal(t, http.StatusServiceUnavailable, resp.Status, "%s %s: %s", req.method, req.path, resp)
		require.Equal(t, httpapi.CodeUnavailable, resp.err(t).Code)
	}
}

// closedPool is a pool on a fresh database, closed: every use of it fails.
func closedPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.NewWithConfig(t.Context(), annalstest.NewDB(t).Config())
	require.NoError(t, err)
	pool.Close()
	return pool
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := newEnv(t, httpapi.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	missing := e.do(t, "GET", "/items/none", "", "X-Request-Id", "abc-123")
	require.Equal(t, http.StatusNotFound, missing.Status)
	resp := e.do(t, "POST", "/items", `{"sku": "logged", "name": "Logged", "count": 1}`)
	require.Equal(t, http.StatusCreated, resp.Status)
	generated := resp.Header.Get("X-Request-Id")

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2, "one line per request")
	var entries []map[string]any
	for _, line := range lines {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "a JSON line: %s", line)
		require.Equal(t, "request", entry["msg"])
		require.IsType(t, 0.0, entry["duration_ms"])
		require.GreaterOrEqual(t, entry["duration_ms"].(float64), 0.0)
		require.NotEmpty(t, entry["time"])
		delete(entry, "duration_ms")
		delete(entry, "time")
		entries = append(entries, entry)
	}
	require.Equal(t, map[string]any{"level": "INFO", "msg": "request", "method": "GET", "path": "/items/none",
		"status": 404.0, "bytes": float64(len(missing.Body)), "request_id": "abc-123"}, entries[0])
	require.Equal(t, "POST", entries[1]["method"])
	require.Equal(t, "/items", entries[1]["path"])
	require.Equal(t, 201.0, entries[1]["status"])
	require.Equal(t, generated, entries[1]["request_id"])
}
