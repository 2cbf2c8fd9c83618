-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- M15: several streams in one atomic append, optionally under a tag condition.
--
-- The body of annals.append_multi and annals.append_conditional. In order:
--  1. Check every argument, naming the failing append (appends[i]...) and its stream in DETAIL,
--     before any lock is taken.
--  2. Take every lock the append needs (each stream's, the tags' of its events, the condition's)
--     in ascending key order (annals_internal.lock_keys): overlapping appends never deadlock.
--  3. Check the condition, if any, under those locks.
--  4. Append to each stream with annals.append_events, in the order given. Its own lock is already
--     held, so it never waits; and the transaction id is assigned only now, after every lock:
--     every earlier appender of these streams has committed and had an older id, so the
--     "younger transaction" 40001 of two append_events calls in one statement cannot happen
--     (unless the caller's transaction already had an id from earlier writes).
-- Replays are append_events': re-sending a committed multi-append returns its original results.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.append_many(appends jsonb, condition jsonb, conditional boolean)
RETURNS TABLE (stream_id text, stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
-- Plan each statement once per session: a custom plan of the condition check (8 partitions, a
-- GIN scan each) costs far more to plan (ms) than to run, and PL/pgSQL kept re-planning it.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_el        jsonb;
    v_i         integer := 0;
    v_arg       text;
    v_stream    text;
    v_keys      bigint[] := '{}'::bigint[];
    v_cond_keys bigint[];
    v_ev_keys   bigint[] := '{}'::bigint[];
    v_problem   jsonb;
    v_bad       bigint;
    v_settings  annals_internal.settings%ROWTYPE;
    v_after_tx  xid8 := '0'::xid8;
    v_after_pos bigint := 0;
    v_hit       record;
    v_streams   text[] := '{}'::text[];
    v_tagged    boolean;
    v_res       record;
BEGIN
    IF append_many.appends IS NULL OR jsonb_typeof(append_many.appends) = 'null' THEN
        IF annals_internal.raise_invalid('appends', 'must not be null') IS NULL THEN END IF;
    END IF;
    IF jsonb_typeof(append_many.appends) <> 'array' THEN
        IF annals_internal.raise_invalid('appends',
            'must be a JSON array of {"stream_id", "expected_version", "events"} objects, got ' || jsonb_typeof(append_many.appends)) IS NULL THEN END IF;
    END IF;
    IF jsonb_array_length(append_many.appends) = 0 THEN
        IF annals_internal.raise_invalid('appends', 'must hold at least one append') IS NULL THEN END IF;
    END IF;
    SELECT * INTO v_settings FROM annals_internal.settings AS s WHERE s.singleton = true;
    IF jsonb_array_length(append_many.appends) > v_settings.max_batch_events THEN
        IF annals_internal.raise_error('ST413',
            format('%s appends are over the limit of %s', jsonb_array_length(append_many.appends), v_settings.max_batch_events),
            jsonb_build_object('limit', v_settings.max_batch_events, 'actual', jsonb_array_length(append_many.appends), 'setting', 'max_batch_events'),
            'Split the multi-append, or raise the limit with annals.configure(max_batch_events => ...).') IS NULL THEN END IF;
    END IF;

    FOR v_el IN SELECT a FROM jsonb_array_elements(append_many.appends) AS a LOOP
        v_arg := format('appends[%s]', v_i);
        IF jsonb_typeof(v_el) <> 'object' THEN
            IF annals_internal.raise_invalid(v_arg, 'must be a JSON object {"stream_id", "expected_version", "events"}') IS NULL THEN END IF;
        END IF;
        IF (v_el - '{stream_id,expected_version,events}'::text[]) <> '{}'::jsonb THEN
            IF annals_internal.raise_invalid(v_arg,
                'unknown key(s) ' || (SELECT string_agg(quote_ident(k), ', ' ORDER BY k)
                                        FROM jsonb_object_keys(v_el - '{stream_id,expected_version,events}'::text[]) AS k)
                || '; allowed: stream_id, expected_version, events') IS NULL THEN END IF;
        END IF;
        IF jsonb_typeof(v_el -> 'stream_id') IS DISTINCT FROM 'string' THEN
            IF annals_internal.raise_invalid(v_arg || '.stream_id', 'must be a string') IS NULL THEN END IF;
        END IF;
        v_stream := v_el ->> 'stream_id';
        IF annals_internal.stream_id_problem(v_stream) IS NOT NULL THEN
            IF annals_internal.raise_invalid(v_arg || '.stream_id', annals_internal.stream_id_problem(v_stream)) IS NULL THEN END IF;
        END IF;
        IF left(v_stream, 1) = '$' THEN
            IF annals_internal.raise_error('ST403', format('%s.stream_id is reserved: stream ids starting with $ are reserved', v_arg),
                jsonb_build_object('argument', v_arg || '.stream_id', 'stream_id', v_stream)) IS NULL THEN END IF;
        END IF;
        IF jsonb_typeof(v_el -> 'expected_version') NOT IN ('number', 'null')
           OR NOT (v_el ->> 'expected_version') ~ '^(-1|0|[1-9][0-9]{0,17})$' THEN
            IF annals_internal.raise_invalid(v_arg || '.expected_version',
                'must be null (any), -1 (stream exists), 0 (no stream) or a version >= 1') IS NULL THEN END IF;
        END IF;
        IF jsonb_typeof(v_el -> 'events') IS DISTINCT FROM 'array' THEN
            IF annals_internal.raise_invalid(v_arg || '.events', 'must be a JSON array of event objects') IS NULL THEN END IF;
        END IF;
        IF v_stream = ANY (v_streams) THEN
            IF annals_internal.raise_invalid(v_arg || '.stream_id',
                format('stream %L appears more than once; put all its events in one append', v_stream)) IS NULL THEN END IF;
        END IF;
        v_streams := v_streams || v_stream;
        -- The events' own checks, with append_events' words, prefixed with this append's name.
        SELECT min(x.ord) FILTER (WHERE annals_internal.event_fault(x.ev, v_settings.max_event_bytes) IS NOT NULL),
               coalesce(bool_or(x.ev ? 'tags'), false)
          INTO v_bad, v_tagged
          FROM jsonb_array_elements(v_el -> 'events') WITH ORDINALITY AS x(ev, ord);
        IF v_bad IS NOT NULL THEN
            v_problem := annals_internal.event_problem((v_el -> 'events') -> (v_bad::integer - 1), v_bad - 1, v_settings.max_event_bytes);
            IF annals_internal.raise_error(v_problem ->> 'code',
                format('invalid argument %s.%s in the append to stream %L: %s', v_arg, v_problem ->> 'argument', v_stream,
                       coalesce(v_problem ->> 'reason', format('over the limit of %s bytes', v_problem ->> 'limit'))),
                (v_problem - 'code') || jsonb_build_object('argument', v_arg || '.' || (v_problem ->> 'argument'), 'stream_id', v_stream)) IS NULL THEN END IF;
        END IF;
        IF jsonb_array_length(v_el -> 'events') > v_settings.max_batch_events
           OR pg_column_size(v_el -> 'events') > v_settings.max_batch_bytes THEN
            IF annals_internal.raise_error('ST413',
                format('the events for stream %L are over the batch limits (%s events, %s bytes)', v_stream,
                       v_settings.max_batch_events, v_settings.max_batch_bytes),
                jsonb_build_object('stream_id', v_stream, 'argument', v_arg || '.events',
                                   'limit', CASE WHEN jsonb_array_length(v_el -> 'events') > v_settings.max_batch_events
                                                 THEN v_settings.max_batch_events ELSE v_settings.max_batch_bytes END,
                                   'actual', CASE WHEN jsonb_array_length(v_el -> 'events') > v_settings.max_batch_events
                                                  THEN jsonb_array_length(v_el -> 'events') ELSE pg_column_size(v_el -> 'events') END,
                                   'setting', CASE WHEN jsonb_array_length(v_el -> 'events') > v_settings.max_batch_events
                                                   THEN 'max_batch_events' ELSE 'max_batch_bytes' END),
                'Split the batch, or raise the limit with annals.configure.') IS NULL THEN END IF;
        END IF;
        v_keys := v_keys || hashtextextended(annals_internal.qualify(v_stream), 0);  -- M15: append_events' lock key
        IF v_tagged THEN
            v_ev_keys := v_ev_keys || annals_internal.event_tag_keys(v_el -> 'events');
        END IF;
        v_i := v_i + 1;
    END LOOP;

    IF append_many.conditional THEN
        IF append_many.condition IS NULL OR jsonb_typeof(append_many.condition) <> 'object' THEN
            IF annals_internal.raise_invalid('condition', 'must be a JSON object {"query", "after"?}') IS NULL THEN END IF;
        END IF;
        IF (append_many.condition - '{query,after}'::text[]) <> '{}'::jsonb THEN
            IF annals_internal.raise_invalid('condition',
                'unknown key(s) ' || (SELECT string_agg(quote_ident(k), ', ' ORDER BY k)
                                        FROM jsonb_object_keys(append_many.condition - '{query,after}'::text[]) AS k)
                || '; allowed: query, after') IS NULL THEN END IF;
        END IF;
        PERFORM annals_internal.check_tag_query(append_many.condition -> 'query', 'condition.query');
        IF jsonb_typeof(append_many.condition -> 'after') = 'object' THEN
            IF ((append_many.condition -> 'after') - '{transaction_id,position}'::text[]) <> '{}'::jsonb
               OR jsonb_typeof(append_many.condition -> 'after' -> 'transaction_id') NOT IN ('string', 'number')
               OR NOT (append_many.condition -> 'after' ->> 'transaction_id') ~ '^[0-9]{1,19}$'
               OR jsonb_typeof(append_many.condition -> 'after' -> 'position') IS DISTINCT FROM 'number'
               OR NOT (append_many.condition -> 'after' ->> 'position') ~ '^[0-9]{1,18}$' THEN
                IF annals_internal.raise_invalid('condition.after',
                    'must be {"transaction_id": "<xid8>", "position": <bigint >= 0>}, the feed position the decision read up to') IS NULL THEN END IF;
            END IF;
            v_after_tx := (append_many.condition -> 'after' ->> 'transaction_id')::xid8;
            v_after_pos := (append_many.condition -> 'after' ->> 'position')::bigint;
        ELSIF jsonb_typeof(append_many.condition -> 'after') <> 'null' THEN
            IF annals_internal.raise_invalid('condition.after',
                'must be {"transaction_id": "<xid8>", "position": <bigint >= 0>} or absent (from the start)') IS NULL THEN END IF;
        END IF;
        v_cond_keys := annals_internal.query_keys(append_many.condition -> 'query');
    END IF;

    IF cardinality(v_keys) = 1 AND cardinality(v_ev_keys) = 0 AND v_cond_keys IS NULL THEN
        PERFORM pg_advisory_xact_lock(v_keys[1]);
    ELSE
        PERFORM annals_internal.lock_keys(v_keys || v_ev_keys || coalesce(v_cond_keys, '{}'::bigint[]));
    END IF;

    IF append_many.conditional THEN
        -- A snapshot older than the locks (REPEATABLE READ, SERIALIZABLE) cannot see a conflicting
        -- append that committed while this one waited: locking the key rows that such an append
        -- inserted or updated makes that a serialization failure (40001) instead of a stale pass.
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            INSERT INTO annals_internal.tag_heads AS h (lock_key)
            SELECT k FROM unnest(v_cond_keys) AS k ORDER BY k
            ON CONFLICT ON CONSTRAINT tag_heads_pkey DO NOTHING;
            PERFORM 1 FROM annals_internal.tag_heads AS h WHERE h.lock_key = ANY (v_cond_keys) ORDER BY h.lock_key FOR SHARE;
        END IF;
        SELECT e.transaction_id, e.global_position, e.stream_id, e.stream_version, e.event_type INTO v_hit
          FROM annals_internal.query_items(append_many.condition -> 'query') AS i
         -- OFFSET 0 fences the scan off from the ORDER BY ... LIMIT: left free, the planner walks
         -- the feed index in order hoping to meet a match soon, i.e. reads the whole feed.
         CROSS JOIN LATERAL (
                SELECT m.* FROM (
                    SELECT e.transaction_id, e.global_position, e.stream_id, e.stream_version, e.event_type
                      FROM annals_internal.events AS e
                     WHERE e.tags @> i.tags AND e.tags IS NOT NULL
                       AND (i.types IS NULL OR e.event_type = ANY (i.types))
                       AND (e.transaction_id, e.global_position) > (v_after_tx, v_after_pos)
                    OFFSET 0) AS m
                -- Cold tagged events, by the tags kept beside their segments (400_cold_storage.sql).
                UNION ALL
                SELECT t.transaction_id, t.global_position, t.stream_id, t.stream_version, t.event_type
                  FROM annals_internal.cold_tags AS t
                 WHERE t.tags @> i.tags
                   AND (i.types IS NULL OR t.event_type = ANY (i.types))
                   AND (t.transaction_id, t.global_position) > (v_after_tx, v_after_pos)
                 ORDER BY 1, 2
                 LIMIT 1) AS e
         ORDER BY e.transaction_id, e.global_position
         LIMIT 1;
        IF FOUND THEN
            IF annals_internal.raise_error('ST409',
                format('condition failed: event %s of stream %L (type %s, position %s) matches the query and is after the position the decision read (%s, %s)',
                       v_hit.stream_version, v_hit.stream_id, v_hit.event_type, v_hit.global_position, v_after_tx, v_after_pos),
                jsonb_build_object('stream_id', v_hit.stream_id,
                                   'conflict', jsonb_build_object('transaction_id', v_hit.transaction_id::text,
                                                                  'position', v_hit.global_position,
                                                                  'stream_id', v_hit.stream_id,
                                                                  'stream_version', v_hit.stream_version,
                                                                  'event_type', v_hit.event_type),
                                   'after', jsonb_build_object('transaction_id', v_after_tx::text, 'position', v_after_pos)),
                'Another append changed the facts the decision was based on: read the tagged events again, decide again, and retry with the new position.') IS NULL THEN END IF;
        END IF;
    END IF;

    FOR v_el IN SELECT a FROM jsonb_array_elements(append_many.appends) AS a LOOP
        SELECT * INTO v_res
          FROM annals.append_events(v_el ->> 'stream_id', (v_el ->> 'expected_version')::bigint, v_el -> 'events') AS r;
        stream_id := v_el ->> 'stream_id';
        stream_version := v_res.stream_version;
        global_position := v_res.global_position;
        transaction_id := v_res.transaction_id;
        RETURN NEXT;
    END LOOP;

    IF append_many.conditional AND cardinality(v_ev_keys) > 0 THEN
        INSERT INTO annals_internal.tag_heads AS h (lock_key, transaction_id)
        SELECT DISTINCT k, pg_current_xact_id() FROM unnest(v_ev_keys) AS k ORDER BY k
        ON CONFLICT ON CONSTRAINT tag_heads_pkey DO UPDATE SET transaction_id = excluded.transaction_id;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.append_many(jsonb, jsonb, boolean) IS
    'Body of append_multi and append_conditional: checks every append, takes all locks in key order, checks the condition under them, appends each stream with append_events.';
REVOKE ALL ON FUNCTION annals_internal.append_many(jsonb, jsonb, boolean) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.append_multi(appends jsonb)
RETURNS TABLE (stream_id text, stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    -- plpgsql, not a SQL function: its one statement's plan is cached for the session.
    RETURN QUERY SELECT * FROM annals_internal.append_many(append_multi.appends, NULL, false);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.append_multi(jsonb) IS
$$Appends to several streams atomically, all or nothing: appends is a JSON array of
{"stream_id", "expected_version" (null any, -1 exists, 0 no stream, n), "events": [...]}, each stream once.
Each stream's expected version, replay and errors are append_events' (the DETAIL names the stream).
Stream locks are taken in one fixed order, so overlapping multi-appends never deadlock.
Returns one row per append, in the order given: the stream's new version, last position, transaction id.$$;
REVOKE ALL ON FUNCTION annals.append_multi(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.append_multi(jsonb) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.append_conditional(appends jsonb, condition jsonb)
RETURNS TABLE (stream_id text, stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    -- plpgsql, not a SQL function: its one statement's plan is cached for the session.
    RETURN QUERY SELECT * FROM annals_internal.append_many(append_conditional.appends, append_conditional.condition, true);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.append_conditional(jsonb, jsonb) IS
$$Appends like append_multi only if no event matching condition.query exists after condition.after:
condition is {"query": [{"types"?: [...], "tags": [...]}, ...], "after"?: {"transaction_id", "position"}}
(the feed position of the read the decision was based on; absent: from the start).
Otherwise ST409 with the first conflicting event in DETAIL.conflict. The check and the append are one
atomic step under locks: two conditional appends whose queries overlap serialize, at any isolation level.$$;
REVOKE ALL ON FUNCTION annals.append_conditional(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.append_conditional(jsonb, jsonb) TO annals_writer;
