-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- M15: tags and the locks of multi-stream and conditional appends.
--
-- Every lock an append takes is a transaction-level advisory lock on a bigint key: a stream's key
-- is hashtextextended(stream_id, 0) (as in append_events), a tag's key is tag_key(type, tag). An
-- append that needs more than one key takes them all before writing anything, in ascending key
-- order; two such appends wait for each other at most once and never deadlock. (A hash collision
-- between two keys only makes two appends wait for each other needlessly.)
--
-- An event of type t with tags S locks tag_key(t, g) and tag_key(NULL, g) for every g in S. A
-- condition item {types T, tags G} matches such an event only if t is in T (or T is absent) and
-- G is a subset of S, so it locks, for the smallest tag g0 of G, tag_key(t, g0) for every t in T
-- (tag_key(NULL, g0) when T is absent): every event the item matches locks one of these keys too.

-- The advisory lock key of (event type, tag); a NULL type stands for "any type". chr(31) cannot
-- occur in a name, so distinct pairs give distinct strings.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tag_key(event_type text, tag text)
RETURNS bigint
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(coalesce(event_type, '') || chr(31) || tag, 7);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tag_key(text, text) IS
    'The advisory lock key of an (event type, tag) pair; a NULL type means any type.';
REVOKE ALL ON FUNCTION annals_internal.tag_key(text, text) FROM PUBLIC;

-- An event's tags as stored: its "tags" array as text[], NULL when absent, null or empty.
-- PL/pgSQL with COST 1 on purpose: append_events' INSERT calls it behind CASE WHEN v_tagged,
-- and at its default cost (or inlined, with its sub-select) the generic plan of that INSERT looks
-- dearer than a custom one, so PL/pgSQL re-planned the INSERT on every append: twice the server
-- CPU of an untagged append (measured; see BENCHMARKS.md, M15).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tags_of(ev jsonb)
RETURNS text[]
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
COST 1
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF jsonb_typeof(tags_of.ev -> 'tags') = 'array' AND jsonb_array_length(tags_of.ev -> 'tags') > 0 THEN
        RETURN ARRAY(SELECT jsonb_array_elements_text(tags_of.ev -> 'tags'));
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tags_of(jsonb) IS
    'An event object''s tags as text[]; NULL when it has none.';
REVOKE ALL ON FUNCTION annals_internal.tags_of(jsonb) FROM PUBLIC;

-- The tag lock keys of a (valid) events array: tag_key(type, g) and tag_key(NULL, g) per tag.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.event_tag_keys(events jsonb)
RETURNS bigint[]
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT DISTINCT k
      FROM jsonb_array_elements(events) AS x(ev)
     CROSS JOIN LATERAL unnest(annals_internal.tags_of(x.ev)) AS g(tag)
     CROSS JOIN LATERAL (VALUES (annals_internal.tag_key(x.ev ->> 'type', g.tag)),
                                (annals_internal.tag_key(NULL, g.tag))) AS v(k));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.event_tag_keys(jsonb) IS
    'The advisory lock keys an append of these events takes for their tags: (type, tag) and (any type, tag) per tag.';
REVOKE ALL ON FUNCTION annals_internal.event_tag_keys(jsonb) FROM PUBLIC;

