package domain_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

func TestRegistryEncodeDecode(t *testing.T) {
	t.Parallel()
	reg := accountRegistry()

	t.Run("a value and a pointer encode alike, with name, version and metadata", func(t *testing.T) {
		t.Parallel()
		md := domain.Metadata{CorrelationID: "req-1", CausationID: "cmd-9", Actor: "ann", Extra: map[string]any{"tenant": "acme"}}
		for _, ev := range []any{Deposited{Amount: 5}, &Deposited{Amount: 5}} {
			ed, err := reg.Encode(ev, md)
			require.NoError(t, err)
			require.Equal(t, "account.deposited", ed.Type)
			require.Equal(t, 1, ed.SchemaVersion)
			require.JSONEq(t, `{"amount":5}`, string(ed.Data.(json.RawMessage)))
			require.JSONEq(t, `{"correlation_id":"req-1","causation_id":"cmd-9","actor":"ann","tenant":"acme"}`,
				string(ed.Metadata.(json.RawMessage)))
		}
		ed, err := reg.Encode(Opened{Owner: "x"}, domain.Metadata{})
		require.NoError(t, err)
		require.Nil(t, ed.Metadata, "empty metadata is left out")
	})

	t.Run("decode returns the registered value type", func(t *testing.T) {
		t.Parallel()
		got, err := reg.Decode(annals.RecordedEvent{EventType: "account.withdrawn", SchemaVersion: 1, Data: json.RawMessage(`{"amount":7}`)})
		require.NoError(t, err)
		require.Equal(t, Withdrawn{Amount: 7}, got)
		name, ok := reg.TypeName(&Withdrawn{})
		require.True(t, ok)
		require.Equal(t, "account.withdrawn", name)
	})

	t.Run("an unknown type fails clearly both ways", func(t *testing.T) {
		t.Parallel()
		type Unregistered struct{ X int }
		_, err := reg.Encode(Unregistered{}, domain.Metadata{})
		require.ErrorIs(t, err, domain.ErrUnknownEventType)
		require.ErrorContains(t, err, "Unregistered")

		_, err = reg.Decode(annals.RecordedEvent{StreamID: "acct-1", StreamVersion: 3, EventType: "account.closed", Data: json.RawMessage(`{}`)})
		require.ErrorIs(t, err, domain.ErrUnknownEventType)
		require.ErrorIs(t, err, domain.ErrDecode)
		var de *domain.DecodeError
		require.ErrorAs(t, err, &de)
		require.Equal(t, "acct-1", de.StreamID)
		require.Equal(t, int64(3), de.StreamVersion)
		require.Equal(t, "account.closed", de.EventType)
		require.ErrorContains(t, err, "acct-1@3")
	})

	t.Run("a payload that does not decode fails clearly", func(t *testing.T) {
		t.Parallel()
		_, err := reg.Decode(annals.RecordedEvent{StreamID: "acct-2", StreamVersion: 1, EventType: "account.deposited", Data: json.RawMessage(`{"amount":"ten"}`)})
		require.ErrorIs(t, err, domain.ErrDecode)
		require.False(t, errors.Is(err, domain.ErrUnknownEventType))
		var typeErr *json.UnmarshalTypeError
		require.ErrorAs(t, err, &typeErr, "the cause stays reachable")
	})

	t.Run("a value that is not a JSON object is refused", func(t *testing.T) {
		t.Parallel()
		r := domain.NewRegistry()
		domain.Register[int](r, "number")
		_, err := r.Encode(42, domain.Metadata{})
		require.ErrorIs(t, err, annals.ErrInvalidArgument)
		_, err = reg.Encode((*Deposited)(nil), domain.Metadata{})
		require.ErrorIs(t, err, annals.ErrInvalidArgument)
	})
}

func TestRegistryMisuse(t *testing.T) {
	t.Parallel()
	reg := domain.NewRegistry()
	domain.Register[Opened](reg, "opened")
	for name, f := range map[string]func(){
		"empty name":       func() { domain.Register[Deposited](reg, "") },
		"reserved name":    func() { domain.Register[Deposited](reg, "$deposited") },
		"pointer type":     func() { domain.Register[*Deposited](reg, "deposited") },
		"name twice":       func() { domain.Register[Deposited](reg, "opened") },
		"type twice":       func() { domain.Register[Opened](reg, "opened-again") },
		"schema version 0": func() { domain.RegisterVersion[Deposited](reg, "d0", 0) },
		"upcaster unknown": func() {
			reg.RegisterUpcaster("nope", 1, func(b json.RawMessage) (json.RawMessage, error) { return b, nil })
		},
		"upcaster at current": func() {
			reg.RegisterUpcaster("opened", 1, func(b json.RawMessage) (json.RawMessage, error) { return b, nil })
		},
		"upcaster nil": func() { reg.RegisterUpcaster("opened", 1, nil) },
		"upcaster from zero v": func() {
			reg.RegisterUpcaster("opened", 0, func(b json.RawMessage) (json.RawMessage, error) { return b, nil })
		},
	} {
		require.Panics(t, f, name)
	}
}

