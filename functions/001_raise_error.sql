-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Every Annals error goes through here so the SQLSTATE, message and JSON DETAIL stay uniform:
-- clients parse DETAIL, never the message. Callers write `IF annals_internal.raise_...(...) IS NULL
-- THEN END IF;`, not PERFORM: a condition is evaluated as a plain expression, while a PERFORM is
-- a query whose whole text (format() calls and all) psql would print as CONTEXT under every error;
-- this way the CONTEXT is one line per function. Both raisers are VOLATILE: the planner pre-evaluates an
-- IMMUTABLE call whose arguments are constants, so `PERFORM raise_invalid('x', 'y')` would raise
-- while the statement is planned (plpgsql_check reports it), not when it runs.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.raise_error(
    code    text,
    message text,
    detail  jsonb,
    hint    text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- The HINT is the one place that says what to do: the caller's words for its case, else the
    -- code's (clients show it; the Go client and the CLI add none of their own). ST422 needs
    -- none: its message names the argument and what is wrong with it.
    v_hint text := coalesce(raise_error.hint, CASE raise_error.code
        WHEN 'ST403' THEN 'Pick another name.'
        WHEN 'ST409' THEN 'Read the stream again and retry with its current version.'
        WHEN 'ST410' THEN 'The stream is closed for appends: append to another stream.'
        WHEN 'ST411' THEN 'Another consumer moved the checkpoint: read it again before acknowledging.'
        WHEN 'ST412' THEN 'A retry must resend identical events; new events need new ids.'
        WHEN 'ST413' THEN 'Split the batch, or raise the limit with annals.configure as annals_owner.'
        WHEN 'ST423' THEN 'Another consumer holds this member''s lease: stop it or wait for the lease to expire.'
        WHEN 'ST424' THEN 'Commit or roll back first, then set the tenant: one transaction works for one tenant.'
        WHEN 'ST500' THEN 'Fix the registered upcaster the message names.'
        END);
    -- M15: the session's tenant sees its stream ids without the stored tenant prefix, in errors too.
    v_prefix text := annals_internal.session_tenant() || chr(31);  -- 003_tenancy.sql
BEGIN
    IF v_prefix IS NOT NULL AND v_prefix <> '*' || chr(31) THEN
        raise_error.message := replace(raise_error.message, v_prefix, '');
        raise_error.detail := replace(raise_error.detail::text, trim(both '"' from to_jsonb(v_prefix)::text), '')::jsonb;
    END IF;
    IF v_hint IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = raise_error.code,
            MESSAGE = raise_error.message,
            DETAIL  = raise_error.detail::text;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = raise_error.code,
        MESSAGE = raise_error.message,
        DETAIL  = raise_error.detail::text,
        HINT    = v_hint;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.raise_error(text, text, jsonb, text) IS
    'Raises an Annals error: SQLSTATE code, message, a JSON DETAIL for clients to parse, an optional hint.';
REVOKE ALL ON FUNCTION annals_internal.raise_error(text, text, jsonb, text) FROM PUBLIC;

-- Shorthand for ST422 with DETAIL {"argument","reason"}.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.raise_invalid(argument text, reason text)
RETURNS void
LANGUAGE sql
VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT annals_internal.raise_error(
        'ST422',
        'invalid argument ' || raise_invalid.argument || ': ' || raise_invalid.reason,
        jsonb_build_object('argument', raise_invalid.argument, 'reason', raise_invalid.reason));
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.raise_invalid(text, text) IS
    'Raises ST422 (invalid argument) with DETAIL {"argument","reason"}.';
REVOKE ALL ON FUNCTION annals_internal.raise_invalid(text, text) FROM PUBLIC;
