-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Reports a rebuild's progress in application_name, which other sessions see at once (its table
-- writes they see only at commit). application_name keeps 63 ASCII bytes, so the projection is
-- identified by the hex of its lock key, ahead of the counts; its name follows, clipped, for people.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.report_rebuild_progress(projection text, done bigint, total bigint)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT set_config('application_name',
        left(format('annals rebuild %s %s/%s %s', to_hex(annals_internal.projection_lock_key(report_rebuild_progress.projection)),
                    report_rebuild_progress.done, report_rebuild_progress.total,
                    regexp_replace(report_rebuild_progress.projection, '[^ -~]', '?', 'g')), 63),
        true);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.report_rebuild_progress(text, bigint, bigint) IS
    'Sets application_name to ''annals rebuild <lock key hex> <done>/<total> <name>'' for annals.projections to read.';
REVOKE ALL ON FUNCTION annals_internal.report_rebuild_progress(text, bigint, bigint) FROM PUBLIC;

-- Hands a batch to a projection's handler. Its own SET enable_sort = on: the callers turn sorting
-- off for their feed queries, and a SET clause reaches nested calls, so a handler's GROUP BY would
-- cost 1e10 and be JIT-compiled on every call.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.apply_projection(handler_call text, events annals.event[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_sort = on
AS $$
BEGIN
    EXECUTE format('SELECT %s($1)', apply_projection.handler_call) USING apply_projection.events;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.apply_projection(text, annals.event[]) IS
    'Calls a projection handler with a batch of events, planning it with sorting enabled.';
REVOKE ALL ON FUNCTION annals_internal.apply_projection(text, annals.event[]) FROM PUBLIC;

-- A rebuild notes the first feed position of each batch before it hands the batch over, in the
-- projection's position sequence (annals_internal.rebuild_position_sequence): a sequence does not
-- roll back, so when a handler fails, the rebuild's error handler still knows which batch it was
-- and can find the event (below).

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.note_rebuild_batch(projection text, first_position bigint)
RETURNS void
LANGUAGE sql
VOLATILE
BEGIN ATOMIC
    SELECT setval(format('annals_internal.%I', annals_internal.rebuild_position_sequence(note_rebuild_batch.projection))::regclass,
                  note_rebuild_batch.first_position);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.note_rebuild_batch(text, bigint) IS
    'Records, outside the transaction, the first feed position of the batch a rebuild hands to the projection''s handler.';
REVOKE ALL ON FUNCTION annals_internal.note_rebuild_batch(text, bigint) FROM PUBLIC;

-- Which event of the batch noted last makes the handler fail: each event alone, in feed order,
-- in its own subtransaction, and every write undone at the end. Runs only after a rebuild failed,
-- in its error handler. NULL when no event fails alone (the batch fails only as a whole). Finding
-- the batch's transaction by its first position has no index to use (positions are indexed with
-- their transaction): one scan of the events, on the failure path only; of the cold segments too
-- when the position is not hot. The batch is then read as the rebuild read it, hot and cold
-- (annals_internal.feed_page).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.find_failing_event(projection annals_internal.projections, batch_size integer)
RETURNS annals.event
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
AS $$
DECLARE
    v_first bigint := pg_sequence_last_value(
        format('annals_internal.%I', annals_internal.rebuild_position_sequence((find_failing_event.projection).projection_name))::regclass);
    v_up    text[] := annals_internal.types_to_upcast();
    v_tx    xid8;
    v_event annals.event;
    v_found annals.event;
BEGIN
    IF coalesce(v_first, 0) = 0 THEN
        RETURN NULL;
    END IF;
    v_tx := (SELECT f.transaction_id FROM annals_internal.events AS f WHERE f.global_position = v_first);
    IF v_tx IS NULL THEN
        v_tx := (SELECT c.transaction_id FROM annals_internal.cold_segments AS s
                  CROSS JOIN LATERAL unnest(s.events) AS c
                  WHERE c.global_position = v_first LIMIT 1);
    END IF;
    IF v_tx IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        FOR v_event IN
            -- After (v_tx, v_first - 1): from the batch's first event on (positions are integers).
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.feed_page(v_tx, v_first - 1, find_failing_event.batch_size, NULL,
                       (find_failing_event.projection).event_types, (find_failing_event.projection).categories,
                       0, 1, v_up) AS e LOOP
            BEGIN
                PERFORM annals_internal.apply_projection((find_failing_event.projection).handler_call, ARRAY[v_event]);
            EXCEPTION WHEN OTHERS THEN
                v_found := v_event;
                EXIT;
            END;
        END LOOP;
        RAISE EXCEPTION USING ERRCODE = 'ST599', MESSAGE = 'undo the search';
    EXCEPTION WHEN SQLSTATE 'ST599' THEN
        NULL;  -- every write of the search is rolled back
    END;
    RETURN v_found;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.find_failing_event(annals_internal.projections, integer) IS
    'After a failed rebuild: the first event of the failing batch that makes the handler fail on its own (NULL: none); writes nothing.';
REVOKE ALL ON FUNCTION annals_internal.find_failing_event(annals_internal.projections, integer) FROM PUBLIC;

-- The replay signature before `how`, `until_xid` and `skipped`.
DROP FUNCTION IF EXISTS annals_internal.replay_projection(annals_internal.projections, xid8, bigint, integer, boolean, bigint, bigint);

-- Applies the projection's events after a feed position, in feed order, in batches, to its
-- handler, reporting progress. `how`:
--   'barrier': only events of transactions older than every running one, so nothing can commit
--              below the position reached later: the gap-free position an async checkpoint needs.
--   'live':    every visible event of a transaction older than until_xid, while appends go on. A
--              transaction still running below the position reached may commit events behind it:
--              its id is added to `skipped`. No barrier: a long transaction anywhere in the cluster
--              (transaction ids are cluster-wide) must not push the history into the locked step.
--              First, the `skipped` transactions that have ended since are applied and dropped from
--              it, so a rebuild waiting a long time for its last step does not pile them up there.
--   'locked':  the caller has stopped appends: the events of the `skipped` transactions, then
--              everything visible after the position.
-- Returns the new position, how many events were applied, and `skipped`.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.replay_projection(
    projection      annals_internal.projections,
    after_xid       xid8,
    after_position  bigint,
    batch_size      integer,
    how             text,
    until_xid       xid8,
    total           bigint,
    done            bigint,
    INOUT skipped   xid8[],
    OUT last_xid      xid8,
    OUT last_position bigint,
    OUT applied       bigint)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
AS $$
DECLARE
    v_events  annals.event[];
    v_n       integer;
    v_running xid8[];
    v_apply   xid8[];
    v_up      text[] := annals_internal.types_to_upcast();
    v_xid     xid8 := '0'::xid8;
    v_pos     bigint := 0;
BEGIN
    last_xid := replay_projection.after_xid;
    last_position := replay_projection.after_position;
    applied := 0;
    skipped := coalesce(replay_projection.skipped, '{}');

    -- First the transactions that were still running behind the position: locked, all of them;
    -- live, those that have ended since (visible in this statement's snapshot, so in every later
    -- one: all their events are there). Their events are all below the position, so no later pass
    -- can apply them again.
    IF replay_projection.how = 'locked' THEN
        v_apply := skipped;
        skipped := '{}';
    ELSIF replay_projection.how = 'live' AND cardinality(skipped) > 0 THEN
        SELECT coalesce(array_agg(x) FILTER (WHERE pg_visible_in_snapshot(x, pg_current_snapshot())), '{}'),
               coalesce(array_agg(x) FILTER (WHERE NOT pg_visible_in_snapshot(x, pg_current_snapshot())), '{}')
          INTO v_apply, skipped
          FROM unnest(skipped) AS x;
    END IF;
    WHILE cardinality(v_apply) > 0 LOOP
        SELECT array_agg(annals_internal.as_read(b.ev, v_up)
                         ORDER BY b.transaction_id, b.global_position),
               count(*)
          INTO v_events, v_n
          FROM (SELECT e.*
                  FROM (SELECT annals_internal.as_event(h) AS ev, h.event_type, h.category, h.transaction_id, h.global_position
                          FROM annals_internal.events AS h
                         WHERE h.transaction_id = ANY (v_apply)
                        UNION ALL
                        -- Moved to cold storage since they ended (batches whose span holds one of them).
                        SELECT c, c.event_type, s.category, c.transaction_id, c.global_position
                          FROM annals_internal.cold_batches AS k
                          JOIN annals_internal.cold_segments AS s ON s.batch_id = k.batch_id
                         CROSS JOIN LATERAL unnest(s.events) AS c
                         WHERE k.tx_span @> ANY (ARRAY(SELECT x::text::bigint FROM unnest(v_apply) AS x))
                           AND c.transaction_id = ANY (v_apply)) AS e
                 WHERE (e.transaction_id, e.global_position) > (v_xid, v_pos)
                   AND ((replay_projection.projection).event_types IS NULL OR annals_internal.read_type(e.event_type, v_up) = ANY ((replay_projection.projection).event_types))
                   AND ((replay_projection.projection).categories IS NULL OR annals_internal.unqualify(e.category) = ANY ((replay_projection.projection).categories))
                 ORDER BY e.transaction_id, e.global_position
                 LIMIT replay_projection.batch_size) AS b;
        EXIT WHEN v_n = 0;
        PERFORM annals_internal.note_rebuild_batch((replay_projection.projection).projection_name, v_events[1].global_position);
        PERFORM annals_internal.apply_projection((replay_projection.projection).handler_call, v_events);
        v_xid := v_events[v_n].transaction_id;
        v_pos := v_events[v_n].global_position;
        applied := applied + v_n;
        PERFORM annals_internal.report_rebuild_progress((replay_projection.projection).projection_name,
            replay_projection.done + applied, greatest(replay_projection.total, replay_projection.done + applied));
        EXIT WHEN v_n < replay_projection.batch_size;
    END LOOP;

    LOOP
        -- The ids running in this statement's snapshot come with the batch (same snapshot).
        SELECT array_agg(annals_internal.as_read(b, v_up)
                         ORDER BY b.transaction_id, b.global_position),
               count(*),
               (SELECT array_agg(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x)
          INTO v_events, v_n, v_running
          -- Hot and cold (400_cold_storage.sql), in feed order, filtered.
          FROM annals_internal.feed_page(last_xid, last_position, replay_projection.batch_size,
                   least(CASE WHEN replay_projection.how = 'barrier' THEN annals_internal.feed_barrier() END,
                         replay_projection.until_xid),
                   (replay_projection.projection).event_types, (replay_projection.projection).categories, 0, 1, v_up) AS b;
        EXIT WHEN v_n = 0;
        PERFORM annals_internal.note_rebuild_batch((replay_projection.projection).projection_name, v_events[1].global_position);
        PERFORM annals_internal.apply_projection((replay_projection.projection).handler_call, v_events);
        last_xid := v_events[v_n].transaction_id;
        last_position := v_events[v_n].global_position;
        applied := applied + v_n;
        IF replay_projection.how = 'live' THEN
            skipped := skipped || ARRAY(SELECT DISTINCT x FROM unnest(v_running) AS x
                                         WHERE x < last_xid AND x <> ALL (skipped));
        END IF;
        -- Progress must be visible while this transaction runs: application_name is, at once.
        PERFORM annals_internal.report_rebuild_progress((replay_projection.projection).projection_name,
            replay_projection.done + applied, greatest(replay_projection.total, replay_projection.done + applied));
        EXIT WHEN v_n < replay_projection.batch_size;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.replay_projection(annals_internal.projections, xid8, bigint, integer, text, xid8, bigint, bigint, xid8[]) IS
    'Feeds a projection''s handler its events after a feed position, in batches (barrier, live or locked), reporting progress in application_name.';
REVOKE ALL ON FUNCTION annals_internal.replay_projection(annals_internal.projections, xid8, bigint, integer, text, xid8, bigint, bigint, xid8[]) FROM PUBLIC;

-- Rebuild without downtime. One transaction: readers keep seeing the old rows (MVCC) until it
-- commits, which is the atomic switch. Appends keep flowing: while the rebuild holds the
-- projection's advisory lock, inline dispatch skips this projection and the rebuild applies those
-- events itself, in passes that each take what was appended during the previous one. Only the last
-- step blocks appends, briefly: it takes SHARE on the events table, so every appending transaction
-- has ended, and applies the rest. It first waits, without queueing, for the transactions that hold
-- the table (annals_internal.lock_events_for_rebuild), so appends never wait behind a third
-- transaction. An async projection replays up to the gap-free barrier only and leaves the rest to
-- annals.run_async_projections.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.rebuild_projection(name text, batch_size integer DEFAULT 5000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_proj    annals_internal.projections%ROWTYPE;
    v_table   regclass;
    v_total   bigint;
    v_step    record;
    v_applied bigint := 0;
    v_passes  integer := 0;
    v_xid     xid8 := '0'::xid8;
    v_pos     bigint := 0;
    v_skipped xid8[] := '{}'::xid8[];
    v_attempt bigint;
    v_state   text;
    v_message text;
    v_detail  text;
    v_hint    text;
    v_failed  annals.event;
BEGIN
    PERFORM annals_internal.check_all_tenants('annals.rebuild_projection');  -- M15: tenancy on: '*' only
    IF rebuild_projection.batch_size IS NULL OR rebuild_projection.batch_size < 1 THEN
        IF annals_internal.raise_invalid('batch_size', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    PERFORM annals_internal.rebuild_lock_timeout();  -- a bad annals.rebuild_lock_timeout fails now, not at the end
    SELECT * INTO v_proj FROM annals_internal.projections AS p WHERE p.projection_name = rebuild_projection.name;
    IF NOT FOUND THEN
        IF annals_internal.raise_error('ST404', format('projection %L does not exist', rebuild_projection.name),
            jsonb_build_object('projection', rebuild_projection.name)) IS NULL THEN END IF;
    END IF;
    -- Waits for appends that are applying this projection right now; later ones skip it. Held at
    -- session level and released before returning (or failing): at commit PostgreSQL releases
    -- advisory locks after table locks, so an append let through by the end of the SHARE lock
    -- below could still find a transaction-level lock held, skip the projection, and be lost.
    PERFORM pg_advisory_lock(annals_internal.projection_lock_key(v_proj.projection_name));
    BEGIN
        -- Not rolled back with the rest: if this rebuild fails, the projection shows as stale.
        v_attempt := nextval(format('annals_internal.%I', annals_internal.rebuild_attempts_sequence(v_proj.projection_name))::regclass);
        PERFORM annals_internal.note_rebuild_batch(v_proj.projection_name, 0);
        SELECT count(*) INTO v_total
          FROM annals_internal.events AS e
         WHERE (v_proj.event_types IS NULL OR e.event_type = ANY (v_proj.event_types))
           AND (v_proj.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (v_proj.categories));
        PERFORM annals_internal.report_rebuild_progress(v_proj.projection_name, 0, v_total);

        -- DELETE, not TRUNCATE: TRUNCATE would lock readers out until the end.
        FOREACH v_table IN ARRAY v_proj.tables LOOP
            EXECUTE format('DELETE FROM %s', v_table);
        END LOOP;

        IF v_proj.mode = 'async' THEN
            -- Its tables must hold exactly the events up to its checkpoint, a gap-free position.
            v_step := annals_internal.replay_projection(v_proj, '0', 0, rebuild_projection.batch_size, 'barrier', NULL,
                                                        v_total, 0, NULL);
            v_applied := v_step.applied;
        ELSE
            LOOP
                v_step := annals_internal.replay_projection(v_proj, v_xid, v_pos, rebuild_projection.batch_size,
                    'live', pg_snapshot_xmax(pg_current_snapshot()), v_total, v_applied, v_skipped);
                v_applied := v_applied + v_step.applied;
                v_xid := v_step.last_xid;
                v_pos := v_step.last_position;
                v_skipped := v_step.skipped;
                v_passes := v_passes + 1;
                -- Once a pass is short, what is left is too: stop the appends for it.
                EXIT WHEN v_step.applied < rebuild_projection.batch_size OR v_passes >= 10;
            END LOOP;
            -- The projection's row before the events, the order a registry change takes them in
            -- (its row, then the lock that regenerates the dispatch): the two queue, never deadlock.
            -- NO KEY UPDATE: an append noting a skip holds KEY SHARE on the row (the skip's foreign
            -- key) and must get through, or it would wait here while the SHARE lock waits for it.
            PERFORM FROM annals_internal.projections AS p WHERE p.projection_name = v_proj.projection_name FOR NO KEY UPDATE;
            -- SHARE on the events table, without making appends queue behind whatever the lock
            -- has to wait for (221_projection_rebuild_lock.sql); it replays while it waits.
            SELECT l.done, l.after_xid, l.after_position, l.skipped INTO v_applied, v_xid, v_pos, v_skipped
              FROM annals_internal.lock_events_for_rebuild(v_proj, rebuild_projection.batch_size, v_total,
                                                           v_applied, v_xid, v_pos, v_skipped) AS l;
            v_step := annals_internal.replay_projection(v_proj, v_xid, v_pos, rebuild_projection.batch_size,
                'locked', NULL, v_total, v_applied, v_skipped);
            v_applied := v_applied + v_step.applied;
        END IF;

        IF v_proj.mode = 'async' THEN
            UPDATE annals_internal.subscription_checkpoints AS c
               SET checkpoint_transaction = v_step.last_xid, checkpoint_position = v_step.last_position,
                   updated_at = clock_timestamp()
             WHERE c.subscription_name = annals_internal.projection_subscription(v_proj.projection_name);
            DELETE FROM annals_internal.dead_letters AS d
             WHERE d.subscription_name = annals_internal.projection_subscription(v_proj.projection_name);
        END IF;
        UPDATE annals_internal.projections AS p
           SET rebuilt_at = clock_timestamp(), rebuilt_events = v_applied, last_error = NULL, last_error_at = NULL,
               rebuilt_attempt = v_attempt, incomplete_since = NULL
         WHERE p.projection_name = v_proj.projection_name;
        -- Every skipping append has ended (the SHARE lock waited for them) and its events are
        -- applied above; skips left by an earlier, failed rebuild are covered by this full replay.
        DELETE FROM annals_internal.projection_skips AS k WHERE k.projection_name = v_proj.projection_name;
        -- Inside the block, so that a cancel arriving now still goes through the handlers.
        PERFORM pg_advisory_unlock(annals_internal.projection_lock_key(v_proj.projection_name));
    EXCEPTION
        WHEN query_canceled THEN
            PERFORM pg_advisory_unlock(annals_internal.projection_lock_key(v_proj.projection_name));
            RAISE;
        WHEN OTHERS THEN
            -- Name the projection, and the event its handler failed on, in the error.
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            v_failed := annals_internal.find_failing_event(v_proj, rebuild_projection.batch_size);
            PERFORM pg_advisory_unlock(annals_internal.projection_lock_key(v_proj.projection_name));
            v_message := CASE WHEN v_failed.stream_id IS NOT NULL
                              THEN format('rebuild of projection %L failed at %s@%s (%s, position %s): %s', v_proj.projection_name,
                                          v_failed.stream_id, v_failed.stream_version, v_failed.event_type,
                                          v_failed.global_position, v_message)
                              ELSE format('rebuild of projection %L failed: %s', v_proj.projection_name, v_message) END;
            v_hint := coalesce(nullif(v_hint, ''),
                               'Fix the handler (or the data it reads), then rebuild again; until then the projection is stale.');
            IF coalesce(v_detail, '') = '' THEN
                RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message, HINT = v_hint;
            END IF;
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message, DETAIL = v_detail, HINT = v_hint;
    END;
    RETURN v_applied;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.rebuild_projection(text, integer) IS
$$Rebuilds a projection's tables from the whole history without downtime: readers see the old rows until
the rebuild commits, appends keep flowing, and when it returns the tables equal a replay of history. The
last step (inline projections) takes SHARE on the events table only once the transactions holding it
have ended, waiting for them without queueing (shown as 'wait <pid>' in its application_name) and asking
with a 50 ms lock_timeout (setting annals.rebuild_lock_timeout) at a time: appends wait at most that, or
the apply of the last few events, never for another transaction (but in a deadlock, which it leaves to
PostgreSQL's detector). Progress shows in annals.projections.
Holds back the gap-free feed while it runs. Returns the number of events applied.$$;
REVOKE ALL ON FUNCTION annals.rebuild_projection(text, integer) FROM PUBLIC;
