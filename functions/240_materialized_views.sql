-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.register_view(view regclass, refresh_interval interval DEFAULT '1 minute')
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_kind  "char";
    v_owner regrole;
    v_new   boolean;
BEGIN
    IF register_view.view IS NULL THEN
        IF annals_internal.raise_invalid('view', 'must name a materialized view') IS NULL THEN END IF;
    END IF;
    IF register_view.refresh_interval IS NULL OR register_view.refresh_interval < interval '0' THEN
        IF annals_internal.raise_invalid('refresh_interval', 'must be a non-negative interval') IS NULL THEN END IF;
    END IF;
    SELECT c.relkind, c.relowner::regrole INTO v_kind, v_owner FROM pg_catalog.pg_class AS c WHERE c.oid = register_view.view;
    IF v_kind <> 'm' THEN
        IF annals_internal.raise_invalid('view', format('%s is not a materialized view', register_view.view)) IS NULL THEN END IF;
    END IF;
    -- REFRESH ... CONCURRENTLY needs a unique index on plain columns, without a WHERE clause.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_index AS i
                    WHERE i.indrelid = register_view.view AND i.indisunique AND i.indisvalid
                      AND i.indpred IS NULL AND i.indexprs IS NULL) THEN
        IF annals_internal.raise_invalid('view',
            format('%s has no unique index on plain columns without a WHERE clause, so it cannot be refreshed CONCURRENTLY; create one, e.g. CREATE UNIQUE INDEX ON %s (key columns)',
                   register_view.view, register_view.view)) IS NULL THEN END IF;
    END IF;
    IF NOT pg_has_role('annals_owner', v_owner, 'MEMBER') THEN
        IF annals_internal.raise_invalid('view',
            format('%s is owned by %s; only its owner may refresh it: ALTER MATERIALIZED VIEW %s OWNER TO annals_owner',
                   register_view.view, v_owner, register_view.view)) IS NULL THEN END IF;
    END IF;
    IF annals_internal.view_trust_problem(register_view.view) IS NOT NULL THEN
        IF annals_internal.raise_invalid('view', annals_internal.view_trust_problem(register_view.view)) IS NULL THEN END IF;
    END IF;
    INSERT INTO annals_internal.materialized_views AS m (view_name, refresh_interval, registered_at)
    VALUES (register_view.view, register_view.refresh_interval, clock_timestamp())
    ON CONFLICT ON CONSTRAINT materialized_views_pkey DO UPDATE SET refresh_interval = excluded.refresh_interval
    RETURNING (xmax = 0) INTO v_new;
    RETURN v_new;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.register_view(regclass, interval) IS
$$Registers a materialized view for scheduled refreshes (annals.refresh_views). It must have a unique index
on plain columns (for REFRESH ... CONCURRENTLY) and be owned by annals_owner; the functions, views and
tables its query uses must be owned by members of annals_owner (a refresh runs them with its rights).
Returns true when new.$$;
REVOKE ALL ON FUNCTION annals.register_view(regclass, interval) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.unregister_view(view regclass)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    DELETE FROM annals_internal.materialized_views AS m WHERE m.view_name = unregister_view.view;
    RETURN FOUND;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.unregister_view(regclass) IS 'Stops refreshing a materialized view; false when it was not registered.';
REVOKE ALL ON FUNCTION annals.unregister_view(regclass) FROM PUBLIC;

