-- Structure and behaviour: privileges. annals_writer may EXECUTE the write and read functions,
-- annals_reader the read functions, annals_bi only schema_version (plus, in later milestones,
-- SELECT on projection tables and public views); PUBLIC gets nothing; no application role has
-- any privilege on annals_internal; annals.configure is for the owner alone.
BEGIN;
\ir lib/001_helpers.sql
SELECT plan(72);

-- Schemas.
SELECT schema_privs_are('annals', 'annals_writer', ARRAY['USAGE'], 'annals_writer may use schema annals');
SELECT schema_privs_are('annals', 'annals_reader', ARRAY['USAGE'], 'annals_reader may use schema annals');
SELECT schema_privs_are('annals', 'annals_bi', ARRAY['USAGE'], 'annals_bi may use schema annals');
SELECT schema_privs_are('annals_internal', 'annals_writer', ARRAY[]::name[], 'annals_writer has no privilege on schema annals_internal');
SELECT schema_privs_are('annals_internal', 'annals_reader', ARRAY[]::name[], 'annals_reader has no privilege on schema annals_internal');
SELECT schema_privs_are('annals_internal', 'annals_bi', ARRAY[]::name[], 'annals_bi has no privilege on schema annals_internal');
SELECT is_empty(
    $$SELECT n.nspname, a.privilege_type
        FROM pg_catalog.pg_namespace AS n,
             aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a
       WHERE n.nspname IN ('annals', 'annals_internal') AND a.grantee = 0$$,
    'PUBLIC has no privilege on schemas annals and annals_internal');