// V3 of a type owned by Go: v1 {"full_name"}, v2 {"name"}, v3 {"name","vip"}.
type Customer struct {
	Name string `json:"name"`
	VIP  bool   `json:"vip"`
}

func customerRegistry() *domain.Registry {
	reg := domain.NewRegistry()
	domain.RegisterVersion[Customer](reg, "customer", 3)
	reg.RegisterUpcaster("customer", 1, func(b json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			FullName string `json:"full_name"`
		}
		if err := json.Unmarshal(b, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"name": v1.FullName})
	})
	reg.RegisterUpcaster("customer", 2, func(b json.RawMessage) (json.RawMessage, error) {
		var v2 map[string]any
		if err := json.Unmarshal(b, &v2); err != nil {
			return nil, err
		}
		v2["vip"] = false
		return json.Marshal(v2)
	})
	return reg
}

func TestRegistryGoUpcasters(t *testing.T) {
	t.Parallel()
	reg := customerRegistry()
	decode := func(version int, data string) (any, error) {
		return reg.Decode(annals.RecordedEvent{StreamID: "c-1", EventType: "customer", SchemaVersion: version, Data: json.RawMessage(data)})
	}

	got, err := decode(1, `{"full_name":"Ann Lee"}`)
	require.NoError(t, err)
	require.Equal(t, Customer{Name: "Ann Lee"}, got, "v1 goes through both upcasters")
	got, err = decode(2, `{"name":"Bo"}`)
	require.NoError(t, err)
	require.Equal(t, Customer{Name: "Bo"}, got)
	got, err = decode(3, `{"name":"Cy","vip":true}`)
	require.NoError(t, err)
	require.Equal(t, Customer{Name: "Cy", VIP: true}, got, "the current version is decoded as is")

	_, err = decode(4, `{"name":"Di"}`)
	require.ErrorIs(t, err, domain.ErrDecode)
	require.ErrorContains(t, err, "newer than the registered 3")

	_, err = decode(1, `{"full_name":7}`)
	require.ErrorIs(t, err, domain.ErrDecode, "an upcaster's error is a decode error")
	require.ErrorContains(t, err, "upcaster 1→2")

	ed, err := reg.Encode(Customer{Name: "Ed"}, domain.Metadata{})
	require.NoError(t, err)
	require.Equal(t, 3, ed.SchemaVersion, "encode writes the registered version")

	gap := domain.NewRegistry()
	domain.RegisterVersion[Customer](gap, "customer", 2)
	_, err = gap.Decode(annals.RecordedEvent{EventType: "customer", SchemaVersion: 1, Data: json.RawMessage(`{}`)})
	require.ErrorIs(t, err, domain.ErrDecode)
	require.ErrorContains(t, err, "no upcaster from schema version 1 to 2")
}

func TestMetadataJSON(t *testing.T) {
	t.Parallel()
	md, err := domain.ParseMetadata(json.RawMessage(`{"correlation_id":"c","actor":"ann","ip":"10.0.0.1","n":2}`))
	require.NoError(t, err)
	require.Equal(t, domain.Metadata{CorrelationID: "c", Actor: "ann", Extra: map[string]any{"ip": "10.0.0.1", "n": float64(2)}}, md)

	md, err = domain.ParseMetadata(nil)
	require.NoError(t, err)
	require.True(t, md.IsZero())
	md, err = domain.ParseMetadata(json.RawMessage(`{}`))
	require.NoError(t, err)
	require.True(t, md.IsZero())

	_, err = domain.ParseMetadata(json.RawMessage(`{"actor":42}`))
	require.ErrorContains(t, err, "actor must be a string")

	b, err := json.Marshal(domain.Metadata{Actor: "ann", Extra: map[string]any{"actor": "spoofed", "k": "v"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"actor":"ann","k":"v"}`, string(b), "the field wins over Extra")

	ctx := domain.ContextWithMetadata(t.Context(), domain.Metadata{CorrelationID: "r-7"})
	got, ok := domain.MetadataFromContext(ctx)
	require.True(t, ok)
	require.Equal(t, "r-7", got.CorrelationID)
	_, ok = domain.MetadataFromContext(t.Context())
	require.False(t, ok)
}
