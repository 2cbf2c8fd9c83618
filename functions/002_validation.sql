-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The name rule, shared by stream ids, event types, subscription, projection and snapshot type
-- names and aliases (goapi/names.go is the same rule in Go; tests run every case through both):
-- 1..max_bytes bytes; no control (Cc), format (Cf), line or paragraph separator (Zl, Zp) or
-- noncharacter code point anywhere; no White_Space code point at either end. The lists are
-- explicit code point ranges (Unicode 15.0), not [[:cntrl:]] or \s: those follow the database's
-- LC_CTYPE, so they differed between databases (under C they see ASCII only) and under glibc
-- missed NBSP, U+200B, U+FEFF and U+202E. Bracket ranges compare character codes, whatever the
-- locale; the codes are Unicode code points in a UTF8 database, which Annals expects.

-- The code points a name must not contain anywhere, as the inside of a regex bracket expression,
-- in the order (and with the words) of nameForbidden in goapi/names.go. Inlined and folded into
-- a constant: the patterns below are plan-time constants, which stay compiled in the session's
-- regex cache.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.name_forbidden_chars()
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN
    -- Cc: C0 controls, DEL, C1 controls.
    '\u0000-\u001F\u007F-\u009F'
    -- Cf: soft hyphen; Arabic, Syriac and Mongolian format characters; zero width space, joiners
    -- and direction marks.
    || '\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F'
    -- Zl, Zp: line and paragraph separators.
    || '\u2028-\u2029'
    -- Cf: bidirectional embeddings and overrides, word joiner, invisible operators, isolates.
    || '\u202A-\u202E\u2060-\u2064\u2066-\u206F'
    -- Noncharacters.
    || '\uFDD0-\uFDEF'
    -- Cf: zero width no-break space (BOM), interlinear annotation.
    || '\uFEFF\uFFF9-\uFFFB'
    -- Noncharacters.
    || '\uFFFE-\uFFFF'
    -- Cf: Kaithi, Egyptian hieroglyph controls, shorthand format controls, musical symbols.
    || '\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A'
    -- Noncharacters: the last two code points of planes 1 to 13.
    || '\U0001FFFE-\U0001FFFF\U0002FFFE-\U0002FFFF\U0003FFFE-\U0003FFFF\U0004FFFE-\U0004FFFF'
    || '\U0005FFFE-\U0005FFFF\U0006FFFE-\U0006FFFF\U0007FFFE-\U0007FFFF\U0008FFFE-\U0008FFFF'
    || '\U0009FFFE-\U0009FFFF\U000AFFFE-\U000AFFFF\U000BFFFE-\U000BFFFF\U000CFFFE-\U000CFFFF'
    || '\U000DFFFE-\U000DFFFF'
    -- Cf: language tag, tags.
    || '\U000E0001\U000E0020-\U000E007F'
    -- Noncharacters: the last two code points of planes 14 to 16.
    || '\U000EFFFE-\U000EFFFF\U000FFFFE-\U000FFFFF\U0010FFFE-\U0010FFFF';
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.name_forbidden_chars() IS
    'Regex bracket-expression ranges of the code points no name may contain: Cc, Cf, Zl, Zp (Unicode 15.0) and the noncharacters.';
REVOKE ALL ON FUNCTION annals_internal.name_forbidden_chars() FROM PUBLIC;

-- The code points a name must not start or end with: the White_Space property (nameSpace).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.name_space_chars()
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN '\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028-\u2029\u202F\u205F\u3000';
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.name_space_chars() IS
    'Regex bracket-expression ranges of the White_Space code points, which no name may start or end with.';
REVOKE ALL ON FUNCTION annals_internal.name_space_chars() FROM PUBLIC;

-- Whether name follows the rule: the hot paths' check (one regex over the name), with no error
-- texts for the executor to set up. False, not NULL, for a NULL name. Inlined.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.is_valid_name(name text, max_bytes integer)
RETURNS boolean
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN name IS NOT NULL
   AND octet_length(name) BETWEEN 1 AND max_bytes
   AND name !~ ('[' || annals_internal.name_forbidden_chars() || ']'
                || '|^[' || annals_internal.name_space_chars() || ']'
                || '|[' || annals_internal.name_space_chars() || ']$');
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.is_valid_name(text, integer) IS
    'Whether name is a valid Annals name of at most max_bytes bytes: not empty, no control, format, line/paragraph separator or noncharacter code point, no whitespace at either end.';
REVOKE ALL ON FUNCTION annals_internal.is_valid_name(text, integer) FROM PUBLIC;

