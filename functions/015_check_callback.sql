-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Whether a role may be trusted with annals_owner's rights: a member of it (superusers are members
-- of every role). pg_database_owner stands for the current database's owner, who owns `public`.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.trusted_role(role oid)
RETURNS boolean
LANGUAGE sql
STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT pg_has_role(CASE WHEN trusted_role.role = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'pg_database_owner')
                            THEN (SELECT d.datdba FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
                            ELSE trusted_role.role END,
                       'annals_owner', 'MEMBER');
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.trusted_role(oid) IS
    'True when the role is annals_owner, a member of it, or a superuser (pg_database_owner: the database''s owner).';
REVOKE ALL ON FUNCTION annals_internal.trusted_role(oid) FROM PUBLIC;

-- Projection handlers and upcasters are user functions that Annals calls as annals_owner. This
-- checks one before it is registered and returns its quoted name: the signature, EXECUTE and
-- schema USAGE for annals_owner (without them every call fails later, far from the cause), and an
-- owner and schema owner already trusted with annals_owner (a function's owner can redefine it at
-- any time, SECURITY DEFINER or not, and its schema's owner can drop it and create another, so
-- either could otherwise run anything as annals_owner).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_callback(
    fn          regprocedure,
    argument    text,
    arg_type    regtype,
    return_type regtype,
    signature   text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_proc pg_catalog.pg_proc%ROWTYPE;
BEGIN
    IF check_callback.fn IS NULL THEN
        IF annals_internal.raise_invalid(check_callback.argument, 'must name a function ' || check_callback.signature) IS NULL THEN END IF;
    END IF;
    SELECT * INTO v_proc FROM pg_catalog.pg_proc AS p WHERE p.oid = check_callback.fn;
    IF v_proc.prokind <> 'f' OR v_proc.pronargs <> 1 OR v_proc.proargtypes[0] <> check_callback.arg_type
       OR v_proc.prorettype <> check_callback.return_type OR v_proc.proretset THEN
        IF annals_internal.raise_invalid(check_callback.argument,
            format('%s must have the signature %s', check_callback.fn, check_callback.signature)) IS NULL THEN END IF;
    END IF;
    IF NOT has_function_privilege('annals_owner', check_callback.fn, 'EXECUTE')
       OR NOT has_schema_privilege('annals_owner', v_proc.pronamespace, 'USAGE') THEN
        IF annals_internal.raise_invalid(check_callback.argument,
            format('annals_owner cannot execute %s; GRANT EXECUTE ON FUNCTION %s TO annals_owner, with USAGE on its schema',
                   check_callback.fn, check_callback.fn)) IS NULL THEN END IF;
    END IF;
    IF NOT annals_internal.trusted_role(v_proc.proowner) THEN
        IF annals_internal.raise_invalid(check_callback.argument,
            format('%s is owned by %s, who is not a member of annals_owner; since its owner could redefine it to run anything as annals_owner, ALTER FUNCTION %s OWNER TO annals_owner (or to a role that is a member of it)',
                   check_callback.fn, v_proc.proowner::regrole, check_callback.fn)) IS NULL THEN END IF;
    END IF;
    -- A schema's owner may drop what is in it; the pin below turns that into a DROP ... CASCADE
    -- that breaks appends, so the schema must be trusted as well.
    IF NOT annals_internal.trusted_role((SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace)) THEN
        IF annals_internal.raise_invalid(check_callback.argument,
            format('the schema of %s, %I, is owned by %s, who is not a member of annals_owner and could drop and replace the function; ALTER SCHEMA %I OWNER TO annals_owner (or move the function to a schema owned by a member)',
                   check_callback.fn, (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace),
                   (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace)::regrole,
                   (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace))) IS NULL THEN END IF;
    END IF;
    RETURN format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace), v_proc.proname);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_callback(regprocedure, text, regtype, regtype, text) IS
    'Checks a handler or upcaster (signature, annals_owner''s EXECUTE and USAGE, trusted owner and schema owner) and returns its quoted name.';
REVOKE ALL ON FUNCTION annals_internal.check_callback(regprocedure, text, regtype, regtype, text) FROM PUBLIC;

