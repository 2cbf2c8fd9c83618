package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/annals-db/annals/internal/inventory"
)

// Limits on request values. They are checked before anything reaches the database.
const (
	// DefaultMaxBodyBytes is the default request body limit (Options.MaxBodyBytes).
	DefaultMaxBodyBytes = 64 << 10
	// MaxSKULength is the longest SKU, in characters.
	MaxSKULength = 100
	// MaxNameLength is the longest item name, in characters.
	MaxNameLength = 200
	// MaxReasonLength is the longest adjustment reason, in characters.
	MaxReasonLength = 500
)

// validSKU reports whether sku is 1..MaxSKULength characters of [A-Za-z0-9_-], not starting
// with '-'.
func validSKU(sku string) bool {
	if sku == "" || len(sku) > MaxSKULength || sku[0] == '-' {
		return false
	}
	for i := range len(sku) {
		c := sku[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

const skuRule = "1 to 100 characters of A-Z, a-z, 0-9, '_' and '-', not starting with '-'"

// pathSKU is the {sku} of the request's path, or a 400 when no item could have it.
func pathSKU(r *http.Request) (string, error) {
	sku := r.PathValue("sku")
	if !validSKU(sku) {
		return "", newError(http.StatusBadRequest, CodeInvalidParameter, "invalid SKU in the path: must be %s", skuRule).
			with("parameter", "sku")
	}
	return sku, nil
}

// readObject reads the request body as one JSON object and returns its members, checking in
// order: the Content-Type (415), the size (413), that the body is exactly one JSON object with no
// duplicate keys (400) and that every key is one of allowed (400, exact spelling: no
// case-insensitive matching).
func readObject(w http.ResponseWriter, r *http.Request, maxBytes int64, allowed ...string) (map[string]json.RawMessage, error) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" || !(params["charset"] == "" || strings.EqualFold(params["charset"], "utf-8")) {
		return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"Content-Type must be application/json (UTF-8), got %q", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the body is over %d bytes", maxBytes).
				with("limit", maxBytes)
		}
		return nil, newError(http.StatusBadRequest, CodeMalformedJSON, "could not read the body: %v", err)
	}
	malformed := func(format string, args ...any) *apiError {
		return newError(http.StatusBadRequest, CodeMalformedJSON, format, args...)
	}
	if !utf8.Valid(body) {
		return nil, malformed("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, malformed("the body must be a JSON object")
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed("malformed JSON: %v", err)
		}
		key := tok.(string) // inside an object, the decoder only yields string keys
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, malformed("malformed JSON: %v", err)
		}
		if _, dup := members[key]; dup {
			return nil, malformed("%q appears twice", key).with("field", key)
		}
		members[key] = value
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, malformed("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("the body must hold one JSON object and nothing after it")
	}
	for _, key := range slices.Sorted(maps.Keys(members)) {
		if !slices.Contains(allowed, key) {
			return nil, newError(http.StatusBadRequest, CodeUnknownField, "unknown field %q; allowed: %s", key, strings.Join(allowed, ", ")).
				with("field", key)
		}
	}
	return members, nil
}

// form reads typed values out of a request object's members. Type errors are 400s (the first
// one wins); value problems are collected, so one 422 lists every invalid field.
type form struct {
	members map[string]json.RawMessage
	typeErr error
	invalid map[string]string
}

func newForm(members map[string]json.RawMessage) *form {
	return &form{members: members, invalid: map[string]string{}}
}

func (f *form) wrongType(name, want string, raw json.RawMessage) {
	if f.typeErr == nil {
		got := "null"
		switch raw[0] {
		case '"':
			got = "a string"
		case '{':
			got = "an object"
		case '[':
			got = "an array"
		case 't', 'f':
			got = "a boolean"
		case 'n':
		default:
			got = "the number " + string(raw)
		}
		f.typeErr = newError(http.StatusBadRequest, CodeInvalidType, "%s must be %s, got %s", name, want, got).
			with("field", name)
	}
}

// reject records a value problem with field name.
func (f *form) reject(name, reason string) {
	if _, seen := f.invalid[name]; !seen {
		f.invalid[name] = reason
	}
}

