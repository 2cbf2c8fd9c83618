package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/jackc/pgx/v5"
)

// Page sizes (?limit) of GET /items/{sku}/history and GET /items.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
	DefaultListLimit    = 50
	MaxListLimit        = 1000
)

func itemOf(it inventory.Item) Item {
	return Item{SKU: it.SKU, Name: it.Name, Count: it.Count, Version: it.Version}
}

// createItem: POST /items {"sku", "name", "count"}.
func (h *Handler) createItem(w http.ResponseWriter, r *http.Request) {
	req, err := parseCreate(w, r, h.maxBody)
	if err != nil {
		writeError(w, r, err)
		return
	}
	written, err := h.service.Write(r.Context(), inventory.AddItem{SKU: req.SKU, Name: req.Name, Count: req.Count})
	item := written.Item
	if err != nil {
		writeError(w, r, h.deletedOr(r.Context(), req.SKU, err))
		return
	}
	w.Header().Set("ETag", etag(item.Version))
	setToken(w, written.Token)
	w.Header().Set("Location", "/items/"+url.PathEscape(item.SKU))
	writeJSON(w, http.StatusCreated, itemOf(item))
}

// getItem: GET /items/{sku}, from the read model, or as of a time or version, rebuilt from the
// events.
func (h *Handler) getItem(w http.ResponseWriter, r *http.Request) {
	sku, err := pathSKU(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	asOf, echo, err := parseAsOf(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if echo != nil {
		item, err := h.service.ItemAt(r.Context(), sku, asOf)
		if err != nil {
			writeError(w, r, err)
			return
		}
		resp := itemOf(item)
		echo(&resp)
		writeJSON(w, http.StatusOK, resp) // no ETag: a past state is no precondition for a write
		return
	}
	item, err := h.readModel(r.Context(), sku)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(item.Version))
	writeJSON(w, http.StatusOK, item)
}

// readModel reads an item's row in the inline projection inventory.item_counts: plain SQL on the
// read model, as a report reads it, no events replayed. The projection is written in the append's
// transaction, so a client reads its own writes: on the primary at once, on a replica once it
// has replayed the write the request's Consistency-Token names.
//
// The projection is built from events, and deleting a stream appends none: the row of a deleted
// item stays (and a rebuild writes it again). So the same statement reads the stream's state
// (annals.stream_info, one snapshot for both), and a deleted item is a *deletedError, never its
// stale row.
func (h *Handler) readModel(ctx context.Context, sku string) (Item, error) {
	var (
		state   string
		final   int64
		found   bool
		name    *string
		count   *int
		version *int64
		updated *time.Time
	)
	err := h.client.ReadPool(ctx).QueryRow(ctx, `
		SELECT s.state, s.stream_version, c.sku IS NOT NULL, c.name, c.count, c.version, c.updated_at
		  FROM annals.stream_info($1) AS s
		  LEFT JOIN inventory.item_counts AS c ON c.sku = $2`, inventory.StreamID(sku), sku).
		Scan(&state, &final, &found, &name, &count, &version, &updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Item{}, fmt.Errorf("%w: %s", inventory.ErrItemNotFound, sku)
	case err != nil:
		return Item{}, fmt.Errorf("read inventory.item_counts: %w", annals.MapError(err))
	case state == "deleted":
		return Item{}, &deletedError{SKU: sku, Version: final}
	case !found: // a stream without a row: not an item the projection knows
		return Item{}, fmt.Errorf("%w: %s", inventory.ErrItemNotFound, sku)
	}
	at := updated.UTC()
	return Item{SKU: sku, Name: *name, Count: *count, Version: *version, UpdatedAt: &at}, nil
}

// listItems: GET /items?after=<sku>&limit=50, the items in the read model in SKU order (the
// database's collation), a page at a time (keyset paging: ?after is the last SKU of the previous
// page). Deleted items are left out. Like GET /items/{sku}, plain SQL on inventory.item_counts.
func (h *Handler) listItems(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", DefaultListLimit, 1, MaxListLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	after := ""
	if values, ok := q["after"]; ok {
		if len(values) > 1 || !validSKU(values[0]) {
			writeError(w, r, newError(http.StatusBadRequest, CodeInvalidParameter,
				"after must be one SKU, the last of the previous page (%s), got %q", skuRule, strings.Join(values, ",")).
				with("parameter", "after"))
			return
		}
		after = values[0]
	}
	// One more row than the page: when it comes, there is a next page. The rows are read in SKU
	// order (an ordered scan of the partitions' keys) and stream_info runs for each until the page
	// is full: about 15 µs a row, so a page of 1000 takes some 15 ms, plus the same for every
	// deleted item it skips.
	rows, err := h.client.ReadPool(r.Context()).Query(r.Context(), `
		SELECT c.sku, c.name, c.count, c.version, c.updated_at
		  FROM inventory.item_counts AS c
		 CROSS JOIN LATERAL annals.stream_info('inventory-' || c.sku) AS s
		 WHERE c.sku > $1 AND s.state = 'active'
		 ORDER BY c.sku
		 LIMIT $2`, after, limit+1)
	if err != nil {
		writeError(w, r, fmt.Errorf("read inventory.item_counts: %w", annals.MapError(err)))
		return
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Item, error) {
		var it Item
		var updated time.Time
		err := row.Scan(&it.SKU, &it.Name, &it.Count, &it.Version, &updated)
		updated = updated.UTC()
		it.UpdatedAt = &updated
		return it, err
	})
	if err != nil {
		writeError(w, r, fmt.Errorf("read inventory.item_counts: %w", annals.MapError(err)))
		return
	}
	page := ItemList{Items: items}
	if int64(len(items)) > limit {
		page.Items = items[:limit]
		next := items[limit-1].SKU
		page.NextAfter = &next
		w.Header().Set("Link", fmt.Sprintf(`</items?after=%s&limit=%d>; rel="next"`, url.QueryEscape(next), limit))
	}
	if page.Items == nil {
		page.Items = []Item{}
	}
	writeJSON(w, http.StatusOK, page)
}

