package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// env is the API served over a real listener (httptest.NewServer) against a fresh database with
// the inventory read models.
type env struct {
	pool   *pgxpool.Pool
	client *annals.Client
	url    string
	http   *http.Client
}

func newEnv(t *testing.T, opts httpapi.Options) *env {
	t.Helper()
	pool := annalstest.NewDB(t)
	require.NoError(t, readmodels.Install(t.Context(), pool))
	return serve(t, pool, opts)
}

// serve starts the API over pool; the server stops when the test ends.
func serve(t *testing.T, pool *pgxpool.Pool, opts httpapi.Options) *env {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewServer(httpapi.New(pool, opts))
	t.Cleanup(srv.Close)
	return &env{pool: pool, client: annals.New(pool, annals.ClientOptions{}), url: srv.URL, http: srv.Client()}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// empty, as a header value for do and send, sends the header with an empty value ("" leaves it
// out).
const empty = "\x00empty"

// do sends a request; header holds name, value pairs. A body is sent as application/json unless
// header sets Content-Type (to "" for none).
func (e *env) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	resp, err := e.send(t, method, path, body, header...)
	require.NoError(t, err)
	return resp
}

// send is do for goroutines other than the test's: it returns the error instead of failing.
func (e *env) send(t *testing.T, method, path, body string, header ...string) (response, error) {
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i < len(header); i += 2 {
		switch header[i+1] {
		case "":
			req.Header.Del(header[i])
		case empty:
			req.Header.Set(header[i], "")
		default:
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

func (r response) String() string { return r.Header.Get("X-Request-Id") + " " + string(r.Body) }

// item decodes an item answer.
func (r response) item(t *testing.T) httpapi.Item {
	t.Helper()
	var it httpapi.Item
	require.NoError(t, json.Unmarshal(r.Body, &it), string(r.Body))
	return it
}

// apiError is the decoded {"error": {...}} of an error answer.
type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

func (r response) err(t *testing.T) apiError {
	t.Helper()
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	var body struct {
		Error *apiError `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body), string(r.Body))
	require.NotNil(t, body.Error, string(r.Body))
	require.NotEmpty(t, body.Error.Code)
	require.NotEmpty(t, body.Error.Message)
	return *body.Error
}

// create adds an item and checks the 201.
func (e *env) create(t *testing.T, sku, name string, count int) httpapi.Item {
	t.Helper()
	body, err := json.Marshal(map[string]any{"sku": sku, "name": name, "count": count})
	require.NoError(t, err)
	resp := e.do(t, "POST", "/items", string(body))
	require.Equal(t, http.StatusCreated, resp.Status, resp)
	return resp.item(t)
}

// adjust posts an adjustment; ifMatch "" sends no If-Match.
func (e *env) adjust(t *testing.T, sku string, delta int, ifMatch string) response {
	t.Helper()
	resp, err := e.tryAdjust(t, sku, delta, ifMatch)
	require.NoError(t, err)
	return resp
}

// tryAdjust is adjust for goroutines other than the test's.
func (e *env) tryAdjust(t *testing.T, sku string, delta int, ifMatch string) (response, error) {
	body := `{"delta": ` + jsonInt(delta) + `, "reason": "test"}`
	if ifMatch == "" {
		return e.send(t, "POST", "/items/"+sku+"/adjustments", body)
	}
	return e.send(t, "POST", "/items/"+sku+"/adjustments", body, "If-Match", ifMatch)
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// version is the item's stream version in the store, 0 when it has no events.
func (e *env) version(t *testing.T, sku string) int64 {
	t.Helper()
	info, err := e.client.StreamInfo(t.Context(), inventory.StreamID(sku))
	if errors.Is(err, annals.ErrStreamNotFound) {
		return 0
	}
	require.NoError(t, err)
	return info.StreamVersion
}

// projected is the read model's row for sku.
func (e *env) projected(t *testing.T, sku string) (count int, version int64) {
	t.Helper()
	require.NoError(t, e.pool.QueryRow(t.Context(),
		"SELECT c.count, c.version FROM inventory.item_counts AS c WHERE c.sku = $1", sku).Scan(&count, &version))
	return count, version
}

// stored counts the streams and events in the store (annals.list_streams): unchanged means
// nothing was appended anywhere.
func (e *env) stored(t *testing.T) (streams, events int64) {
	t.Helper()
	require.NoError(t, e.pool.QueryRow(t.Context(),
		`SELECT count(*), coalesce(sum(s.stream_version), 0)::bigint FROM annals.list_streams(max_count => 10000) AS s`).
		Scan(&streams, &events))
	return streams, events
}

// holdStream appends an adjustment of +1 to sku in a transaction it leaves open, so the stream's
// append lock is held and the committed version stays where it was. commit ends it.
func (e *env) holdStream(t *testing.T, sku string, expected int64) (commit func()) {
	t.Helper()
	tx, err := e.pool.Begin(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(t.Context()) })
	ev, err := inventory.NewRegistry().Encode(inventory.ItemAdjusted{Delta: 1, Reason: "held"}, domain.Metadata{})
	require.NoError(t, err)
	_, err = e.client.AppendTx(t.Context(), tx, inventory.StreamID(sku), annals.Exact(expected), ev)
	require.NoError(t, err)
	return func() { require.NoError(t, tx.Commit(t.Context())) }
}

// waitForLockWaiter waits until a session of db's database waits for an advisory lock: a request
// that loaded the item and is now blocked in its append.
func waitForLockWaiter(t *testing.T, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		require.NoError(t, db.QueryRow(t.Context(), `
			SELECT count(*)::int FROM pg_catalog.pg_locks AS l
			 WHERE l.locktype = 'advisory' AND NOT l.granted
			   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())`).
			Scan(&waiting))
		if waiting > 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "no request waited for the stream's lock")
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
