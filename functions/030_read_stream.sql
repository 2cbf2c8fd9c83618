-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Checks shared by the stream reads: ST422 for a NULL or non-positive page size or start.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_page(from_version bigint, max_count integer)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF check_page.from_version < 1 THEN
        IF annals_internal.raise_invalid('from_version', 'must be NULL or >= 1, got ' || check_page.from_version) IS NULL THEN END IF;
    END IF;
    IF check_page.max_count IS NULL OR check_page.max_count < 1 THEN
        IF annals_internal.raise_invalid('max_count', 'must be >= 1, got ' || coalesce(check_page.max_count::text, 'NULL')) IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_page(bigint, integer) IS
    'Raises ST422 unless from_version is NULL or >= 1 and max_count >= 1.';
REVOKE ALL ON FUNCTION annals_internal.check_page(bigint, integer) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_stream(
    stream_id    text,
    from_version bigint  DEFAULT NULL,
    max_count    integer DEFAULT 1000,
    backwards    boolean DEFAULT false,
    raw          boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
ROWS 100
AS $$
DECLARE
    v_up text[] := CASE WHEN read_stream.raw THEN NULL ELSE annals_internal.types_to_upcast() END;
BEGIN
    IF annals_internal.check_stream_id(read_stream.stream_id) IS NULL THEN END IF;
    read_stream.stream_id := annals_internal.qualify(read_stream.stream_id);  -- M15: the tenant's stored id
    PERFORM annals_internal.check_page(read_stream.from_version, read_stream.max_count);
    IF read_stream.backwards IS NULL THEN
        IF annals_internal.raise_invalid('backwards', 'must not be null') IS NULL THEN END IF;
    END IF;

    -- Cold storage (400_cold_storage.sql): a stream with cold events is read hot and cold merged.
    IF annals_internal.has_cold(read_stream.stream_id) THEN
        RETURN QUERY
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.stream_page(read_stream.stream_id, read_stream.from_version, read_stream.max_count,
                                               read_stream.backwards) AS e;
        RETURN;
    END IF;

    IF NOT read_stream.backwards THEN
        RETURN QUERY
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.events AS e
             WHERE e.stream_id = read_stream.stream_id
               AND e.stream_version >= coalesce(read_stream.from_version, 1)
             ORDER BY e.stream_version
             LIMIT read_stream.max_count;
    ELSE
        RETURN QUERY
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.events AS e
             WHERE e.stream_id = read_stream.stream_id
               AND e.stream_version <= coalesce(read_stream.from_version, 9223372036854775807)
             ORDER BY e.stream_version DESC
             LIMIT read_stream.max_count;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_stream(text, bigint, integer, boolean, boolean) IS
$$Reads up to max_count (default 1000) events of a stream in version order, starting at from_version
(inclusive; NULL means the first event, or the last one when backwards). A missing stream reads as empty.
Events come upcast to their current shape; raw => true returns the stored bytes.
Errors: ST422 invalid argument, ST403 reserved stream id.$$;
REVOKE ALL ON FUNCTION annals.read_stream(text, bigint, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_stream(text, bigint, integer, boolean, boolean) TO annals_writer, annals_reader;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_stream_as_of(
    stream_id      text,
    as_of_version  bigint      DEFAULT NULL,
    as_of_time     timestamptz DEFAULT NULL,
    from_version   bigint      DEFAULT NULL,
    max_count      integer     DEFAULT 1000,
    raw            boolean     DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 100
AS $$
DECLARE
    v_to bigint;
    v_up text[] := CASE WHEN read_stream_as_of.raw THEN NULL ELSE annals_internal.types_to_upcast() END;
BEGIN
    IF annals_internal.check_stream_id(read_stream_as_of.stream_id) IS NULL THEN END IF;
    read_stream_as_of.stream_id := annals_internal.qualify(read_stream_as_of.stream_id);  -- M15: the tenant's stored id
    PERFORM annals_internal.check_page(read_stream_as_of.from_version, read_stream_as_of.max_count);
    IF (read_stream_as_of.as_of_version IS NULL) = (read_stream_as_of.as_of_time IS NULL) THEN
        IF annals_internal.raise_invalid('as_of_version', 'give exactly one of as_of_version and as_of_time') IS NULL THEN END IF;
    END IF;
    IF read_stream_as_of.as_of_version < 0 THEN
        IF annals_internal.raise_invalid('as_of_version', 'must be >= 0, got ' || read_stream_as_of.as_of_version) IS NULL THEN END IF;
    END IF;

    IF read_stream_as_of.as_of_time IS NOT NULL THEN
        v_to := annals_internal.version_at(read_stream_as_of.stream_id, read_stream_as_of.as_of_time);
    ELSE
        v_to := read_stream_as_of.as_of_version;
    END IF;

    -- Cold storage (400_cold_storage.sql): a stream with cold events is read hot and cold merged.
    IF annals_internal.has_cold(read_stream_as_of.stream_id) THEN
        RETURN QUERY
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.stream_page(read_stream_as_of.stream_id, read_stream_as_of.from_version,
                                               read_stream_as_of.max_count, false, v_to) AS e;
        RETURN;
    END IF;

    RETURN QUERY
        SELECT (annals_internal.as_read(e, v_up)).*
          FROM annals_internal.events AS e
         WHERE e.stream_id = read_stream_as_of.stream_id
           AND e.stream_version >= coalesce(read_stream_as_of.from_version, 1)
           AND e.stream_version <= v_to
         ORDER BY e.stream_version
         LIMIT read_stream_as_of.max_count;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) IS
$$Reads a stream as it was at a version (as_of_version) or a point in time (as_of_time): its events up to
that point, in version order, paged by from_version and max_count. Give exactly one of the two.
recorded_at never decreases within a stream, so the events at a time are a prefix of the stream.$$;
REVOKE ALL ON FUNCTION annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) TO annals_writer, annals_reader;
