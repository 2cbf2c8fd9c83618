-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Cold storage (migrations/013_cold_storage.sql). Events move from annals_internal.events into
-- compressed segments of one stream each (annals_internal.cold_segments), in one transaction per
-- call: a reader's snapshot sees every event exactly once, hot or cold. Moves keep two facts the
-- reads rely on:
--   * per stream, the cold versions are a prefix: compress_events moves the oldest events of the
--     feed (a stream's events are in version order there) and archive_stream a whole stream;
--   * every cold event lies inside its batch's feed span (annals_internal.cold_batches), so the
--     feed finds the cold events after a checkpoint through the batches whose span ends after it.
-- A read whose stream has no cold segment, or whose feed checkpoint is past every batch, runs its
-- hot-only statement unchanged (one index probe decides).
-- Tagged events move too: a segment stores its events without tags (annals.event has none), and
-- the tags of its tagged events stay searchable in annals_internal.cold_tags (migrations/
-- 017_cold_tags.sql), one row per tagged event, for read_tagged, the conditional append's check
-- and the append's replay.

-- The cold tier is history too: append-only like the events table (010_append_only.sql), and
-- guarded by the history guard, which covers every table such a trigger protects.
CREATE OR REPLACE TRIGGER cold_segments_append_only
    BEFORE UPDATE OR DELETE ON annals_internal.cold_segments
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER cold_segments_no_truncate
    BEFORE TRUNCATE ON annals_internal.cold_segments
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER cold_tags_append_only
    BEFORE UPDATE OR DELETE ON annals_internal.cold_tags
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER cold_tags_no_truncate
    BEFORE TRUNCATE ON annals_internal.cold_tags
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER cold_batches_append_only
    BEFORE UPDATE OR DELETE ON annals_internal.cold_batches
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER cold_batches_no_truncate
    BEFORE TRUNCATE ON annals_internal.cold_batches
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change();

-- Whether a stream has cold events.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.has_cold(stream_id text)
RETURNS boolean
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN EXISTS (SELECT FROM annals_internal.cold_segments AS s WHERE s.stream_id = has_cold.stream_id);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.has_cold(text) IS
    'True when some of the stream''s events are in cold storage.';
REVOKE ALL ON FUNCTION annals_internal.has_cold(text) FROM PUBLIC;

-- Whether the feed after a checkpoint reaches cold events.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.cold_after(after_transaction xid8, after_position bigint)
RETURNS boolean
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN EXISTS (SELECT FROM annals_internal.cold_batches AS b
                WHERE (b.hi_tx, b.hi_pos) > (cold_after.after_transaction, cold_after.after_position));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.cold_after(xid8, bigint) IS
    'True when cold events may lie after the feed checkpoint (after_transaction, after_position).';
REVOKE ALL ON FUNCTION annals_internal.cold_after(xid8, bigint) FROM PUBLIC;

-- The events of one stream, hot and cold, as stored, whose ids are among ids: the append's replay
-- check (020_append_replay.sql) on a conflict.
-- PL/pgSQL, so its plan is cached: a SQL function with a SET clause is not inlined and would be
-- planned again on every call (~0.3 ms over the partitions), and a conflict must stay cheap.
-- Looked up by id (events_event_id_idx), so a long stream costs no more than a short one.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.stored_events(stream text, ids uuid[])
RETURNS TABLE (stream_id text, stream_version bigint, global_position bigint, event_id uuid,
               event_type text, schema_version integer, data jsonb, metadata jsonb,
               transaction_id xid8, recorded_at timestamptz, tags text[])
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
-- One generic plan per session, pruned to the stream's partition when it runs: a custom plan
-- (replanned per call, as the planner prices the generic one over all partitions) costs more.
SET plan_cache_mode = force_generic_plan
ROWS 10
AS $$
BEGIN
    RETURN QUERY
        SELECT e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type, e.schema_version,
               e.data, e.metadata, e.transaction_id, e.recorded_at, e.tags
          FROM annals_internal.events AS e
         WHERE e.event_id = ANY (stored_events.ids)
           AND e.stream_id = stored_events.stream
        UNION ALL
        -- A cold event's tags are kept beside its segment (annals_internal.cold_tags).
        SELECT c.stream_id, c.stream_version, c.global_position, c.event_id, c.event_type, c.schema_version,
               c.data, c.metadata, c.transaction_id, c.recorded_at, t.tags
          FROM annals_internal.cold_segments AS s
         CROSS JOIN LATERAL unnest(s.events) AS c
          LEFT JOIN annals_internal.cold_tags AS t
            ON t.stream_id = c.stream_id AND t.stream_version = c.stream_version
         WHERE s.stream_id = stored_events.stream
           AND s.event_ids && stored_events.ids
           AND c.event_id = ANY (stored_events.ids);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.stored_events(text, uuid[]) IS
    'The events of stream, hot and cold, as stored, with their tags, whose ids are among ids (the append''s replay check).';
REVOKE ALL ON FUNCTION annals_internal.stored_events(text, uuid[]) FROM PUBLIC;
-- Its predecessor read every event of the stream on each conflict.
DROP FUNCTION IF EXISTS annals_internal.stream_events(text);

-- One event of a stream by version, hot or cold (no row when there is none), for dead letters.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.event_at(stream_id text, stream_version bigint)
RETURNS SETOF annals.event
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
ROWS 1
AS $fn$
    SELECT (annals_internal.as_event(e)).*
      FROM annals_internal.events AS e
     WHERE e.stream_id = event_at.stream_id AND e.stream_version = event_at.stream_version
    UNION ALL
    SELECT c.*
      FROM annals_internal.cold_segments AS s
     CROSS JOIN LATERAL unnest(s.events) AS c
     WHERE s.stream_id = event_at.stream_id
       AND s.first_version <= event_at.stream_version AND s.last_version >= event_at.stream_version
       AND c.stream_version = event_at.stream_version
$fn$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_at(text, bigint) IS
    'A stream''s event at one version, hot or cold, as stored (no row when there is none).';
REVOKE ALL ON FUNCTION annals_internal.event_at(text, bigint) FROM PUBLIC;

-- One page of a stream with cold events, as stored: the events from from_version on (backwards:
-- down from it), at most max_count, versions between lo and hi. Only the segments the page can
-- reach are decompressed: in page order, while the segments before hold fewer than max_count.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.stream_page(
    stream_id    text,
    from_version bigint,
    max_count    integer,
    backwards    boolean,
    to_version   bigint DEFAULT 9223372036854775807)
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
ROWS 100
AS $$
DECLARE
    v_lo bigint := CASE WHEN stream_page.backwards THEN 1 ELSE coalesce(stream_page.from_version, 1) END;
    v_hi bigint := CASE WHEN stream_page.backwards
                        THEN least(coalesce(stream_page.from_version, 9223372036854775807), stream_page.to_version)
                        ELSE stream_page.to_version END;
BEGIN
    IF NOT stream_page.backwards THEN
        RETURN QUERY
            SELECT u.*
              FROM (SELECT (annals_internal.as_event(e)).*
                      FROM annals_internal.events AS e
                     WHERE e.stream_id = stream_page.stream_id
                       AND e.stream_version BETWEEN v_lo AND v_hi
                     ORDER BY e.stream_version
                     LIMIT stream_page.max_count) AS u
            UNION ALL
            SELECT c.*
              FROM (SELECT k.segment_id
                      FROM (SELECT s.segment_id,
                                   sum(s.last_version - greatest(s.first_version, v_lo) + 1)
                                       OVER (ORDER BY s.first_version)
                                   - (s.last_version - greatest(s.first_version, v_lo) + 1) AS before
                              FROM annals_internal.cold_segments AS s
                             WHERE s.stream_id = stream_page.stream_id
                               AND s.last_version >= v_lo AND s.first_version <= v_hi
                             ORDER BY s.first_version
                             LIMIT stream_page.max_count) AS k
                     WHERE k.before < stream_page.max_count) AS k
              JOIN annals_internal.cold_segments AS s ON s.segment_id = k.segment_id
             CROSS JOIN LATERAL unnest(s.events) AS c
             WHERE c.stream_version BETWEEN v_lo AND v_hi
             ORDER BY 2
             LIMIT stream_page.max_count;
    ELSE
        RETURN QUERY
            SELECT u.*
              FROM (SELECT (annals_internal.as_event(e)).*
                      FROM annals_internal.events AS e
                     WHERE e.stream_id = stream_page.stream_id
                       AND e.stream_version BETWEEN v_lo AND v_hi
                     ORDER BY e.stream_version DESC
                     LIMIT stream_page.max_count) AS u
            UNION ALL
            SELECT c.*
              FROM (SELECT k.segment_id
                      FROM (SELECT s.segment_id,
                                   sum(least(s.last_version, v_hi) - s.first_version + 1)
                                       OVER (ORDER BY s.first_version DESC)
                                   - (least(s.last_version, v_hi) - s.first_version + 1) AS before
                              FROM annals_internal.cold_segments AS s
                             WHERE s.stream_id = stream_page.stream_id
                               AND s.first_version <= v_hi
                             ORDER BY s.first_version DESC
                             LIMIT stream_page.max_count) AS k
                     WHERE k.before < stream_page.max_count) AS k
              JOIN annals_internal.cold_segments AS s ON s.segment_id = k.segment_id
             CROSS JOIN LATERAL unnest(s.events) AS c
             WHERE c.stream_version BETWEEN v_lo AND v_hi
             ORDER BY 2 DESC
             LIMIT stream_page.max_count;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.stream_page(text, bigint, integer, boolean, bigint) IS
    'A page of a stream that has cold events, hot and cold merged in version order, as stored.';
REVOKE ALL ON FUNCTION annals_internal.stream_page(text, bigint, integer, boolean, bigint) FROM PUBLIC;

-- One page of the feed when cold events may lie after the checkpoint, as stored, filters applied.
-- The feed is read in windows: a window ends at the end of the first batch (in feed order) that
-- ends after the checkpoint; it holds the cold events of every batch whose span meets it and the
-- first hot events after the checkpoint (an index scan with a limit, as on the hot path). When no
-- batch ends after the checkpoint, the rest is hot. below: only transactions under this id (the
-- barrier; NULL: no limit).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.feed_page(
    after_transaction xid8,
    after_position    bigint,
    max_count         integer,
    below             xid8,
    event_types       text[],
    categories        text[],
    consumer_member   integer,
    consumer_size     integer,
    up                text[])
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
-- Its cold arm's Sort, priced as disabled, would put every generic plan past jit_above_cost.
SET jit = off
-- One generic plan per session, as annals.read_all: a custom plan per call made an idle
-- run_async_projections plan the page again each time (0.6 ms a projection against 0.1).
SET plan_cache_mode = force_generic_plan
ROWS 1000
AS $$
DECLARE
    v_tx   xid8   := feed_page.after_transaction;
    v_pos  bigint := feed_page.after_position;
    v_left bigint := feed_page.max_count;
    v_end  xid8;
    v_rows bigint;
BEGIN
    LOOP
        SELECT b.hi_tx INTO v_end
          FROM annals_internal.cold_batches AS b
         WHERE (b.hi_tx, b.hi_pos) > (v_tx, v_pos)
         ORDER BY b.hi_tx, b.hi_pos
         LIMIT 1;
        IF v_end IS NULL OR v_end >= feed_page.below THEN
            -- No cold event after (v_tx, v_pos) that the barrier lets through... except in
            -- batches ending above it: those are read with the window up to the barrier.
            v_end := CASE WHEN v_end IS NULL THEN NULL ELSE feed_page.below END;
        END IF;
        RETURN QUERY
            SELECT w.*
              FROM (SELECT (annals_internal.as_event(e)).*
                      FROM annals_internal.events AS e
                     WHERE (e.transaction_id, e.global_position) > (v_tx, v_pos)
                       -- Bounds as index conditions in the generic plan too: no OR on a parameter.
                       AND e.transaction_id < coalesce(feed_page.below, '18446744073709551615')
                       AND e.transaction_id <= coalesce(v_end, '18446744073709551615')
                       AND (feed_page.event_types IS NULL OR annals_internal.read_type(e.event_type, feed_page.up) = ANY (feed_page.event_types))
                       AND (feed_page.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (feed_page.categories))
                       AND (feed_page.consumer_size = 1
                            OR annals_internal.member_of(e.stream_id, feed_page.consumer_size) = feed_page.consumer_member)
                     ORDER BY e.transaction_id, e.global_position
                     LIMIT v_left) AS w
            UNION ALL
            SELECT c.*
              FROM annals_internal.cold_batches AS b
              JOIN annals_internal.cold_segments AS s ON s.batch_id = b.batch_id
             CROSS JOIN LATERAL unnest(s.events) AS c
             WHERE v_end IS NOT NULL
               AND b.tx_span && int8range(v_tx::text::bigint, v_end::text::bigint, '[]')
               AND (feed_page.categories IS NULL OR annals_internal.unqualify(s.category) = ANY (feed_page.categories))
               AND (feed_page.consumer_size = 1
                    OR annals_internal.member_of(s.stream_id, feed_page.consumer_size) = feed_page.consumer_member)
               AND (c.transaction_id, c.global_position) > (v_tx, v_pos)
               AND (feed_page.below IS NULL OR c.transaction_id < feed_page.below)
               AND c.transaction_id <= v_end
               AND (feed_page.event_types IS NULL OR annals_internal.read_type(c.event_type, feed_page.up) = ANY (feed_page.event_types))
             ORDER BY 9, 3
             LIMIT v_left;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_left := v_left - v_rows;
        EXIT WHEN v_left <= 0 OR v_end IS NULL OR v_end = feed_page.below;
        -- Everything up to the window's end transaction is read.
        v_tx := v_end;
        v_pos := 9223372036854775807;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.feed_page(xid8, bigint, integer, xid8, text[], text[], integer, integer, text[]) IS
    'A feed page that may reach cold events: hot and cold merged in (transaction_id, global_position) order, as stored, filtered.';
REVOKE ALL ON FUNCTION annals_internal.feed_page(xid8, bigint, integer, xid8, text[], text[], integer, integer, text[]) FROM PUBLIC;

-- Packs the moved rows of one batch into segments and records the batch. events: the events
-- (already deleted from the hot table by the caller, same statement), any order; tagged: the
-- tags of those that have any (segment_id left NULL, filled here).
DROP FUNCTION IF EXISTS annals_internal.cold_pack(bigint, text, annals.event[]);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.cold_pack(batch_id bigint, kind text, events annals.event[],
                                                     tagged annals_internal.cold_tags[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(cold_pack.events) IS NULL THEN
        RETURN 0;
    END IF;
    INSERT INTO annals_internal.cold_batches AS b (batch_id, lo_tx, lo_pos, hi_tx, hi_pos, tx_span, events, kind, moved_at)
    SELECT cold_pack.batch_id, f.transaction_id, f.global_position, l.transaction_id, l.global_position,
           int8range(f.transaction_id::text::bigint, l.transaction_id::text::bigint, '[]'),
           cardinality(cold_pack.events), cold_pack.kind, clock_timestamp()
      FROM (SELECT x.transaction_id, x.global_position FROM unnest(cold_pack.events) AS x
             ORDER BY x.transaction_id, x.global_position LIMIT 1) AS f,
           (SELECT x.transaction_id, x.global_position FROM unnest(cold_pack.events) AS x
             ORDER BY x.transaction_id DESC, x.global_position DESC LIMIT 1) AS l;
    INSERT INTO annals_internal.cold_segments AS s
           (segment_id, batch_id, stream_id, category, first_version, last_version, event_ids, events)
    SELECT nextval('annals_internal.cold_segment_seq'), cold_pack.batch_id, g.stream_id,
           split_part(g.stream_id, '-', 1), min(g.stream_version), max(g.stream_version),
           array_agg(g.event_id ORDER BY g.stream_version),
           array_agg(ROW(g.stream_id, g.stream_version, g.global_position, g.event_id, g.event_type, g.schema_version,
                         g.data, g.metadata, g.transaction_id, g.recorded_at)::annals.event ORDER BY g.stream_version)
      FROM (SELECT x.*, (row_number() OVER (PARTITION BY x.stream_id ORDER BY x.stream_version) - 1) / 100 AS part
              FROM unnest(cold_pack.events) AS x) AS g
     GROUP BY g.stream_id, g.part;
    INSERT INTO annals_internal.cold_tags AS t
           (segment_id, stream_id, stream_version, global_position, transaction_id, event_type, tags)
    SELECT s.segment_id, x.stream_id, x.stream_version, x.global_position, x.transaction_id, x.event_type, x.tags
      FROM unnest(cold_pack.tagged) AS x
      JOIN annals_internal.cold_segments AS s
        ON s.stream_id = x.stream_id AND s.batch_id = cold_pack.batch_id
       AND x.stream_version BETWEEN s.first_version AND s.last_version;
    RETURN cardinality(cold_pack.events);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.cold_pack(bigint, text, annals.event[], annals_internal.cold_tags[]) IS
    'Stores moved events as one cold batch of per-stream segments (up to 100 versions each) and the tags of the tagged ones; returns how many.';
REVOKE ALL ON FUNCTION annals_internal.cold_pack(bigint, text, annals.event[], annals_internal.cold_tags[]) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.compress_events(
    older_than interval DEFAULT '30 days',
    max_events bigint   DEFAULT 1000000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_cutoff  timestamptz;
    v_barrier xid8;
    v_moved   bigint := 0;
    v_chunk   bigint;
    v_count   bigint;
    v_from    text[];  -- the first and last event moved: [transaction id, position]
    v_to      text[];
    v_events  annals.event[];
    v_tagged  annals_internal.cold_tags[];
BEGIN
    PERFORM annals_internal.check_all_tenants('annals.compress_events');  -- M15: tenancy on: '*' only
    IF compress_events.older_than IS NULL OR compress_events.older_than < interval '0' THEN
        IF annals_internal.raise_invalid('older_than', 'must be an interval >= 0, got ' || coalesce(compress_events.older_than::text, 'NULL')) IS NULL THEN END IF;
    END IF;
    IF compress_events.max_events IS NULL OR compress_events.max_events < 1 THEN
        IF annals_internal.raise_invalid('max_events', 'must be >= 1, got ' || coalesce(compress_events.max_events::text, 'NULL')) IS NULL THEN END IF;
    END IF;
    -- One mover at a time (compress and archive): batches stay disjoint and a second caller
    -- finds the work done.
    PERFORM pg_advisory_xact_lock(hashtextextended('annals cold storage', 0));
    v_cutoff := now() - compress_events.older_than;
    -- Only events below every running transaction: none can be added before them any more, so
    -- each batch is a stretch of the feed with no hot event left inside.
    v_barrier := annals_internal.feed_barrier();
    WHILE v_moved < compress_events.max_events LOOP
        v_chunk := least(20000, compress_events.max_events - v_moved);
        -- The next stretch of the feed to move: at most v_chunk events below the barrier, ending
        -- before the first event that is not old enough. So the batch stays a prefix of the hot
        -- feed, and each stream's cold versions a prefix of the stream.
        WITH chunk AS MATERIALIZED (
                 SELECT e.transaction_id, e.global_position, e.recorded_at
                   FROM annals_internal.events AS e
                  WHERE e.transaction_id < v_barrier
                  ORDER BY e.transaction_id, e.global_position
                  LIMIT v_chunk),
             cut AS (
                 SELECT c.transaction_id, c.global_position
                   FROM chunk AS c
                  WHERE c.recorded_at >= v_cutoff
                  ORDER BY c.transaction_id, c.global_position
                  LIMIT 1),
             old AS (
                 SELECT c.transaction_id, c.global_position
                   FROM chunk AS c
                  WHERE NOT EXISTS (SELECT FROM cut AS t
                                     WHERE (c.transaction_id, c.global_position) >= (t.transaction_id, t.global_position)))
        SELECT (SELECT count(*) FROM old),
               (SELECT ARRAY[o.transaction_id::text, o.global_position::text] FROM old AS o
                 ORDER BY o.transaction_id, o.global_position LIMIT 1),
               (SELECT ARRAY[o.transaction_id::text, o.global_position::text] FROM old AS o
                 ORDER BY o.transaction_id DESC, o.global_position DESC LIMIT 1)
          INTO v_count, v_from, v_to;
        EXIT WHEN v_count = 0;
        -- Logged first: the history trigger lets these rows out of the hot table only for a
        -- stretch this transaction logged (functions/010_append_only.sql).
        INSERT INTO annals_internal.lifecycle_log
               (operation, event_count, details, performed_by, performed_at)
        VALUES ('compress', v_count, jsonb_build_object('from', to_jsonb(v_from), 'to', to_jsonb(v_to)),
                session_user, clock_timestamp());
        WITH moved AS (
                 DELETE FROM annals_internal.events AS e
                  WHERE (e.transaction_id, e.global_position)
                        BETWEEN (v_from[1]::xid8, v_from[2]::bigint) AND (v_to[1]::xid8, v_to[2]::bigint)
                    AND e.transaction_id < v_barrier
                 RETURNING annals_internal.as_event(e) AS ev, e.tags)
        SELECT array_agg(m.ev),
               array_agg(ROW(NULL, (m.ev).stream_id, (m.ev).stream_version, (m.ev).global_position, (m.ev).transaction_id,
                             (m.ev).event_type, m.tags)::annals_internal.cold_tags) FILTER (WHERE m.tags IS NOT NULL)
          INTO v_events, v_tagged
          FROM moved AS m;
        v_moved := v_moved + annals_internal.cold_pack(nextval('annals_internal.cold_batch_seq'), 'compress', v_events, v_tagged);
        EXIT WHEN v_count < v_chunk;
    END LOOP;
    RETURN v_moved;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.compress_events(interval, bigint) IS
$$Moves events recorded before now() - older_than into compressed cold storage, oldest first in feed
order, at most max_events per call; returns how many it moved (0 when nothing is left). Tagged events
move too, their tags kept searchable for read_tagged and conditional appends. Online: appends,
reads and subscriptions go on and see every event once, hot or cold, byte for byte the same. Owner only.
Errors: ST422.$$;
REVOKE ALL ON FUNCTION annals.compress_events(interval, bigint) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.archive_stream(
    stream_id        text,
    expected_version bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_current bigint;
    v_events  annals.event[];
    v_tagged  annals_internal.cold_tags[];
BEGIN
    IF annals_internal.check_stream_id(archive_stream.stream_id) IS NULL THEN END IF;
    archive_stream.stream_id := annals_internal.qualify(archive_stream.stream_id);  -- M15: the tenant's stored id
    IF archive_stream.expected_version < -1 OR archive_stream.expected_version = 0 THEN
        IF annals_internal.raise_invalid('expected_version',
            'must be NULL (any), -1 (stream exists) or a version >= 1, got ' || archive_stream.expected_version) IS NULL THEN END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('annals cold storage', 0));
    -- The append's lock: no append to this stream runs while it moves.
    PERFORM pg_advisory_xact_lock(hashtextextended(archive_stream.stream_id, 0));
    SELECT s.stream_version INTO v_current
      FROM annals_internal.streams AS s
     WHERE s.stream_id = archive_stream.stream_id;
    IF v_current IS NULL THEN
        IF annals_internal.raise_error('ST404', format('stream %L does not exist', archive_stream.stream_id),
            jsonb_build_object('stream_id', archive_stream.stream_id),
            'Check the stream id: annals streams list shows the streams.') IS NULL THEN END IF;
    END IF;
    IF archive_stream.expected_version > 0 AND archive_stream.expected_version <> v_current THEN
        IF annals_internal.raise_error('ST409',
            format('cannot archive stream %L: expected version %s, actual %s', archive_stream.stream_id,
                   archive_stream.expected_version, v_current),
            jsonb_build_object('stream_id', archive_stream.stream_id,
                               'expected', archive_stream.expected_version, 'actual', v_current),
            'The stream moved on: check that it is finished, then archive it at its current version.') IS NULL THEN END IF;
    END IF;
    -- Logged first: the history trigger lets the rows out of the hot table only for a version range
    -- this transaction logged (functions/010_append_only.sql).
    INSERT INTO annals_internal.lifecycle_log
           (stream_id, operation, stream_version, first_version, event_count, performed_by, performed_at)
    SELECT archive_stream.stream_id, 'archive', max(e.stream_version), min(e.stream_version), count(*),
           session_user, clock_timestamp()
      FROM annals_internal.events AS e
     WHERE e.stream_id = archive_stream.stream_id
    HAVING count(*) > 0;
    WITH moved AS (
        DELETE FROM annals_internal.events AS e
         WHERE e.stream_id = archive_stream.stream_id
        RETURNING annals_internal.as_event(e) AS ev, e.tags)
    SELECT array_agg(m.ev),
           array_agg(ROW(NULL, (m.ev).stream_id, (m.ev).stream_version, (m.ev).global_position, (m.ev).transaction_id,
                         (m.ev).event_type, m.tags)::annals_internal.cold_tags) FILTER (WHERE m.tags IS NOT NULL)
      INTO v_events, v_tagged
      FROM moved AS m;
    RETURN annals_internal.cold_pack(nextval('annals_internal.cold_batch_seq'), 'archive', v_events, v_tagged);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.archive_stream(text, bigint) IS
$$Moves every hot event of one stream into compressed cold storage now, whatever its age; returns how many
it moved (0 when already cold). Reads return the same rows as before; appends to the stream go on.
Owner only. Errors: ST422, ST404 unknown stream, ST409 expected_version is not the stream's version.$$;
REVOKE ALL ON FUNCTION annals.archive_stream(text, bigint) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.storage_stats()
RETURNS TABLE (tier text, events bigint, bytes bigint, bytes_per_event numeric)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    -- The hot count from the partitions' statistics, as the planner estimates a table's rows:
    -- tuples per page at the last VACUUM or ANALYZE times the pages now. NULL when a partition has
    -- none yet (never analyzed, or analyzed empty).
    v_hot_estimate numeric := (SELECT sum(CASE WHEN c.reltuples >= 0 AND c.relpages > 0
                                               THEN c.reltuples / c.relpages
                                                    * (pg_relation_size(c.oid) / current_setting('block_size')::integer)
                                          END)
                                          + CASE WHEN bool_and(c.reltuples >= 0 AND c.relpages > 0) THEN 0 END
                                 FROM pg_partition_tree('annals_internal.events'::regclass) AS t
                                 JOIN pg_class AS c ON c.oid = t.relid
                                WHERE t.isleaf);
    v_hot_events  bigint;
    v_hot_bytes   bigint := (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)
                               FROM pg_partition_tree('annals_internal.events'::regclass) AS t);
    -- Exact: one heap row per segment (up to 100 events), the compressed events are not read.
    v_cold_events bigint := (SELECT coalesce(sum(s.last_version - s.first_version + 1), 0)
                               FROM annals_internal.cold_segments AS s);
    v_cold_bytes  bigint := pg_total_relation_size('annals_internal.cold_segments'::regclass)
                            + pg_total_relation_size('annals_internal.cold_batches'::regclass);
BEGIN
    -- Counted exactly while that is cheap (up to 100,000 events, or no statistics yet); a large
    -- hot table's count is the estimate: counting it read the whole table's index.
    IF v_hot_estimate IS NULL OR v_hot_estimate < 100000 THEN
        v_hot_events := (SELECT count(*) FROM annals_internal.events);
    ELSE
        v_hot_events := round(v_hot_estimate);
    END IF;
    RETURN QUERY VALUES
        ('hot'::text, v_hot_events, v_hot_bytes, round(v_hot_bytes::numeric / nullif(v_hot_events, 0), 1)),
        ('cold'::text, v_cold_events, v_cold_bytes, round(v_cold_bytes::numeric / nullif(v_cold_events, 0), 1));
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.storage_stats() IS
$$One row per storage tier (hot, cold): events, bytes on disk (heap, TOAST and indexes) and bytes per
event (NULL for an empty tier). Cold events are counted exactly (one row per segment of up to 100
events); hot events exactly up to 100,000, beyond that estimated from the table statistics
(pg_class.reltuples per page at the last VACUUM or ANALYZE, times the pages now, as the planner does),
so the call stays cheap on a large store.$$;
REVOKE ALL ON FUNCTION annals.storage_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.storage_stats() TO annals_reader, annals_writer;
