-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- recorded_at never decreases within a stream, so the newest event at or before a time is found
-- by walking the primary key backwards from the end: no extra index on the hot write path.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.version_at(stream_id text, as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version bigint;
BEGIN
    SELECT e.stream_version INTO v_version
      FROM annals_internal.events AS e
     WHERE e.stream_id = version_at.stream_id
       AND e.recorded_at <= version_at.as_of
     ORDER BY e.stream_version DESC
     LIMIT 1;
    -- Cold storage (400_cold_storage.sql): a stream's cold versions come before its hot ones, so
    -- they count only when no hot event is old enough.
    IF v_version IS NULL AND annals_internal.has_cold(version_at.stream_id) THEN
        SELECT max(c.stream_version) INTO v_version
          FROM annals_internal.cold_segments AS s
         CROSS JOIN LATERAL unnest(s.events) AS c
         WHERE s.stream_id = version_at.stream_id
           AND c.recorded_at <= version_at.as_of;
    END IF;
    RETURN coalesce(v_version, 0);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.version_at(text, timestamptz) IS
    'The version a stream had at a point in time (0 if it had no events yet).';
REVOKE ALL ON FUNCTION annals_internal.version_at(text, timestamptz) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.stream_version_at(stream_id text, as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF annals_internal.check_stream_id(stream_version_at.stream_id) IS NULL THEN END IF;
    stream_version_at.stream_id := annals_internal.qualify(stream_version_at.stream_id);  -- M15: the tenant's stored id
    IF stream_version_at.as_of IS NULL THEN
        IF annals_internal.raise_invalid('as_of', 'must not be null') IS NULL THEN END IF;
    END IF;
    RETURN annals_internal.version_at(stream_version_at.stream_id, stream_version_at.as_of);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.stream_version_at(text, timestamptz) IS
    'The version a stream had at a point in time, by its events'' recorded_at; 0 if it had none yet.';
REVOKE ALL ON FUNCTION annals.stream_version_at(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.stream_version_at(text, timestamptz) TO annals_writer, annals_reader;
