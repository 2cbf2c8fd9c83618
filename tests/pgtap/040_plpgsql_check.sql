-- plpgsql_check over every PL/pgSQL function in annals, annals_internal and annals_guard: no findings. The
-- query lives in sql/010_plpgsql_check.sql (runnable on its own); a deliberately broken function
-- proves the check reports what it should.
BEGIN;
SELECT plan(9);

\set annals_lint_quiet 1
\ir ../../sql/010_plpgsql_check.sql

SELECT cmp_ok((SELECT count(*) FROM pg_temp.annals_plpgsql_functions), '>=', 12::bigint,
              'the lint covers every PL/pgSQL function (at least the 12 of the core)');
SELECT ok(EXISTS (SELECT FROM pg_temp.annals_plpgsql_functions
                   WHERE function = 'annals_internal.reject_history_change()'::regprocedure
                     AND relid = 'annals_internal.events'::regclass),
          'trigger functions are checked against annals_internal.events');
SELECT ok(EXISTS (SELECT FROM pg_temp.annals_plpgsql_functions
                   WHERE function = 'annals_guard.history_guard()'::regprocedure),
          'the history guard''s event trigger function is checked too');
SELECT is_empty($$SELECT function, lineno, level, sqlstate, message, detail FROM pg_temp.annals_plpgsql_check$$,
                'plpgsql_check finds nothing in any Annals PL/pgSQL function');

-- The inline dispatch is generated when projections change: with filters, names that need
-- quoting and an alias in it, it passes the lint too, calls handlers statically, and works.
CREATE SCHEMA lint_p;
GRANT USAGE ON SCHEMA lint_p TO annals_owner;
CREATE TABLE lint_p.t1 (n integer);
CREATE TABLE lint_p."t 2" (n integer);
GRANT SELECT, INSERT, UPDATE, DELETE ON lint_p.t1, lint_p."t 2" TO annals_owner;
CREATE FUNCTION lint_p.h1(events annals.event[]) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO lint_p.t1 (n) VALUES (cardinality(events));
END
$$;
CREATE FUNCTION lint_p."odd ""name"""(events annals.event[]) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO lint_p."t 2" (n) VALUES (cardinality(events));
END
$$;
ALTER FUNCTION lint_p.h1(annals.event[]) OWNER TO annals_owner;
ALTER FUNCTION lint_p."odd ""name"""(annals.event[]) OWNER TO annals_owner;
SELECT annals.register_projection('lint''s one', 'lint_p.h1(annals.event[])', ARRAY['lint_p.t1']::regclass[],
                                  event_types => ARRAY['A', 'B''s'], categories => ARRAY['acct']);
SELECT annals.register_projection('lint two', 'lint_p."odd ""name"""(annals.event[])', ARRAY['lint_p."t 2"']::regclass[]);
SELECT annals.register_event_alias('Old', 'A');
SELECT is_empty($$SELECT function, lineno, level, sqlstate, message, detail FROM pg_temp.annals_plpgsql_check
                   WHERE function = 'annals_internal.dispatch_inline()'::regprocedure$$,
                'plpgsql_check finds nothing in the generated dispatch');
SELECT matches((SELECT p.prosrc FROM pg_catalog.pg_proc AS p WHERE p.oid = 'annals_internal.dispatch_inline()'::regprocedure),
               'IF annals_internal\."inline projection lint two"\(v_events\) THEN',
               'handlers are called statically, through their named frames');
SELECT lives_ok($$SELECT annals.append_events('acct-1', NULL, '[{"type": "Old"}, {"type": "C"}]')$$,
                'an append goes through the generated dispatch');
SELECT results_eq($$SELECT (SELECT n FROM lint_p.t1), (SELECT n FROM lint_p."t 2")$$, $$VALUES (1, 2)$$,
                  'the filtered projection got the aliased event only, the other both');

-- A function with an undefined column, created only inside this transaction.
CREATE FUNCTION annals_internal.lint_canary() RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT count(no_such_column) FROM annals_internal.events);
END
$$;
SELECT isnt_empty($$SELECT * FROM pg_temp.annals_plpgsql_check WHERE function = 'annals_internal.lint_canary()'::regprocedure$$,
                  'the lint reports a broken function');

SELECT * FROM finish();
ROLLBACK;
