-- +goose Up
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

-- A rebuild takes a number from its projection's attempts sequence before it starts, and a
-- successful one records that number in the registry. Sequences do not roll back: a rebuild that
-- failed leaves the sequence ahead of the registry, and the projection shows as stale.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.rebuild_attempts_sequence(projection text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN 'rebuild_attempts_' || to_hex(hashtextextended('annals:projection:' || projection, 0));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.rebuild_attempts_sequence(text) IS
    'Name of the sequence in annals_internal that numbers a projection''s rebuild attempts.';
REVOKE ALL ON FUNCTION annals_internal.rebuild_attempts_sequence(text) FROM PUBLIC;

-- The sequence in which a rebuild notes the first feed position of the batch it is applying.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.rebuild_position_sequence(projection text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN 'rebuild_position_' || to_hex(hashtextextended('annals:projection:' || projection, 0));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.rebuild_position_sequence(text) IS
    'Name of the sequence in annals_internal that holds the first feed position of the batch a rebuild is applying.';
REVOKE ALL ON FUNCTION annals_internal.rebuild_position_sequence(text) FROM PUBLIC;

-- How many rebuilds of a projection were started, 0 when none. Public (a status figure, like
-- annals.feed_head): annals.projections calls it for readers who may not read the sequence.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.rebuild_attempts(projection text)
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    SELECT coalesce(pg_sequence_last_value(to_regclass(
               'annals_internal.' || quote_ident(annals_internal.rebuild_attempts_sequence(rebuild_attempts.projection)))), 0);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.rebuild_attempts(text) IS
    'How many rebuilds of the projection were started, failed ones included (0: none, or an unknown name); annals.projections reports ''stale'' while it is ahead of the last successful rebuild.';
REVOKE ALL ON FUNCTION annals.rebuild_attempts(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.rebuild_attempts(text) TO annals_writer, annals_reader, annals_bi;

-- Whether the store holds events a projection with these filters would apply (recorded at or
-- after since, when given): a projection registered, changed or re-enabled then misses them
-- until it is rebuilt.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.has_matching_events(event_types text[], categories text[], since timestamptz)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_up text[] := annals_internal.types_to_upcast();
BEGIN
    RETURN EXISTS (SELECT FROM annals_internal.events AS e
                    WHERE (has_matching_events.event_types IS NULL
                           OR annals_internal.read_type(e.event_type, v_up) = ANY (has_matching_events.event_types))
                      AND (has_matching_events.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (has_matching_events.categories))
                      AND (has_matching_events.since IS NULL OR e.recorded_at >= has_matching_events.since));
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.has_matching_events(text[], text[], timestamptz) IS
    'True when some stored event passes these projection filters (NULL: every type, every category), recorded at or after since (NULL: ever).';
REVOKE ALL ON FUNCTION annals_internal.has_matching_events(text[], text[], timestamptz) FROM PUBLIC;

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
SET jit = off
AS $$
DECLARE
    v_call     text;
    v_table    regclass;
    v_now      timestamptz := clock_timestamp();
    v_existing annals_internal.projections%ROWTYPE;
    v_sub      text;
    v_changed  boolean;
BEGIN
    IF annals_internal.name_problem(register_projection.name, 128) IS NOT NULL THEN
        IF annals_internal.raise_invalid('name', annals_internal.name_problem(register_projection.name, 128)) IS NULL THEN END IF;
    END IF;
    IF register_projection.mode IS NULL OR register_projection.mode NOT IN ('inline', 'async') THEN
        IF annals_internal.raise_invalid('mode', 'must be ''inline'' or ''async''') IS NULL THEN END IF;
    END IF;
    v_call := annals_internal.check_callback(register_projection.handler, 'handler', 'annals.event[]', 'void',
                                        '(events annals.event[]) RETURNS void');
    IF register_projection.tables IS NULL OR cardinality(register_projection.tables) = 0 THEN
        IF annals_internal.raise_invalid('tables', 'name at least one table the projection owns') IS NULL THEN END IF;
    END IF;
    FOREACH v_table IN ARRAY register_projection.tables LOOP
        IF v_table IS NULL THEN
            IF annals_internal.raise_invalid('tables', 'must not contain NULL') IS NULL THEN END IF;
        END IF;
        IF (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = v_table) NOT IN ('r', 'p') THEN
            IF annals_internal.raise_invalid('tables', format('%s is not a table', v_table)) IS NULL THEN END IF;
        END IF;
        -- One privilege per call: with a list, has_table_privilege is true when ANY is held.
        IF NOT (has_table_privilege('annals_owner', v_table, 'SELECT') AND has_table_privilege('annals_owner', v_table, 'INSERT')
                AND has_table_privilege('annals_owner', v_table, 'UPDATE') AND has_table_privilege('annals_owner', v_table, 'DELETE')
                AND has_schema_privilege('annals_owner',
                        (SELECT c.relnamespace FROM pg_catalog.pg_class AS c WHERE c.oid = v_table), 'USAGE')) THEN
            IF annals_internal.raise_invalid('tables',
                format('annals_owner needs SELECT, INSERT, UPDATE, DELETE on %s (rebuilds replace its rows); GRANT them, with USAGE on its schema', v_table)) IS NULL THEN END IF;
        END IF;
        IF annals_internal.table_trust_problem(v_table) IS NOT NULL THEN
            IF annals_internal.raise_invalid('tables', annals_internal.table_trust_problem(v_table)) IS NULL THEN END IF;
        END IF;
        IF EXISTS (SELECT FROM annals_internal.projections AS p
                    WHERE v_table = ANY (p.tables) AND p.projection_name <> register_projection.name) THEN
            IF annals_internal.raise_invalid('tables', format('%s already belongs to another projection', v_table)) IS NULL THEN END IF;
        END IF;
    END LOOP;
    IF cardinality(register_projection.event_types) = 0 THEN
        IF annals_internal.raise_invalid('event_types', 'must be NULL (every type) or a non-empty array') IS NULL THEN END IF;
    END IF;
    IF cardinality(register_projection.categories) = 0 THEN
        IF annals_internal.raise_invalid('categories', 'must be NULL (every category) or a non-empty array') IS NULL THEN END IF;
    END IF;

    SELECT * INTO v_existing FROM annals_internal.projections AS p WHERE p.projection_name = register_projection.name FOR UPDATE;
    -- An inline projection's tables already hold every event; an async one would start from its
    -- checkpoint and apply them all again. Switching is drop, register, rebuild.
    IF v_existing.mode IS DISTINCT FROM register_projection.mode AND v_existing.projection_name IS NOT NULL THEN
        IF annals_internal.raise_invalid('mode',
            format('projection %L is %s; to switch it to %s: SELECT annals.drop_projection(%L), register it again, then annals.rebuild_projection(%L)',
                   register_projection.name, v_existing.mode, register_projection.mode, register_projection.name, register_projection.name)) IS NULL THEN END IF;
    END IF;
    -- Called through a pin, by OID; the handler cannot be dropped while registered.
    v_call := annals_internal.pin_callback(register_projection.handler, annals_internal.handler_pin(register_projection.name),
                                           format('handler of projection %L', register_projection.name));
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS annals_internal.%I AS bigint',
                   annals_internal.rebuild_attempts_sequence(register_projection.name));
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS annals_internal.%I AS bigint MINVALUE 0',
                   annals_internal.rebuild_position_sequence(register_projection.name));
    -- Tables that miss history are incomplete until a rebuild: an inline projection registered
    -- over matching events, or any projection whose handler, tables or filters changed. A new
    -- async projection starts from the beginning of the feed, so it only lags.
    v_changed := CASE WHEN v_existing.projection_name IS NULL THEN register_projection.mode = 'inline'
                      ELSE (v_existing.handler, v_existing.tables, v_existing.event_types, v_existing.categories)
                           IS DISTINCT FROM (register_projection.handler::text, register_projection.tables,
                                             register_projection.event_types, register_projection.categories) END;
    INSERT INTO annals_internal.projections AS p
           (projection_name, handler, handler_call, tables, event_types, categories, mode, created_at, updated_at,
            incomplete_since, rebuilt_attempt)
    VALUES (register_projection.name, register_projection.handler::text, v_call, register_projection.tables,
            register_projection.event_types, register_projection.categories, register_projection.mode, v_now, v_now,
            CASE WHEN v_changed AND annals_internal.has_matching_events(register_projection.event_types, register_projection.categories, NULL)
                 THEN v_now END,
            annals.rebuild_attempts(register_projection.name))
    ON CONFLICT ON CONSTRAINT projections_pkey DO UPDATE
       SET handler = excluded.handler, handler_call = excluded.handler_call, tables = excluded.tables,
           event_types = excluded.event_types, categories = excluded.categories, mode = excluded.mode,
           updated_at = excluded.updated_at, incomplete_since = coalesce(p.incomplete_since, excluded.incomplete_since);

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
annals_owner needs EXECUTE on it and SELECT, INSERT, UPDATE, DELETE on the tables; the handler, the tables
(with their partitions and trigger functions) and their schemas must be owned by annals_owner or a member
of it. The handler is called by OID and cannot be dropped while registered. An inline projection registered
over existing matching events (or any projection whose handler, tables or filters change) is 'incomplete'
until annals.rebuild_projection(name) applies the past events. Returns true when created.$$;
REVOKE ALL ON FUNCTION annals.register_projection(text, regprocedure, regclass[], text[], text[], text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.set_projection_enabled(name text, enabled boolean)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF set_projection_enabled.enabled IS NULL THEN
        IF annals_internal.raise_invalid('enabled', 'must not be null') IS NULL THEN END IF;
    END IF;
    -- updated_at keeps the time it was disabled; an inline projection enabled again missed what
    -- was appended since then, and is incomplete until rebuilt.
    UPDATE annals_internal.projections AS p
       SET enabled = set_projection_enabled.enabled,
           updated_at = CASE WHEN p.enabled = set_projection_enabled.enabled THEN p.updated_at ELSE clock_timestamp() END,
           incomplete_since = CASE WHEN set_projection_enabled.enabled AND NOT p.enabled AND p.mode = 'inline'
                                        AND annals_internal.has_matching_events(p.event_types, p.categories, p.updated_at)
                                   THEN coalesce(p.incomplete_since, p.updated_at)
                                   ELSE p.incomplete_since END
     WHERE p.projection_name = set_projection_enabled.name;
    IF NOT FOUND THEN
        IF annals_internal.raise_error('ST404', format('projection %L does not exist', set_projection_enabled.name),
            jsonb_build_object('projection', set_projection_enabled.name)) IS NULL THEN END IF;
    END IF;
    PERFORM annals_internal.sync_dispatch_trigger();
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.set_projection_enabled(text, boolean) IS
$$Disables or re-enables a projection. A disabled inline projection misses the events appended meanwhile:
enabled again, it is 'incomplete' (when any were) until annals.rebuild_projection. A disabled async
projection simply waits.$$;
REVOKE ALL ON FUNCTION annals.set_projection_enabled(text, boolean) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.drop_projection(name text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    DELETE FROM annals_internal.projections AS p WHERE p.projection_name = drop_projection.name;
    IF NOT FOUND THEN
        IF annals_internal.raise_error('ST404', format('projection %L does not exist', drop_projection.name),
            jsonb_build_object('projection', drop_projection.name),
            'Check the name: annals.projections lists the registered projections.') IS NULL THEN END IF;
    END IF;
    DELETE FROM annals_internal.subscriptions AS s
     WHERE s.subscription_name = annals_internal.projection_subscription(drop_projection.name);
    PERFORM annals_internal.sync_dispatch_trigger();
    -- After the dispatch stopped calling it: an append still running that dispatch has ended by
    -- now (the regeneration's lock waited for it), so no skip for this name can follow.
    DELETE FROM annals_internal.projection_skips AS k WHERE k.projection_name = drop_projection.name;
    -- The pin kept the handler from being dropped; unregistered, it is the user's again. Unless a
    -- rebuild or an async run still calls it (they hold the projection's advisory lock): then the
    -- pin stays until the next annals migrate, and DROP FUNCTION of the handler needs CASCADE.
    IF pg_try_advisory_xact_lock(annals_internal.projection_lock_key(drop_projection.name)) THEN
        EXECUTE format('DROP FUNCTION IF EXISTS annals_internal.%I(annals.event[])', annals_internal.handler_pin(drop_projection.name));
    END IF;
    -- The attempts sequence stays: a rebuild still running holds it, and dropping it here would
    -- wait for that rebuild while the rebuild waits for this transaction's lock on the registry
    -- row. A later registration of the name starts from its value; annals migrate drops orphans.
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.drop_projection(text) IS
$$Unregisters a projection (its tables and handler stay; drop them yourself); returns true. Errors: ST404
when it does not exist (DETAIL {"projection"}).$$;
REVOKE ALL ON FUNCTION annals.drop_projection(text) FROM PUBLIC;

-- Registrations made before callbacks were pinned (schema 9 and older) get their pins and
-- attempt sequences here, on the migrate that installs this file. A callback dropped meanwhile
-- stays unpinned; annals doctor reports it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.pin_registered_callbacks()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT p.projection_name, to_regprocedure(p.handler) AS fn FROM annals_internal.projections AS p
              WHERE p.handler_call <> format('annals_internal.%I', annals_internal.handler_pin(p.projection_name))
                 OR to_regclass(format('annals_internal.%I', annals_internal.rebuild_attempts_sequence(p.projection_name))) IS NULL
                 OR to_regclass(format('annals_internal.%I', annals_internal.rebuild_position_sequence(p.projection_name))) IS NULL LOOP
        IF r.fn IS NOT NULL THEN
            UPDATE annals_internal.projections AS p
               SET handler_call = annals_internal.pin_callback(r.fn, annals_internal.handler_pin(r.projection_name),
                                                               format('handler of projection %L', r.projection_name))
             WHERE p.projection_name = r.projection_name;
        END IF;
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS annals_internal.%I AS bigint',
                       annals_internal.rebuild_attempts_sequence(r.projection_name));
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS annals_internal.%I AS bigint MINVALUE 0',
                       annals_internal.rebuild_position_sequence(r.projection_name));
    END LOOP;
    -- Attempt sequences and pins of dropped projections (drop_projection leaves a sequence always,
    -- and a pin while a rebuild still used it).
    FOR r IN SELECT c.relname FROM pg_catalog.pg_class AS c
              WHERE c.relnamespace = 'annals_internal'::regnamespace AND c.relkind = 'S' AND c.relname ~ '^rebuild_(attempts|position)_[0-9a-f]+$'
                AND NOT EXISTS (SELECT FROM annals_internal.projections AS p
                                 WHERE c.relname IN (annals_internal.rebuild_attempts_sequence(p.projection_name),
                                                     annals_internal.rebuild_position_sequence(p.projection_name))) LOOP
        EXECUTE format('DROP SEQUENCE annals_internal.%I', r.relname);
    END LOOP;
    FOR r IN SELECT f.oid::regprocedure AS pin FROM pg_catalog.pg_proc AS f
              WHERE f.pronamespace = 'annals_internal'::regnamespace AND f.proname ~ '^handler_[0-9a-f]+$'
                AND NOT EXISTS (SELECT FROM annals_internal.projections AS p
                                 WHERE annals_internal.handler_pin(p.projection_name) = f.proname) LOOP
        EXECUTE format('DROP FUNCTION %s', r.pin);
    END LOOP;
    FOR r IN SELECT u.event_type, u.from_version, to_regprocedure(u.upcaster) AS fn FROM annals_internal.upcasters AS u
              WHERE u.upcaster_call <> format('annals_internal.%I', annals_internal.upcaster_pin(u.event_type, u.from_version))
                AND to_regprocedure(u.upcaster) IS NOT NULL LOOP
        UPDATE annals_internal.upcasters AS u
           SET upcaster_call = annals_internal.pin_callback(r.fn, annals_internal.upcaster_pin(r.event_type, r.from_version),
                                   format('upcaster of %s from version %s', r.event_type, r.from_version))
         WHERE u.event_type = r.event_type AND u.from_version = r.from_version;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.pin_registered_callbacks() IS
    'Pins every registered handler and upcaster that is not pinned yet, creates missing rebuild-attempt sequences and drops those of dropped projections (run by every migrate).';
REVOKE ALL ON FUNCTION annals_internal.pin_registered_callbacks() FROM PUBLIC;
SELECT annals_internal.pin_registered_callbacks();