-- A registered callback is called through a pin: a SQL function in annals_internal whose
-- SQL-standard body calls it. The body is stored parsed, so the call is bound to the function's
-- OID (a function created later under the same name is never called), and PostgreSQL records the
-- dependency, so DROP FUNCTION fails while the callback is registered. The planner inlines the pin
-- (no SET clause, one SELECT), so a call through it costs what a direct call does.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.pin_callback(fn regprocedure, pin text, purpose text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_proc pg_catalog.pg_proc%ROWTYPE;
    v_pin  regprocedure;
BEGIN
    SELECT * INTO STRICT v_proc FROM pg_catalog.pg_proc AS p WHERE p.oid = pin_callback.fn;
    EXECUTE format('CREATE OR REPLACE FUNCTION annals_internal.%I(%s) RETURNS %s LANGUAGE sql %s %s '
                   'BEGIN ATOMIC SELECT %I.%I($1::%s); END',
                   pin_callback.pin, v_proc.proargtypes[0]::regtype, v_proc.prorettype::regtype,
                   CASE v_proc.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
                   CASE v_proc.proparallel WHEN 's' THEN 'PARALLEL SAFE' WHEN 'r' THEN 'PARALLEL RESTRICTED' ELSE 'PARALLEL UNSAFE' END,
                   (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace), v_proc.proname,
                   v_proc.proargtypes[0]::regtype);
    v_pin := format('annals_internal.%I(%s)', pin_callback.pin, v_proc.proargtypes[0]::regtype)::regprocedure;
    -- Name resolution at creation could in theory pick an overload; the dependency says which.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = v_pin
                      AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = pin_callback.fn) THEN
        IF annals_internal.raise_invalid('callback',
            format('%s could not be pinned: a call by its name resolves to another function (an overload with defaults?)', pin_callback.fn)) IS NULL THEN END IF;
    END IF;
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_pin,
                   format('Pins %s (%s): calls it by OID; while registered, DROP FUNCTION %s fails.',
                          pin_callback.fn, pin_callback.purpose, pin_callback.fn));
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_pin);
    RETURN format('annals_internal.%I', pin_callback.pin);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.pin_callback(regprocedure, text, text) IS
    'Creates annals_internal.<pin>(arg) calling fn by OID, with a dependency that keeps fn from being dropped; returns the pin''s quoted name to call.';
REVOKE ALL ON FUNCTION annals_internal.pin_callback(regprocedure, text, text) FROM PUBLIC;

