-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Reads apply upcasting column by column, guarded by `event_type = ANY(types needing work)`, so a
-- store without upcasters pays one tiny lookup per read call and nothing per row.

-- The stored type names that need work on read: aliases and types with upcasters (under any of
-- their names). NULL when there is nothing to do. PL/pgSQL, not SQL: every read and every inline
-- dispatch calls it, and a SQL function this shape (UNION, aggregate) is never inlined, so it
-- would be planned again on each call; PL/pgSQL keeps its plans for the session.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.types_to_upcast()
RETURNS text[]
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM annals_internal.event_type_aliases)
       AND NOT EXISTS (SELECT FROM annals_internal.upcasters) THEN
        RETURN NULL;  -- the common case: nothing registered
    END IF;
    RETURN (SELECT nullif(array_agg(DISTINCT t.name), '{}')
              FROM (SELECT a.alias AS name FROM annals_internal.event_type_aliases AS a
                    UNION ALL
                    SELECT u.event_type FROM annals_internal.upcasters AS u
                    UNION ALL
                    SELECT a.alias FROM annals_internal.event_type_aliases AS a
                      JOIN annals_internal.upcasters AS u ON u.event_type = a.event_type) AS t);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.types_to_upcast() IS
    'Stored event type names that reads must rename or upcast; NULL when none.';
REVOKE ALL ON FUNCTION annals_internal.types_to_upcast() FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.current_type(event_type text)
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT coalesce((SELECT a.event_type FROM annals_internal.event_type_aliases AS a
                      WHERE a.alias = current_type.event_type), current_type.event_type);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.current_type(text) IS 'The current name of an event type (follows an alias).';
REVOKE ALL ON FUNCTION annals_internal.current_type(text) FROM PUBLIC;

-- The schema version an event reads as: the end of its upcaster chain.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.upcast_version(event_type text, schema_version integer)
RETURNS integer
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text := annals_internal.current_type(upcast_version.event_type);
    v      integer := upcast_version.schema_version;
BEGIN
    WHILE EXISTS (SELECT FROM annals_internal.upcasters AS u WHERE u.event_type = v_type AND u.from_version = v) LOOP
        v := v + 1;
    END LOOP;
    RETURN v;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.upcast_version(text, integer) IS
    'The schema version an event of this type and stored version reads as, after every registered upcaster.';