-- Functions of the core API, role by role. The argument lists come from the catalog, so a later
-- trailing parameter does not break these; a missing function or a second overload changes the
-- number of tests and fails the plan.
SELECT function_privs_are('annals', p.proname,
           ARRAY(SELECT pg_catalog.format_type(a.t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i) ORDER BY a.i)::name[],
           x.role, x.privileges)
  FROM (VALUES
          ('append_events', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('append_events', 'annals_reader', ARRAY[]::name[]),
          ('append_events', 'annals_bi', ARRAY[]::name[]),
          ('append_event', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('append_event', 'annals_reader', ARRAY[]::name[]),
          ('append_event', 'annals_bi', ARRAY[]::name[]),
          ('delete_stream', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('delete_stream', 'annals_reader', ARRAY[]::name[]),
          ('delete_stream', 'annals_bi', ARRAY[]::name[]),
          ('read_stream', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('read_stream', 'annals_reader', ARRAY['EXECUTE']::name[]),
          ('read_stream', 'annals_bi', ARRAY[]::name[]),
          ('read_stream_as_of', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('read_stream_as_of', 'annals_reader', ARRAY['EXECUTE']::name[]),
          ('read_stream_as_of', 'annals_bi', ARRAY[]::name[]),
          ('stream_version_at', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('stream_version_at', 'annals_reader', ARRAY['EXECUTE']::name[]),
          ('stream_version_at', 'annals_bi', ARRAY[]::name[]),
          ('stream_info', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('stream_info', 'annals_reader', ARRAY['EXECUTE']::name[]),
          ('stream_info', 'annals_bi', ARRAY[]::name[]),
          ('read_event', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('read_event', 'annals_reader', ARRAY['EXECUTE']::name[]),
          ('read_event', 'annals_bi', ARRAY[]::name[]),
          ('schema_version', 'annals_writer', ARRAY['EXECUTE']::name[]),
          ('schema_version', 'annals_reader', ARRAY['EXECUTE']::name[]),
          ('schema_version', 'annals_bi', ARRAY['EXECUTE']::name[])) AS x(function, role, privileges)
  JOIN pg_catalog.pg_proc AS p ON p.pronamespace = 'annals'::regnamespace AND p.proname = x.function
 ORDER BY x.function, x.role;

-- annals.configure changes limits for every application: the owner only (any signature).
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function, r.role
        FROM pg_catalog.pg_proc AS p,
             unnest(ARRAY['annals_writer', 'annals_reader', 'annals_bi', 'public']) AS r(role)
       WHERE p.pronamespace = 'annals'::regnamespace AND p.proname = 'configure'
         AND has_function_privilege(r.role, p.oid, 'EXECUTE')$$,
    'no application role (nor PUBLIC) may execute annals.configure');
SELECT ok((SELECT bool_and(has_function_privilege('annals_owner', p.oid, 'EXECUTE'))
             FROM pg_catalog.pg_proc AS p
            WHERE p.pronamespace = 'annals'::regnamespace AND p.proname = 'configure'),
          'annals_owner may execute annals.configure');

-- Every function, present and future.
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function
        FROM pg_catalog.pg_proc AS p,
             aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
       WHERE p.pronamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND a.grantee = 0$$,
    'PUBLIC may execute no function in annals or annals_internal (REVOKE ALL ... FROM PUBLIC everywhere)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function, r.role
        FROM pg_catalog.pg_proc AS p,
             unnest(ARRAY['annals_writer', 'annals_reader', 'annals_bi']) AS r(role)
       WHERE p.pronamespace = 'annals_internal'::regnamespace
         AND has_function_privilege(r.role, p.oid, 'EXECUTE')
         AND NOT EXISTS (
               SELECT FROM pg_catalog.pg_depend AS d
                 JOIN pg_catalog.pg_rewrite AS rw ON rw.oid = d.objid
                 JOIN pg_catalog.pg_class AS v ON v.oid = rw.ev_class
                WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                  AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = p.oid
                  AND v.relnamespace = 'annals'::regnamespace
                  AND has_table_privilege(r.role, v.oid, 'SELECT'))$$,
    'no application role may execute a function in annals_internal, but the rows of a public view it may read');
-- A view's user needs EXECUTE on the functions the view calls, so annals_bi may also execute
-- exactly those functions that a public view it may SELECT depends on.
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'annals'::regnamespace
         AND has_function_privilege('annals_bi', p.oid, 'EXECUTE')
         AND p.proname NOT IN ('schema_version', 'feed_head', 'rebuild_attempts')
         AND NOT EXISTS (
               SELECT FROM pg_catalog.pg_depend AS d
                 JOIN pg_catalog.pg_rewrite AS rw ON rw.oid = d.objid
                WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                  AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = p.oid
                  AND has_table_privilege('annals_bi', rw.ev_class, 'SELECT'))$$,
    'annals_bi may execute no annals function but schema_version, feed_head, rebuild_attempts (a count the projections view needs) and those its views call');
-- Decided (README, roles): BI dashboards chart feed lag, so annals_bi may call annals.feed_head(),
-- which returns positions and a time, never event data.
SELECT function_privs_are('annals', 'feed_head', ARRAY[]::name[], 'annals_bi', ARRAY['EXECUTE']::name[],
                          'annals_bi may execute annals.feed_head() (lag dashboards), no data');
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace = 'annals'::regnamespace
         AND has_function_privilege('annals_reader', p.oid, 'EXECUTE')
         AND p.provolatile = 'v'
         -- VOLATILE only to take a fresh snapshot per check while they wait; they write nothing.
         -- set_tenant writes the session's setting, nothing stored: a reader sets its tenant.
         AND p.oid NOT IN ('annals.wait_for(xid8, interval)'::regprocedure,
                           'annals.wait_for_projection(text, xid8, interval)'::regprocedure,
                           'annals.set_tenant(text)'::regprocedure)$$,
    'annals_reader may execute no VOLATILE (writing) annals function but the waits for read-your-writes and set_tenant');

-- Tables: none for any application role, by name for the core tables ...
SELECT table_privs_are('annals_internal', 'events', 'annals_writer', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'events', 'annals_reader', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'events', 'annals_bi', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'streams', 'annals_writer', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'streams', 'annals_reader', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'streams', 'annals_bi', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'settings', 'annals_writer', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'settings', 'annals_reader', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'settings', 'annals_bi', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'lifecycle_log', 'annals_writer', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'lifecycle_log', 'annals_reader', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'lifecycle_log', 'annals_bi', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'schema_info', 'annals_writer', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'schema_info', 'annals_reader', ARRAY[]::name[]);
SELECT table_privs_are('annals_internal', 'schema_info', 'annals_bi', ARRAY[]::name[]);

-- ... and for every relation (partitions, sequences, views, later tables), column grants included.
SELECT is_empty(
    $$SELECT c.oid::regclass AS relation, r.role
        FROM pg_catalog.pg_class AS c,
             unnest(ARRAY['annals_writer', 'annals_reader', 'annals_bi', 'public']) AS r(role)
       WHERE c.relnamespace = 'annals_internal'::regnamespace
         AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         AND (has_table_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
              OR has_any_column_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))$$,
    'no application role (nor PUBLIC) has any table or column privilege in annals_internal');
SELECT is_empty(
    $$SELECT c.oid::regclass AS sequence, r.role
        FROM pg_catalog.pg_class AS c,
             unnest(ARRAY['annals_writer', 'annals_reader', 'annals_bi', 'public']) AS r(role)
       WHERE c.relnamespace = 'annals_internal'::regnamespace AND c.relkind = 'S'
         AND has_sequence_privilege(r.role, c.oid, 'USAGE, SELECT, UPDATE')$$,
    'no application role (nor PUBLIC) may use a sequence in annals_internal');
SELECT is_empty(
    $$SELECT c.oid::regclass AS relation, a.privilege_type
        FROM pg_catalog.pg_class AS c,
             aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
       WHERE c.relnamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND a.grantee = 0$$,
    'PUBLIC holds no grant on any relation in annals or annals_internal');

-- Behaviour: the grants do what they say (each statement runs as the role; 42501 = denied).
SELECT is(pg_temp.sqlstate_as('annals_writer',
            $$SELECT * FROM annals.append_events('priv-1', 0, '[{"type": "Opened", "data": {}}]')$$),
          '00000', 'annals_writer can append');
SELECT is(pg_temp.sqlstate_as('annals_writer', $$SELECT * FROM annals.read_stream('priv-1')$$),
          '00000', 'annals_writer can read a stream');
SELECT is(pg_temp.sqlstate_as('annals_reader', $$SELECT * FROM annals.read_stream('priv-1')$$),
          '00000', 'annals_reader can read a stream');
SELECT is(pg_temp.sqlstate_as('annals_reader', $$SELECT * FROM annals.stream_info('priv-1')$$),
          '00000', 'annals_reader can read stream info');
SELECT is(pg_temp.sqlstate_as('annals_reader',
            $$SELECT * FROM annals.append_events('priv-1', NULL, '[{"type": "Sneaky", "data": {}}]')$$),
          '42501', 'annals_reader cannot append');
SELECT is(pg_temp.sqlstate_as('annals_reader', $$SELECT annals.delete_stream('priv-1')$$),
          '42501', 'annals_reader cannot delete a stream');
SELECT is(pg_temp.sqlstate_as('annals_bi', $$SELECT annals.schema_version()$$),
          '00000', 'annals_bi can read the schema version');
SELECT is(pg_temp.sqlstate_as('annals_bi', $$SELECT * FROM annals.read_stream('priv-1')$$),
          '42501', 'annals_bi cannot call the stream reads');
SELECT is(pg_temp.sqlstate_as('annals_writer', $$SELECT annals.configure(max_batch_events => 5)$$),
          '42501', 'annals_writer cannot change the limits');
SELECT is(pg_temp.sqlstate_as('annals_owner', $$SELECT annals.configure(max_batch_events => 5)$$),
          '00000', 'annals_owner can change the limits');
SELECT is(pg_temp.sqlstate_as('annals_writer', $$SELECT count(*) FROM annals_internal.events$$),
          '42501', 'annals_writer cannot read annals_internal.events directly');
SELECT is(pg_temp.sqlstate_as('annals_reader', $$SELECT count(*) FROM annals_internal.streams$$),
          '42501', 'annals_reader cannot read annals_internal.streams directly');
SELECT is(pg_temp.sqlstate_as('annals_writer',
            $$INSERT INTO annals_internal.events (stream_id, stream_version, event_id, event_type, schema_version,
                                                  data, metadata, transaction_id, recorded_at)
              VALUES ('priv-1', 2, gen_random_uuid(), 'Forged', 1, '{}', '{}', pg_current_xact_id(), now())$$),
          '42501', 'annals_writer cannot insert into annals_internal.events directly');

SELECT * FROM finish();
ROLLBACK;
