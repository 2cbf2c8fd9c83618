package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
)

// Metadata is an event's metadata with the conventional keys as fields: correlation_id (the
// request or conversation the event belongs to), causation_id (the command or event that caused
// it) and actor (who or what acted). Extra holds any other keys. Empty fields are left out of
// the JSON.
type Metadata struct {
	CorrelationID string
	CausationID   string
	Actor         string
	Extra         map[string]any
}

// IsZero reports whether m holds nothing.
func (m Metadata) IsZero() bool {
	return m.CorrelationID == "" && m.CausationID == "" && m.Actor == "" && len(m.Extra) == 0
}

// MarshalJSON writes the conventional keys (when set) over Extra's keys.
func (m Metadata) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(m.Extra)+3)
	maps.Copy(out, m.Extra)
	for k, v := range map[string]string{"correlation_id": m.CorrelationID, "causation_id": m.CausationID, "actor": m.Actor} {
		if v != "" {
			out[k] = v
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads the conventional keys (which must be strings when present) into their
// fields and every other key into Extra.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*m = Metadata{}
	for key, dst := range map[string]*string{"correlation_id": &m.CorrelationID, "causation_id": &m.CausationID, "actor": &m.Actor} {
		v, ok := all[key]
		if !ok || v == nil {
			delete(all, key)
			continue
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("annals: metadata %s must be a string, got %T", key, v)
		}
		*dst = s
		delete(all, key)
	}
	if len(all) > 0 {
		m.Extra = all
	}
	return nil
}

// ParseMetadata decodes a RecordedEvent's Metadata. Empty input gives the zero Metadata.
func ParseMetadata(raw json.RawMessage) (Metadata, error) {
	var m Metadata
	if len(raw) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return Metadata{}, wrapf(err, "metadata")
	}
	return m, nil
}

type metadataKey struct{}

// ContextWithMetadata returns a context carrying md: repositories stamp it on every event they
// append under that context (Handle, Save and their Tx forms). Set it once per request, e.g. in
// middleware, with the request's correlation id and actor.
func ContextWithMetadata(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFromContext returns the Metadata ContextWithMetadata stored in ctx, if any.
func MetadataFromContext(ctx context.Context) (Metadata, bool) {
	md, ok := ctx.Value(metadataKey{}).(Metadata)
	return md, ok
}
