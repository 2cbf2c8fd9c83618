-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- M15: the gap-free feed of the events matching a tag query, what a decider reads before a
-- conditional append. Each query item is one scan of the tags GIN index (events_tags_idx), and one
-- of the cold tagged events' (cold_tags_tags_idx, an empty index while nothing tagged is cold); an
-- event matching several items comes once. Same barrier as annals.read_all: only transactions
-- older than every running one, so the last row's (transaction_id, global_position) is a
-- position a later conditional append can safely name as condition.after.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_tagged(
    query             jsonb,
    after_transaction xid8    DEFAULT '0',
    after_position    bigint  DEFAULT 0,
    max_count         integer DEFAULT 1000)
RETURNS TABLE (stream_id text, stream_version bigint, global_position bigint, event_id uuid,
               event_type text, schema_version integer, data jsonb, metadata jsonb,
               transaction_id xid8, recorded_at timestamptz, tags text[])
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- Planned once per session: a custom plan (8 partitions, a GIN scan each) costs more to plan than to run.
SET plan_cache_mode = force_generic_plan
ROWS 100
AS $$
#variable_conflict use_column
DECLARE
    v_up   text[] := annals_internal.types_to_upcast();
    v_rows bigint;
BEGIN
    PERFORM annals_internal.check_tag_query(read_tagged.query, 'query');
    PERFORM annals_internal.check_feed_args(read_tagged.after_transaction, read_tagged.after_position, read_tagged.max_count);
    RETURN QUERY
        SELECT (r.ev).*, r.tags
          FROM (SELECT DISTINCT ON (m.transaction_id, m.global_position)
                       -- The page's rows as columns up to here, made an annals.event only now: a row
                       -- formed in the branches would be built for every match (9% slower).
                       annals_internal.as_read(ROW(m.stream_id, m.stream_version, m.global_position, m.event_id,
                           m.event_type, m.schema_version, m.data, m.metadata, m.transaction_id,
                           m.recorded_at)::annals.event, v_up) AS ev,
                       m.tags, m.transaction_id, m.global_position
                  FROM annals_internal.query_items(read_tagged.query) AS i
                 -- OFFSET 0: the tags index finds the matches, then they are sorted; left free,
                 -- the planner walks the feed index in order, i.e. reads the whole feed.
                 CROSS JOIN LATERAL (
                        SELECT f.* FROM (
                            SELECT (annals_internal.as_event(e)).*, e.tags
                              FROM annals_internal.events AS e
                             WHERE e.tags @> i.tags AND e.tags IS NOT NULL
                               AND (i.types IS NULL OR e.event_type = ANY (i.types))
                               AND (e.transaction_id, e.global_position) > (read_tagged.after_transaction, read_tagged.after_position)
                               AND e.transaction_id < annals_internal.feed_barrier()
                            OFFSET 0) AS f
                        -- Cold tagged events (functions/400_cold_storage.sql): found by their tags
                        -- kept beside the segments, then read from their segment, the page's only.
                        UNION ALL
                        SELECT c.*, k.tags
                          FROM (SELECT t.stream_id, t.stream_version, t.tags
                                  FROM annals_internal.cold_tags AS t
                                 WHERE t.tags @> i.tags
                                   AND (i.types IS NULL OR t.event_type = ANY (i.types))
                                   AND (t.transaction_id, t.global_position) > (read_tagged.after_transaction, read_tagged.after_position)
                                 ORDER BY t.transaction_id, t.global_position
                                 LIMIT read_tagged.max_count) AS k
                         CROSS JOIN LATERAL annals_internal.event_at(k.stream_id, k.stream_version) AS c
                         ORDER BY 9, 3
                         LIMIT read_tagged.max_count) AS m
                 ORDER BY m.transaction_id, m.global_position
                 LIMIT read_tagged.max_count) AS r
         ORDER BY r.transaction_id, r.global_position;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < read_tagged.max_count THEN
        PERFORM annals_internal.check_restored_ids();
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_tagged(jsonb, xid8, bigint, integer) IS
$$The gap-free feed of the events matching a tag query, with their tags: query is a JSON array of
{"types"?: [...], "tags": [...]} items; an event matches an item when its stored type is one of types
(any type when absent) and it carries every tag of tags, and the query when it matches any item.
Same order, barrier and checkpoint as annals.read_all; the last row's (transaction_id, global_position)
is the condition.after of a conditional append decided on these events. Errors: ST422, ST503.$$;
REVOKE ALL ON FUNCTION annals.read_tagged(jsonb, xid8, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_tagged(jsonb, xid8, bigint, integer) TO annals_writer, annals_reader;
