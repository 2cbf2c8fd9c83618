-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Applies an appending statement's events to every enabled inline projection, in name order, in
-- the append's transaction: one handler call per projection per statement, never per row. A
-- handler error aborts the append. A projection being rebuilt is skipped: the rebuild applies
-- those events before it swaps in.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.dispatch_inline()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p        record;
    v_events annals.event[];
    v_up     text[];
    v_first  boolean := true;
BEGIN
    FOR p IN SELECT pr.projection_name, pr.handler_call, pr.event_types, pr.categories
               FROM annals_internal.projections AS pr
              WHERE pr.mode = 'inline' AND pr.enabled
              ORDER BY pr.projection_name LOOP
        IF v_first THEN  -- looked up once per statement, only when some projection runs
            v_up := annals_internal.types_to_upcast();
            v_first := false;
        END IF;
        SELECT array_agg(annals_internal.as_read(n.stream_id, n.stream_version, n.global_position, n.event_id, n.event_type,
                             n.schema_version, n.data, n.metadata, n.transaction_id, n.recorded_at, v_up)
                         ORDER BY n.global_position)
          INTO v_events
          FROM new_events AS n
         WHERE (p.event_types IS NULL OR annals_internal.read_type(n.event_type, v_up) = ANY (p.event_types))
           AND (p.categories IS NULL OR n.category = ANY (p.categories));
        CONTINUE WHEN v_events IS NULL;
        IF NOT pg_try_advisory_xact_lock_shared(annals_internal.projection_lock_key(p.projection_name)) THEN
            -- Being rebuilt: the rebuild applies these events. Note the skip, so that a rebuild
            -- that fails leaves the projection visibly stale rather than silently short.
            INSERT INTO annals_internal.projection_skips AS k (projection_name, transaction_id, skipped_at)
            VALUES (p.projection_name, pg_current_xact_id(), clock_timestamp())
            ON CONFLICT ON CONSTRAINT projection_skips_pkey DO NOTHING;
            CONTINUE;
        END IF;
        EXECUTE format('SELECT %s($1)', p.handler_call) USING v_events;
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.dispatch_inline() IS
    'Trigger function: hands each appending statement''s events to the enabled inline projections, filtered, in name order.';
REVOKE ALL ON FUNCTION annals_internal.dispatch_inline() FROM PUBLIC;

CREATE OR REPLACE TRIGGER events_dispatch_inline
    AFTER INSERT ON annals_internal.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.dispatch_inline();
-- CREATE OR REPLACE leaves the trigger enabled; put it back to what the registry says.
SELECT annals_internal.sync_dispatch_trigger();
