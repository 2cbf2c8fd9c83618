-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- One event by id, for a dead letter, a log line or a causation_id. Event ids are unique per
-- stream only ((stream_id, event_id) is the key), so an id a client reused in another stream
-- finds both events, oldest first. The lookup carries no stream id, so it cannot prune
-- partitions: it probes events_event_id_idx in each of them (migration 011).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_event(
    event_id uuid,
    raw      boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 1
AS $$
DECLARE
    v_up text[] := CASE WHEN read_event.raw THEN NULL ELSE annals_internal.types_to_upcast() END;
BEGIN
    IF read_event.event_id IS NULL THEN
        IF annals_internal.raise_invalid('event_id', 'must not be null') IS NULL THEN END IF;
    END IF;
    IF read_event.raw IS NULL THEN
        IF annals_internal.raise_invalid('raw', 'must not be null') IS NULL THEN END IF;
    END IF;
    RETURN QUERY
        SELECT (annals_internal.as_read(e, v_up)).*
          FROM annals_internal.events AS e
         WHERE e.event_id = read_event.event_id
        -- Cold storage (400_cold_storage.sql): cold events found through the segments' id index.
        UNION ALL
        SELECT (annals_internal.as_read(c, v_up)).*
          FROM annals_internal.cold_segments AS s
         CROSS JOIN LATERAL unnest(s.events) AS c
         WHERE s.event_ids @> ARRAY[read_event.event_id]
           AND c.event_id = read_event.event_id
         ORDER BY 3;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_event(uuid, boolean) IS
$$The event stored under event_id, upcast to its current shape like every read (raw => true: the stored
bytes). No row for an unknown id. Ids are unique per stream only: an id stored in several streams returns
each of those events, oldest (lowest global position) first. Errors: ST422 for a NULL argument.$$;
REVOKE ALL ON FUNCTION annals.read_event(uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_event(uuid, boolean) TO annals_writer, annals_reader;