// text returns the string member name ("" when absent; a 422 when absent and required). It must
// be at most maxLen characters without control characters.
func (f *form) text(name string, required bool, maxLen int) string {
	raw, ok := f.members[name]
	if !ok {
		if required {
			f.reject(name, "is required")
		}
		return ""
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		f.wrongType(name, "a string", raw)
		return ""
	}
	switch {
	case utf8.RuneCountInString(s) > maxLen:
		f.reject(name, "must be at most "+strconv.Itoa(maxLen)+" characters")
	case strings.ContainsFunc(s, unicode.IsControl):
		f.reject(name, "must not contain control characters")
	}
	return s
}

// integer returns the integer member name (0 when absent; a 422 when absent and required). JSON
// numbers with a fraction or an exponent are type errors; integers beyond int64 are value
// problems.
func (f *form) integer(name string, required bool) int64 {
	raw, ok := f.members[name]
	if !ok {
		if required {
			f.reject(name, "is required")
		}
		return 0
	}
	if !(raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') || bytes.ContainsAny(raw, ".eE") {
		f.wrongType(name, "an integer", raw)
		return 0
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		f.reject(name, "is out of range")
		return 0
	}
	return n
}

// err is the form's verdict: the first type error (400), else every value problem (422), else
// nil.
func (f *form) err() error {
	if f.typeErr != nil {
		return f.typeErr
	}
	if len(f.invalid) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(f.invalid))
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = name + " " + f.invalid[name]
	}
	return newError(http.StatusUnprocessableEntity, CodeValidationFailed, "%s", strings.Join(parts, "; ")).
		with("fields", f.invalid)
}

// createRequest is the body of POST /items.
type createRequest struct {
	SKU   string
	Name  string
	Count int
}

func parseCreate(w http.ResponseWriter, r *http.Request, maxBytes int64) (createRequest, error) {
	members, err := readObject(w, r, maxBytes, "sku", "name", "count")
	if err != nil {
		return createRequest{}, err
	}
	f := newForm(members)
	req := createRequest{
		SKU:  f.text("sku", true, MaxSKULength),
		Name: f.text("name", true, MaxNameLength),
	}
	count := f.integer("count", true)
	if _, ok := members["sku"]; ok && f.invalid["sku"] == "" && !validSKU(req.SKU) {
		f.reject("sku", "must be "+skuRule)
	}
	if _, ok := members["name"]; ok && strings.TrimSpace(req.Name) == "" {
		f.reject("name", "must not be empty")
	}
	if count < 0 || count > inventory.MaxCount {
		f.reject("count", "must be between 0 and "+strconv.Itoa(inventory.MaxCount))
	}
	req.Count = int(count)
	return req, f.err()
}

// adjustRequest is the body of POST /items/{sku}/adjustments.
type adjustRequest struct {
	Delta  int
	Reason string
}

func parseAdjust(w http.ResponseWriter, r *http.Request, maxBytes int64) (adjustRequest, error) {
	members, err := readObject(w, r, maxBytes, "delta", "reason")
	if err != nil {
		return adjustRequest{}, err
	}
	f := newForm(members)
	delta := f.integer("delta", true)
	req := adjustRequest{Reason: f.text("reason", false, MaxReasonLength)}
	if _, ok := members["delta"]; ok && f.invalid["delta"] == "" {
		switch {
		case delta == 0:
			f.reject("delta", "must not be 0")
		case delta > inventory.MaxCount || delta < -inventory.MaxCount:
			f.reject("delta", "must be between -"+strconv.Itoa(inventory.MaxCount)+" and "+strconv.Itoa(inventory.MaxCount))
		}
	}
	req.Delta = int(delta)
	return req, f.err()
}

// ifMatch is a parsed If-Match header.
type ifMatch struct {
	// present: the request has an If-Match header; the zero ifMatch is "no precondition".
	present bool
	// any: If-Match: *, true when the item exists, at any version.
	any bool
	// weak: W/"<version>", a weak entity tag. If-Match compares strongly (RFC 9110, 13.1.1), so
	// it never matches; it is answered 412, not 400, because it is a well-formed entity tag
	// (typically this API's ETag weakened by a proxy that compressed the answer).
	weak bool
	// version is the stream version of a "<version>" tag, or of a weak one.
	version int64
	// header is the header's value as received, for messages.
	header string
}

