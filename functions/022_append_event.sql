-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The one-element events array append_event's arguments stand for (its slow path only): a SQL
-- NULL is an absent key, as a client would write the batch, so that the batch's size (checked
-- against max_batch_bytes) is that batch's.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.event_batch(
    event_type text, data jsonb, metadata jsonb, event_id uuid, schema_version integer)
RETURNS jsonb
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN jsonb_build_array(
    jsonb_strip_nulls(jsonb_build_object('type', event_type, 'id', event_id, 'schema_version', schema_version))
    || CASE WHEN data IS NULL THEN '{}' ELSE jsonb_build_object('data', data) END
    || CASE WHEN metadata IS NULL THEN '{}' ELSE jsonb_build_object('metadata', metadata) END);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_batch(text, jsonb, jsonb, uuid, integer) IS
    'The one-event batch (a JSON array for append_events) that append_event''s scalar arguments stand for.';
REVOKE ALL ON FUNCTION annals_internal.event_batch(text, jsonb, jsonb, uuid, integer) FROM PUBLIC;

-- One event, scalar arguments: the commonest append without a JSON array to build on the client
-- or take apart here. Its fast path handles only the case that succeeds: every argument valid
-- and well inside the limits, the expected version right, the id new. Everything else (an
-- invalid argument, a size near a limit, a deleted stream, a wrong expected version, a stored
-- id, an older transaction) is handed, as the one-element batch it stands for, to
-- annals.append_events, which then raises or replays exactly as it does for that batch: the same
-- checks in the same order, the same SQLSTATEs and DETAILs, argument names included
-- (events[0].type, events[0].data, ...). The array is only built on that slow path.
-- Statement budget for a success: the advisory lock (an expression), one read of the settings
-- and stream rows, one statement that inserts the event and moves the stream row.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.append_event(
    stream_id        text,
    expected_version bigint,
    event_type       text,
    data             jsonb,
    metadata         jsonb   DEFAULT NULL,
    event_id         uuid    DEFAULT NULL,
    schema_version   integer DEFAULT NULL)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_max_event_bytes integer;
    v_max_bytes       integer;
    v_current    bigint;
    v_last_xid   xid8;
    v_state      text;
    v_updated_at timestamptz;
    v_xid        xid8;
    v_now        timestamptz;
    v_position   bigint;
    v_personal   boolean;
