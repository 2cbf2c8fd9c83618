-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.stream_info(stream_id text)
RETURNS SETOF annals.stream
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 1
AS $$
BEGIN
    IF annals_internal.check_stream_id(stream_info.stream_id) IS NULL THEN END IF;
    stream_info.stream_id := annals_internal.qualify(stream_info.stream_id);  -- M15: the tenant's stored id
    RETURN QUERY
        SELECT annals_internal.unqualify(s.stream_id), s.stream_version, s.created_at, s.updated_at, s.state
          FROM annals_internal.streams AS s
         WHERE s.stream_id = stream_info.stream_id;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.stream_info(text) IS
$$One row describing a stream: its current version, when it was created and last appended to, and its
state ('active', 'deleted' or 'purged': a tombstone whose events were removed). No row for a stream that has no events.$$;
REVOKE ALL ON FUNCTION annals.stream_info(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.stream_info(text) TO annals_writer, annals_reader;
