-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Projection handlers and upcasters are user functions that Annals calls as annals_owner. This
-- checks one before it is registered and returns the quoted name to call it by: the signature,
-- EXECUTE and schema USAGE for annals_owner (without them every call fails later, far from the
-- cause), and an owner already trusted with annals_owner (its owner can redefine it at any time,
-- SECURITY DEFINER or not, so an untrusted owner could run anything as annals_owner).
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
        PERFORM annals_internal.raise_invalid(check_callback.argument, 'must name a function ' || check_callback.signature);
    END IF;
    SELECT * INTO v_proc FROM pg_catalog.pg_proc AS p WHERE p.oid = check_callback.fn;
    IF v_proc.prokind <> 'f' OR v_proc.pronargs <> 1 OR v_proc.proargtypes[0] <> check_callback.arg_type
       OR v_proc.prorettype <> check_callback.return_type OR v_proc.proretset THEN
        PERFORM annals_internal.raise_invalid(check_callback.argument,
            format('%s must have the signature %s', check_callback.fn, check_callback.signature));
    END IF;
    IF NOT has_function_privilege('annals_owner', check_callback.fn, 'EXECUTE')
       OR NOT has_schema_privilege('annals_owner', v_proc.pronamespace, 'USAGE') THEN
        PERFORM annals_internal.raise_invalid(check_callback.argument,
            format('annals_owner cannot execute %s; GRANT EXECUTE ON FUNCTION %s TO annals_owner, with USAGE on its schema',
                   check_callback.fn, check_callback.fn));
    END IF;
    IF NOT pg_has_role(v_proc.proowner, 'annals_owner', 'MEMBER') THEN
        PERFORM annals_internal.raise_invalid(check_callback.argument,
            format('%s is owned by %s, who is not a member of annals_owner; since its owner could redefine it to run anything as annals_owner, ALTER FUNCTION %s OWNER TO annals_owner (or to a role that is a member of it)',
                   check_callback.fn, v_proc.proowner::regrole, check_callback.fn));
    END IF;
    RETURN format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace AS n WHERE n.oid = v_proc.pronamespace), v_proc.proname);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_callback(regprocedure, text, regtype, regtype, text) IS
    'Checks a handler or upcaster (signature, annals_owner''s EXECUTE and USAGE, trusted owner) and returns its quoted name.';
REVOKE ALL ON FUNCTION annals_internal.check_callback(regprocedure, text, regtype, regtype, text) FROM PUBLIC;
