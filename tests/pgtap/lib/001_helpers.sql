-- Helpers shared by the pgTAP files, included with `\ir lib/001_helpers.sql` right after BEGIN.
-- They live in pg_temp and vanish with the test transaction's ROLLBACK. Not a test file: the
-- runner (tests/pgtap/run.sh) only runs tests/pgtap/*.sql, not this directory.

-- The SQLSTATE a statement raises when run as another role ('00000' when it succeeds). The role
-- switch happens inside the exception block, so an error undoes it; on success RESET ROLE does.
-- pgTAP's own bookkeeping tables belong to the session user, so assertions run outside the switch.
CREATE FUNCTION pg_temp.sqlstate_as(role_name name, query text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_state text := '00000';
BEGIN
    BEGIN
        EXECUTE pg_catalog.format('SET LOCAL ROLE %I', role_name);
        EXECUTE query;
        RESET ROLE;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
    END;
    RETURN v_state;
END
$$;

-- What a failing statement reports: {"sqlstate", "detail" (the DETAIL parsed as JSON, null when
-- it is not valid JSON), "detail_text"}. {"sqlstate": null} when the statement succeeds.
CREATE FUNCTION pg_temp.error_of(query text)
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
    v_state  text;
    v_detail text;
    v_json   jsonb;
BEGIN
    BEGIN
        EXECUTE query;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    END;
    IF v_state IS NULL THEN
        RETURN jsonb_build_object('sqlstate', NULL);
    END IF;
    BEGIN
        v_json := v_detail::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        v_json := NULL;
    END;
    RETURN jsonb_build_object('sqlstate', v_state, 'detail', v_json, 'detail_text', v_detail);
END
$$;

-- The estimated total cost of a query's plan.
CREATE FUNCTION pg_temp.plan_cost(query text)
RETURNS float8
LANGUAGE plpgsql
AS $$
DECLARE
    v_plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO v_plan;
    RETURN (v_plan -> 0 -> 'Plan' ->> 'Total Cost')::float8;
END
$$;
