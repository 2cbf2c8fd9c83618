package domain_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

// CustomerRegistered is at schema version 2 in SQL terms ({first_name, last_name}, lifted from
// v1 {name} by a SQL upcaster) and at version 3 in Go ({first_name, last_name, display_name},
// lifted from v2 by a Go upcaster). It was once stored as ClientSignedUp (an alias now).
type CustomerRegistered struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	DisplayName string `json:"display_name"`
}

// installCustomerUpcasting registers, as superuser, the SQL upcaster v1 → v2 and the alias.
func installCustomerUpcasting(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
		CREATE FUNCTION public.customer_registered_v1_to_v2(data jsonb) RETURNS jsonb
		LANGUAGE sql IMMUTABLE SET search_path = pg_catalog
		AS $$ SELECT (data - 'name') || jsonb_build_object(
		                'first_name', split_part(data ->> 'name', ' ', 1),
		                'last_name',  split_part(data ->> 'name', ' ', 2)) $$;
		GRANT EXECUTE ON FUNCTION public.customer_registered_v1_to_v2(jsonb) TO annals_owner;
		SELECT annals.register_upcaster('CustomerRegistered', 1, 'public.customer_registered_v1_to_v2(jsonb)');
		SELECT annals.register_event_alias('ClientSignedUp', 'CustomerRegistered');`)
	require.NoError(t, err)
}

// customerNames is a decider over customer registrations: the display names, in order.
func customerNames() domain.Decider[[]string, CustomerRegistered] {
	return domain.Decider[[]string, CustomerRegistered]{
		Initial: func() []string { return nil },
		Decide: func(_ []string, c CustomerRegistered) ([]any, error) {
			return []any{c}, nil
		},
		Evolve: func(names []string, ev any) []string {
			return append(names[:len(names):len(names)], ev.(CustomerRegistered).DisplayName)
		},
	}
}

func customerRegistryV3() *domain.Registry {
	reg := domain.NewRegistry()
	domain.RegisterVersion[CustomerRegistered](reg, "CustomerRegistered", 3)
	reg.RegisterUpcaster("CustomerRegistered", 2, func(b json.RawMessage) (json.RawMessage, error) {
		var v2 map[string]any
		if err := json.Unmarshal(b, &v2); err != nil {
			return nil, err
		}
		v2["display_name"] = strings.TrimSpace(v2["first_name"].(string) + " " + v2["last_name"].(string))
		return json.Marshal(v2)
	})
	return reg
}

func TestUpcastingOldPayloadsReadAsNew(t *testing.T) {
	t.Parallel()
	pool, client := domainDB(t)
	ctx := t.Context()
	s := streamName("customer")
	_, err := client.Append(ctx, s, annals.NoStream,
		annals.EventData{Type: "ClientSignedUp", SchemaVersion: 1, Data: map[string]any{"name": "Ann Lee"}},
		annals.EventData{Type: "CustomerRegistered", SchemaVersion: 1, Data: map[string]any{"name": "Bo Chen"}},
		annals.EventData{Type: "CustomerRegistered", SchemaVersion: 2, Data: map[string]any{"first_name": "Cy", "last_name": "Diaz"}})
	require.NoError(t, err)
	stored := storedRows(t, pool, s)
	require.Equal(t, []string{
		`ClientSignedUp v1 {"name": "Ann Lee"}`,
		`CustomerRegistered v1 {"name": "Bo Chen"}`,
		`CustomerRegistered v2 {"last_name": "Diaz", "first_name": "Cy"}`,
	}, stored)

	installCustomerUpcasting(t, pool)
	current := []string{
		`CustomerRegistered v2 {"first_name":"Ann","last_name":"Lee"}`,
		`CustomerRegistered v2 {"first_name":"Bo","last_name":"Chen"}`,
		`CustomerRegistered v2 {"first_name":"Cy","last_name":"Diaz"}`,
	}
	describe := func(evs []annals.RecordedEvent) []string {
		out := make([]string, len(evs))
		for i, ev := range evs {
			var data map[string]any
			require.NoError(t, json.Unmarshal(ev.Data, &data))
			b, err := json.Marshal(data) // canonical key order
			require.NoError(t, err)
			out[i] = ev.EventType + " v" + strconv.Itoa(ev.SchemaVersion) + " " + string(b)
		}
		return out
	}
	readStream := func(opts annals.ReadOptions) []annals.RecordedEvent {
		var evs []annals.RecordedEvent
		for ev, err := range client.ReadStream(ctx, s, opts) {
			require.NoError(t, err)
			evs = append(evs, ev)
		}
		return evs
	}

	t.Run("ReadStream upcasts and renames", func(t *testing.T) {
		require.Equal(t, current, describe(readStream(annals.ReadOptions{})))
		require.Equal(t, current[1:], describe(readStream(annals.ReadOptions{From: 2})))
	})

	t.Run("ReadStreamAsOf upcasts", func(t *testing.T) {
		var evs []annals.RecordedEvent
		for ev, err := range client.ReadStreamAsOf(ctx, s, annals.AtVersion(2)) {
			require.NoError(t, err)
			evs = append(evs, ev)
		}
		require.Equal(t, current[:2], describe(evs))
	})

	t.Run("ReadAll upcasts, and a type filter matches the new name", func(t *testing.T) {
		evs := feedUntil(t, client, 3, annals.FeedOptions{EventTypes: []string{"CustomerRegistered"}})
		require.Equal(t, current, describe(evs))
		raw := feedUntil(t, client, 3, annals.FeedOptions{Raw: true})
		require.Equal(t, []string{"ClientSignedUp", "CustomerRegistered", "CustomerRegistered"},
			[]string{raw[0].EventType, raw[1].EventType, raw[2].EventType})
	})

	t.Run("Raw reads return the stored bytes", func(t *testing.T) {
		raw := readStream(annals.ReadOptions{Raw: true})
		require.Equal(t, []string{
			`ClientSignedUp v1 {"name":"Ann Lee"}`,
			`CustomerRegistered v1 {"name":"Bo Chen"}`,
			`CustomerRegistered v2 {"first_name":"Cy","last_name":"Diaz"}`,
		}, describe(raw))
	})

	t.Run("the repository sees SQL upcasting first, then Go upcasting", func(t *testing.T) {
		repo := domain.NewRepository(client, customerRegistryV3(), customerNames(), domain.RepositoryOptions{SnapshotEvery: -1})
		names, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(3), version)
		require.Equal(t, []string{"Ann Lee", "Bo Chen", "Cy Diaz"}, names)

		// A registry at the SQL chain's end needs no Go upcaster for these events.
		v2 := domain.NewRegistry()
		domain.RegisterVersion[CustomerRegistered](v2, "CustomerRegistered", 2)
		first := readStream(annals.ReadOptions{Limit: 1})[0]
		got, err := v2.Decode(first)
		require.NoError(t, err)
		require.Equal(t, CustomerRegistered{FirstName: "Ann", LastName: "Lee"}, got)
		// Raw bytes skip the SQL chain, so Go alone cannot lift them: a clear error.
		_, err = v2.Decode(readStream(annals.ReadOptions{Raw: true, From: 2, Limit: 1})[0])
		require.ErrorIs(t, err, domain.ErrDecode)
		require.ErrorContains(t, err, "no upcaster from schema version 1 to 2")
	})

	t.Run("stored rows are untouched", func(t *testing.T) {
		require.Equal(t, stored, storedRows(t, pool, s))
	})

	t.Run("new events are written in the current shape and read back", func(t *testing.T) {
		repo := domain.NewRepository(client, customerRegistryV3(), customerNames(), domain.RepositoryOptions{SnapshotEvery: -1})
		res, err := repo.Handle(ctx, s, CustomerRegistered{FirstName: "Di", LastName: "Eng", DisplayName: "Di Eng"})
		require.NoError(t, err)
		require.Equal(t, []string{"Ann Lee", "Bo Chen", "Cy Diaz", "Di Eng"}, res.State)
		rows := storedRows(t, pool, s)
		require.Equal(t, stored, rows[:3])
		require.Equal(t, `CustomerRegistered v3 {"last_name": "Eng", "first_name": "Di", "display_name": "Di Eng"}`, rows[3])
		names, _, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, res.State, names)
	})
}

// feedUntil polls the global feed from the start until it holds want events. The feed's barrier
// is cluster-wide: a transaction left open by a parallel test anywhere on the server (the feed
// tests hold some on purpose) holds it back until it ends, hence the generous deadline.
func feedUntil(t *testing.T, client *annals.Client, want int, opts annals.FeedOptions) []annals.RecordedEvent {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		evs, err := client.ReadAll(t.Context(), annals.Checkpoint{}, opts)
		require.NoError(t, err)
		if len(evs) >= want {
			return evs
		}
		require.True(t, time.Now().Before(deadline), "feed stalled at %d of %d events: a transaction elsewhere on the server holds the barrier", len(evs), want)
		time.Sleep(10 * time.Millisecond)
	}
}
