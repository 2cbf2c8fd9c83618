package httpapi

import (
	"encoding/json"
	"net/http"
	"time"
)

// Item is an item as the API returns it.
type Item struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Count int    `json:"count"`
	// Version is the item's stream version, the value of its ETag.
	Version int64 `json:"version"`
	// UpdatedAt is when the read model last changed the item (GET /items/{sku} and GET /items).
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	// AsOf and AsOfVersion echo the point in time or version asked for (?as_of, ?as_of_version).
	AsOf        *time.Time `json:"as_of,omitempty"`
	AsOfVersion *int64     `json:"as_of_version,omitempty"`
}

// ItemList is a page of GET /items, in SKU order.
type ItemList struct {
	Items []Item `json:"items"`
	// NextAfter is the ?after of the next page; absent on the last page.
	NextAfter *string `json:"next_after,omitempty"`
}

// Deleted is the answer to DELETE /items/{sku}: the item is deleted at Version.
type Deleted struct {
	SKU     string `json:"sku"`
	Version int64  `json:"version"`
	Deleted bool   `json:"deleted"`
}

// Event is one entry of an item's history.
type Event struct {
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	RecordedAt time.Time       `json:"recorded_at"`
}

// History is a page of an item's events, oldest first.
type History struct {
	SKU    string  `json:"sku"`
	Events []Event `json:"events"`
	// NextFrom is the ?from of the next page; absent on the last page.
	NextFrom *int64 `json:"next_from,omitempty"`
}

// errorBody is the shape of every error answer: {"error": {"code", "message", "details"}}.
type errorBody struct {
	Error apiError `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own types are written: a failure is a programming error
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeError answers with err mapped by toAPIError, keeping the cause for the request log.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	api := toAPIError(err)
	if api.cause != nil {
		noteCause(r, api.cause)
	}
	writeJSON(w, api.Status, errorBody{*api})
}
