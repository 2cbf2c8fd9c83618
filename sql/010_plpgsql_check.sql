-- plpgsql_check lint over every PL/pgSQL function of Annals (schemas annals, annals_internal and,
-- where a superuser installed the history guard, annals_guard).
--
-- Needs the plpgsql_check extension in the database (Debian: postgresql-15-plpgsql-check), in
-- schema public:   CREATE EXTENSION plpgsql_check;
-- Run:             psql "$DATABASE_URL" -X -f sql/010_plpgsql_check.sql
-- It prints one row per finding and nothing when the functions are clean.
-- tests/pgtap/040_plpgsql_check.sql includes this file (with the psql variable
-- annals_lint_quiet set, so nothing is printed) and expects no findings.
--
-- Checked: fatal errors, other, extra and compatibility warnings. Not checked: performance
-- warnings, whose volatility advice contradicts the deliberately VOLATILE error raisers (see
-- functions/001_raise_error.sql); security warnings, whose injection check flags every EXECUTE of
-- a registered handler or upcaster although those names are quoted when registered
-- (format('%I.%I', ...)), which it cannot see; run with -v annals_lint_security=1 to see them.
-- Trigger functions are checked against the table and transition tables of every trigger that
-- calls them; one that no trigger calls yet is checked against annals_internal.events.

CREATE OR REPLACE TEMP VIEW annals_plpgsql_functions AS
SELECT p.oid::pg_catalog.regprocedure AS function,
       coalesce(t.relid, CASE WHEN p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype
                              THEN 'annals_internal.events'::pg_catalog.regclass
                              ELSE 0::pg_catalog.regclass END) AS relid,
       t.oldtable, t.newtable
  FROM pg_catalog.pg_proc AS p
  JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
  -- A trigger function is checked once per distinct use: the table (a partition counts as its
  -- parent) and transition table names of each trigger that calls it; annals_internal.events
  -- when no trigger calls it yet.
  LEFT JOIN LATERAL (
        SELECT DISTINCT
               coalesce((SELECT i.inhparent FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = tg.tgrelid),
                        tg.tgrelid)::pg_catalog.regclass AS relid,
               tg.tgoldtable AS oldtable, tg.tgnewtable AS newtable
          FROM pg_catalog.pg_trigger AS tg
         WHERE tg.tgfoid = p.oid AND NOT tg.tgisinternal
       ) AS t ON p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype
 WHERE p.pronamespace IN (SELECT n.oid FROM pg_catalog.pg_namespace AS n
                            WHERE n.nspname IN ('annals', 'annals_internal', 'annals_guard'))
   AND l.lanname = 'plpgsql';

CREATE OR REPLACE TEMP VIEW annals_plpgsql_check AS
SELECT f.function, c.lineno, c.statement, c.sqlstate, c.message, c.detail, c.hint, c.level,
       c.position, c.query, c.context
  FROM pg_temp.annals_plpgsql_functions AS f
 CROSS JOIN LATERAL public.plpgsql_check_function_tb(
           f.function, f.relid,
           oldtable => f.oldtable,
           newtable => f.newtable,
           fatal_errors => true,
           other_warnings => true,
           performance_warnings => false,
           extra_warnings => true,
           security_warnings => :{?annals_lint_security},
           compatibility_warnings => true) AS c;

\if :{?annals_lint_quiet}
\else
SELECT * FROM pg_temp.annals_plpgsql_check ORDER BY function::text, lineno;
\endif