// parseIfMatch reads the If-Match header: absent, *, or exactly one entity tag "<version>" as this
// API's ETag gives it (W/"<version>" is accepted as a tag that never matches). Anything else is a
// 400, answered before the database is asked:
//
//   - an unquoted version, If-Match: 3, is refused, not taken as "3". Entity tags are quoted
//     (RFC 9110, 8.8.3), and this API's ETag header always is, so a client that sends back what it
//     got is never refused. Only hand-written headers are, once, with a message that says exactly
//     what to send (quote it: If-Match: "3"). Accepting the bare form would make a dialect
//     that caches, proxies and other servers do not speak, and leave clients that learnt it
//     broken elsewhere; a precondition that guards writes is better strict and well explained;
//   - an empty If-Match is refused rather than ignored: taking it as absent would silently drop
//     the check the client asked for (typically a script whose ETag variable was empty);
//   - a list ("1", "3") is refused: HTTP allows one, but an adjustment or a deletion is decided
//     on the one version the client read, so this API takes one tag;
//   - a quoted value that is not a version this API could have issued ("abc", "0", "03") is
//     refused as not an ETag of this API.
func parseIfMatch(r *http.Request) (ifMatch, error) {
	values := r.Header.Values("If-Match")
	if len(values) == 0 {
		return ifMatch{}, nil
	}
	header := strings.Join(values, ", ") // several header lines are one list (RFC 9110, 5.3)
	v := strings.Trim(header, " \t")
	bad := func(format string, args ...any) (ifMatch, error) {
		return ifMatch{}, newError(http.StatusBadRequest, CodeInvalidParameter, format, args...).with("parameter", "If-Match")
	}
	if v == "" {
		return bad(`If-Match is empty; send the ETag of the version you read, such as "3", or *, or leave the header out`)
	}
	if v == "*" {
		return ifMatch{present: true, any: true, header: v}, nil
	}
	tags, ok := entityTags(v)
	switch {
	case !ok && isVersion(v):
		return bad(`If-Match: %s is not an entity tag: entity tags are in double quotes, as in the ETag header; quote it: If-Match: "%s"`, v, v)
	case !ok:
		return bad(`If-Match must be one entity tag in double quotes, as the ETag header gives it (such as "3"), or *; got If-Match: %s`, printable(v))
	case len(tags) > 1:
		return bad(`If-Match lists %d entity tags; this API takes one, the ETag of the version you read (such as "3"), or *`, len(tags))
	}
	tag := tags[0]
	if !isVersion(tag.opaque) {
		return bad(`If-Match: %s is not an ETag of this API; its ETags are item versions in double quotes, such as "3"`, printable(v))
	}
	version, _ := strconv.ParseInt(tag.opaque, 10, 64)
	return ifMatch{present: true, weak: tag.weak, version: version, header: v}, nil
}

// entityTag is one entity-tag of an If-Match list: [W/]"opaque".
type entityTag struct {
	weak   bool
	opaque string
}

// entityTags parses a comma-separated list of entity tags (RFC 9110, 8.8.3 and 5.6.1: empty
// elements and whitespace around commas are allowed); ok is false when v is not such a list or
// holds no tag.
func entityTags(v string) (tags []entityTag, ok bool) {
	for i := 0; i < len(v); {
		if c := v[i]; c == ' ' || c == '\t' || c == ',' {
			i++
			continue
		}
		var tag entityTag
		if strings.HasPrefix(v[i:], "W/") {
			tag.weak = true
			i += 2
		}
		if i >= len(v) || v[i] != '"' {
			return nil, false
		}
		end := i + 1
		for end < len(v) && v[end] != '"' {
			// etagc = %x21 / %x23-7E / obs-text
			if c := v[end]; c < 0x21 || c == 0x7f {
				return nil, false
			}
			end++
		}
		if end == len(v) {
			return nil, false
		}
		tag.opaque = v[i+1 : end]
		tags = append(tags, tag)
		i = end + 1
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i < len(v) && v[i] != ',' {
			return nil, false
		}
	}
	return tags, len(tags) > 0
}

// isVersion reports whether s is a stream version as this API writes it in an ETag: a decimal
// integer >= 1 without sign or leading zeros (entity tags compare as strings, so "03" is not "3").
func isVersion(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n >= 1 && strconv.FormatInt(n, 10) == s
}

// printable is s as it is when it is printable ASCII, else Go-quoted, so a message shows a header
// value exactly (quotes included) without passing on what a client smuggled in.
func printable(s string) string {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// etag is the entity tag of an item at a stream version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }
