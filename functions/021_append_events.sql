-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The slow path of append_events' argument checks: works out which problem a batch has, in the
-- order clients see them (size limits, the first bad event, a repeated id), and raises it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.raise_batch_problem(
    events          jsonb,
    n_events        bigint,
    first_bad       bigint,
    has_duplicate   boolean,
    max_events      integer,
    max_bytes       integer,
    max_event_bytes integer)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem   jsonb;
    v_duplicate text;
BEGIN
    IF raise_batch_problem.first_bad IS NOT NULL THEN
        v_problem := annals_internal.event_problem(raise_batch_problem.events -> (raise_batch_problem.first_bad::integer - 1), raise_batch_problem.first_bad - 1, raise_batch_problem.max_event_bytes);
    END IF;

    IF raise_batch_problem.n_events > raise_batch_problem.max_events THEN
        IF annals_internal.raise_error('ST413',
            format('batch of %s events is over the limit of %s', raise_batch_problem.n_events, raise_batch_problem.max_events),
            jsonb_build_object('limit', raise_batch_problem.max_events, 'actual', raise_batch_problem.n_events, 'setting', 'max_batch_events'),
            'Split the batch, or raise the limit with annals.configure(max_batch_events => ...).') IS NULL THEN END IF;
    END IF;
    IF pg_column_size(raise_batch_problem.events) > raise_batch_problem.max_bytes THEN
        IF annals_internal.raise_error('ST413',
            format('batch of %s bytes is over the limit of %s', pg_column_size(raise_batch_problem.events), raise_batch_problem.max_bytes),
            jsonb_build_object('limit', raise_batch_problem.max_bytes, 'actual', pg_column_size(raise_batch_problem.events), 'setting', 'max_batch_bytes'),
            'Split the batch, or raise the limit with annals.configure(max_batch_bytes => ...).') IS NULL THEN END IF;
    END IF;
    IF v_problem IS NOT NULL THEN
        IF v_problem ->> 'code' = 'ST413' THEN
            IF annals_internal.raise_error('ST413',
                format('%s is %s bytes, over the limit of %s', v_problem ->> 'argument', v_problem ->> 'actual', v_problem ->> 'limit'),
                (v_problem - 'code') || '{"setting": "max_event_bytes"}',
                'Store large payloads elsewhere and reference them, or raise annals.configure(max_event_bytes => ...).') IS NULL THEN END IF;
        ELSIF v_problem ->> 'code' = 'ST403' THEN
            IF annals_internal.raise_error('ST403',
                format('%s is reserved: %s', v_problem ->> 'argument', v_problem ->> 'reason'),
                jsonb_build_object('argument', v_problem ->> 'argument')) IS NULL THEN END IF;
        ELSE
            IF annals_internal.raise_invalid(v_problem ->> 'argument', v_problem ->> 'reason') IS NULL THEN END IF;
        END IF;
    END IF;
    IF raise_batch_problem.has_duplicate THEN
        SELECT min(x.ev ->> 'id') INTO v_duplicate
          FROM jsonb_array_elements(raise_batch_problem.events) AS x(ev)
         WHERE x.ev ->> 'id' IS NOT NULL
         GROUP BY (x.ev ->> 'id')::uuid
        HAVING count(*) > 1
         LIMIT 1;
        IF annals_internal.raise_invalid('events', 'event id ' || v_duplicate || ' appears more than once in the batch') IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.raise_batch_problem(jsonb, bigint, bigint, boolean, integer, integer, integer) IS
    'append_events'' slow path: raises the first problem of an invalid batch (ST413, ST403, ST422).';
REVOKE ALL ON FUNCTION annals_internal.raise_batch_problem(jsonb, bigint, bigint, boolean, integer, integer, integer) FROM PUBLIC;

-- The hot path. Statement budget for a successful append: one validation SELECT over the batch,
-- the advisory lock, one read of the stream row, one statement that inserts the events and moves
-- the stream row. Everything else is the slow path.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.append_events(
    stream_id        text,
    expected_version bigint,
    events           jsonb)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_count           bigint;
    v_distinct        bigint;
    v_with_id         bigint;
    v_max_events      integer;
    v_max_bytes       integer;
    v_max_event_bytes integer;
    v_first_bad       bigint;
    v_current    bigint;
    v_last_xid   xid8;
    v_state      text;
    v_updated_at timestamptz;
    v_xid        xid8;
    v_now        timestamptz;
    v_inserted   bigint;
    v_position   bigint;
    v_tagged     boolean;  -- M15: some event has a "tags" key
    v_personal   text[];  -- M13: event types with personal data (NULL: none registered)
    v_tenant     text := annals_internal.session_tenant();  -- M15 tenancy: NULL when none