// parseAsOf reads ?as_of=RFC3339 or ?as_of_version=N (not both). echo is nil when neither is
// given; otherwise it copies the point asked for into the answer.
func parseAsOf(q url.Values) (annals.AsOf, func(*Item), error) {
	times, versions := q["as_of"], q["as_of_version"]
	bad := func(param, format string, args ...any) error {
		return newError(http.StatusBadRequest, CodeInvalidParameter, format, args...).with("parameter", param)
	}
	switch {
	case times == nil && versions == nil:
		return annals.AsOf{}, nil, nil
	case times != nil && versions != nil:
		return annals.AsOf{}, nil, bad("as_of", "give as_of or as_of_version, not both")
	case len(times) > 1 || len(versions) > 1:
		return annals.AsOf{}, nil, bad("as_of", "give as_of or as_of_version once")
	case times != nil:
		// A '+' in a query string decodes to a space, and RFC 3339 has no spaces: a client that
		// did not percent-encode the offset's '+' (%2B) meant it.
		t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(times[0], " ", "+"))
		if err != nil {
			return annals.AsOf{}, nil, bad("as_of", "as_of must be an RFC 3339 time such as 2025-01-02T15:04:05Z, got %q", times[0])
		}
		return annals.AtTime(t), func(it *Item) { it.AsOf = &t }, nil
	default:
		v, err := strconv.ParseInt(versions[0], 10, 64)
		if err != nil || v < 0 {
			return annals.AsOf{}, nil, bad("as_of_version", "as_of_version must be an integer >= 0, got %q", versions[0])
		}
		return annals.AtVersion(v), func(it *Item) { it.AsOfVersion = &v }, nil
	}
}