BEGIN
    -- The checks of append_events' event_fault, on scalars (inlined: plain expressions, no
    -- query). A uuid argument is always a valid id; schema_version follows the JSON rule
    -- (1..999999999). Anything wrong goes to the slow path, which names it.
    IF annals_internal.is_valid_stream_id(append_event.stream_id)
       AND left(append_event.stream_id, 1) <> '$'
       AND (append_event.expected_version IS NULL OR append_event.expected_version >= -1)
       AND annals_internal.is_valid_name(append_event.event_type, 256)
       AND left(append_event.event_type, 1) <> '$'
       AND coalesce(jsonb_typeof(append_event.data), 'null') IN ('object', 'null')
       AND coalesce(jsonb_typeof(append_event.metadata), 'null') IN ('object', 'null')
       AND coalesce(append_event.schema_version BETWEEN 1 AND 999999999, true)
       -- M15: a tenant's append (and a reserved "$tenant" key) takes the slow path, append_events.
       AND annals_internal.session_tenant() IS NULL
       AND NOT coalesce(append_event.metadata ? '$tenant', false) THEN
        -- Serialize appends to the stream (see append_events). When another appender holds
        -- the lock, lock_stream fails fast on an expected version that can no longer be right.
        IF NOT pg_try_advisory_xact_lock(hashtextextended(append_event.stream_id, 0)) THEN
            v_current := annals_internal.lock_stream(append_event.stream_id, append_event.expected_version);
            IF v_current IS NOT NULL THEN
                -- Already wrong: a replay or a conflict, decided without waiting for the lock.
                RETURN QUERY SELECT * FROM annals_internal.append_replay(
                    append_event.stream_id, append_event.expected_version,
                    annals_internal.event_batch(append_event.event_type, append_event.data,
                        append_event.metadata, append_event.event_id, append_event.schema_version),
                    v_current);
                RETURN;
            END IF;
        END IF;
        SELECT t.max_event_bytes, t.max_batch_bytes, s.stream_version, s.last_transaction_id, s.state, s.updated_at,
               coalesce(append_event.event_type = ANY (t.personal_data_types), false)
          INTO v_max_event_bytes, v_max_bytes, v_current, v_last_xid, v_state, v_updated_at, v_personal
          FROM annals_internal.settings AS t
          LEFT JOIN annals_internal.streams AS s ON s.stream_id = append_event.stream_id
         WHERE t.singleton = true;
        v_current := coalesce(v_current, 0);
        -- The batch's size is bounded by its parts' (the keys, the type, the id, a number
        -- and the array's headers take well under 512 bytes more; a compressed part, say
        -- passed from a table's column, is measured on the slow path); only a batch that may
        -- be near max_batch_bytes is measured exactly, on the slow path.
        IF coalesce(octet_length(append_event.data::text), 0) <= v_max_event_bytes
           AND pg_column_compression(append_event.data) IS NULL
           AND pg_column_compression(append_event.metadata) IS NULL
           AND coalesce(pg_column_size(append_event.data), 0) + coalesce(pg_column_size(append_event.metadata), 0)
               + octet_length(append_event.event_type) + 512 <= v_max_bytes
           AND coalesce(v_state, 'active') = 'active'  -- deleted/purged: the slow path's ST410
           AND NOT v_personal  -- M13: personal data is encrypted by the slow path (append_events)
           AND (append_event.expected_version IS NULL
                OR append_event.expected_version = -1 AND v_current > 0
                OR append_event.expected_version = v_current) THEN
            v_xid := pg_current_xact_id();
        END IF;
        -- v_xid is set only when every check passed; an older transaction than the stream's
        -- last appender is append_events' 40001.
        IF v_xid IS NOT NULL AND (v_last_xid IS NULL OR v_last_xid <= v_xid) THEN
            v_now := greatest(clock_timestamp(), v_updated_at);
            WITH ins AS (
                INSERT INTO annals_internal.events AS e
                       (stream_id, stream_version, event_id, event_type, schema_version,
                        data, metadata, transaction_id, recorded_at)
                VALUES (append_event.stream_id, v_current + 1,
                        coalesce(append_event.event_id, gen_random_uuid()),
                        append_event.event_type,
                        coalesce(append_event.schema_version, 1),
                        coalesce(nullif(append_event.data, 'null'), '{}'),
                        coalesce(nullif(append_event.metadata, 'null'), '{}'),
                        v_xid, v_now)
                ON CONFLICT DO NOTHING
                RETURNING e.global_position
            ), upsert AS (
                INSERT INTO annals_internal.streams AS s
                       (stream_id, category, stream_version, last_transaction_id, created_at, updated_at)
                SELECT append_event.stream_id, split_part(append_event.stream_id, '-', 1), v_current + 1, v_xid, v_now, v_now
                  FROM ins
                ON CONFLICT ON CONSTRAINT streams_pkey DO UPDATE
                   SET stream_version = excluded.stream_version,
                       last_transaction_id = excluded.last_transaction_id,
                       updated_at = excluded.updated_at
            )
            SELECT ins.global_position INTO v_position FROM ins;
            IF v_position IS NOT NULL THEN
                RETURN QUERY SELECT v_current + 1, v_position, v_xid;
                RETURN;
            END IF;
            -- The id is stored already: nothing was written; the slow path decides.
        END IF;
    END IF;

    -- The slow path: the one-element batch, through append_events.
    RETURN QUERY SELECT * FROM annals.append_events(
        append_event.stream_id, append_event.expected_version,
        annals_internal.event_batch(append_event.event_type, append_event.data,
            append_event.metadata, append_event.event_id, append_event.schema_version));
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) IS
$$Appends one event to a stream: append_events with a one-event batch, scalar arguments.
expected_version: NULL any, -1 the stream must exist, 0 it must not, n it must be at exactly n.
data and metadata: JSON objects (NULL means {}); event_id NULL generates one; schema_version NULL means 1.
Re-sending the same event id at the same position returns the original result and writes nothing.
Returns the event's stream_version, global_position and transaction_id.
Errors as append_events (ST409, ST412, ST410, ST413, ST422, ST403, 40001); invalid arguments are
named as in the one-event batch: events[0].type, events[0].data, events[0].metadata, events[0].schema_version.$$;
REVOKE ALL ON FUNCTION annals.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) TO annals_writer;