-- The pins' names: fixed per projection and per upcaster (event type, from version).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.handler_pin(projection text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN 'handler_' || to_hex(hashtextextended('annals:projection:' || projection, 0));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.handler_pin(text) IS 'Name of the function that pins a projection''s handler.';
REVOKE ALL ON FUNCTION annals_internal.handler_pin(text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.upcaster_pin(event_type text, from_version integer)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN 'upcaster_' || to_hex(hashtextextended('annals:upcaster:' || from_version || ':' || event_type, 0));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.upcaster_pin(text, integer) IS 'Name of the function that pins an upcaster.';
REVOKE ALL ON FUNCTION annals_internal.upcaster_pin(text, integer) FROM PUBLIC;

-- Why a projection's table must not be trusted with annals_owner's writes (NULL when it may): a
-- handler writes it as annals_owner, so its triggers, and those of its partitions and inheritance
-- children, run as annals_owner. Their owners could add such triggers, their schemas' owners could
-- drop and replace them, and the trigger functions' owners could redefine them: all must be trusted.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.table_trust_problem(tbl regclass)
RETURNS text
LANGUAGE sql
STABLE
BEGIN ATOMIC
    WITH RECURSIVE tree (relid) AS (
        SELECT table_trust_problem.tbl::oid
        UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i JOIN tree AS t ON i.inhparent = t.relid
    )
    SELECT coalesce(
        (SELECT format('%s is owned by %s, who is not a member of annals_owner and could add a trigger that runs as annals_owner; ALTER TABLE %s OWNER TO annals_owner',
                       c.oid::regclass, c.relowner::regrole, c.oid::regclass)
           FROM tree AS t JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
          WHERE NOT annals_internal.trusted_role(c.relowner)
          ORDER BY c.oid::regclass::text LIMIT 1),
        (SELECT format('the schema of %s, %I, is owned by %s, who is not a member of annals_owner and could replace the table; ALTER SCHEMA %I OWNER TO annals_owner',
                       c.oid::regclass, n.nspname, n.nspowner::regrole, n.nspname)
           FROM tree AS t JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
           JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
          WHERE NOT annals_internal.trusted_role(n.nspowner)
          ORDER BY c.oid::regclass::text LIMIT 1),
        (SELECT format('trigger %I on %s calls %s, owned by %s, who is not a member of annals_owner and could redefine it to run anything as annals_owner; ALTER FUNCTION %s OWNER TO annals_owner',
                       g.tgname, c.oid::regclass, p.oid::regprocedure, p.proowner::regrole, p.oid::regprocedure)
           FROM tree AS t JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
           JOIN pg_catalog.pg_trigger AS g ON g.tgrelid = c.oid
           JOIN pg_catalog.pg_proc AS p ON p.oid = g.tgfoid
          WHERE NOT g.tgisinternal AND NOT annals_internal.trusted_role(p.proowner)
          ORDER BY c.oid::regclass::text, g.tgname LIMIT 1));
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.table_trust_problem(regclass) IS
    'Why a projection table (with its partitions and children) cannot be written as annals_owner safely: an untrusted table, schema or trigger-function owner; NULL when none.';
REVOKE ALL ON FUNCTION annals_internal.table_trust_problem(regclass) FROM PUBLIC;

-- Why a materialized view must not be refreshed with annals_owner's rights (NULL when it may): a
-- refresh runs the view's query as the view's owner, annals_owner, so every function it calls,
-- and every view it reads (whose owner could redefine it to call something else), recursively,
-- must be owned by members of annals_owner, and so must the tables it reads (their owners could
-- add row-level security policies that call functions).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.view_trust_problem(view regclass)
RETURNS text
LANGUAGE sql
STABLE
BEGIN ATOMIC
    WITH RECURSIVE used (classid, objid) AS (
        SELECT 'pg_catalog.pg_class'::regclass::oid, view_trust_problem.view::oid
        UNION
        SELECT d.refclassid, d.refobjid
          FROM used AS u
          JOIN pg_catalog.pg_class AS c ON u.classid = 'pg_catalog.pg_class'::regclass AND c.oid = u.objid AND c.relkind IN ('v', 'm')
          JOIN pg_catalog.pg_rewrite AS r ON r.ev_class = c.oid
          JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
         WHERE d.refclassid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_proc'::regclass)
           AND NOT (d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = c.oid)
    )
    SELECT coalesce(
        (SELECT format('%s reads %s, owned by %s, who is not a member of annals_owner and could make a refresh run code as annals_owner; ALTER TABLE %s OWNER TO annals_owner',
                       view_trust_problem.view, c.oid::regclass, c.relowner::regrole, c.oid::regclass)
           FROM used AS u JOIN pg_catalog.pg_class AS c ON u.classid = 'pg_catalog.pg_class'::regclass AND c.oid = u.objid
          WHERE c.oid <> view_trust_problem.view AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND NOT annals_internal.trusted_role(c.relowner)
          ORDER BY c.oid::regclass::text LIMIT 1),
        (SELECT format('%s calls %s, owned by %s, who is not a member of annals_owner and could redefine it to run anything as annals_owner; ALTER FUNCTION %s OWNER TO annals_owner',
                       view_trust_problem.view, p.oid::regprocedure, p.proowner::regrole, p.oid::regprocedure)
           FROM used AS u JOIN pg_catalog.pg_proc AS p ON u.classid = 'pg_catalog.pg_proc'::regclass AND p.oid = u.objid
          WHERE NOT annals_internal.trusted_role(p.proowner)
          ORDER BY p.oid::regprocedure::text LIMIT 1));
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.view_trust_problem(regclass) IS
    'Why refreshing a materialized view as annals_owner is unsafe: a function, view or table it uses (recursively) with an untrusted owner; NULL when none.';
REVOKE ALL ON FUNCTION annals_internal.view_trust_problem(regclass) FROM PUBLIC;