REVOKE ALL ON FUNCTION annals_internal.upcast_version(text, integer) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.upcast_data(event_type text, schema_version integer, data jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_type text := annals_internal.current_type(upcast_data.event_type);
    v      integer := upcast_data.schema_version;
    v_data jsonb := upcast_data.data;
    v_call text;
    v_fn   text;
BEGIN
    LOOP
        SELECT u.upcaster_call, u.upcaster INTO v_call, v_fn
          FROM annals_internal.upcasters AS u
         WHERE u.event_type = v_type AND u.from_version = v;
        EXIT WHEN NOT FOUND;
        EXECUTE format('SELECT %s($1)', v_call) INTO v_data USING v_data;
        IF jsonb_typeof(v_data) IS DISTINCT FROM 'object' THEN
            IF annals_internal.raise_error('ST500',
                format('upcaster %s for %s version %s returned %s, not a JSON object', v_fn, v_type, v,
                       coalesce(jsonb_typeof(v_data), 'NULL')),
                jsonb_build_object('event_type', v_type, 'from_version', v, 'upcaster', v_fn)) IS NULL THEN END IF;
        END IF;
        v := v + 1;
    END LOOP;
    RETURN v_data;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.upcast_data(text, integer, jsonb) IS
    'An event''s data lifted through every registered upcaster from its stored schema version.';
REVOKE ALL ON FUNCTION annals_internal.upcast_data(text, integer, jsonb) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.register_upcaster(event_type text, from_version integer, upcaster regprocedure)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_call text;
    v_new  boolean;
BEGIN
    IF annals_internal.name_problem(register_upcaster.event_type, 256) IS NOT NULL THEN
        IF annals_internal.raise_invalid('event_type', annals_internal.name_problem(register_upcaster.event_type, 256)) IS NULL THEN END IF;
    END IF;
    IF left(register_upcaster.event_type, 1) = '$' THEN
        IF annals_internal.raise_error('ST403', format('event type %L is reserved: names starting with $ belong to Annals', register_upcaster.event_type),
            jsonb_build_object('argument', 'event_type')) IS NULL THEN END IF;
    END IF;
    IF EXISTS (SELECT FROM annals_internal.event_type_aliases AS a WHERE a.alias = register_upcaster.event_type) THEN
        IF annals_internal.raise_invalid('event_type',
            format('%s is an alias; register upcasters under the current name %s', register_upcaster.event_type,
                   annals_internal.current_type(register_upcaster.event_type))) IS NULL THEN END IF;
    END IF;
    IF register_upcaster.from_version IS NULL OR register_upcaster.from_version < 1 THEN
        IF annals_internal.raise_invalid('from_version', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    v_call := annals_internal.check_callback(register_upcaster.upcaster, 'upcaster', 'jsonb', 'jsonb',
                                        '(data jsonb) RETURNS jsonb');
    -- Every read runs it: it must give the same answer every time.
    IF (SELECT p.provolatile FROM pg_catalog.pg_proc AS p WHERE p.oid = register_upcaster.upcaster) = 'v' THEN
        IF annals_internal.raise_invalid('upcaster',
            format('%s is VOLATILE; an upcaster must be IMMUTABLE (or STABLE) so every read sees the same shape', register_upcaster.upcaster)) IS NULL THEN END IF;
    END IF;
    -- Called through a pin, by OID; the upcaster cannot be dropped while registered.
    v_call := annals_internal.pin_callback(register_upcaster.upcaster,
                  annals_internal.upcaster_pin(register_upcaster.event_type, register_upcaster.from_version),
                  format('upcaster of %s from version %s', register_upcaster.event_type, register_upcaster.from_version));
    INSERT INTO annals_internal.upcasters AS u (event_type, from_version, upcaster, upcaster_call, registered_at)
    VALUES (register_upcaster.event_type, register_upcaster.from_version, register_upcaster.upcaster::text, v_call, clock_timestamp())
    ON CONFLICT ON CONSTRAINT upcasters_pkey DO UPDATE
       SET upcaster = excluded.upcaster, upcaster_call = excluded.upcaster_call, registered_at = excluded.registered_at
    RETURNING (xmax = 0) INTO v_new;
    -- Inline projections get events upcast too; their dispatch has the types to upcast built in.
    PERFORM annals_internal.sync_dispatch_trigger();
    RETURN v_new;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.register_upcaster(text, integer, regprocedure) IS
$$Registers an upcaster: an IMMUTABLE function (data jsonb) RETURNS jsonb lifting event_type's data from
from_version to from_version + 1. Every read (stream, as-of, feed, category, subscriptions, projections)
then returns such events upcast through the whole chain with schema_version set to the result's; stored
bytes never change (read with raw => true to see them). The upcaster and its schema must be owned by
annals_owner or a member; it is called by OID and cannot be dropped while registered. Returns true when new.$$;
REVOKE ALL ON FUNCTION annals.register_upcaster(text, integer, regprocedure) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.register_event_alias(alias text, event_type text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_new boolean;
BEGIN
    IF annals_internal.name_problem(register_event_alias.alias, 256) IS NOT NULL THEN
        IF annals_internal.raise_invalid('alias', annals_internal.name_problem(register_event_alias.alias, 256)) IS NULL THEN END IF;
    END IF;
    IF left(register_event_alias.alias, 1) = '$' THEN
        IF annals_internal.raise_error('ST403', format('event type %L is reserved: names starting with $ belong to Annals', register_event_alias.alias),
            jsonb_build_object('argument', 'alias')) IS NULL THEN END IF;
    END IF;
    IF annals_internal.name_problem(register_event_alias.event_type, 256) IS NOT NULL THEN
        IF annals_internal.raise_invalid('event_type', annals_internal.name_problem(register_event_alias.event_type, 256)) IS NULL THEN END IF;
    END IF;
    IF left(register_event_alias.event_type, 1) = '$' THEN
        IF annals_internal.raise_error('ST403', format('event type %L is reserved: names starting with $ belong to Annals', register_event_alias.event_type),
            jsonb_build_object('argument', 'event_type')) IS NULL THEN END IF;
    END IF;
    IF register_event_alias.alias = register_event_alias.event_type THEN
        IF annals_internal.raise_invalid('alias', 'must differ from event_type') IS NULL THEN END IF;
    END IF;
    IF EXISTS (SELECT FROM annals_internal.event_type_aliases AS a WHERE a.alias = register_event_alias.event_type) THEN
        IF annals_internal.raise_invalid('event_type', format('%s is itself an alias; point at the current name', register_event_alias.event_type)) IS NULL THEN END IF;
    END IF;
    IF EXISTS (SELECT FROM annals_internal.upcasters AS u WHERE u.event_type = register_event_alias.alias) THEN
        IF annals_internal.raise_invalid('alias', format('%s has upcasters registered; move them to %s first', register_event_alias.alias, register_event_alias.event_type)) IS NULL THEN END IF;
    END IF;
    INSERT INTO annals_internal.event_type_aliases AS a (alias, event_type, registered_at)
    VALUES (register_event_alias.alias, register_event_alias.event_type, clock_timestamp())
    ON CONFLICT ON CONSTRAINT event_type_aliases_pkey DO UPDATE
       SET event_type = excluded.event_type, registered_at = excluded.registered_at
    RETURNING (xmax = 0) INTO v_new;
    -- Inline projections get events upcast too; their dispatch has the types to upcast built in.
    PERFORM annals_internal.sync_dispatch_trigger();
    RETURN v_new;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.register_event_alias(text, text) IS
$$Renames an event type on read: events stored as alias read as event_type (and go through event_type's
upcasters). Type filters of feeds, subscriptions and projections match the new name. Returns true when new.$$;
REVOKE ALL ON FUNCTION annals.register_event_alias(text, text) FROM PUBLIC;

-- annals_internal.as_read, the row every read returns, is in functions/431_as_read.sql: it also
-- decrypts personal data, and its SQL body needs those functions to exist first.

-- The type name a reader sees, for filters: a projection or subscription asking for ItemAdjusted
-- also gets events stored under an alias of it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.read_type(event_type text, up text[])
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN CASE WHEN event_type = ANY (up) THEN annals_internal.current_type(event_type) ELSE event_type END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.read_type(text, text[]) IS
    'The event type name reads show (follows aliases listed in up), used by type filters.';
REVOKE ALL ON FUNCTION annals_internal.read_type(text, text[]) FROM PUBLIC;