BEGIN
    -- Arguments. Nothing here reads a table except the one-row settings.
    -- A plain expression (is_valid_stream_id is inlined: one regex), so a valid id costs no
    -- query; check_stream_id only runs to raise the right error.
    IF NOT annals_internal.is_valid_stream_id(append_events.stream_id)
       OR left(append_events.stream_id, 1) = '$' THEN
        IF annals_internal.check_stream_id(append_events.stream_id) IS NULL THEN END IF;
    END IF;
    IF append_events.expected_version < -1 THEN
        IF annals_internal.raise_invalid('expected_version',
            'must be NULL (any), -1 (stream exists), 0 (no stream) or a version >= 1, got ' || append_events.expected_version) IS NULL THEN END IF;
    END IF;
    IF append_events.events IS NULL THEN
        IF annals_internal.raise_invalid('events', 'must not be null') IS NULL THEN END IF;
    ELSIF jsonb_typeof(append_events.events) <> 'array' THEN
        IF annals_internal.raise_invalid('events', 'must be a JSON array of event objects, got ' || jsonb_typeof(append_events.events)) IS NULL THEN END IF;
    END IF;
    -- M15: a tenant's stream is stored as tenant || U+001F || id (functions/003_tenancy.sql);
    -- every statement below uses the stored id. No tenant: one comparison.
    IF v_tenant IS NOT NULL THEN
        PERFORM annals_internal.check_tenant(v_tenant);
        IF v_tenant = '*' THEN
            v_tenant := NULL;
        ELSE
            append_events.stream_id := annals_internal.qualify(append_events.stream_id);
        END IF;
    END IF;

    -- One pass over the batch. Only the first invalid event's index is kept: the problem itself
    -- is worked out again below for that one event, so a valid batch never builds it.
    SELECT b.n, b.n_distinct, b.n_with_id, b.first_bad, b.tagged, s.max_batch_events, s.max_batch_bytes, s.max_event_bytes,
           s.personal_data_types
      INTO v_count, v_distinct, v_with_id, v_first_bad, v_tagged, v_max_events, v_max_bytes, v_max_event_bytes, v_personal
      FROM annals_internal.settings AS s
     CROSS JOIN LATERAL (
            SELECT count(*) AS n,
                   count(DISTINCT CASE WHEN x.ev ->> 'id' ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'
                                       THEN (x.ev ->> 'id')::uuid END) AS n_distinct,
                   count(x.ev ->> 'id') AS n_with_id,
                   min(x.ord) FILTER (WHERE annals_internal.event_fault(x.ev, s.max_event_bytes) IS NOT NULL) AS first_bad,
                   bool_or(x.ev ? 'tags') AS tagged
              FROM jsonb_array_elements(append_events.events) WITH ORDINALITY AS x(ev, ord)) AS b
     -- Equality on the primary key makes the planner count one settings row: left to guess,
     -- it assumes thousands, and the estimate crosses jit_above_cost (10 ms of JIT per append).
     WHERE s.singleton = true;
    -- The error ladder is the slow path's (raise_batch_problem above): a valid batch only pays
    -- these comparisons.
    IF v_first_bad IS NOT NULL OR v_count > v_max_events OR v_distinct < v_with_id
       OR pg_column_size(append_events.events) > v_max_bytes THEN
        IF annals_internal.raise_batch_problem(append_events.events, v_count, v_first_bad, v_distinct < v_with_id,
                                               v_max_events, v_max_bytes, v_max_event_bytes) IS NULL THEN END IF;
    END IF;

    -- Serialize appends to this stream before writing anything: the transaction id assigned
    -- below is then newer than every earlier appender's, so ids grow with versions. An empty
    -- batch writes nothing, so it takes no lock; it still checks state and expected version.
    -- The lock is tried first (an expression, no query); only when another appender holds it
    -- does lock_stream wait, after failing fast on an expected version that is already wrong.
    -- M15: tagged events also lock their tag keys (functions/023_tags.sql), all keys in one order.
    IF v_tagged THEN
        PERFORM annals_internal.lock_keys(hashtextextended(append_events.stream_id, 0)
                                          || annals_internal.event_tag_keys(append_events.events));
    ELSIF v_count > 0 AND NOT pg_try_advisory_xact_lock(hashtextextended(append_events.stream_id, 0)) THEN
        v_current := annals_internal.lock_stream(append_events.stream_id, append_events.expected_version);
        IF v_current IS NOT NULL THEN
            RETURN QUERY SELECT * FROM annals_internal.append_replay(
                append_events.stream_id, append_events.expected_version, append_events.events, v_current);
            RETURN;
        END IF;
    END IF;

    SELECT s.stream_version, s.last_transaction_id, s.state, s.updated_at
      INTO v_current, v_last_xid, v_state, v_updated_at
      FROM annals_internal.streams AS s
     WHERE s.stream_id = append_events.stream_id;
    v_current := coalesce(v_current, 0);

    IF v_state <> 'active' THEN  -- deleted or purged (M13: a purged stream is a tombstone)
        IF annals_internal.raise_error('ST410', format('stream %L is %s', append_events.stream_id, v_state),
            jsonb_build_object('stream_id', append_events.stream_id),
            CASE v_state WHEN 'deleted' THEN 'A deleted stream accepts no more events; its history stays readable.'
                 ELSE 'A purged stream accepts no more events and its id is never reused; use a new stream id.' END) IS NULL THEN END IF;
    END IF;
    IF append_events.expected_version = -1 AND v_current = 0
       OR append_events.expected_version >= 0 AND append_events.expected_version <> v_current THEN
        -- A replay returns the original result; anything else (an empty batch too) raises.
        RETURN QUERY SELECT * FROM annals_internal.append_replay(
            append_events.stream_id, append_events.expected_version, append_events.events, v_current);
        RETURN;
    END IF;
    IF v_count = 0 THEN
        RETURN QUERY
            SELECT v_current, e.global_position, v_last_xid
              FROM (SELECT 1) AS one
              LEFT JOIN annals_internal.events AS e
                     ON e.stream_id = append_events.stream_id AND e.stream_version = v_current;
        RETURN;
    END IF;

    v_xid := pg_current_xact_id();
    IF v_last_xid > v_xid THEN
        IF v_last_xid >= pg_snapshot_xmax(pg_current_snapshot()) THEN
            PERFORM annals_internal.check_restored_ids();  -- a logical restore: name the remedy
        END IF;
        -- raise_error shows the stream id as the caller's tenant wrote it.
        IF annals_internal.raise_error('40001',
            format('stream %L was appended to by a younger transaction (%s) than this one (%s)',
                   append_events.stream_id, v_last_xid, v_xid),
            jsonb_build_object('stream_id', append_events.stream_id,
                               'transaction_id', v_xid, 'last_transaction_id', v_last_xid),
            'Retry the whole transaction; append before other writes to keep it from recurring.') IS NULL THEN END IF;
    END IF;
    -- Monotonic within the stream even if the clock steps back, so as-of-time reads see a prefix.
    v_now := greatest(clock_timestamp(), v_updated_at);

    WITH ins AS (
        INSERT INTO annals_internal.events AS e
               (stream_id, stream_version, event_id, event_type, schema_version,
                data, metadata, transaction_id, recorded_at, tags)
        SELECT append_events.stream_id,
               v_current + x.ord,
               coalesce((x.ev ->> 'id')::uuid, gen_random_uuid()),
               x.ev ->> 'type',
               coalesce((x.ev ->> 'schema_version')::integer, 1),
               coalesce(nullif(p.ev -> 'data', 'null'), '{}'),
               CASE WHEN v_tenant IS NULL THEN coalesce(nullif(p.ev -> 'metadata', 'null'), '{}')  -- M15: the event's tenant
                    ELSE coalesce(nullif(p.ev -> 'metadata', 'null'), '{}') || jsonb_build_object('$tenant', v_tenant) END,
               v_xid,
               v_now,
               CASE WHEN v_tagged THEN annals_internal.tags_of(x.ev) END  -- M15
          FROM jsonb_array_elements(append_events.events) WITH ORDINALITY AS x(ev, ord)
          -- M13: personal data encrypted (430_personal_data.sql); other types pass through as they are.
         CROSS JOIN LATERAL (SELECT CASE WHEN x.ev ->> 'type' = ANY (v_personal)
                                         THEN annals_internal.protect_event(x.ev) ELSE x.ev END AS ev) AS p
         ORDER BY x.ord
        ON CONFLICT DO NOTHING
        RETURNING e.stream_version, e.global_position
    ), res AS (
        SELECT count(*) AS n, max(ins.stream_version) AS v, max(ins.global_position) AS g FROM ins
    ), upsert AS (
        INSERT INTO annals_internal.streams AS s
               (stream_id, category, stream_version, last_transaction_id, created_at, updated_at)
        SELECT append_events.stream_id, split_part(append_events.stream_id, '-', 1), res.v, v_xid, v_now, v_now
          FROM res
         WHERE res.n = v_count
        ON CONFLICT ON CONSTRAINT streams_pkey DO UPDATE
           SET stream_version = excluded.stream_version,
               last_transaction_id = excluded.last_transaction_id,
               updated_at = excluded.updated_at
    )
    SELECT res.n, res.g INTO v_inserted, v_position FROM res;

    IF v_inserted < v_count THEN
        -- Some id is already stored. append_replay returns only when every id of the batch is
        -- stored, and then every row conflicted and nothing was inserted; otherwise it raises,
        -- and the raise undoes the rows this statement did insert.
        RETURN QUERY SELECT * FROM annals_internal.append_replay(
            append_events.stream_id, append_events.expected_version, append_events.events, v_current);
        RETURN;
    END IF;

    RETURN QUERY SELECT v_current + v_count, v_position, v_xid;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.append_events(text, bigint, jsonb) IS
$$Appends a JSON array of events ({"type", "data", "metadata"?, "id"?, "schema_version"?}) to a stream, atomically.
expected_version: NULL any, -1 the stream must exist, 0 it must not, n it must be at exactly n.
Re-sending the same event ids at the same positions returns the original result and writes nothing.
Returns the last event's stream_version, global_position and transaction_id.
Errors: ST409 wrong expected version, ST412 event id reused, ST410 stream deleted or purged, ST413 over a limit,
ST422 invalid argument, ST403 reserved name, 40001 transaction older than the stream's last appender.$$;
REVOKE ALL ON FUNCTION annals.append_events(text, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.append_events(text, bigint, jsonb) TO annals_writer;
