package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	annals "github.com/annals-db/annals/goapi"
)

var (
	// ErrUnknownEventType means an event's Go type (on encode) or stored type name (on decode) is not in
	// the Registry. On decode the error is a *DecodeError.
	ErrUnknownEventType = errors.New("annals: unknown event type")
	// ErrDecode means a stored event could not be turned into its registered Go type: unknown type, a
	// payload that does not decode, a schema version newer than the registered one, a missing or
	// failing Go upcaster. The error is a *DecodeError.
	ErrDecode = errors.New("annals: cannot decode event")
)

// DecodeError says which stored event could not be decoded and why. errors.Is(err, ErrDecode)
// holds for every DecodeError; Err is the cause (ErrUnknownEventType, a *json.UnmarshalTypeError,
// an upcaster's error, ...) and is reachable with errors.Is and errors.As too.
type DecodeError struct {
	StreamID      string
	StreamVersion int64
	EventType     string
	SchemaVersion int
	Err           error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("annals: cannot decode event %s@%d (%s v%d): %v",
		e.StreamID, e.StreamVersion, e.EventType, e.SchemaVersion, e.Err)
}

// Unwrap returns ErrDecode and the cause.
func (e *DecodeError) Unwrap() []error { return []error{ErrDecode, e.Err} }

// Upcaster lifts one event type's JSON data from one schema version to the next, in Go. It must
// be a pure function of its input and return a JSON object.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

// Registry maps stable event type names to Go types and schema versions, and turns typed values
// into EventData and RecordedEvents back into typed values. Names are explicit strings, never
// derived from Go type names, so renaming a struct never renames stored history. Register types
// at start-up; after that a Registry is safe for concurrent use. The zero value is not usable:
// call NewRegistry.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]*eventType
	byType map[reflect.Type]*eventType
}

type eventType struct {
	name      string
	goType    reflect.Type
	version   int
	upcasters map[int]Upcaster // from version → lift to from+1
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]*eventType{}, byType: map[reflect.Type]*eventType{}}
}

// Register maps the event type name to the Go type T at schema version 1: RegisterVersion with
// version 1.
func Register[T any](r *Registry, name string) { RegisterVersion[T](r, name, 1) }

