-- plpgsql_check over every PL/pgSQL function in annals and annals_internal: no findings. The
-- query lives in sql/010_plpgsql_check.sql (runnable on its own); a deliberately broken function
-- proves the check reports what it should.
BEGIN;
SELECT plan(4);

\set annals_lint_quiet 1
\ir ../../sql/010_plpgsql_check.sql

SELECT cmp_ok((SELECT count(*) FROM pg_temp.annals_plpgsql_functions), '>=', 12::bigint,
              'the lint covers every PL/pgSQL function (at least the 12 of the core)');
SELECT ok(EXISTS (SELECT FROM pg_temp.annals_plpgsql_functions
                   WHERE function = 'annals_internal.reject_history_change()'::regprocedure
                     AND relid = 'annals_internal.events'::regclass),
          'trigger functions are checked against annals_internal.events');
SELECT is_empty($$SELECT function, lineno, level, sqlstate, message, detail FROM pg_temp.annals_plpgsql_check$$,
                'plpgsql_check finds nothing in any Annals PL/pgSQL function');

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
