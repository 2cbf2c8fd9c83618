-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The advisory-lock key of a projection. A rebuild holds it exclusively; inline dispatch and the
-- async runner try it shared and skip the projection while a rebuild owns it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.projection_lock_key(projection text)
RETURNS bigint
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN hashtextextended('annals:projection:' || projection, 0);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.projection_lock_key(text) IS
    'Advisory-lock key of a projection: exclusive while it is rebuilt, shared while it is applied.';
REVOKE ALL ON FUNCTION annals_internal.projection_lock_key(text) FROM PUBLIC;

-- The subscription that carries an async projection's checkpoint and dead letters. '$' names are
-- reserved, so no user subscription can collide with it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.projection_subscription(projection text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN '$projection:' || projection;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.projection_subscription(text) IS
    'Name of the internal subscription holding an async projection''s checkpoint.';
REVOKE ALL ON FUNCTION annals_internal.projection_subscription(text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.register_projection(
    name        text,
    handler     regprocedure,
    tables      regclass[],
    event_types text[] DEFAULT NULL,
    categories  text[] DEFAULT NULL,
    mode        text   DEFAULT 'inline')
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call     text;
    v_table    regclass;
    v_now      timestamptz := clock_timestamp();
    v_existing annals_internal.projections%ROWTYPE;
    v_sub      text;
BEGIN
    IF annals_internal.name_problem(register_projection.name, 128) IS NOT NULL THEN
        PERFORM annals_internal.raise_invalid('name', annals_internal.name_problem(register_projection.name, 128));
    END IF;
    IF register_projection.mode IS NULL OR register_projection.mode NOT IN ('inline', 'async') THEN
        PERFORM annals_internal.raise_invalid('mode', 'must be ''inline'' or ''async''');
    END IF;
    v_call := annals_internal.check_callback(register_projection.handler, 'handler', 'annals.event[]', 'void',
                                        '(events annals.event[]) RETURNS void');
    IF register_projection.tables IS NULL OR cardinality(register_projection.tables) = 0 THEN
        PERFORM annals_internal.raise_invalid('tables', 'name at least one table the projection owns');
    END IF;
    FOREACH v_table IN ARRAY register_projection.tables LOOP
        IF v_table IS NULL THEN
            PERFORM annals_internal.raise_invalid('tables', 'must not contain NULL');
        END IF;
        IF (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_table) NOT IN ('r', 'p') THEN
            PERFORM annals_internal.raise_invalid('tables', format('%s is not a table', v_table));
        END IF;
        -- One privilege per call: with a list, has_table_privilege is true when ANY is held.
        IF NOT (has_table_privilege('annals_owner', v_table, 'SELECT') AND has_table_privilege('annals_owner', v_table, 'INSERT')
                AND has_table_privilege('annals_owner', v_table, 'UPDATE') AND has_table_privilege('annals_owner', v_table, 'DELETE')
                AND has_schema_privilege('annals_owner',
                        (SELECT c.relnamespace FROM pg_catalog.pg_class AS c WHERE c.oid = v_table), 'USAGE')) THEN
            PERFORM annals_internal.raise_invalid('tables',
                format('annals_owner needs SELECT, INSERT, UPDATE, DELETE on %s (rebuilds replace its rows); GRANT them, with USAGE on its schema', v_table));
        END IF;
        IF EXISTS (SELECT FROM annals_internal.projections AS p
                    WHERE v_table = ANY (p.tables) AND p.projection_name <> register_projection.name) THEN
            PERFORM annals_internal.raise_invalid('tables', format('%s already belongs to another projection', v_table));
        END IF;
    END LOOP;
    IF cardinality(register_projection.event_types) = 0 THEN
        PERFORM annals_internal.raise_invalid('event_types', 'must be NULL (every type) or a non-empty array');
    END IF;
    IF cardinality(register_projection.categories) = 0 THEN
        PERFORM annals_internal.raise_invalid('categories', 'must be NULL (every category) or a non-empty array');
    END IF;

    SELECT * INTO v_existing FROM annals_internal.projections AS p WHERE p.projection_name = register_projection.name FOR UPDATE;
    -- An inline projection's tables already hold every event; an async one would start from its
    -- checkpoint and apply them all again. Switching is drop, register, rebuild.
    IF v_existing.mode IS DISTINCT FROM register_projection.mode AND v_existing.projection_name IS NOT NULL THEN
        PERFORM annals_internal.raise_invalid('mode',
            format('projection %L is %s; to switch it to %s: SELECT annals.drop_projection(%L), register it again, then annals.rebuild_projection(%L)',
                   register_projection.name, v_existing.mode, register_projection.mode, register_projection.name, register_projection.name));
    END IF;
    INSERT INTO annals_internal.projections AS p
           (projection_name, handler, handler_call, tables, event_types, categories, mode, created_at, updated_at)
    VALUES (register_projection.name, register_projection.handler::text, v_call, register_projection.tables,
            register_projection.event_types, register_projection.categories, register_projection.mode, v_now, v_now)
    ON CONFLICT ON CONSTRAINT projections_pkey DO UPDATE
       SET handler = excluded.handler, handler_call = excluded.handler_call, tables = excluded.tables,
           event_types = excluded.event_types, categories = excluded.categories, mode = excluded.mode,
           updated_at = excluded.updated_at;

    -- An async projection follows the feed through an internal subscription with the same filters.
    v_sub := annals_internal.projection_subscription(register_projection.name);
    IF register_projection.mode = 'async' THEN
        INSERT INTO annals_internal.subscriptions AS s (subscription_name, event_types, categories, group_size, created_at)
        VALUES (v_sub, register_projection.event_types, register_projection.categories, 1, v_now)
        ON CONFLICT ON CONSTRAINT subscriptions_pkey DO UPDATE
           SET event_types = excluded.event_types, categories = excluded.categories;
        INSERT INTO annals_internal.subscription_checkpoints
               (subscription_name, member, checkpoint_transaction, checkpoint_position, updated_at)
        VALUES (v_sub, 0, '0', 0, v_now)
        ON CONFLICT ON CONSTRAINT subscription_checkpoints_pkey DO NOTHING;
    ELSE
        DELETE FROM annals_internal.subscriptions AS s WHERE s.subscription_name = v_sub;
    END IF;

    PERFORM annals_internal.sync_dispatch_trigger();
    RETURN v_existing.projection_name IS NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.register_projection(text, regprocedure, regclass[], text[], text[], text) IS
$$Registers (or updates) a projection: a handler (events annals.event[]) RETURNS void that applies a batch
of events to the tables it owns, optionally only for some event_types or categories. mode 'inline' runs it
in every appending transaction (an error aborts the append); 'async' runs it from the gap-free feed via
annals.run_async_projections(). The handler runs as annals_owner (or as its own owner if SECURITY DEFINER):
annals_owner needs EXECUTE on it and SELECT, INSERT, UPDATE, DELETE on the tables. A newly registered
projection starts empty: run annals.rebuild_projection(name) to apply past events. Returns true when created.$$;
REVOKE ALL ON FUNCTION annals.register_projection(text, regprocedure, regclass[], text[], text[], text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.set_projection_enabled(name text, enabled boolean)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF set_projection_enabled.enabled IS NULL THEN
        PERFORM annals_internal.raise_invalid('enabled', 'must not be null');
    END IF;
    UPDATE annals_internal.projections AS p
       SET enabled = set_projection_enabled.enabled, updated_at = clock_timestamp()
     WHERE p.projection_name = set_projection_enabled.name;
    IF NOT FOUND THEN
        PERFORM annals_internal.raise_error('ST404', format('projection %L does not exist', set_projection_enabled.name),
            jsonb_build_object('projection', set_projection_enabled.name));
    END IF;
    PERFORM annals_internal.sync_dispatch_trigger();
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.set_projection_enabled(text, boolean) IS
$$Disables or re-enables a projection. A disabled inline projection misses the events appended meanwhile:
rebuild it after enabling (annals.rebuild_projection). A disabled async projection simply waits.$$;
REVOKE ALL ON FUNCTION annals.set_projection_enabled(text, boolean) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.drop_projection(name text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM annals_internal.projections AS p WHERE p.projection_name = drop_projection.name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM annals_internal.subscriptions AS s
     WHERE s.subscription_name = annals_internal.projection_subscription(drop_projection.name);
    PERFORM annals_internal.sync_dispatch_trigger();
    -- After the dispatch stopped calling it: an append still running that dispatch has ended by
    -- now (the regeneration's lock waited for it), so no skip for this name can follow.
    DELETE FROM annals_internal.projection_skips AS k WHERE k.projection_name = drop_projection.name;
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.drop_projection(text) IS
    'Unregisters a projection (its tables and handler stay; drop them yourself). False when it did not exist.';
REVOKE ALL ON FUNCTION annals.drop_projection(text) FROM PUBLIC;
