-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Closes a stream for good: appends then fail with ST410. Its events stay stored and readable;
-- removing history is a separate, later lifecycle operation. Audited in lifecycle_log.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.delete_stream(
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
BEGIN
    IF annals_internal.check_stream_id(delete_stream.stream_id) IS NULL THEN END IF;
    delete_stream.stream_id := annals_internal.qualify(delete_stream.stream_id);  -- M15: the tenant's stored id
    IF delete_stream.expected_version < -1 THEN
        IF annals_internal.raise_invalid('expected_version',
            'must be NULL (any), -1 (stream exists) or a version >= 1, got ' || delete_stream.expected_version) IS NULL THEN END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(delete_stream.stream_id, 0));

    SELECT s.stream_version, s.state INTO v_current, v_state
      FROM annals_internal.streams AS s
     WHERE s.stream_id = delete_stream.stream_id;
    IF v_state = 'deleted' THEN
        IF annals_internal.raise_error('ST410', format('stream %L is already deleted', delete_stream.stream_id),
            jsonb_build_object('stream_id', delete_stream.stream_id)) IS NULL THEN END IF;
    END IF;
    IF v_current IS NULL OR delete_stream.expected_version > 0 AND delete_stream.expected_version <> v_current
       OR delete_stream.expected_version = 0 THEN
        IF annals_internal.raise_error('ST409',
            format('cannot delete stream %L: expected version %s, actual %s', delete_stream.stream_id,
                   coalesce(delete_stream.expected_version::text, 'any'), coalesce(v_current, 0)),
            jsonb_build_object('stream_id', delete_stream.stream_id,
                               'expected', delete_stream.expected_version, 'actual', coalesce(v_current, 0))) IS NULL THEN END IF;
    END IF;

    UPDATE annals_internal.streams AS s
       SET state = 'deleted', updated_at = greatest(clock_timestamp(), s.updated_at)
     WHERE s.stream_id = delete_stream.stream_id;
    INSERT INTO annals_internal.lifecycle_log (stream_id, operation, stream_version, performed_by, performed_at, reason)
    VALUES (delete_stream.stream_id, 'delete', v_current, session_user, clock_timestamp(), delete_stream.reason);
    RETURN v_current;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.delete_stream(text, bigint, text) IS
$$Closes a stream: later appends fail with ST410 while its events stay readable. Audited (who, when, why).
Returns the stream's final version. Errors: ST409 stream missing or at another version, ST410 already deleted.$$;
REVOKE ALL ON FUNCTION annals.delete_stream(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.delete_stream(text, bigint, text) TO annals_writer;
