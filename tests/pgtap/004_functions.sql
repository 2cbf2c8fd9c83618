-- Structure: every Annals function states its volatility, the public API runs SECURITY DEFINER,
-- and no function resolves names through a caller-controlled search_path. The per-function tests
-- pin the core API; the catalog tests cover every function in both schemas, present and future,
-- and list the offenders.
BEGIN;
SELECT plan(49);

-- Volatility as declared: writes VOLATILE, reads STABLE, pure validation IMMUTABLE. The error
-- raisers are VOLATILE so the planner never pre-evaluates (and raises) them at plan time.
SELECT volatility_is('annals', 'append_events', 'volatile', 'annals.append_events is VOLATILE');
SELECT volatility_is('annals', 'append_event', 'volatile', 'annals.append_event is VOLATILE');
SELECT volatility_is('annals', 'delete_stream', 'volatile', 'annals.delete_stream is VOLATILE');
SELECT volatility_is('annals', 'configure', 'volatile', 'annals.configure is VOLATILE');
SELECT volatility_is('annals', 'read_stream', 'stable', 'annals.read_stream is STABLE');
SELECT volatility_is('annals', 'read_stream_as_of', 'stable', 'annals.read_stream_as_of is STABLE');
SELECT volatility_is('annals', 'stream_version_at', 'stable', 'annals.stream_version_at is STABLE');
SELECT volatility_is('annals', 'stream_info', 'stable', 'annals.stream_info is STABLE');
SELECT volatility_is('annals', 'read_event', 'stable', 'annals.read_event is STABLE');
SELECT volatility_is('annals', 'schema_version', 'stable', 'annals.schema_version is STABLE');
SELECT volatility_is('annals_internal', 'append_replay', 'stable', 'annals_internal.append_replay is STABLE');
SELECT volatility_is('annals_internal', 'lock_stream', 'volatile', 'annals_internal.lock_stream is VOLATILE (it takes a lock)');
SELECT volatility_is('annals_internal', 'event_batch', 'stable', 'annals_internal.event_batch is STABLE (jsonb_build_object)');
SELECT volatility_is('annals_internal', 'version_at', 'stable', 'annals_internal.version_at is STABLE');
SELECT volatility_is('annals_internal', 'check_page', 'immutable', 'annals_internal.check_page is IMMUTABLE');
SELECT volatility_is('annals_internal', 'check_stream_id', 'immutable', 'annals_internal.check_stream_id is IMMUTABLE');
SELECT volatility_is('annals_internal', 'name_problem', 'immutable', 'annals_internal.name_problem is IMMUTABLE');
SELECT volatility_is('annals_internal', 'is_valid_name', 'immutable', 'annals_internal.is_valid_name is IMMUTABLE');
SELECT volatility_is('annals_internal', 'is_valid_stream_id', 'immutable', 'annals_internal.is_valid_stream_id is IMMUTABLE');
SELECT volatility_is('annals_internal', 'stream_id_problem', 'immutable', 'annals_internal.stream_id_problem is IMMUTABLE');
SELECT volatility_is('annals_internal', 'event_fault', 'immutable', 'annals_internal.event_fault is IMMUTABLE');
-- STABLE, not IMMUTABLE: its body builds JSON with jsonb_build_object (STABLE), and a body more
-- volatile than its declaration would stop the planner from inlining it.
SELECT volatility_is('annals_internal', 'event_problem', 'stable', 'annals_internal.event_problem is STABLE');
SELECT volatility_is('annals_internal', 'raise_error', 'volatile', 'annals_internal.raise_error is VOLATILE');
SELECT volatility_is('annals_internal', 'raise_invalid', 'volatile', 'annals_internal.raise_invalid is VOLATILE');
SELECT volatility_is('annals_internal', 'reject_history_change', 'volatile', 'annals_internal.reject_history_change is VOLATILE');

-- The public API runs as annals_owner: callers need EXECUTE, never table privileges.
SELECT is_definer('annals', 'append_events', 'annals.append_events is SECURITY DEFINER');
SELECT is_definer('annals', 'append_event', 'annals.append_event is SECURITY DEFINER');
SELECT is_definer('annals', 'delete_stream', 'annals.delete_stream is SECURITY DEFINER');
SELECT is_definer('annals', 'configure', 'annals.configure is SECURITY DEFINER');
SELECT is_definer('annals', 'read_stream', 'annals.read_stream is SECURITY DEFINER');
SELECT is_definer('annals', 'read_stream_as_of', 'annals.read_stream_as_of is SECURITY DEFINER');
SELECT is_definer('annals', 'stream_version_at', 'annals.stream_version_at is SECURITY DEFINER');
SELECT is_definer('annals', 'stream_info', 'annals.stream_info is SECURITY DEFINER');
SELECT is_definer('annals', 'read_event', 'annals.read_event is SECURITY DEFINER');
SELECT is_definer('annals', 'schema_version', 'annals.schema_version is SECURITY DEFINER');

SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'annals'::regnamespace AND NOT p.prosecdef$$,
    'every function in annals is SECURITY DEFINER');

-- A pinned search_path: SET search_path to '' or pg_catalog[, pg_temp] (pg_temp last), or a
-- SQL-standard body, whose names are bound when it is created.
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function, p.proconfig
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND p.prosqlbody IS NULL
         AND NOT EXISTS (
               SELECT FROM unnest(p.proconfig) AS cfg
                WHERE pg_catalog.regexp_replace(cfg, '\s', '', 'g')
                      IN ('search_path=""', 'search_path=pg_catalog', 'search_path=pg_catalog,pg_temp'))$$,
    'every function pins search_path to pg_catalog, pg_temp (or '''') or has a SQL-standard body');
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function, l.lanname
        FROM pg_catalog.pg_proc AS p
        JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
       WHERE p.pronamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND l.lanname NOT IN ('plpgsql', 'sql')$$,
    'every function is written in SQL or PL/pgSQL (so the plpgsql_check lint and the creation-time binding cover them)');
-- The catalog checks above must see the functions they vouch for.
SELECT cmp_ok((SELECT count(*) FROM pg_catalog.pg_proc
                WHERE pronamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)),
              '>=', 17::bigint, 'the catalog checks cover at least the 17 core functions');



-- Hot-path helpers must be inlined by the planner: a SQL function that is not is parsed and
-- planned again on every call, which cost the append most of its time.
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    r   text;
    out text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        out := out || r || E'\n';
    END LOOP;
    RETURN out;
END
$fn$;
SELECT unalike(pg_temp.plan_of($q$SELECT annals_internal.event_fault(x.ev, 100)
                                   FROM jsonb_array_elements('[{"type": "A"}]') WITH ORDINALITY AS x(ev, ord)$q$),
               '%event_fault%', 'annals_internal.event_fault is inlined into the validation query');
SELECT unalike(pg_temp.plan_of($q$SELECT annals_internal.event_problem(x.ev, x.ord - 1, 100)
                                   FROM jsonb_array_elements('[{"type": "A"}]') WITH ORDINALITY AS x(ev, ord)$q$),
               '%event_problem%', 'annals_internal.event_problem is inlined');
SELECT unalike(pg_temp.plan_of($q$SELECT annals_internal.name_problem(c.relname::text, 512) FROM pg_catalog.pg_class AS c$q$),
               '%annals_internal.%', 'annals_internal.name_problem is inlined, with every helper it calls');
-- The name rule on the hot paths is one regex match against a constant pattern: the character
-- lists are folded in at plan time, not concatenated per call.
SELECT unalike(pg_temp.plan_of($q$SELECT annals_internal.is_valid_stream_id(c.relname::text) FROM pg_catalog.pg_class AS c$q$),
               '%annals_internal.%', 'annals_internal.is_valid_stream_id is inlined, with the character lists');
SELECT is((SELECT count(*) FROM regexp_matches(pg_temp.plan_of($q$SELECT annals_internal.is_valid_stream_id(c.relname::text)
                                                                 FROM pg_catalog.pg_class AS c$q$), '!~', 'g')),
          1::bigint, 'a stream id check is one regex match');
SELECT unalike(pg_temp.plan_of($q$SELECT annals_internal.is_valid_stream_id(c.relname::text) FROM pg_catalog.pg_class AS c$q$),
               '%||%', 'the stream id pattern is a constant (no concatenation left in the plan)');
SELECT unalike(pg_temp.plan_of($q$SELECT annals_internal.stream_id_problem(c.relname::text), annals_internal.category_problem(c.relname::text)
                                   FROM pg_catalog.pg_class AS c$q$),
               '%annals_internal.%', 'annals_internal.stream_id_problem and category_problem are inlined');
SELECT is((SELECT count(*) FROM regexp_matches(pg_temp.plan_of($q$SELECT annals_internal.event_fault(x.ev, 100)
                                                                 FROM jsonb_array_elements('[{"type": "A"}]') AS x(ev)$q$), ' !?~ ', 'g')),
          3::bigint, 'the batch scan matches three regexes per event: the type name, the id, the schema version');
SELECT unalike(pg_temp.plan_of($q$SELECT (annals_internal.as_read(e, NULL)).* FROM annals_internal.events AS e$q$),
               '%annals_internal.as%', 'annals_internal.as_read is inlined into the reads of the events table, as_event with it');
SELECT unalike(pg_temp.plan_of($q$SELECT (annals_internal.as_read(c, '{A}')).*
                                   FROM annals_internal.cold_segments AS s, unnest(s.events) AS c$q$),
               '%as_read%', 'annals_internal.as_read is inlined into the reads of cold segments');

SELECT * FROM finish();
ROLLBACK;
