package tests

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// versions lists a stream's stored versions, read through annals.read_stream.
func (f fixture) versions(t *testing.T, streamID string) []int64 {
	t.Helper()
	var out []int64
	for _, e := range f.readAll(t, streamID) {
		out = append(out, e.StreamVersion)
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func TestPurgeStream(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("purge")
	_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Seeded", 3)...)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.save_snapshot($1, 'Cart', 1, 2, '{}')", s)
	require.NoError(t, err)
	other := stream("purge")
	_, err = f.store.Append(f.ctx, other, annals.NoStream, events(t, "Kept", 2)...)
	require.NoError(t, err)

	_, err = f.store.PurgeStream(f.ctx, s, annals.Exact(2), "")
	require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
	_, err = f.store.PurgeStream(f.ctx, stream("purge"), annals.Any, "")
	require.ErrorIs(t, err, annals.ErrWrongExpectedVersion, "a stream without events cannot be purged")

	n, err := f.store.PurgeStream(f.ctx, s, annals.Exact(3), "GDPR request 7")
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	info, err := f.store.StreamInfo(f.ctx, s)
	require.NoError(t, err)
	require.Equal(t, "purged", info.State)
	require.EqualValues(t, 3, info.StreamVersion, "the tombstone keeps the last version")
	require.Empty(t, f.readAll(t, s))
	require.Len(t, f.readAll(t, other), 2, "other streams are untouched")
	var snaps int64
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals_internal.snapshots WHERE stream_id = $1", s).Scan(&snaps))
	require.Zero(t, snaps, "snapshots go with the events")

	// Every way of appending is refused: versions are never reused, the id never recreated.
	for _, exp := range []annals.ExpectedVersion{annals.Any, annals.NoStream, annals.StreamExists, annals.Exact(3), annals.Exact(0)} {
		_, err = f.store.Append(f.ctx, s, exp, events(t, "Again", 1)...)
		require.ErrorIs(t, err, annals.ErrStreamDeleted, "expected %v", exp)
	}
	requirePgError(t, f.appendSQL(s, nil, `[{"type": "Again"}]`), "ST410")
	requirePgError(t, f.appendSQL(s, nil, `[]`), "ST410")
	_, err = f.pool.Exec(f.ctx, "SELECT * FROM annals.append_event($1, NULL, 'Again', '{}')", s)
	requirePgError(t, err, "ST410")
	_, err = f.store.PurgeStream(f.ctx, s, annals.Any, "")
	require.ErrorIs(t, err, annals.ErrStreamDeleted, "purging twice: ST410")

	// Logged: who, what range, why.
	var op, by, reason string
	var first, last, count int64
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT operation, performed_by, reason, first_version, stream_version, event_count
	    FROM annals_internal.lifecycle_log WHERE stream_id = $1`, s).Scan(&op, &by, &reason, &first, &last, &count))
	require.Equal(t, []any{"purge", "GDPR request 7", int64(1), int64(3), int64(3)}, []any{op, reason, first, last, count})
	require.NotEmpty(t, by)

	// A deleted stream may be purged too.
	d := stream("purge")
	_, err = f.store.Append(f.ctx, d, annals.NoStream, events(t, "Seeded", 2)...)
	require.NoError(t, err)
	_, err = f.store.DeleteStream(f.ctx, d, annals.Any, "")
	require.NoError(t, err)
	n, err = f.store.PurgeStream(f.ctx, d, annals.Any, "")
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

// Removal is the one exception to append-only, and only through the lifecycle functions: any
// other DELETE, by the owner or a superuser, is still ST405; application roles may not call them.
func TestRemovalStaysControlled(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("guarded")
	_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Seeded", 3)...)
	require.NoError(t, err)

	_, err = f.pool.Exec(f.ctx, "DELETE FROM annals_internal.events WHERE stream_id = $1", s)
	requirePgError(t, err, "ST405")
	// Not even annals_owner, and a log row for another range opens nothing.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, "SET LOCAL ROLE annals_owner")
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, `INSERT INTO annals_internal.lifecycle_log (stream_id, operation, stream_version, first_version, performed_by, performed_at)
	    VALUES ($1, 'retention', 1, 1, 'x', now())`, s)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, "DELETE FROM annals_internal.events WHERE stream_id = $1 AND stream_version = 2", s)
	requirePgError(t, err, "ST405")
	require.NoError(t, tx.Rollback(f.ctx))
	_, err = f.pool.Exec(f.ctx, "UPDATE annals_internal.events SET data = '{}' WHERE stream_id = $1", s)
	requirePgError(t, err, "ST405")

	for _, grant := range []string{"annals_writer", "annals_reader", "annals_bi"} {
		role := loginRole(t, f, grant)
		pool, client := f.as(t, role)
		_, err := client.PurgeStream(f.ctx, s, annals.Any, "")
		require.ErrorIs(t, err, annals.ErrPermissionDenied, grant)
		for _, q := range []string{
			"SELECT annals.purge_stream('" + s + "')",
			"SELECT annals.set_retention(stream_id => '" + s + "', max_count => 1)",
			"SELECT annals.apply_retention()",
			"SELECT annals.register_personal_data('T', '{$.email}', '$.id')",
			"SELECT annals.forget_subject('x')",
			"SELECT annals.register_erasure_handler('pg_catalog.lower(text)')",
		} {
			_, err := pool.Exec(f.ctx, q)
			requirePgError(t, err, "42501")
		}
	}
	require.Len(t, f.readAll(t, s), 3)
}

func TestRetention(t *testing.T) {
	t.Parallel()
	f := setup(t)
	appendN := func(t *testing.T, s string, n int) {
		t.Helper()
		_, err := f.store.Append(f.ctx, s, annals.Any, events(t, "Tick", n)...)
		require.NoError(t, err)
	}
	apply := func(t *testing.T, budget int64) int64 {
		t.Helper()
		n, err := f.store.ApplyRetention(f.ctx, budget)
		require.NoError(t, err)
		return n
	}
	set := func(t *testing.T, r annals.RetentionRule) {
		t.Helper()
		ok, err := f.store.SetRetention(f.ctx, r)
		require.NoError(t, err)
		require.True(t, ok)
	}
	// Each subtest uses its own category; apply_retention applies every rule, so they run in turn.

	t.Run("max count, in bounded steps, logged", func(t *testing.T) {
		s := stream("rcount")
		appendN(t, s, 10)
		set(t, annals.RetentionRule{StreamID: s, MaxCount: 3})
		require.EqualValues(t, 4, apply(t, 4), "a step removes at most max_events")
		require.Equal(t, seq(5, 10), f.versions(t, s))
		require.EqualValues(t, 3, apply(t, 100))
		require.Equal(t, seq(8, 10), f.versions(t, s))
		require.Zero(t, apply(t, 100))
		rows, err := f.pool.Query(f.ctx, `SELECT first_version, stream_version, event_count, details->>'max_count'
		    FROM annals_internal.lifecycle_log WHERE stream_id = $1 AND operation = 'retention' ORDER BY log_id`, s)
		require.NoError(t, err)
		var got [][4]any
		for rows.Next() {
			var a, b, c int64
			var d string
			require.NoError(t, rows.Scan(&a, &b, &c, &d))
			got = append(got, [4]any{a, b, c, d})
		}
		require.Equal(t, [][4]any{{int64(1), int64(4), int64(4), "3"}, {int64(5), int64(7), int64(3), "3"}}, got)
		st, err := f.store.RetentionStatus(f.ctx)
		require.NoError(t, err)
		require.True(t, st.LastDone)
		require.False(t, st.LastRunAt.IsZero())
		// Appends go on at the next version: nothing about the stream's numbering changed.
		res, err := f.store.Append(f.ctx, s, annals.Exact(10), events(t, "Tick", 1)...)
		require.NoError(t, err)
		require.EqualValues(t, 11, res.StreamVersion)
		set(t, annals.RetentionRule{StreamID: s, MaxCount: 1})
		require.EqualValues(t, 3, apply(t, 100))
		require.Equal(t, []int64{11}, f.versions(t, s))
	})

	t.Run("max age never removes the last event", func(t *testing.T) {
		s := stream("rage")
		appendN(t, s, 5)
		set(t, annals.RetentionRule{StreamID: s, MaxAge: time.Hour})
		require.Zero(t, apply(t, 100), "nothing is an hour old")
		set(t, annals.RetentionRule{StreamID: s, MaxAge: time.Microsecond})
		time.Sleep(2 * time.Millisecond) // so the events are older than a microsecond (not a timing assertion)
		require.EqualValues(t, 4, apply(t, 100))
		require.Equal(t, []int64{5}, f.versions(t, s), "the last event always stays")
	})

	t.Run("truncate before", func(t *testing.T) {
		s := stream("rtrunc")
		appendN(t, s, 6)
		set(t, annals.RetentionRule{StreamID: s, TruncateBefore: 4})
		require.EqualValues(t, 3, apply(t, 100))
		require.Equal(t, seq(4, 6), f.versions(t, s))
		set(t, annals.RetentionRule{StreamID: s, TruncateBefore: 100})
		require.EqualValues(t, 2, apply(t, 100))
		require.Equal(t, []int64{6}, f.versions(t, s), "truncate_before beyond the stream keeps its last event")
	})

	t.Run("snapshot guard", func(t *testing.T) {
		s := stream("rsnap")
		appendN(t, s, 10)
		_, err := f.pool.Exec(f.ctx, "SELECT annals.save_snapshot($1, 'Agg', 1, 4, '{}')", s)
		require.NoError(t, err)
		set(t, annals.RetentionRule{StreamID: s, MaxCount: 2})
		require.EqualValues(t, 4, apply(t, 100), "max_count stops at the newest snapshot")
		require.Equal(t, seq(5, 10), f.versions(t, s))
		set(t, annals.RetentionRule{StreamID: s, MaxAge: time.Microsecond})
		time.Sleep(2 * time.Millisecond)
		require.Zero(t, apply(t, 100), "so does max_age")
		_, err = f.pool.Exec(f.ctx, "SELECT annals.save_snapshot($1, 'Agg', 1, 7, '{}')", s)
		require.NoError(t, err)
		require.EqualValues(t, 3, apply(t, 100), "a newer snapshot lets more go")
		require.Equal(t, seq(8, 10), f.versions(t, s))
		set(t, annals.RetentionRule{StreamID: s, MaxCount: 2, TruncateBefore: 10})
		require.EqualValues(t, 2, apply(t, 100), "truncate_before is not held back by the snapshot")
		require.Equal(t, []int64{10}, f.versions(t, s))
	})

	t.Run("category rule, a stream's own rule overrides it, combined limits", func(t *testing.T) {
		a, b, c := stream("rcat"), stream("rcat"), stream("rcat")
		for _, s := range []string{a, b, c} {
			appendN(t, s, 6)
		}
		set(t, annals.RetentionRule{Category: "rcat", MaxCount: 4})
		set(t, annals.RetentionRule{StreamID: b, MaxCount: 5, TruncateBefore: 4})
		require.EqualValues(t, 2+3+2, apply(t, 100))
		require.Equal(t, seq(3, 6), f.versions(t, a))
		require.Equal(t, seq(4, 6), f.versions(t, b), "the stronger of the stream rule's limits wins")
		require.Equal(t, seq(3, 6), f.versions(t, c))

		rules, err := f.store.RetentionRules(f.ctx)
		require.NoError(t, err)
		var found int
		for _, r := range rules {
			if r.Category == "rcat" {
				require.EqualValues(t, 4, r.MaxCount)
				found++
			}
			if r.StreamID == b {
				require.EqualValues(t, 5, r.MaxCount)
				require.EqualValues(t, 4, r.TruncateBefore)
				found++
			}
		}
		require.Equal(t, 2, found)
		ok, err := f.store.SetRetention(f.ctx, annals.RetentionRule{Category: "rcat"})
		require.NoError(t, err)
		require.True(t, ok, "all limits zero removes the rule")
		ok, err = f.store.SetRetention(f.ctx, annals.RetentionRule{Category: "rcat"})
		require.NoError(t, err)
		require.False(t, ok, "no rule to remove")
	})

	t.Run("purged streams are skipped", func(t *testing.T) {
		s := stream("rpurged")
		appendN(t, s, 4)
		set(t, annals.RetentionRule{StreamID: s, MaxCount: 1})
		_, err := f.store.PurgeStream(f.ctx, s, annals.Any, "")
		require.NoError(t, err)
		require.Zero(t, apply(t, 100))
	})
}

// Readers, the feed and subscriptions keep working while events are removed: positions simply
// have gaps, checkpoints stay valid.
func TestRemovalWhileReading(t *testing.T) {
	t.Parallel()
	f := setup(t)
	gone, kept := stream("rmread"), stream("rmkept")
	for i := 0; i < 5; i++ {
		_, err := f.store.Append(f.ctx, gone, annals.Any, events(t, "Gone", 2)...)
		require.NoError(t, err)
		_, err = f.store.Append(f.ctx, kept, annals.Any, events(t, "Kept", 2)...)
		require.NoError(t, err)
	}
	// The feed is cluster-wide gap-free: other tests' open transactions may hold it back a moment.
	var page []annals.RecordedEvent
	require.Eventually(t, func() bool {
		var err error
		page, err = f.store.ReadAll(f.ctx, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 3})
		require.NoError(t, err)
		return len(page) == 3
	}, time.Minute, 10*time.Millisecond)
	checkpoint := page[2].Checkpoint()

	// A subscription whose checkpoint is in the middle of what will be removed.
	_, err := f.pool.Exec(f.ctx, "SELECT annals.create_subscription('rm_sub')")
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `SELECT annals.ack_subscription('rm_sub', 0, '0', 0, $1::bigint::text::xid8, $2)`,
		checkpoint.TransactionID, checkpoint.GlobalPosition)
	require.NoError(t, err)

	// Readers run while retention and a purge remove events.
	var wg sync.WaitGroup
	var reads atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.store.ReadAll(f.ctx, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 100}); err != nil {
					errs <- err
					return
				}
				for _, err := range f.store.ReadStream(f.ctx, kept, annals.ReadOptions{}) {
					if err != nil {
						errs <- err
						return
					}
				}
				reads.Add(1)
			}
		}()
	}
	_, err = f.store.SetRetention(f.ctx, annals.RetentionRule{StreamID: kept, MaxCount: 4})
	require.NoError(t, err)
	n, err := f.store.ApplyRetention(f.ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
	_, err = f.store.PurgeStream(f.ctx, gone, annals.Any, "")
	require.NoError(t, err)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d read rounds ran during the removals", reads.Load())

	var rest []annals.RecordedEvent
	require.Eventually(t, func() bool {
		var err error
		rest, err = f.store.ReadAll(f.ctx, checkpoint, annals.FeedOptions{MaxCount: 100})
		require.NoError(t, err)
		return len(rest) >= 4
	}, time.Minute, 10*time.Millisecond)
	require.Len(t, rest, 4, "the feed goes on from the old checkpoint across the gaps")
	for _, e := range rest {
		require.Equal(t, kept, e.StreamID)
	}
	require.Equal(t, seq(7, 10), f.versions(t, kept))

	var delivered int64
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals.read_subscription('rm_sub', 0, 100)").Scan(&delivered))
	require.EqualValues(t, 4, delivered, "a subscription goes on from its checkpoint with what is left")
}

func TestRetentionBadInput(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, q := range []string{
		"SELECT annals.set_retention(max_count => 1)",
		"SELECT annals.set_retention(stream_id => 'a-1', category => 'a', max_count => 1)",
		"SELECT annals.set_retention(stream_id => '', max_count => 1)",
		"SELECT annals.set_retention(category => 'a-b', max_count => 1)",
		"SELECT annals.set_retention(category => '', max_count => 1)",
		"SELECT annals.set_retention(category => 'a', max_age => '-1 day')",
		"SELECT annals.set_retention(category => 'a', max_age => '0')",
		"SELECT annals.set_retention(category => 'a', max_count => 0)",
		"SELECT annals.set_retention(category => 'a', truncate_before => 0)",
		"SELECT annals.apply_retention(0)",
		"SELECT annals.apply_retention(NULL)",
		"SELECT annals.purge_stream('')",
		"SELECT annals.purge_stream(NULL)",
		"SELECT annals.purge_stream('a-1', -2)",
		"SELECT annals.purge_stream('a-1', NULL, repeat('x', 1001))",
		"SELECT annals.register_personal_data('', '{$.email}', '$.id')",
		"SELECT annals.register_personal_data('T', '{}', '$.id')",
		"SELECT annals.register_personal_data('T', NULL, '$.id')",
		"SELECT annals.register_personal_data('T', '{NULL}', '$.id')",
		"SELECT annals.register_personal_data('T', '{$.items[*].email}', '$.id')",
		"SELECT annals.register_personal_data('T', '{email}', '$.id')",
		"SELECT annals.register_personal_data('T', '{$.email}', NULL)",
		"SELECT annals.register_personal_data('T', '{$.email}', '$')",
		"SELECT annals.register_personal_data('T', '{$.customer.email}', '$.customer')",
		"SELECT annals.register_personal_data('T', '{$.customer}', '$.customer.id')",
		"SELECT annals.forget_subject('')",
		"SELECT annals.forget_subject(NULL)",
		"SELECT annals.register_erasure_handler('pg_catalog.lower(text)')",
		"SELECT annals.register_erasure_handler(NULL)",
	} {
		_, err := f.pool.Exec(f.ctx, q)
		requirePgError(t, err, "ST422")
	}
	_, err := f.pool.Exec(f.ctx, "SELECT annals.set_retention(stream_id => '$all', max_count => 1)")
	requirePgError(t, err, "ST403")
	_, err = f.pool.Exec(f.ctx, "SELECT annals.register_personal_data('$T', '{$.email}', '$.id')")
	requirePgError(t, err, "ST403")
	_, err = f.pool.Exec(f.ctx, "SELECT annals.purge_stream('$all')")
	requirePgError(t, err, "ST403")

	// The Go calls map them.
	_, err = f.store.SetRetention(f.ctx, annals.RetentionRule{MaxCount: 1})
	require.ErrorIs(t, err, annals.ErrInvalidArgument, "neither stream nor category")
	_, err = f.store.ApplyRetention(f.ctx, -1)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = f.store.RegisterPersonalData(f.ctx, "T", []string{"$.a[0]"}, "$.id")
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = f.store.ForgetSubject(f.ctx, "")
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = f.store.RegisterErasureHandler(f.ctx, "pg_catalog.lower(text)")
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
}

// registerCustomer registers CustomerRegistered's personal data and returns a customer stream
// with two events of one subject and one of another, and an event without personal data.
func registerCustomer(t *testing.T, f fixture) (streamID string) {
	t.Helper()
	isNew, err := f.store.RegisterPersonalData(f.ctx, "CustomerRegistered", []string{"$.email", "$.address.street"}, "$.customer_id")
	require.NoError(t, err)
	require.True(t, isNew)
	isNew, err = f.store.RegisterPersonalData(f.ctx, "CustomerMoved", []string{"$.address.street"}, "$.customer_id")
	require.NoError(t, err)
	require.True(t, isNew)
	s := stream("customer")
	_, err = f.store.Append(f.ctx, s, annals.NoStream,
		ev(t, "CustomerRegistered", map[string]any{"customer_id": "c-1", "email": "ann@example.com",
			"address": map[string]any{"street": "Main Street 1", "city": "Springfield"}}),
		ev(t, "Noted", map[string]any{"note": "no personal data"}),
		ev(t, "CustomerMoved", map[string]any{"customer_id": "c-1", "address": map[string]any{"street": "Elm Street 2"}}),
		ev(t, "CustomerRegistered", map[string]any{"customer_id": "c-2", "email": "bob@example.com"}))
	require.NoError(t, err)
	return s
}

func dataOf(t *testing.T, e annals.RecordedEvent) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(e.Data, &m))
	return m
}

func metaOf(t *testing.T, e annals.RecordedEvent) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(e.Metadata, &m))
	return m
}

func TestPersonalDataRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := registerCustomer(t, f)
	// An upcaster on CustomerRegistered sees plaintext and its output reads as usual.
	_, err := f.pool.Exec(f.ctx, `CREATE FUNCTION public.cr_v2(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE
	    RETURN d || jsonb_build_object('email_domain', split_part(d->>'email', '@', 2))`)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "GRANT EXECUTE ON FUNCTION public.cr_v2(jsonb) TO annals_owner")
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.register_upcaster('CustomerRegistered', 1, 'public.cr_v2(jsonb)')")
	require.NoError(t, err)

	// Stored: ciphertext at the paths, the marker in metadata; the subject id in clear.
	var stored, storedMeta string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT data::text, metadata::text FROM annals_internal.events
	    WHERE stream_id = $1 AND stream_version = 1`, s).Scan(&stored, &storedMeta))
	require.NotContains(t, stored, "ann@example.com")
	require.NotContains(t, stored, "Main Street")
	require.Contains(t, stored, "Springfield")
	require.Contains(t, stored, `"customer_id": "c-1"`)
	require.Contains(t, storedMeta, "$pii")
	var plain string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT data::text FROM annals_internal.events
	    WHERE stream_id = $1 AND stream_version = 2`, s).Scan(&plain))
	require.JSONEq(t, `{"note": "no personal data"}`, plain, "other event types are stored as sent")

	check := func(t *testing.T, es []annals.RecordedEvent, erased bool) {
		t.Helper()
		require.Len(t, es, 4)
		d1, d3, d4 := dataOf(t, es[0]), dataOf(t, es[2]), dataOf(t, es[3])
		if erased {
			require.Nil(t, d1["email"])
			require.Contains(t, d1, "email", "an erased field is JSON null, not missing")
			require.Nil(t, d1["address"].(map[string]any)["street"])
			require.Nil(t, d3["address"].(map[string]any)["street"])
			require.ElementsMatch(t, []any{"$.email", "$.address.street"}, metaOf(t, es[0])["$erased"])
			require.Equal(t, []any{"$.address.street"}, metaOf(t, es[2])["$erased"])
		} else {
			require.Equal(t, "ann@example.com", d1["email"])
			require.Equal(t, "Main Street 1", d1["address"].(map[string]any)["street"])
			require.Equal(t, "Elm Street 2", d3["address"].(map[string]any)["street"])
			require.Empty(t, metaOf(t, es[0]), "the marker never reaches a reader")
			require.Empty(t, metaOf(t, es[2]))
		}
		require.Equal(t, "Springfield", d1["address"].(map[string]any)["city"])
		require.Equal(t, "c-1", d1["customer_id"])
		require.Equal(t, "bob@example.com", d4["email"], "another subject is untouched")
		require.Empty(t, metaOf(t, es[3]))
		require.Equal(t, map[string]any{"note": "no personal data"}, dataOf(t, es[1]))
	}
	onlyStream := func(es []annals.RecordedEvent) []annals.RecordedEvent {
		var out []annals.RecordedEvent
		for _, e := range es {
			if e.StreamID == s {
				out = append(out, e)
			}
		}
		return out
	}
	paths := func(t *testing.T, erased bool) {
		t.Run("stream", func(t *testing.T) { check(t, f.readAll(t, s), erased) })
		t.Run("raw", func(t *testing.T) {
			es := collect(t, f.store.ReadStream(f.ctx, s, annals.ReadOptions{Raw: true}))
			check(t, es, erased)
			require.NotContains(t, dataOf(t, es[0]), "email_domain", "raw is not upcast")
		})
		t.Run("upcast", func(t *testing.T) {
			es := f.readAll(t, s)
			domain := dataOf(t, es[0])["email_domain"]
			if erased {
				require.Nil(t, domain, "the upcaster sees the erased null")
			} else {
				require.Equal(t, "example.com", domain, "the upcaster sees plaintext")
			}
		})
		t.Run("as of", func(t *testing.T) {
			check(t, collect(t, f.store.ReadStreamAsOf(f.ctx, s, annals.AtVersion(4))), erased)
		})
		// The feed is cluster-wide gap-free: other tests' open transactions may hold it back a moment.
		t.Run("feed", func(t *testing.T) {
			var es []annals.RecordedEvent
			require.Eventually(t, func() bool {
				all, err := f.store.ReadAll(f.ctx, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 1000})
				require.NoError(t, err)
				es = onlyStream(all)
				return len(es) >= 4
			}, time.Minute, 10*time.Millisecond)
			check(t, es[:4], erased)
		})
		t.Run("category", func(t *testing.T) {
			var es []annals.RecordedEvent
			require.Eventually(t, func() bool {
				all, err := f.store.ReadCategory(f.ctx, "customer", annals.Checkpoint{}, annals.FeedOptions{MaxCount: 1000})
				require.NoError(t, err)
				es = onlyStream(all)
				return len(es) >= 4
			}, time.Minute, 10*time.Millisecond)
			check(t, es[:4], erased)
		})
		t.Run("event", func(t *testing.T) {
			es := f.readAll(t, s)
			e, err := f.store.ReadEvent(f.ctx, es[0].EventID, annals.ReadEventOptions{})
			require.NoError(t, err)
			require.Equal(t, es[0].Data, e.Data)
			require.Equal(t, es[0].Metadata, e.Metadata)
		})
	}
	t.Run("before forget", func(t *testing.T) { paths(t, false) })

	// Resending the same events (an idempotent retry) compares decrypted data: a replay.
	first := f.readAll(t, s)[0]
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.append_events($1, 0, jsonb_build_array(jsonb_build_object(
	    'id', $2::text, 'type', 'CustomerRegistered', 'data', $3::jsonb)))`, s, first.EventID.String(),
		`{"customer_id": "c-1", "email": "ann@example.com", "address": {"street": "Main Street 1", "city": "Springfield"}}`)
	require.NoError(t, err, "a retried append of encrypted events is a replay")

	// An event of a registered type needs its subject.
	_, err = f.store.Append(f.ctx, s, annals.Any, ev(t, "CustomerRegistered", map[string]any{"email": "x@example.com"}))
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.append_event($1, NULL, 'CustomerRegistered', '{"customer_id": 7, "email": "x"}')`, s)
	requirePgError(t, err, "ST422")

	n, err := f.store.ForgetSubject(f.ctx, "c-1")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	t.Run("after forget", func(t *testing.T) { paths(t, true) })
	n, err = f.store.ForgetSubject(f.ctx, "c-1")
	require.NoError(t, err)
	require.Zero(t, n, "forgetting again destroys nothing more")
	n, err = f.store.ForgetSubject(f.ctx, "nobody-ever")
	require.NoError(t, err)
	require.Zero(t, n, "an unknown subject: nothing to destroy, not an error")
	var forgets int64
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals_internal.lifecycle_log WHERE operation = 'forget'").Scan(&forgets))
	require.EqualValues(t, 3, forgets, "every forget is logged")

	// The subject comes back: new events get a new key and read in clear.
	_, err = f.store.Append(f.ctx, s, annals.Any, ev(t, "CustomerMoved", map[string]any{"customer_id": "c-1", "address": map[string]any{"street": "New Road 3"}}))
	require.NoError(t, err)
	es := f.readAll(t, s)
	require.Equal(t, "New Road 3", dataOf(t, es[len(es)-1])["address"].(map[string]any)["street"])
	require.Nil(t, dataOf(t, es[0])["email"], "the old events stay erased")
}

// A writer cannot make reads decrypt what it chose: a "$pii" marker it sends is replaced on a
// registered type and ignored on any other.
func TestPersonalDataMarkerCannotBeForged(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := registerCustomer(t, f)
	forged := map[string]any{"$pii": map[string]any{"key": 1, "paths": []string{"$.email"}}}
	_, err := f.store.Append(f.ctx, s, annals.Any,
		annals.EventData{Type: "Noted", Data: map[string]any{"email": "plain"}, Metadata: forged},
		annals.EventData{Type: "CustomerRegistered", Data: map[string]any{"customer_id": "c-9"}, Metadata: forged})
	require.NoError(t, err)
	es := f.readAll(t, s)
	require.Equal(t, "plain", dataOf(t, es[4])["email"])
	require.Contains(t, metaOf(t, es[4]), "$pii", "an unregistered type's metadata is the writer's own")
	require.Empty(t, metaOf(t, es[5]), "no personal field present: no marker, the forged one dropped")
}

func TestPersonalDataKeysInvisible(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := registerCustomer(t, f)
	for _, grant := range []string{"annals_writer", "annals_reader", "annals_bi"} {
		role := loginRole(t, f, grant)
		pool, client := f.as(t, role)
		for _, q := range []string{
			"SELECT * FROM annals_internal.subject_keys",
			"SELECT * FROM annals_internal.personal_data",
			"SELECT annals_internal.pii_new_key()",
			"SELECT annals_internal.pii_decrypt('x', '\\x00')",
			"SELECT annals_internal.subject_key('c-1')",
			"SELECT annals_crypto.gen_random_bytes(1)",
		} {
			_, err := pool.Exec(f.ctx, q)
			requirePgError(t, err, "42501")
		}
		if grant != "annals_bi" {
			es := collect(t, client.ReadStream(f.ctx, s, annals.ReadOptions{}))
			require.Equal(t, "ann@example.com", dataOf(t, es[0])["email"], "%s reads decrypted data", grant)
		}
	}
}

func TestErasureHandler(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := registerCustomer(t, f)
	// A read model that copied personal data, and its handler.
	for _, q := range []string{
		"CREATE TABLE public.customer_emails (customer_id text PRIMARY KEY, email text)",
		"INSERT INTO public.customer_emails VALUES ('c-1', 'ann@example.com'), ('c-2', 'bob@example.com')",
		`CREATE FUNCTION public.erase_customer(subject_id text) RETURNS void LANGUAGE sql
		    BEGIN ATOMIC DELETE FROM public.customer_emails WHERE customer_id = subject_id; END`,
		"GRANT EXECUTE ON FUNCTION public.erase_customer(text) TO annals_owner",
		"GRANT DELETE, SELECT ON public.customer_emails TO annals_owner",
	} {
		_, err := f.pool.Exec(f.ctx, q)
		require.NoError(t, err, q)
	}
	isNew, err := f.store.RegisterErasureHandler(f.ctx, "public.erase_customer(text)")
	require.NoError(t, err)
	require.True(t, isNew)
	isNew, err = f.store.RegisterErasureHandler(f.ctx, "public.erase_customer(text)")
	require.NoError(t, err)
	require.False(t, isNew)
	_, err = f.pool.Exec(f.ctx, "DROP FUNCTION public.erase_customer(text)")
	require.Error(t, err, "a registered handler is pinned")

	_, err = f.store.ForgetSubject(f.ctx, "c-1")
	require.NoError(t, err)
	var left []string
	rows, err := f.pool.Query(f.ctx, "SELECT customer_id FROM public.customer_emails ORDER BY 1")
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	require.Equal(t, []string{"c-2"}, left, "the handler erased the subject's copy")

	// The other way: a projection rebuilt from the events after a forget copies nulls.
	var rebuilt []string
	rows, err = f.pool.Query(f.ctx, `SELECT coalesce(e.data->>'email', 'null') FROM annals.read_stream($1) AS e
	    WHERE e.event_type = 'CustomerRegistered' ORDER BY e.stream_version`, s)
	require.NoError(t, err)
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		rebuilt = append(rebuilt, v)
	}
	require.Equal(t, []string{"null", "bob@example.com"}, rebuilt)

	// A failing handler fails the forget: the key stays, nothing half-done.
	_, err = f.pool.Exec(f.ctx, "REVOKE DELETE ON public.customer_emails FROM annals_owner")
	require.NoError(t, err)
	_, err = f.store.ForgetSubject(f.ctx, "c-2")
	require.Error(t, err)
	es := f.readAll(t, s)
	require.Equal(t, "bob@example.com", dataOf(t, es[3])["email"])
}

// An async projection keeps running across removals (the gaps they leave in the feed), and its
// handler receives personal data decrypted, like every reader.
func TestAsyncProjectionAcrossRemovals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	registerCustomer(t, f)
	for _, q := range []string{
		"CREATE SCHEMA ap",
		"CREATE TABLE ap.seen (stream_id text, version bigint, email text)",
		`CREATE FUNCTION ap.h(events annals.event[]) RETURNS void LANGUAGE sql
		    BEGIN ATOMIC INSERT INTO ap.seen SELECT e.stream_id, e.stream_version, e.data->>'email' FROM unnest(events) AS e; END`,
		"GRANT USAGE ON SCHEMA ap TO annals_owner",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ap TO annals_owner",
		"SELECT annals.register_projection('ap', 'ap.h(annals.event[])', ARRAY['ap.seen']::regclass[], event_types => ARRAY['CustomerRegistered', 'Tick'], mode => 'async')",
	} {
		_, err := f.pool.Exec(f.ctx, q)
		require.NoError(t, err, q)
	}
	gone, kept := stream("apgone"), stream("apkept")
	_, err := f.store.Append(f.ctx, gone, annals.NoStream, events(t, "Tick", 3)...)
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, kept, annals.NoStream, events(t, "Tick", 3)...)
	require.NoError(t, err)
	run := func(t *testing.T, want int64) {
		t.Helper()
		require.Eventually(t, func() bool {
			_, err := f.pool.Exec(f.ctx, "SELECT annals.run_async_projections()")
			require.NoError(t, err)
			var n int64
			require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM ap.seen").Scan(&n))
			return n >= want
		}, time.Minute, 20*time.Millisecond)
	}
	run(t, 2+6) // the two CustomerRegistered events of registerCustomer and the ticks
	var email string
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT email FROM ap.seen WHERE email LIKE 'ann%'").Scan(&email))
	require.Equal(t, "ann@example.com", email, "the handler gets plaintext")

	_, err = f.store.PurgeStream(f.ctx, gone, annals.Any, "")
	require.NoError(t, err)
	_, err = f.store.SetRetention(f.ctx, annals.RetentionRule{StreamID: kept, MaxCount: 1})
	require.NoError(t, err)
	_, err = f.store.ApplyRetention(f.ctx, 0)
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, kept, annals.Any, events(t, "Tick", 2)...)
	require.NoError(t, err)
	run(t, 10)
	var state string
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT state FROM annals.projections WHERE projection_name = 'ap'").Scan(&state))
	require.Equal(t, "active", state)
}

// Purge and retention reach events in cold storage too: whole cold segments go, one reaching
// past the retention limit stays whole until it can go entirely.
func TestLifecycleWithColdEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	p, r := stream("coldpurge"), stream("coldret")
	for _, s := range []string{p, r} {
		_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Tick", 5)...)
		require.NoError(t, err)
		_, err = f.pool.Exec(f.ctx, "SELECT annals.archive_stream($1)", s)
		require.NoError(t, err)
		_, err = f.store.Append(f.ctx, s, annals.Exact(5), events(t, "Tick", 2)...)
		require.NoError(t, err)
	}
	n, err := f.store.PurgeStream(f.ctx, p, annals.Exact(7), "")
	require.NoError(t, err)
	require.EqualValues(t, 7, n, "hot and cold events")
	var cold int64
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals_internal.cold_segments WHERE stream_id = $1", p).Scan(&cold))
	require.Zero(t, cold)
	require.Empty(t, f.readAll(t, p))

	_, err = f.store.SetRetention(f.ctx, annals.RetentionRule{StreamID: r, MaxCount: 3})
	require.NoError(t, err)
	n, err = f.store.ApplyRetention(f.ctx, 0)
	require.NoError(t, err)
	require.Zero(t, n, "the cold segment 1..5 reaches past version 4: it stays whole")
	require.Equal(t, seq(1, 7), f.versions(t, r))
	_, err = f.store.SetRetention(f.ctx, annals.RetentionRule{StreamID: r, MaxCount: 1})
	require.NoError(t, err)
	n, err = f.store.ApplyRetention(f.ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
	require.Equal(t, []int64{7}, f.versions(t, r))

	// Any other delete of a cold segment is still refused.
	c := stream("coldkept")
	_, err = f.store.Append(f.ctx, c, annals.NoStream, events(t, "Tick", 2)...)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.archive_stream($1)", c)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "DELETE FROM annals_internal.cold_segments WHERE stream_id = $1", c)
	requirePgError(t, err, "ST405")
}

// A cold storage move that commits while apply_retention runs: retention waits for it, then
// counts what is left (a segment reaching past the limit stays whole), instead of failing on a
// count the move made stale.
func TestRetentionBesideAMove(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("rmmove")
	_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Reading", 4)...)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.set_retention(stream_id => $1, max_count => 2)", s)
	require.NoError(t, err)

	// The move, left open: the feed barrier is cluster-wide, so retry until the events pass it.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(f.ctx) }()
	require.Eventually(t, func() bool {
		var moved int64
		require.NoError(t, tx.QueryRow(f.ctx, "SELECT annals.compress_events('0 seconds', 1000)").Scan(&moved))
		return moved > 0
	}, time.Minute, 20*time.Millisecond)

	type result struct {
		removed int64
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = f.pool.QueryRow(f.ctx, "SELECT annals.apply_retention()").Scan(&r.removed)
		done <- r
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*)::int FROM pg_catalog.pg_stat_activity AS a
			WHERE a.datname = pg_catalog.current_database() AND a.wait_event_type = 'Lock'
			  AND a.query LIKE '%apply_retention%'`).Scan(&waiting))
		return waiting == 1
	}, time.Minute, 10*time.Millisecond, "apply_retention never waited for the move")
	require.NoError(t, tx.Commit(f.ctx))

	r := <-done
	require.NoError(t, r.err)
	require.Zero(t, r.removed, "the one segment reaches past the limit: it stays whole")
	require.Equal(t, seq(1, 4), f.versions(t, s))
}
