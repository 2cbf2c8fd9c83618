package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/google/uuid"
)

// RequestIDHeader carries the request id: taken from the request when it is a sane token,
// generated otherwise, and always echoed in the response.
const RequestIDHeader = "X-Request-Id"

// validRequestID reports whether a client's request id is worth keeping: 1..128 characters of
// [A-Za-z0-9._:-]. Anything else (spaces, quotes, control characters) is replaced, so log lines
// and event metadata never hold what a client smuggled in.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// recorder remembers what a handler answered, for the request log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// cause is the error behind a 5xx (or a canceled request), logged, never sent.
	cause error
}

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

type recorderKey struct{}

// noteCause records err as the cause of the request's answer, for its log line.
func noteCause(r *http.Request, err error) {
	if rec, ok := r.Context().Value(recorderKey{}).(*recorder); ok {
		rec.cause = err
	}
}

// instrument gives every request an id (X-Request-Id), stamps it on the events the request
// appends (metadata correlation_id), turns a panic into a 500, and logs one line per request:
// method, path, status, duration_ms, bytes, request_id, and the error behind a 5xx.
func (h *Handler) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		w.Header().Set(RequestIDHeader, id)
		rec := &recorder{ResponseWriter: w}
		ctx := context.WithValue(r.Context(), recorderKey{}, rec)
		ctx = domain.ContextWithMetadata(ctx, domain.Metadata{CorrelationID: id})
		r = r.WithContext(ctx)

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				rec.cause = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
				if rec.status == 0 {
					writeJSON(rec, http.StatusInternalServerError, errorBody{apiError{Code: CodeInternal, Message: "internal error"}})
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.Int64("bytes", rec.bytes),
				slog.String("request_id", id),
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			if rec.cause != nil {
				attrs = append(attrs, slog.String("error", rec.cause.Error()))
			}
			h.log.LogAttrs(context.WithoutCancel(ctx), level, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// TokenHeader carries the consistency token: set on the answers to writes, sent back on reads.
const TokenHeader = "Consistency-Token"

// consistency picks where a request's reads go: writes (and the loads and preconditions they
// decide on) to the primary; a GET with a Consistency-Token to a replica that has that write
// (annals.ReadYourWrites); other GETs to any replica (annals.Eventual).
func (h *Handler) consistency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := annals.OnPrimary
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			c = annals.Eventual
			if v := r.Header.Get(TokenHeader); v != "" {
				token, err := strconv.ParseUint(v, 10, 64)
				if err != nil || token == 0 {
					writeError(w, r, newError(http.StatusBadRequest, CodeInvalidParameter,
						"%s must be the token a write answered with (a positive integer), got %q", TokenHeader, v).
						with("header", TokenHeader))
					return
				}
				c = annals.ReadYourWrites(token)
			}
		}
		next.ServeHTTP(w, r.WithContext(annals.WithConsistency(r.Context(), c)))
	})
}

// setToken answers a write with its consistency token (nothing when it appended nothing).
func setToken(w http.ResponseWriter, token uint64) {
	if token != 0 {
		w.Header().Set(TokenHeader, strconv.FormatUint(token, 10))
	}
}