// RegisterVersion maps the event type name to the Go type T, which must not be a pointer and
// must encode to a JSON object (a struct, usually), and says which schema version T represents.
// Encode accepts a T or a *T and writes that version; Decode returns a T, lifting older stored
// versions to it with Go upcasters (RegisterUpcaster) and refusing newer ones.
// It panics on a programming error, as it runs at start-up: a name the database would refuse as
// an event type (the name rule of 1..256 bytes, or a reserved '$' prefix), a pointer T, a schema
// version below 1, or a name or type registered twice.
func RegisterVersion[T any](r *Registry, name string, version int) {
	goType := reflect.TypeFor[T]()
	if p := nameProblem(name, 256); p != "" {
		panic(fmt.Sprintf("annals: Register(%q): the event type name %s", name, p))
	}
	if name[0] == '$' {
		panic(fmt.Sprintf("annals: Register(%q): event type names starting with '$' are reserved", name))
	}
	if goType.Kind() == reflect.Pointer || goType.Kind() == reflect.Interface {
		panic(fmt.Sprintf("annals: Register(%q): register the value type, not %v", name, goType))
	}
	et := &eventType{name: name, goType: goType, version: version, upcasters: map[int]Upcaster{}}
	if et.version < 1 {
		panic(fmt.Sprintf("annals: Register(%q): schema version must be >= 1, got %d", name, et.version))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.byName[name]; ok {
		panic(fmt.Sprintf("annals: Register(%q): already registered for %v", name, prev.goType))
	}
	if prev, ok := r.byType[goType]; ok {
		panic(fmt.Sprintf("annals: Register(%q): %v is already registered as %q", name, goType, prev.name))
	}
	r.byName[name] = et
	r.byType[goType] = et
}

// RegisterUpcaster registers a Go upcaster lifting the registered type name's data from
// fromVersion to fromVersion+1, for types a Go service owns. Decode applies the chain from the
// event's schema version up to the registered one.
//
// Order: upcasters registered in the database (annals.register_upcaster) run first, inside every
// read function, and set the event's SchemaVersion to the end of their chain; Go upcasters then
// lift from that version to the registered one. Reads with ReadOptions{Raw: true} skip the
// database's upcasters only.
//
// RegisterUpcaster panics on a programming error: an unregistered name, fromVersion outside
// 1..version-1, a nil function, or a second upcaster for the same step.
func (r *Registry) RegisterUpcaster(name string, fromVersion int, up Upcaster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	et, ok := r.byName[name]
	if !ok {
		panic(fmt.Sprintf("annals: RegisterUpcaster(%q): type not registered", name))
	}
	if fromVersion < 1 || fromVersion >= et.version {
		panic(fmt.Sprintf("annals: RegisterUpcaster(%q, %d): from version must be in 1..%d (the registered version is %d)",
			name, fromVersion, et.version-1, et.version))
	}
	if up == nil {
		panic(fmt.Sprintf("annals: RegisterUpcaster(%q, %d): nil upcaster", name, fromVersion))
	}
	if _, dup := et.upcasters[fromVersion]; dup {
		panic(fmt.Sprintf("annals: RegisterUpcaster(%q, %d): already registered", name, fromVersion))
	}
	et.upcasters[fromVersion] = up
}

// TypeName returns the registered name of event's Go type (a T or *T), or false.
func (r *Registry) TypeName(event any) (string, bool) {
	et := r.lookupType(event)
	if et == nil {
		return "", false
	}
	return et.name, true
}

func (r *Registry) lookupType(event any) *eventType {
	t := reflect.TypeOf(event)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byType[t]
}

// Encode turns a registered typed event (a T or *T) into EventData: its registered name and
// schema version, its JSON as data, and md as metadata (nil when md is empty). The ID is left
// zero (Append fixes one before its first try). It returns an error wrapping
// ErrUnknownEventType for an unregistered type and ErrInvalidArgument when the value does not
// encode to a JSON object.
func (r *Registry) Encode(event any, md Metadata) (annals.EventData, error) {
	et := r.lookupType(event)
	if et == nil {
		return annals.EventData{}, fmt.Errorf("annals: encode %T: %w (Register it first)", event, ErrUnknownEventType)
	}
	if v := reflect.ValueOf(event); v.Kind() == reflect.Pointer && v.IsNil() {
		return annals.EventData{}, invalid("event", "nil %T", event)
	}
	data, err := json.Marshal(event)
	if err != nil {
		return annals.EventData{}, invalid("event", "%s (%T) does not encode to JSON: %v", et.name, event, err)
	}
	if len(data) == 0 || data[0] != '{' {
		return annals.EventData{}, invalid("event", "%s (%T) must encode to a JSON object, got %.40s", et.name, event, data)
	}
	ed := annals.EventData{Type: et.name, SchemaVersion: et.version, Data: json.RawMessage(data)}
	if !md.IsZero() {
		meta, err := json.Marshal(md)
		if err != nil {
			return annals.EventData{}, invalid("metadata", "does not encode to JSON: %v", err)
		}
		ed.Metadata = json.RawMessage(meta)
	}
	return ed, nil
}

// Decode turns a stored event into a value of its registered Go type T (not a pointer), after
// lifting its data with the Go upcasters from its schema version to the registered one. Every
// failure is a *DecodeError (errors.Is(err, ErrDecode)): an unregistered type name (also
// ErrUnknownEventType), a schema version newer than the registered one or with no upcaster for
// a step, an upcaster's error, or data that does not decode into T.
func (r *Registry) Decode(ev annals.RecordedEvent) (any, error) {
	fail := func(err error) error {
		return &DecodeError{StreamID: ev.StreamID, StreamVersion: ev.StreamVersion, EventType: ev.EventType,
			SchemaVersion: ev.SchemaVersion, Err: err}
	}
	r.mu.RLock()
	et := r.byName[ev.EventType]
	r.mu.RUnlock()
	if et == nil {
		return nil, fail(ErrUnknownEventType)
	}
	data := ev.Data
	from := max(ev.SchemaVersion, 1)
	if from > et.version {
		return nil, fail(fmt.Errorf("stored schema version %d is newer than the registered %d: deploy the newer code", from, et.version))
	}
	for v := from; v < et.version; v++ {
		r.mu.RLock()
		up := et.upcasters[v]
		r.mu.RUnlock()
		if up == nil {
			return nil, fail(fmt.Errorf("no upcaster from schema version %d to %d (RegisterUpcaster, or annals.register_upcaster in SQL)", v, v+1))
		}
		lifted, err := up(data)
		if err != nil {
			return nil, fail(fmt.Errorf("upcaster %d→%d: %w", v, v+1, err))
		}
		data = lifted
	}
	ptr := reflect.New(et.goType)
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	if err := json.Unmarshal(data, ptr.Interface()); err != nil {
		return nil, fail(err)
	}
	return ptr.Elem().Interface(), nil
}