// adjustItem: POST /items/{sku}/adjustments {"delta", "reason"}, with an optional If-Match.
func (h *Handler) adjustItem(w http.ResponseWriter, r *http.Request) {
	sku, err := pathSKU(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	match, err := parseIfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	req, err := parseAdjust(w, r, h.maxBody)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx := r.Context()
	command := inventory.AdjustCount{SKU: sku, Delta: req.Delta, Reason: req.Reason}
	var written inventory.Written
	switch {
	case !match.present:
		written, err = h.service.Write(ctx, command)
	case match.any: // any version, so decided on the latest one like no If-Match; but it must exist
		written, err = h.service.Write(ctx, command)
		if errors.Is(err, inventory.ErrItemNotFound) {
			err = &preconditionError{SKU: sku, IfMatch: match}
		}
	case match.weak:
		err = h.weakTag(ctx, sku, match)
	default:
		written, err = h.adjustAt(ctx, command, match)
	}
	if err != nil {
		writeError(w, r, h.deletedOr(ctx, sku, err))
		return
	}
	w.Header().Set("ETag", etag(written.Item.Version))
	setToken(w, written.Token)
	writeJSON(w, http.StatusOK, itemOf(written.Item))
}

// adjustAt runs command only if the item is at the If-Match version, whether that is found on
// load or by the append when a writer slipped in between. No retry: the client decided on what
// it saw at that version.
func (h *Handler) adjustAt(ctx context.Context, command inventory.AdjustCount, match ifMatch) (inventory.Written, error) {
	written, err := h.service.WriteAt(ctx, command, match.version)
	if wrong, ok := errors.AsType[*annals.WrongExpectedVersionError](err); ok {
		return inventory.Written{}, &preconditionError{SKU: command.SKU, IfMatch: match, Actual: wrong.Actual}
	}
	if errors.Is(err, inventory.ErrItemNotFound) { // If-Match names a version of an item that never was
		return inventory.Written{}, &preconditionError{SKU: command.SKU, IfMatch: match}
	}
	return written, err
}

// weakTag is the answer to a weak If-Match tag, which never matches: 412 with the item's version
// (0 when it does not exist), or 410 for a deleted item (deletedOr).
func (h *Handler) weakTag(ctx context.Context, sku string, match ifMatch) error {
	info, err := h.client.StreamInfo(ctx, inventory.StreamID(sku))
	switch {
	case errors.Is(err, annals.ErrStreamNotFound):
		return &preconditionError{SKU: sku, IfMatch: match}
	case err != nil:
		return err
	}
	return &preconditionError{SKU: sku, IfMatch: match, Actual: info.StreamVersion}
}

// deleteItem: DELETE /items/{sku}, with an optional If-Match. It closes the item's stream
// (annals.delete_stream, audited with the request id): later commands answer 410, reads of the
// item 410, its history and past states stay readable. 200 with the final version.
func (h *Handler) deleteItem(w http.ResponseWriter, r *http.Request) {
	sku, err := pathSKU(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	match, err := parseIfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	ctx := r.Context()
	expected := annals.Any
	switch {
	case match.any:
		expected = annals.StreamExists
	case match.weak:
		writeError(w, r, h.deletedOr(ctx, sku, h.weakTag(ctx, sku, match)))
		return
	case match.present:
		expected = annals.Exact(match.version)
	}
	reason := fmt.Sprintf("DELETE /items/%s, request %s", sku, w.Header().Get(RequestIDHeader))
	version, err := h.client.DeleteStream(ctx, inventory.StreamID(sku), expected, reason)
	if wrong, ok := errors.AsType[*annals.WrongExpectedVersionError](err); ok {
		if match.present {
			err = &preconditionError{SKU: sku, IfMatch: match, Actual: wrong.Actual}
		} else { // any version: only a missing stream fails
			err = fmt.Errorf("%w: %s", inventory.ErrItemNotFound, sku)
		}
	}
	if err != nil {
		writeError(w, r, h.deletedOr(ctx, sku, err))
		return
	}
	writeJSON(w, http.StatusOK, Deleted{SKU: sku, Version: version, Deleted: true})
}

// deletedOr is err, or a *deletedError when the item's stream turns out to be deleted: a command
// for a deleted item answers 410, whatever the rules or the If-Match would have said about its
// last state. A deleted item is gone for good; a 412 would send the client to read it again only
// to find the 410, and a 409 item_exists or a 422 would describe an item that is not there. Only
// failures a deleted item can cause are checked, so a success costs no extra query.
func (h *Handler) deletedOr(ctx context.Context, sku string, err error) error {
	var precondition *preconditionError
	switch {
	case errors.Is(err, annals.ErrStreamDeleted),
		errors.Is(err, inventory.ErrItemExists),
		errors.Is(err, inventory.ErrInvalidCommand),
		errors.Is(err, inventory.ErrInsufficientInventory),
		errors.Is(err, annals.ErrWrongExpectedVersion),
		errors.As(err, &precondition) && precondition.Actual > 0:
	default:
		return err
	}
	info, infoErr := h.client.StreamInfo(ctx, inventory.StreamID(sku))
	if infoErr == nil && info.State == "deleted" {
		return &deletedError{SKU: sku, Version: info.StreamVersion}
	}
	return err
}

// history: GET /items/{sku}/history?from=1&limit=100, oldest first.
func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	sku, err := pathSKU(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	from, err := intParam(q, "from", 1, 1, 1<<62)
	if err != nil {
		writeError(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", DefaultHistoryLimit, 1, MaxHistoryLimit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	page := History{SKU: sku, Events: make([]Event, 0, min(limit, 64))}
	stream := inventory.StreamID(sku)
	for ev, err := range h.client.ReadStream(r.Context(), stream, annals.ReadOptions{From: from, Limit: int(limit) + 1}) {
		if err != nil {
			writeError(w, r, err)
			return
		}
		if int64(len(page.Events)) == limit { // one more than the page: there is a next page
			next := ev.StreamVersion
			page.NextFrom = &next
			break
		}
		e := Event{Version: ev.StreamVersion, Type: ev.EventType, Data: ev.Data, RecordedAt: ev.RecordedAt.UTC()}
		if string(ev.Metadata) != "{}" {
			e.Metadata = ev.Metadata
		}
		page.Events = append(page.Events, e)
	}
	if len(page.Events) == 0 { // past the end, or no such item?
		if _, err := h.client.StreamInfo(r.Context(), stream); errors.Is(err, annals.ErrStreamNotFound) {
			writeError(w, r, fmt.Errorf("%w: %s", inventory.ErrItemNotFound, sku))
			return
		} else if err != nil {
			writeError(w, r, err)
			return
		}
	}
	if page.NextFrom != nil {
		w.Header().Set("Link", fmt.Sprintf(`</items/%s/history?from=%d&limit=%d>; rel="next"`, url.PathEscape(sku), *page.NextFrom, limit))
	}
	writeJSON(w, http.StatusOK, page)
}

// intParam reads the integer query parameter name, def when absent, a 400 outside lo..hi.
func intParam(q url.Values, name string, def, lo, hi int64) (int64, error) {
	values, ok := q[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(values[0], 10, 64)
	if len(values) > 1 || err != nil || n < lo || n > hi {
		return 0, newError(http.StatusBadRequest, CodeInvalidParameter, "%s must be one integer from %d to %d, got %q", name, lo, hi, strings.Join(values, ",")).
			with("parameter", name)
	}
	return n, nil
}

// health: GET /healthz, Check with a deadline.
func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := h.Check(ctx); err != nil {
		writeError(w, r, &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error(), cause: err})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "schema_version": annals.SchemaVersion()})
}
