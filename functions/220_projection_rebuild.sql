-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Applies the projection's events after `after` in feed order, in batches, to its handler. With
-- use_barrier, only events of transactions older than every running one (safe to pass: nothing
-- can commit below them later); without, everything visible (the caller has stopped appends).
-- Returns the new position and how many events were applied.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.replay_projection(
    projection      annals_internal.projections,
    after_xid       xid8,
    after_position  bigint,
    batch_size      integer,
    use_barrier     boolean,
    total           bigint,
    done            bigint,
    OUT last_xid      xid8,
    OUT last_position bigint,
    OUT applied       bigint)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_sort = off
AS $$
DECLARE
    v_events annals.event[];
    v_n      integer;
    v_up     text[] := annals_internal.types_to_upcast();
BEGIN
    last_xid := replay_projection.after_xid;
    last_position := replay_projection.after_position;
    applied := 0;
    LOOP
        SELECT array_agg(annals_internal.as_read(b.stream_id, b.stream_version, b.global_position, b.event_id, b.event_type,
                             b.schema_version, b.data, b.metadata, b.transaction_id, b.recorded_at, v_up)
                         ORDER BY b.transaction_id, b.global_position),
               count(*)
          INTO v_events, v_n
          FROM (SELECT e.*
                  FROM annals_internal.events AS e
                 WHERE (e.transaction_id, e.global_position) > (last_xid, last_position)
                   AND (NOT replay_projection.use_barrier OR e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()))
                   AND ((replay_projection.projection).event_types IS NULL OR annals_internal.read_type(e.event_type, v_up) = ANY ((replay_projection.projection).event_types))
                   AND ((replay_projection.projection).categories IS NULL OR e.category = ANY ((replay_projection.projection).categories))
                 ORDER BY e.transaction_id, e.global_position
                 LIMIT replay_projection.batch_size) AS b;
        EXIT WHEN v_n = 0;
        EXECUTE format('SELECT %s($1)', (replay_projection.projection).handler_call) USING v_events;
        last_xid := v_events[v_n].transaction_id;
        last_position := v_events[v_n].global_position;
        applied := applied + v_n;
        -- Progress must be visible while this transaction runs: application_name is, at once.
        PERFORM set_config('application_name',
            format('annals rebuild %s %s/%s', (replay_projection.projection).projection_name,
                   replay_projection.done + applied, greatest(replay_projection.total, replay_projection.done + applied)), true);
        EXIT WHEN v_n < replay_projection.batch_size;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.replay_projection(annals_internal.projections, xid8, bigint, integer, boolean, bigint, bigint) IS
    'Feeds a projection''s handler its events after a feed position, in batches, reporting progress in application_name.';
REVOKE ALL ON FUNCTION annals_internal.replay_projection(annals_internal.projections, xid8, bigint, integer, boolean, bigint, bigint) FROM PUBLIC;

-- Rebuild without downtime. One transaction: readers keep seeing the old rows (MVCC) until it
-- commits, which is the atomic switch. Appends keep flowing: while the rebuild holds the
-- projection's advisory lock, inline dispatch skips this projection and the rebuild applies those
-- events itself. Only the last step blocks appends, briefly: it takes SHARE on the events table,
-- so every appending transaction has ended, and applies what was appended during the rebuild.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.rebuild_projection(name text, batch_size integer DEFAULT 5000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_proj    annals_internal.projections%ROWTYPE;
    v_table   regclass;
    v_total   bigint;
    v_step    record;
    v_applied bigint := 0;
BEGIN
    IF rebuild_projection.batch_size IS NULL OR rebuild_projection.batch_size < 1 THEN
        PERFORM annals_internal.raise_invalid('batch_size', 'must be >= 1');
    END IF;
    SELECT * INTO v_proj FROM annals_internal.projections AS p WHERE p.projection_name = rebuild_projection.name;
    IF NOT FOUND THEN
        PERFORM annals_internal.raise_error('ST404', format('projection %L does not exist', rebuild_projection.name),
            jsonb_build_object('projection', rebuild_projection.name));
    END IF;
    -- Waits for appends that are applying this projection right now; later ones skip it.
    PERFORM pg_advisory_xact_lock(annals_internal.projection_lock_key(v_proj.projection_name));

    SELECT count(*) INTO v_total
      FROM annals_internal.events AS e
     WHERE (v_proj.event_types IS NULL OR e.event_type = ANY (v_proj.event_types))
       AND (v_proj.categories IS NULL OR e.category = ANY (v_proj.categories));
    PERFORM set_config('application_name', format('annals rebuild %s 0/%s', v_proj.projection_name, v_total), true);

    -- DELETE, not TRUNCATE: TRUNCATE would lock readers out until the end.
    FOREACH v_table IN ARRAY v_proj.tables LOOP
        EXECUTE format('DELETE FROM %s', v_table);
    END LOOP;

    v_step := annals_internal.replay_projection(v_proj, '0', 0, rebuild_projection.batch_size, true, v_total, 0);
    v_applied := v_step.applied;
    LOCK TABLE annals_internal.events IN SHARE MODE;
    v_step := annals_internal.replay_projection(v_proj, v_step.last_xid, v_step.last_position,
                                                rebuild_projection.batch_size, false, v_total, v_applied);
    v_applied := v_applied + v_step.applied;

    IF v_proj.mode = 'async' THEN
        UPDATE annals_internal.subscription_checkpoints AS c
           SET checkpoint_transaction = v_step.last_xid, checkpoint_position = v_step.last_position,
               updated_at = clock_timestamp()
         WHERE c.subscription_name = annals_internal.projection_subscription(v_proj.projection_name);
        DELETE FROM annals_internal.dead_letters AS d
         WHERE d.subscription_name = annals_internal.projection_subscription(v_proj.projection_name);
    END IF;
    UPDATE annals_internal.projections AS p
       SET rebuilt_at = clock_timestamp(), rebuilt_events = v_applied, last_error = NULL, last_error_at = NULL
     WHERE p.projection_name = v_proj.projection_name;
    RETURN v_applied;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.rebuild_projection(text, integer) IS
$$Rebuilds a projection's tables from the whole history without downtime: readers see the old rows until
the rebuild commits, appends keep flowing (blocked only while the last events appended during the rebuild
are applied), and when it returns the tables equal a replay of history. Progress shows in
annals.projections. Holds back the gap-free feed while it runs. Returns the number of events applied.$$;
REVOKE ALL ON FUNCTION annals.rebuild_projection(text, integer) FROM PUBLIC;