-- A stream id is a name of at most 512 bytes whose category (the part before the first '-') is
-- one too, so that read_category can read it: not empty ('-', '-a'), no whitespace before the
-- first '-'. Still one regex. Inlined.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.is_valid_stream_id(stream_id text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN stream_id IS NOT NULL
   AND octet_length(stream_id) BETWEEN 1 AND 512
   AND stream_id !~ ('[' || annals_internal.name_forbidden_chars() || ']'
                     || '|^[' || annals_internal.name_space_chars() || ']'
                     || '|[' || annals_internal.name_space_chars() || ']$'
                     || '|^-|^[^-]*[' || annals_internal.name_space_chars() || ']-');
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.is_valid_stream_id(text) IS
    'Whether stream_id is valid apart from the reserved $ prefix: a name of at most 512 bytes whose category (the part before the first -) is not empty and does not end with whitespace.';
REVOKE ALL ON FUNCTION annals_internal.is_valid_stream_id(text) FROM PUBLIC;

-- 'U+00A0' for a one-character string: at least four hex digits, as Unicode writes them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.code_point_label(c text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN 'U+' || lpad(upper(to_hex(ascii(c))), greatest(4, length(to_hex(ascii(c)))), '0');
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.code_point_label(text) IS
    'The code point of a one-character string in U+XXXX notation (at least four hex digits).';
REVOKE ALL ON FUNCTION annals_internal.code_point_label(text) FROM PUBLIC;

-- Reasons rather than booleans so every caller reports the same words. NULL means valid. The
-- reserved '$' prefix is checked separately: it is ST403, not ST422. Every call in the body is
-- IMMUTABLE (note the explicit ::text casts: text || integer is only STABLE), so the planner
-- inlines it; a SQL function that is not inlined is parsed and planned again on every call.
-- The first branch is the whole rule: a valid name costs what is_valid_name costs.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.name_problem(name text, max_bytes integer)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN annals_internal.is_valid_name(name, max_bytes) THEN NULL
    WHEN name IS NULL THEN 'must not be null'
    WHEN octet_length(name) = 0 THEN 'must not be empty'
    WHEN octet_length(name) > max_bytes
        THEN 'must be at most ' || max_bytes::text || ' bytes, is ' || octet_length(name)::text
    WHEN name ~ ('[' || annals_internal.name_forbidden_chars() || ']')
        THEN 'must not contain '
             || annals_internal.code_point_label(substring(name FROM '[' || annals_internal.name_forbidden_chars() || ']'))
             || ' (control, format, line/paragraph separator or noncharacter)'
    ELSE 'must not start or end with whitespace (found '
         || annals_internal.code_point_label(
                CASE WHEN name ~ ('^[' || annals_internal.name_space_chars() || ']') THEN left(name, 1) ELSE right(name, 1) END)
         || ')'
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.name_problem(text, integer) IS
    'Why a name (stream id, event type, subscription, projection, alias, snapshot type) is invalid, NULL when valid: length, forbidden code points (control, format, line/paragraph separator, noncharacter), surrounding whitespace.';
REVOKE ALL ON FUNCTION annals_internal.name_problem(text, integer) FROM PUBLIC;

-- Why a stream id is invalid (NULL when valid), apart from the reserved '$' prefix (ST403).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.stream_id_problem(stream_id text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN annals_internal.is_valid_stream_id(stream_id) THEN NULL
    WHEN annals_internal.name_problem(stream_id, 512) IS NOT NULL THEN annals_internal.name_problem(stream_id, 512)
    WHEN left(stream_id, 1) = '-' THEN 'the category (the part before the first ''-'') must not be empty'
    ELSE 'the category (the part before the first ''-'') must not end with whitespace (found '
         || annals_internal.code_point_label(right(split_part(stream_id, '-', 1), 1)) || ')'
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.stream_id_problem(text) IS
    'Why a stream id is invalid, NULL when valid: the name rule (1..512 bytes) and a category (the part before the first -) that is not empty and does not end with whitespace. The reserved $ prefix is check_stream_id''s.';
REVOKE ALL ON FUNCTION annals_internal.stream_id_problem(text) FROM PUBLIC;

-- Why a category argument is invalid (NULL when valid): a category is what a valid stream id has
-- before its first '-', so it is a name of at most 512 bytes without '-'.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.category_problem(category text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN annals_internal.name_problem(category, 512) IS NOT NULL THEN annals_internal.name_problem(category, 512)
    WHEN strpos(category, '-') > 0 THEN 'must not contain ''-'': a category is the part of a stream id before its first ''-'''
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.category_problem(text) IS
    'Why a category argument is invalid, NULL when valid: the name rule (1..512 bytes) and no -.';
REVOKE ALL ON FUNCTION annals_internal.category_problem(text) FROM PUBLIC;

-- Validates a stream id argument: ST422 for a malformed id, ST403 for the reserved '$' prefix.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_stream_id(stream_id text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_problem text := annals_internal.stream_id_problem(check_stream_id.stream_id);
BEGIN
    IF v_problem IS NOT NULL THEN
        IF annals_internal.raise_invalid('stream_id', v_problem) IS NULL THEN END IF;
    END IF;
    IF left(check_stream_id.stream_id, 1) = '$' THEN
        IF annals_internal.raise_error('ST403',
            'stream id ' || quote_literal(check_stream_id.stream_id) || ' is reserved: names starting with $ belong to Annals',
            jsonb_build_object('argument', 'stream_id')) IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_stream_id(text) IS
    'Raises ST422 for a malformed stream id (the name rule, 1..512 bytes, and a non-empty category without trailing whitespace) and ST403 for a reserved one ($...).';
REVOKE ALL ON FUNCTION annals_internal.check_stream_id(text) FROM PUBLIC;

-- The keys of an event object that append_events does not know, for the error message only.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.unknown_keys(ev jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN (SELECT string_agg(quote_ident(k), ', ' ORDER BY k)
          FROM jsonb_object_keys(ev - '{type,data,metadata,id,schema_version,tags}'::text[]) AS k);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.unknown_keys(jsonb) IS
    'The keys of an event object other than type, data, metadata, id, schema_version and tags, comma-separated.';
REVOKE ALL ON FUNCTION annals_internal.unknown_keys(jsonb) FROM PUBLIC;

-- M15 tags (begin). What is wrong with an event's "tags" (a JSON array of tag strings, each a
-- name of 1..256 bytes); NULL when they are valid or absent. Called by event_fault only for an
-- event that has the key, so an untagged append pays one `?` test.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tags_problem(tags jsonb)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tag jsonb;
    v_i   integer := 0;
BEGIN
    IF tags_problem.tags IS NULL OR jsonb_typeof(tags_problem.tags) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(tags_problem.tags) <> 'array' THEN
        RETURN 'must be a JSON array of tag strings';
    END IF;
    FOR v_tag IN SELECT t FROM jsonb_array_elements(tags_problem.tags) AS t LOOP
        IF jsonb_typeof(v_tag) <> 'string' THEN
            RETURN format('tag %s must be a string', v_i);
        END IF;
        IF NOT annals_internal.is_valid_name(v_tag #>> '{}', 256) THEN
            RETURN format('tag %s: %s', v_i, annals_internal.name_problem(v_tag #>> '{}', 256));
        END IF;
        v_i := v_i + 1;
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tags_problem(jsonb) IS
    'What is wrong with an event''s tags (an array of names of 1..256 bytes); NULL when valid or absent.';
REVOKE ALL ON FUNCTION annals_internal.tags_problem(jsonb) FROM PUBLIC;
-- M15 tags (end).

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
    WHEN (ev - '{type,data,metadata,id,schema_version,tags}'::text[]) <> '{}'::jsonb THEN 'keys'
    WHEN jsonb_typeof(ev -> 'type') IS DISTINCT FROM 'string' THEN 'type'
    WHEN NOT annals_internal.is_valid_name(ev ->> 'type', 256) THEN 'type_name'
    WHEN left(ev ->> 'type', 1) = '$' THEN 'type_reserved'
    WHEN jsonb_typeof(ev -> 'data') NOT IN ('object', 'null') THEN 'data'
    WHEN jsonb_typeof(ev -> 'metadata') NOT IN ('object', 'null') THEN 'metadata'
    WHEN (ev -> 'metadata') ? '$tenant' THEN 'metadata_reserved'  -- M15: set by the append itself
    WHEN jsonb_typeof(ev -> 'id') NOT IN ('string', 'null')
      OR NOT (ev ->> 'id') ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$' THEN 'id'
    WHEN jsonb_typeof(ev -> 'schema_version') NOT IN ('number', 'null')
      OR NOT (ev ->> 'schema_version') ~ '^[1-9][0-9]{0,8}$' THEN 'schema_version'
    WHEN octet_length((ev -> 'data')::text) > max_event_bytes THEN 'size'
    WHEN ev ? 'tags' AND annals_internal.tags_problem(ev -> 'tags') IS NOT NULL THEN 'tags'  -- M15
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_fault(jsonb, integer) IS
    'Which check an element of an append''s events array fails (object, keys, type, type_name, type_reserved, data, metadata, metadata_reserved, id, schema_version, size, tags); NULL when valid.';
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
                || '; allowed: type, data, metadata, id, schema_version, tags')
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
    WHEN 'metadata_reserved' THEN  -- M15
        jsonb_build_object('code', 'ST403', 'argument', 'events[' || idx::text || '].metadata',
            'reason', 'its key "$tenant" is set by Annals from the session''s tenant')
    WHEN 'id' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].id',
            'reason', 'must be a UUID string')
    WHEN 'schema_version' THEN
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].schema_version',
            'reason', 'must be a positive integer')
    WHEN 'size' THEN
        jsonb_build_object('code', 'ST413', 'argument', 'events[' || idx::text || '].data',
            'limit', max_event_bytes, 'actual', octet_length((ev -> 'data')::text))
    WHEN 'tags' THEN  -- M15
        jsonb_build_object('code', 'ST422', 'argument', 'events[' || idx::text || '].tags',
            'reason', annals_internal.tags_problem(ev -> 'tags'))
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_problem(jsonb, bigint, integer) IS
    'What is wrong with one element of an append''s events array (NULL when valid): shape, type name, UUID, schema version, size.';
REVOKE ALL ON FUNCTION annals_internal.event_problem(jsonb, bigint, integer) FROM PUBLIC;