-- Refreshes the registered views that are due: never refreshed, or new events since the last
-- refresh and refresh_interval elapsed (force: all). CONCURRENTLY, so readers are never blocked;
-- a view that was never populated gets a plain first refresh. Runs outside the append path.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.refresh_views(force boolean DEFAULT false)
RETURNS TABLE (view_name text, refreshed boolean, duration interval, error text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    m          annals_internal.materialized_views%ROWTYPE;
    v_head     record;
    v_start    timestamptz;
    v_populated boolean;
    v_snapshot pg_snapshot;
BEGIN
    PERFORM annals_internal.check_all_tenants('annals.refresh_views');  -- M15: tenancy on: '*' only
    FOR m IN SELECT * FROM annals_internal.materialized_views AS mv ORDER BY mv.view_name::text FOR UPDATE SKIP LOCKED LOOP
        -- The feed position the refresh will include: everything below the barrier now.
        SELECT e.transaction_id, e.global_position INTO v_head
          FROM annals_internal.events AS e
         WHERE e.transaction_id < annals_internal.feed_barrier()
         ORDER BY e.transaction_id DESC, e.global_position DESC
         LIMIT 1;
        IF NOT refresh_views.force AND m.refreshed_at IS NOT NULL
           AND (m.refreshed_at + m.refresh_interval > clock_timestamp()
                OR (v_head.transaction_id, v_head.global_position)
                   IS NOT DISTINCT FROM (m.refreshed_through_transaction, m.refreshed_through_position)) THEN
            view_name := m.view_name::text; refreshed := false; duration := NULL; error := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        v_start := clock_timestamp();
        -- Taken just before the REFRESH's own snapshot: whatever is visible here is in the view.
        v_snapshot := pg_current_snapshot();
        SELECT c.relispopulated INTO v_populated FROM pg_catalog.pg_class AS c WHERE c.oid = m.view_name;
        BEGIN
            IF v_populated THEN
                EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', m.view_name);
            ELSE
                EXECUTE format('REFRESH MATERIALIZED VIEW %s', m.view_name);
            END IF;
            UPDATE annals_internal.materialized_views AS mv
               SET refreshed_at = clock_timestamp(), refreshed_through_transaction = v_head.transaction_id,
                   refreshed_through_position = v_head.global_position, refreshed_snapshot = v_snapshot,
                   last_duration = clock_timestamp() - v_start, last_error = NULL
             WHERE mv.view_name = m.view_name;
            view_name := m.view_name::text; refreshed := true; duration := clock_timestamp() - v_start; error := NULL;
        EXCEPTION WHEN OTHERS THEN
            UPDATE annals_internal.materialized_views AS mv
               SET last_error = format('%s (SQLSTATE %s)', SQLERRM, SQLSTATE)
             WHERE mv.view_name = m.view_name;
            view_name := m.view_name::text; refreshed := false; duration := clock_timestamp() - v_start;
            error := format('%s (SQLSTATE %s)', SQLERRM, SQLSTATE);
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.refresh_views(boolean) IS
$$Refreshes the registered materialized views that are due (new events and refresh_interval elapsed; all
with force), CONCURRENTLY so readers never wait. One row per view: refreshed or not, duration, error.
Call from a scheduler or `annals worker`; never from the append path.$$;
REVOKE ALL ON FUNCTION annals.refresh_views(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.refresh_views(boolean) TO annals_writer;

-- Rows from a function with JIT off, as annals.subscription_status (130_feed_status.sql) explains.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.view_freshness_rows()
RETURNS TABLE (
    view_name text,
    refresh_interval interval,
    refreshed_at timestamp with time zone,
    refreshed_through_transaction xid8,
    refreshed_through_position bigint,
    events_behind bigint,
    age interval,
    last_duration interval,
    last_error text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 10
BEGIN ATOMIC
SELECT m.view_name::text AS view_name, m.refresh_interval, m.refreshed_at,
       m.refreshed_through_transaction, m.refreshed_through_position,
       -- Events the last refresh could not see (only ids at or above its xmin can be invisible).
       (SELECT count(*) FROM (SELECT 1 FROM annals_internal.events AS e
                               WHERE m.refreshed_snapshot IS NULL
                                  OR e.transaction_id >= pg_snapshot_xmin(m.refreshed_snapshot)
                                 AND NOT pg_visible_in_snapshot(e.transaction_id, m.refreshed_snapshot)
                               LIMIT 100000) AS pending) AS events_behind,
       clock_timestamp() - m.refreshed_at AS age,
       m.last_duration, m.last_error
  FROM annals_internal.materialized_views AS m;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.view_freshness_rows() IS 'The rows of annals.view_freshness, computed with JIT off.';
REVOKE ALL ON FUNCTION annals_internal.view_freshness_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_internal.view_freshness_rows() TO annals_writer, annals_reader, annals_bi;

CREATE OR REPLACE VIEW annals.view_freshness AS
SELECT * FROM annals_internal.view_freshness_rows();
COMMENT ON VIEW annals.view_freshness IS
$$Each registered materialized view: when it was refreshed, through which feed position (everything up to it
is included), how many events the refresh could not see yet (counted up to 100000, all categories), how long
the last refresh took and its last error.$$;
REVOKE ALL ON annals.view_freshness FROM PUBLIC;
GRANT SELECT ON annals.view_freshness TO annals_writer, annals_reader, annals_bi;
