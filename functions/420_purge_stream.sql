-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Removal is the one controlled exception to append-only. The history trigger
-- (functions/010_append_only.sql) lets a DELETE of an event through only when the same
-- transaction has already written a lifecycle_log row ('purge' or 'retention') for its stream
-- whose version range covers it. purge_stream and apply_retention log first, then delete; any
-- other DELETE, by any role, still fails with ST405, and nothing is ever removed unlogged.

-- Purges a stream: its events and snapshots go for good, its row stays as a tombstone.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.purge_stream(
    stream_id        text,
    expected_version bigint DEFAULT NULL,
    reason           text   DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_current bigint;
    v_state   text;
    v_removed bigint;
    v_first   bigint;
BEGIN
    IF annals_internal.check_stream_id(purge_stream.stream_id) IS NULL THEN END IF;
    purge_stream.stream_id := annals_internal.qualify(purge_stream.stream_id);  -- M15: the tenant's stored id
    IF purge_stream.expected_version < -1 THEN
        IF annals_internal.raise_invalid('expected_version',
            'must be NULL (any), -1 (stream exists) or a version >= 1, got ' || purge_stream.expected_version) IS NULL THEN END IF;
    END IF;
    IF octet_length(purge_stream.reason) > 1000 THEN
        IF annals_internal.raise_invalid('reason', 'must be at most 1000 bytes') IS NULL THEN END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(purge_stream.stream_id, 0));

    SELECT s.stream_version, s.state INTO v_current, v_state
      FROM annals_internal.streams AS s
     WHERE s.stream_id = purge_stream.stream_id
       FOR UPDATE;
    IF v_state = 'purged' THEN
        IF annals_internal.raise_error('ST410', format('stream %L is already purged', purge_stream.stream_id),
            jsonb_build_object('stream_id', purge_stream.stream_id)) IS NULL THEN END IF;
    END IF;
    IF v_current IS NULL OR purge_stream.expected_version > 0 AND purge_stream.expected_version <> v_current
       OR purge_stream.expected_version = 0 THEN
        IF annals_internal.raise_error('ST409',
            format('cannot purge stream %L: expected version %s, actual %s', purge_stream.stream_id,
                   coalesce(purge_stream.expected_version::text, 'any'), coalesce(v_current, 0)),
            jsonb_build_object('stream_id', purge_stream.stream_id,
                               'expected', purge_stream.expected_version, 'actual', coalesce(v_current, 0))) IS NULL THEN END IF;
    END IF;

    -- Logged first: the history trigger lets the DELETE through only for a logged range.
    -- Hot events and cold segments (functions/400_cold_storage.sql) alike.
    SELECT sum(t.n), min(t.first) INTO v_removed, v_first
      FROM (SELECT count(*) AS n, min(e.stream_version) AS first
              FROM annals_internal.events AS e WHERE e.stream_id = purge_stream.stream_id
            UNION ALL
            SELECT sum(cardinality(c.events)), min(c.first_version)
              FROM annals_internal.cold_segments AS c WHERE c.stream_id = purge_stream.stream_id) AS t;
    INSERT INTO annals_internal.lifecycle_log
           (stream_id, operation, stream_version, first_version, event_count, performed_by, performed_at, reason)
    VALUES (purge_stream.stream_id, 'purge', v_current, coalesce(v_first, v_current), v_removed,
            session_user, clock_timestamp(), purge_stream.reason);
    DELETE FROM annals_internal.events AS e WHERE e.stream_id = purge_stream.stream_id;
    DELETE FROM annals_internal.cold_segments AS c WHERE c.stream_id = purge_stream.stream_id;
    DELETE FROM annals_internal.snapshots AS s WHERE s.stream_id = purge_stream.stream_id;
    UPDATE annals_internal.streams AS s
       SET state = 'purged', updated_at = greatest(clock_timestamp(), s.updated_at)
     WHERE s.stream_id = purge_stream.stream_id;
    RETURN v_removed;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.purge_stream(text, bigint, text) IS
$$Removes a stream's events and snapshots for good and leaves a tombstone: stream_info shows state 'purged'
and the last version, every later append fails with ST410, versions are never reused. Owner only; logged in
the lifecycle log (who, when, why, how many). Returns the number of events removed.
Errors: ST409 stream missing or at another version, ST410 already purged, ST422 invalid argument.$$;
REVOKE ALL ON FUNCTION annals.purge_stream(text, bigint, text) FROM PUBLIC;
