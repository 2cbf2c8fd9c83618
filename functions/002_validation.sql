-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Reasons rather than booleans so every caller reports the same words. NULL means valid. The
-- reserved '$' prefix is checked separately: it is ST403, not ST422. Every call in the body is
-- IMMUTABLE (note the explicit ::text casts: text || integer is only STABLE), so the planner
-- inlines it; a SQL function that is not inlined is parsed and planned again on every call.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.name_problem(name text, max_bytes integer)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN name IS NULL THEN 'must not be null'
    WHEN octet_length(name) = 0 THEN 'must not be empty'
    WHEN octet_length(name) > max_bytes
        THEN 'must be at most ' || max_bytes::text || ' bytes, is ' || octet_length(name)::text
    WHEN name ~ '[[:cntrl:]]' THEN 'must not contain control characters'
    WHEN name ~ '^\s|\s$' THEN 'must not start or end with whitespace'
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.name_problem(text, integer) IS
    'Why a stream id or event type is invalid (NULL when valid): length, control characters, surrounding whitespace.';
REVOKE ALL ON FUNCTION annals_internal.name_problem(text, integer) FROM PUBLIC;

-- Validates a stream id argument: ST422 for a malformed id, ST403 for the reserved '$' prefix.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_stream_id(stream_id text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := annals_internal.name_problem(check_stream_id.stream_id, 512);
BEGIN
    IF v_problem IS NOT NULL THEN
        PERFORM annals_internal.raise_invalid('stream_id', v_problem);
    END IF;
    IF left(check_stream_id.stream_id, 1) = '$' THEN
        PERFORM annals_internal.raise_error('ST403',
            'stream id ' || quote_literal(check_stream_id.stream_id) || ' is reserved: names starting with $ belong to Annals',
            jsonb_build_object('argument', 'stream_id'));
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_stream_id(text) IS
    'Raises ST422 for a malformed stream id (1..512 bytes, no control characters, no surrounding whitespace) and ST403 for a reserved one ($...).';
REVOKE ALL ON FUNCTION annals_internal.check_stream_id(text) FROM PUBLIC;

-- The keys of an event object that append_events does not know, for the error message only.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.unknown_keys(ev jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN (SELECT string_agg(quote_ident(k), ', ' ORDER BY k)
          FROM jsonb_object_keys(ev - '{type,data,metadata,id,schema_version}'::text[]) AS k);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.unknown_keys(jsonb) IS
    'The keys of an event object other than type, data, metadata, id and schema_version, comma-separated.';
REVOKE ALL ON FUNCTION annals_internal.unknown_keys(jsonb) FROM PUBLIC;

-- Which check one element of an append's events array fails, as a short code; NULL when it is
-- valid. The append's batch scan only asks whether anything is wrong: this gives it the checks
-- without the error texts, whose expression (concatenations, jsonb_build_object per branch) the
-- executor would set up on every append (a fifth of a single append's CPU). event_problem turns
-- the code into the error for the one event that needs it. Inlined (IMMUTABLE calls only).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.event_fault(ev jsonb, max_event_bytes integer)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN jsonb_typeof(ev) IS DISTINCT FROM 'object' THEN 'object'
    WHEN (ev - '{type,data,metadata,id,schema_version}'::text[]) <> '{}'::jsonb THEN 'keys'
    WHEN jsonb_typeof(ev -> 'type') IS DISTINCT FROM 'string' THEN 'type'
    WHEN annals_internal.name_problem(ev ->> 'type', 256) IS NOT NULL THEN 'type_name'
    WHEN left(ev ->> 'type', 1) = '$' THEN 'type_reserved'
    WHEN jsonb_typeof(ev -> 'data') NOT IN ('object', 'null') THEN 'data'
    WHEN jsonb_typeof(ev -> 'metadata') NOT IN ('object', 'null') THEN 'metadata'
    WHEN jsonb_typeof(ev -> 'id') NOT IN ('string', 'null')
      OR NOT (ev ->> 'id') ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN 'id'
    WHEN jsonb_typeof(ev -> 'schema_version') NOT IN ('number', 'null')
      OR NOT (ev ->> 'schema_version') ~ '^[1-9][0-9]{0,8}$' THEN 'schema_version'
    WHEN octet_length((ev -> 'data')::text) > max_event_bytes THEN 'size'
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_fault(jsonb, integer) IS
    'Which check an element of an append''s events array fails (object, keys, type, type_name, type_reserved, data, metadata, id, schema_version, size); NULL when valid.';
REVOKE ALL ON FUNCTION annals_internal.event_fault(jsonb, integer) FROM PUBLIC;

-- What is wrong with one element of an append's events array, as {"code","argument","reason"}
-- or {"code":"ST413","limit","actual"}; NULL when it is valid. `idx` is the 0-based array index.
-- Only called for an event event_fault found wrong.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.event_problem(ev jsonb, idx bigint, max_event_bytes integer)
RETURNS jsonb
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN CASE annals_internal.event_fault(ev, max_event_bytes)
    WHEN 'object' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || ']',
            'reason', 'must be a JSON object with "type" and "data"')
    WHEN 'keys' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || ']',
            'reason', 'unknown key(s) ' || annals_internal.unknown_keys(ev)
                || '; allowed: type, data, metadata, id, schema_version')
    WHEN 'type' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].type',
            'reason', 'must be a string')
    WHEN 'type_name' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].type',
            'reason', annals_internal.name_problem(ev ->> 'type', 256))
    WHEN 'type_reserved' THEN
        jsonb_build_object('code', 'ST403', 'argument', 'events[' || idx::text || '].type',
            'reason', 'event types starting with $ are reserved')
    WHEN 'data' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].data',
            'reason', 'must be a JSON object')
    WHEN 'metadata' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].metadata',
            'reason', 'must be a JSON object')
    WHEN 'id' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].id',
            'reason', 'must be a UUID string')
    WHEN 'schema_version' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].schema_version',
            'reason', 'must be a positive integer')
    WHEN 'size' THEN
        jsonb_build_object('code', 'ST413', 'argument', 'events[' || idx::text || '].data',
            'limit', max_event_bytes, 'actual', octet_length((ev -> 'data')::text))
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_problem(jsonb, bigint, integer) IS
    'What is wrong with one element of an append''s events array (NULL when valid): shape, type name, UUID, schema version, size.';
REVOKE ALL ON FUNCTION annals_internal.event_problem(jsonb, bigint, integer) FROM PUBLIC;
