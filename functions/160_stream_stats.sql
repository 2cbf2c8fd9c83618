-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Streams in stream id order, one page at a time (keyset paging: pass the last id of a page as
-- after_stream_id for the next). Two statements rather than one with OR-ed conditions, so each
-- is a plain index range scan, also as a generic plan: the primary key without a category,
-- streams_category_idx with one ('' sorts before every stream id, which is never empty).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.list_streams(
    category        text    DEFAULT NULL,
    after_stream_id text    DEFAULT NULL,
    max_count       integer DEFAULT 100)
RETURNS SETOF annals.stream
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF list_streams.max_count IS NULL OR list_streams.max_count NOT BETWEEN 1 AND 10000 THEN
        IF annals_internal.raise_invalid('max_count',
            'must be between 1 and 10000, got ' || coalesce(list_streams.max_count::text, 'NULL')) IS NULL THEN END IF;
    END IF;
    IF list_streams.category IS NOT NULL AND annals_internal.category_problem(list_streams.category) IS NOT NULL THEN
        IF annals_internal.raise_invalid('category', annals_internal.category_problem(list_streams.category)) IS NULL THEN END IF;
    END IF;
    IF list_streams.category IS NULL THEN
        RETURN QUERY
            SELECT annals_internal.unqualify(s.stream_id), s.stream_version, s.created_at, s.updated_at, s.state
              FROM annals_internal.streams AS s
             WHERE s.stream_id > annals_internal.qualify(coalesce(list_streams.after_stream_id, ''))
             ORDER BY s.stream_id
             LIMIT list_streams.max_count;
    ELSE
        RETURN QUERY
            SELECT annals_internal.unqualify(s.stream_id), s.stream_version, s.created_at, s.updated_at, s.state
              FROM annals_internal.streams AS s
             WHERE s.category = annals_internal.qualify(list_streams.category)
               AND s.stream_id > coalesce(list_streams.after_stream_id, '')
             ORDER BY s.stream_id
             LIMIT list_streams.max_count;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.list_streams(text, text, integer) IS
$$Streams that have events, in stream id order, optionally of one category: at most max_count (1..10000,
default 100) after after_stream_id (keyset paging: pass the last id of the previous page). Rows like
annals.stream_info's.$$;
REVOKE ALL ON FUNCTION annals.list_streams(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.list_streams(text, text, integer) TO annals_writer, annals_reader;

-- What a stream holds: its event count and the stored size of its event rows. Reads every event
-- row of the stream (through the primary key), so it is an inspection tool, not a hot-path call.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.stream_stats(
    stream_id      text,
    OUT event_count bigint,
    OUT size_bytes  bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF annals_internal.check_stream_id(stream_stats.stream_id) IS NULL THEN END IF;
    stream_stats.stream_id := annals_internal.qualify(stream_stats.stream_id);  -- M15: the tenant's stored id
    SELECT count(*), coalesce(sum(pg_column_size(e.*)), 0)::bigint
      INTO stream_stats.event_count, stream_stats.size_bytes
      FROM annals_internal.events AS e
     WHERE e.stream_id = stream_stats.stream_id;
    -- Cold storage (400_cold_storage.sql): the stream's segments, at their compressed size.
    SELECT stream_stats.event_count + coalesce(sum(s.last_version - s.first_version + 1), 0),
           stream_stats.size_bytes + coalesce(sum(pg_column_size(s.events) + pg_column_size(s.event_ids)), 0)::bigint
      INTO stream_stats.event_count, stream_stats.size_bytes
      FROM annals_internal.cold_segments AS s
     WHERE s.stream_id = stream_stats.stream_id;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.stream_stats(text) IS
$$How many events a stream holds and the stored size of their rows in bytes (after compression and
TOAST, without indexes; cold events at their compressed size). 0 and 0 for a stream without events.
Reads every event of the stream.$$;
REVOKE ALL ON FUNCTION annals.stream_stats(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.stream_stats(text) TO annals_writer, annals_reader;