-- Takes the advisory locks of `keys` in ascending order, each once. Every append that holds more
-- than one Annals lock took them through here, so lock waits cannot form a cycle.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.lock_keys(keys bigint[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key bigint;
BEGIN
    FOREACH v_key IN ARRAY ARRAY(SELECT DISTINCT k FROM unnest(lock_keys.keys) AS k WHERE k IS NOT NULL ORDER BY k) LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.lock_keys(bigint[]) IS
    'Takes transaction-level advisory locks on the keys in ascending order (each once): the one lock order of every multi-lock append.';
REVOKE ALL ON FUNCTION annals_internal.lock_keys(bigint[]) FROM PUBLIC;

-- Checks a tag query ([{"types": [...]?, "tags": [...]}, ...]) and raises ST422 naming the part
-- that is wrong; `argument` is the name to report (query, condition.query).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_tag_query(query jsonb, argument text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_item jsonb;
    v_i    integer := 0;
    v_j    integer;
    v_el   jsonb;
    v_arg  text;
BEGIN
    IF check_tag_query.query IS NULL OR jsonb_typeof(check_tag_query.query) = 'null' THEN
        IF annals_internal.raise_invalid(check_tag_query.argument, 'must not be null') IS NULL THEN END IF;
    END IF;
    IF jsonb_typeof(check_tag_query.query) <> 'array' THEN
        IF annals_internal.raise_invalid(check_tag_query.argument,
            'must be a JSON array of {"types", "tags"} items, got ' || jsonb_typeof(check_tag_query.query)) IS NULL THEN END IF;
    END IF;
    IF jsonb_array_length(check_tag_query.query) = 0 THEN
        IF annals_internal.raise_invalid(check_tag_query.argument, 'must hold at least one item') IS NULL THEN END IF;
    END IF;
    IF jsonb_array_length(check_tag_query.query) > 100 THEN
        IF annals_internal.raise_invalid(check_tag_query.argument,
            'must hold at most 100 items, got ' || jsonb_array_length(check_tag_query.query)) IS NULL THEN END IF;
    END IF;
    FOR v_item IN SELECT q FROM jsonb_array_elements(check_tag_query.query) AS q LOOP
        v_arg := format('%s[%s]', check_tag_query.argument, v_i);
        IF jsonb_typeof(v_item) <> 'object' THEN
            IF annals_internal.raise_invalid(v_arg, 'must be a JSON object {"types"?, "tags"}') IS NULL THEN END IF;
        END IF;
        IF (v_item - '{types,tags}'::text[]) <> '{}'::jsonb THEN
            IF annals_internal.raise_invalid(v_arg,
                'unknown key(s) ' || (SELECT string_agg(quote_ident(k), ', ' ORDER BY k)
                                        FROM jsonb_object_keys(v_item - '{types,tags}'::text[]) AS k)
                || '; allowed: types, tags') IS NULL THEN END IF;
        END IF;
        IF jsonb_typeof(v_item -> 'tags') IS DISTINCT FROM 'array' OR jsonb_array_length(v_item -> 'tags') = 0 THEN
            IF annals_internal.raise_invalid(v_arg || '.tags',
                'must be a non-empty JSON array of tags (a query item without tags would match every event)') IS NULL THEN END IF;
        END IF;
        v_j := 0;
        FOR v_el IN SELECT t FROM jsonb_array_elements(v_item -> 'tags') AS t LOOP
            IF jsonb_typeof(v_el) <> 'string' THEN
                IF annals_internal.raise_invalid(format('%s.tags[%s]', v_arg, v_j), 'must be a string') IS NULL THEN END IF;
            END IF;
            IF NOT annals_internal.is_valid_name(v_el #>> '{}', 256) THEN
                IF annals_internal.raise_invalid(format('%s.tags[%s]', v_arg, v_j),
                    annals_internal.name_problem(v_el #>> '{}', 256)) IS NULL THEN END IF;
            END IF;
            v_j := v_j + 1;
        END LOOP;
        IF v_item ? 'types' AND jsonb_typeof(v_item -> 'types') <> 'null' THEN
            IF jsonb_typeof(v_item -> 'types') <> 'array' OR jsonb_array_length(v_item -> 'types') = 0 THEN
                IF annals_internal.raise_invalid(v_arg || '.types',
                    'must be a non-empty JSON array of event types, or absent for every type') IS NULL THEN END IF;
            END IF;
            v_j := 0;
            FOR v_el IN SELECT t FROM jsonb_array_elements(v_item -> 'types') AS t LOOP
                IF jsonb_typeof(v_el) <> 'string' THEN
                    IF annals_internal.raise_invalid(format('%s.types[%s]', v_arg, v_j), 'must be a string') IS NULL THEN END IF;
                END IF;
                IF NOT annals_internal.is_valid_name(v_el #>> '{}', 256) THEN
                    IF annals_internal.raise_invalid(format('%s.types[%s]', v_arg, v_j),
                        annals_internal.name_problem(v_el #>> '{}', 256)) IS NULL THEN END IF;
                END IF;
                v_j := v_j + 1;
            END LOOP;
        END IF;
        v_i := v_i + 1;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_tag_query(jsonb, text) IS
    'Raises ST422 unless query is a non-empty array (at most 100) of {"types"?: [type, ...], "tags": [tag, ...]} with valid names.';
REVOKE ALL ON FUNCTION annals_internal.check_tag_query(jsonb, text) FROM PUBLIC;

-- The items of a (checked) tag query as rows: tags text[] and types text[] (NULL: any type).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.query_items(query jsonb)
RETURNS TABLE (tags text[], types text[])
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
ROWS 4
BEGIN ATOMIC
    SELECT ARRAY(SELECT jsonb_array_elements_text(q.item -> 'tags')),
           CASE WHEN jsonb_typeof(q.item -> 'types') = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text(q.item -> 'types')) END
      FROM jsonb_array_elements(query) AS q(item);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.query_items(jsonb) IS
    'The items of a checked tag query: tags and types (NULL: any type) as text arrays.';
REVOKE ALL ON FUNCTION annals_internal.query_items(jsonb) FROM PUBLIC;

-- The advisory lock keys a condition on `query` takes: per item, (t, smallest tag) for every
-- type t, or (any type, smallest tag) when the item has no types.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.query_keys(query jsonb)
RETURNS bigint[]
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT DISTINCT annals_internal.tag_key(t.type, (SELECT min(g) FROM unnest(i.tags) AS g))
      FROM annals_internal.query_items(query) AS i
     CROSS JOIN LATERAL unnest(coalesce(i.types, ARRAY[NULL::text])) AS t(type));
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.query_keys(jsonb) IS
    'The advisory lock keys of a condition on a tag query: per item and type, the key of (type, smallest tag).';
REVOKE ALL ON FUNCTION annals_internal.query_keys(jsonb) FROM PUBLIC;
