// Package httpapi is the inventory service over HTTP and JSON: create an item, adjust its count,
// read it or list the items (from the inline projection inventory.item_counts), its history and
// its state as of a time or version, with optimistic concurrency through ETag and If-Match.
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // Annals migrated, readmodels installed
//	http.ListenAndServe("127.0.0.1:8080", httpapi.New(pool, httpapi.Options{}))
//
// Endpoints:
//
//	POST   /items                       {"sku", "name", "count"}  201, ETag, Location | 409 item_exists | 410
//	GET    /items?after=&limit=         the read model's rows, by SKU  200 (Link: next)
//	GET    /items/{sku}                 the read model's row      200, ETag | 404 | 410
//	GET    /items/{sku}?as_of=RFC3339   rebuilt from the events   200 | 404 (did not exist yet)
//	GET    /items/{sku}?as_of_version=N rebuilt from the events   200 | 404
//	POST   /items/{sku}/adjustments     {"delta", "reason"}       200, ETag | 404 | 409 | 410 | 412 | 422
//	DELETE /items/{sku}                 annals.delete_stream      200 | 404 | 410 | 412
//	GET    /items/{sku}/history?from=&limit=                      200 (Link: next) | 404
//	GET    /healthz                     database, schema, read models  200 | 503
//
// Read your writes. Every write that appends answers with a Consistency-Token header (the
// append's transaction id). GET requests read from a replica when the service has one
// (Options.Replicas); a GET that sends Consistency-Token back waits until that replica has
// replayed the write (up to a bound, then it reads the primary), so a client always reads its
// own writes. Without the header a GET may be a little behind; writes and their preconditions
// always use the primary.
//
// Every item's ETag is its stream version, "3". An adjustment with If-Match: "3" appends only if
// the item is still at version 3, else 412 with the expected and actual versions; If-Match: *
// only if the item exists (any version), else 412. Without If-Match it reloads and decides again
// when another writer got there first, and answers 409 when that keeps happening
// (Options.MaxAttempts). If-Match takes one entity tag, quoted as the ETag header gives it: an
// unquoted 3, an empty value, a list or a tag this API never issues is a 400 that says what to
// send; a weak W/"3" is well-formed but never matches (If-Match compares strongly), so 412.
// DELETE takes the same If-Match.
//
// A deleted item (DELETE /items/{sku}, or annals.delete_stream by anyone) answers 410 with the
// version it was deleted at, to reads of its current state and to every command, whatever its
// If-Match; it is left out of GET /items. Its history and past states stay readable.
//
// Requests are checked completely before anything reaches the database: 415 for a Content-Type
// other than application/json, 413 for a body over Options.MaxBodyBytes, 400 for anything but
// one JSON object, duplicate or unknown members, values of the wrong JSON type and malformed path,
// query or header values, 422 (listing every invalid field) for values the rules refuse. Errors
// are {"error": {"code", "message", "details"}}; the codes are the Code constants.
//
// Each request gets an id (X-Request-Id, kept from the request when sane), stored as the
// correlation_id of the events it appends, and one log line.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configures a Handler. The zero value gives the defaults.
type Options struct {
	// Logger receives one line per request (default slog.Default()).
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies (default DefaultMaxBodyBytes, 64 KiB).
	MaxBodyBytes int64
	// MaxAttempts is how many appends an adjustment without If-Match tries (deciding again when
	// other writers appended first) before the answer is 409 (default 10); it is the
	// repository's RepositoryOptions.MaxAttempts.
	MaxAttempts int
	// Replicas are pools on streaming hot standbys of pool: GET requests read from them
	// (annals.ClientOptions.Replicas), waiting for the write a Consistency-Token request header names.
	Replicas []*pgxpool.Pool
}

// Handler serves the inventory API. Safe for concurrent use.
type Handler struct {
	pool    *pgxpool.Pool
	client  *annals.Client
	service *inventory.Service
	log     *slog.Logger
	maxBody int64
	root    http.Handler
}

// New returns the API over pool, a database with Annals migrated and the inventory read models
// installed (readmodels.Install; Check tells). It panics when pool is nil.
func New(pool *pgxpool.Pool, opts Options) *Handler {
	if pool == nil {
		panic("httpapi: New needs a pool")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	client := annals.New(pool, annals.ClientOptions{Replicas: opts.Replicas, Replica: annals.ReplicaOptions{Logger: opts.Logger}})
	h := &Handler{
		pool:    pool,
		client:  client,
		service: inventory.NewService(client, domain.RepositoryOptions{MaxAttempts: opts.MaxAttempts, Logger: opts.Logger}),
		log:     opts.Logger,
		maxBody: opts.MaxBodyBytes,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", h.createItem)
	mux.HandleFunc("GET /items", h.listItems)
	mux.HandleFunc("GET /items/{sku}", h.getItem)
	mux.HandleFunc("DELETE /items/{sku}", h.deleteItem)
	mux.HandleFunc("POST /items/{sku}/adjustments", h.adjustItem)
	mux.HandleFunc("GET /items/{sku}/history", h.history)
	mux.HandleFunc("GET /healthz", h.health)
	// The same paths with other methods, and every other path, answer in JSON too.
	mux.Handle("/items", methodNotAllowed("GET, HEAD, POST"))
	mux.Handle("/items/{sku}", methodNotAllowed("DELETE, GET, HEAD"))
	mux.Handle("/items/{sku}/adjustments", methodNotAllowed("POST"))
	mux.Handle("/items/{sku}/history", methodNotAllowed("GET, HEAD"))
	mux.Handle("/healthz", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, newError(http.StatusNotFound, CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	h.root = h.instrument(h.consistency(mux))
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.root.ServeHTTP(w, r) }

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, r, newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow).with("allow", allow))
	})
}

// Check verifies that the service can work: the database answers, Annals is installed at the
// version this build expects (annals.ErrSchemaNotInstalled, annals.ErrSchemaTooNew otherwise) and
// the inventory read models are installed. GET /healthz runs it.
func (h *Handler) Check(ctx context.Context) error {
	if err := h.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := h.client.CheckSchema(ctx); err != nil {
		return err
	}
	var installed bool
	if err := h.pool.QueryRow(ctx, "SELECT pg_catalog.to_regclass('inventory.item_counts') IS NOT NULL").Scan(&installed); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if !installed {
		return fmt.Errorf("the inventory read models are not installed: run readmodels.Install (inventory-service --migrate)")
	}
	return nil
}
