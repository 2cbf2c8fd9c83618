-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The slow path of annals.append_events, entered only when the version check fails or an event
-- id is already stored. It decides whether the batch is a retry of an append that already
-- happened (return that append's result, write nothing) or a real conflict (raise ST409/ST412).
-- Only events at or below `current_version` count as stored, so rows the failed attempt itself
-- inserted do not confuse the verdict.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.append_replay(
    stream_id        text,
    expected_version bigint,
    events           jsonb,
    current_version  bigint,
    OUT stream_version  bigint,
    OUT global_position bigint,
    OUT transaction_id  xid8)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_total     bigint;
    v_stored    bigint;
    v_bases     bigint;
    v_base      bigint;
    v_changed   uuid;
    v_last      record;
    v_ids       uuid[];
BEGIN
    -- Only a batch with event ids can be a replay; without one this is a plain conflict, decided
    -- without reading any event (hot streams fail fast).
    SELECT count(*), array_agg((b.ev ->> 'id')::uuid) FILTER (WHERE b.ev ? 'id')
      INTO v_total, v_ids
      FROM jsonb_array_elements(append_replay.events) AS b(ev);
    v_stored := 0;
    IF v_ids IS NOT NULL THEN
        SELECT count(e.event_id),
               count(DISTINCT e.stream_version - b.ord),
               min(e.stream_version - b.ord),
               -- Only stored events can have changed: an unmatched (new) event must not count.
               (array_agg(e.event_id ORDER BY b.ord) FILTER (WHERE e.event_id IS NOT NULL AND (
                    e.event_type IS DISTINCT FROM b.ev ->> 'type'
                 -- M13: personal data is compared decrypted, without the "$pii" marker.
                 OR CASE WHEN e.metadata ? '$pii' THEN annals_internal.reveal_data(e.event_type, e.data, e.metadata) ELSE e.data END
                    IS DISTINCT FROM coalesce(nullif(b.ev -> 'data', 'null'), '{}')
                 -- M15: and without the "$tenant" key the append added.
                 OR CASE WHEN e.metadata ? '$pii' OR e.metadata ? '$tenant' THEN e.metadata - '{$pii,$tenant}'::text[] ELSE e.metadata END
                    IS DISTINCT FROM coalesce(nullif(b.ev -> 'metadata', 'null'), '{}') - '$pii'
                 OR e.schema_version IS DISTINCT FROM coalesce((b.ev ->> 'schema_version')::integer, 1)
                 OR e.tags IS DISTINCT FROM annals_internal.tags_of(b.ev))))[1]  -- M15: tags are content too
          INTO v_stored, v_bases, v_base, v_changed
          FROM jsonb_array_elements(append_replay.events) WITH ORDINALITY AS b(ev, ord)
          LEFT JOIN annals_internal.stored_events(append_replay.stream_id, v_ids) AS e  -- hot and cold (400_cold_storage.sql)
                 ON e.event_id = (b.ev ->> 'id')::uuid
                AND e.stream_version <= append_replay.current_version;
    END IF;

    IF v_stored = 0 THEN
        IF annals_internal.raise_error('ST409',
            format('wrong expected version for stream %L: expected %s, actual %s',
                   append_replay.stream_id,
                   CASE append_replay.expected_version
                       WHEN -1 THEN 'an existing stream'
                       WHEN 0 THEN 'no stream'
                       ELSE coalesce(append_replay.expected_version::text, 'any') END,
                   append_replay.current_version),
            jsonb_build_object('stream_id', append_replay.stream_id,
                               'expected', append_replay.expected_version,
                               'actual', append_replay.current_version),
            CASE WHEN append_replay.current_version = 0
                 THEN 'The stream has no events: check the stream id, or create the stream with expected version 0 (no stream).'
                 WHEN append_replay.expected_version = 0
                 THEN 'The stream already exists: load it and append at its version, or use another stream id.'
                 ELSE 'Another append came first: load the stream again, decide again, and retry with its version.' END) IS NULL THEN END IF;
    END IF;

    IF v_changed IS NOT NULL THEN
        IF annals_internal.raise_error('ST412',
            format('event id %s is already stored in stream %L with different content', v_changed, append_replay.stream_id),
            jsonb_build_object('stream_id', append_replay.stream_id, 'event_id', v_changed),
            'A retry must resend exactly the same events; a new event needs a new id.') IS NULL THEN END IF;
    END IF;

    IF v_bases > 1 OR append_replay.expected_version >= 0 AND v_base <> append_replay.expected_version THEN
        SELECT e.event_id INTO v_changed
          FROM jsonb_array_elements(append_replay.events) WITH ORDINALITY AS b(ev, ord)
          JOIN annals_internal.stored_events(append_replay.stream_id, v_ids) AS e  -- hot and cold (400_cold_storage.sql)
            ON e.event_id = (b.ev ->> 'id')::uuid
           AND e.stream_version <= append_replay.current_version
         WHERE e.stream_version - b.ord <> coalesce(append_replay.expected_version, v_base)
            OR v_bases > 1
         ORDER BY b.ord
         LIMIT 1;
        IF annals_internal.raise_error('ST412',
            format('event id %s is already stored in stream %L at another position', v_changed, append_replay.stream_id),
            jsonb_build_object('stream_id', append_replay.stream_id, 'event_id', v_changed),
            'A retry must resend the same events in the same order with the same expected version.') IS NULL THEN END IF;
    END IF;

    IF v_stored < v_total THEN
        IF annals_internal.raise_error('ST409',
            format('batch partly overlaps stream %L: %s of its %s event ids are already stored', append_replay.stream_id, v_stored, v_total),
            jsonb_build_object('stream_id', append_replay.stream_id,
                               'expected', append_replay.expected_version,
                               'actual', append_replay.current_version),
            'Reload the stream: part of this batch was appended by another call.') IS NULL THEN END IF;
    END IF;

    -- Every id is stored, in order, contiguously, with the same content: a replay.
    SELECT e.* INTO v_last
      FROM annals_internal.event_at(append_replay.stream_id, v_base + v_total) AS e;  -- hot and cold (400_cold_storage.sql)
    stream_version := v_last.stream_version;
    global_position := v_last.global_position;
    transaction_id := v_last.transaction_id;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.append_replay(text, bigint, jsonb, bigint) IS
    'Slow path of annals.append_events: returns the original result of a replayed batch or raises ST409 (version conflict, partial overlap) or ST412 (id reused with other content or position).';
REVOKE ALL ON FUNCTION annals_internal.append_replay(text, bigint, jsonb, bigint) FROM PUBLIC;

-- The contended half of taking a stream's append lock: annals.append_events and append_event call
-- it only when pg_try_advisory_xact_lock failed, i.e. another appender holds the lock until its
-- commit. Before queueing behind it, a plain read of the stream row (no lock) checks whether the
-- expected version is already wrong in a way no pending commit can make right: a read may be
-- stale, but only ever older than the truth, and versions only grow, so a read version past an
-- exact expected version (0 on an existing stream, n on a stream beyond n) stays wrong. Then no
-- lock is taken and the read version is returned, for append_replay to decide between a replay
-- and a conflict (the events up to that version are committed and visible, a replayed batch among
-- them). Otherwise (any, -1, a version not reached yet, a deleted stream, whose error comes from
-- the check under the lock) it waits for the lock and returns NULL.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.lock_stream(stream_id text, expected_version bigint)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_current bigint;
BEGIN
    -- An exact expected version can turn wrong for good while we wait: read it before waiting
    -- and again once the holder is done, and fail fast either time.
    IF lock_stream.expected_version >= 0 THEN
        FOR v_round IN 1..2 LOOP
            SELECT s.stream_version INTO v_current
              FROM annals_internal.streams AS s
             WHERE s.stream_id = lock_stream.stream_id AND s.state = 'active';
            IF v_current > lock_stream.expected_version THEN
                RETURN v_current;
            END IF;
            EXIT WHEN v_round = 2;
            -- Wait for the holder to finish with a shared lock, so every waiter wakes at its
            -- commit together (exclusive waiters would wake one by one, each only to fail), and
            -- drop the lock at once with its subtransaction: this is only a wait, and holding it
            -- while asking for the exclusive lock would deadlock with the next waiter.
            BEGIN
                PERFORM pg_advisory_xact_lock_shared(hashtextextended(lock_stream.stream_id, 0));
                RAISE EXCEPTION USING ERRCODE = 'ST599', MESSAGE = 'release the shared lock';
            EXCEPTION WHEN SQLSTATE 'ST599' THEN
                NULL;
            END;
        END LOOP;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(lock_stream.stream_id, 0));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.lock_stream(text, bigint) IS
    'Waits for a stream''s append lock and returns NULL, unless a read before or right after the holder''s commit shows the expected version wrong for good (0 on an existing stream, n on a stream beyond n): then takes no lock and returns the read version.';
REVOKE ALL ON FUNCTION annals_internal.lock_stream(text, bigint) FROM PUBLIC;
