-- No Annals query may JIT on a default PostgreSQL. JIT compiles when a plan's estimated cost
-- crosses jit_above_cost, and the status queries' lag counts are estimated far above it even on a
-- store of a few events (compiling took seconds). Every public function runs with jit = off,
-- except the hot paths, whose plans the Go plan tests pin (estimates below the threshold, no JIT
-- on a realistic store), where the setting would cost a little on every call; every public view
-- reads such a function, so its own plan is a cheap Function Scan.
BEGIN;
\ir lib/001_helpers.sql
SELECT plan(3);

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'annals'::regnamespace
         AND p.proname NOT IN ('append_events', 'append_event', 'read_stream')
         AND NOT coalesce('jit=off' = ANY (p.proconfig), false)$$,
    'every public function but the plan-tested hot paths runs with SET jit = off');

SELECT is_empty(
    $$SELECT c.oid::regclass::text
        FROM pg_catalog.pg_class AS c
       WHERE c.relnamespace = 'annals'::regnamespace AND c.relkind = 'v'
         AND NOT EXISTS (
               SELECT FROM pg_catalog.pg_rewrite AS r
                 JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
                 JOIN pg_catalog.pg_proc AS f ON d.refclassid = 'pg_catalog.pg_proc'::regclass AND f.oid = d.refobjid
                WHERE r.ev_class = c.oid AND f.proretset AND 'jit=off' = ANY (f.proconfig))$$,
    'every public view reads a set-returning function that runs with SET jit = off');

-- Planned as a default server would: the views' own plans stay far below jit_above_cost.
SELECT is_empty(
    $$SELECT v.name
        FROM (VALUES ('annals.projections'), ('annals.subscription_status'), ('annals.feed_blocker'),
                     ('annals.dead_letters'), ('annals.view_freshness')) AS v(name),
             LATERAL pg_temp.plan_cost('SELECT * FROM ' || v.name) AS cost
       WHERE cost >= 1000$$,
    'every public view''s plan costs less than 1000');

SELECT * FROM finish();
ROLLBACK;
