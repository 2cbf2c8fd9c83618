-- Structure and behaviour: the history guard (functions/011_history_guard.sql), installed because
-- the suite's database is migrated by a superuser. Two event triggers, enabled, owned by a
-- superuser, calling a SECURITY DEFINER function in schema annals_guard, which no other role may
-- use; the pinned state is the current one; a member of annals_owner who is no superuser is
-- refused DDL that changes a guard, and a superuser is not.
BEGIN;
SET LOCAL client_min_messages = warning;  -- the refused DROP SCHEMA would list everything it cascades to
SELECT plan(16);

SELECT has_schema('annals_guard', 'schema annals_guard exists');
SELECT ok((SELECT r.rolsuper FROM pg_catalog.pg_namespace AS n JOIN pg_catalog.pg_roles AS r ON r.oid = n.nspowner
            WHERE n.nspname = 'annals_guard'),
          'annals_guard is owned by a superuser, so annals_owner cannot drop what is in it');
SELECT is_empty(
    $$SELECT p.oid::regprocedure, pg_catalog.pg_get_userbyid(p.proowner)
        FROM pg_catalog.pg_proc AS p
        JOIN pg_catalog.pg_roles AS r ON r.oid = p.proowner
       WHERE p.pronamespace = 'annals_guard'::regnamespace AND NOT r.rolsuper$$,
    'every function in annals_guard is owned by a superuser');
SELECT results_eq(
    $$SELECT e.evtname::text COLLATE "default", e.evtevent::text COLLATE "default", e.evtfoid::regproc::text, e.evtenabled::text, r.rolsuper
        FROM pg_catalog.pg_event_trigger AS e JOIN pg_catalog.pg_roles AS r ON r.oid = e.evtowner
       WHERE e.evtname LIKE 'annals%' ORDER BY 1$$,
    $$VALUES ('annals_history_guard', 'ddl_command_end', 'annals_guard.history_guard', 'O', true),
             ('annals_history_guard_rewrite', 'table_rewrite', 'annals_guard.history_guard', 'O', true)$$,
    'the two event triggers exist, are enabled, owned by a superuser and call annals_guard.history_guard()');
SELECT ok((SELECT p.prosecdef AND p.proconfig = ARRAY['search_path=pg_catalog, pg_temp']
             FROM pg_catalog.pg_proc AS p WHERE p.oid = 'annals_guard.history_guard()'::regprocedure),
          'history_guard() is SECURITY DEFINER with a pinned search_path');
SELECT is_empty(
    $$SELECT n.nspname, a.grantee::regrole, a.privilege_type
        FROM pg_catalog.pg_namespace AS n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a
       WHERE n.nspname = 'annals_guard' AND a.grantee <> n.nspowner
      UNION ALL
      SELECT c.relname, a.grantee::regrole, a.privilege_type
        FROM pg_catalog.pg_class AS c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
       WHERE c.relnamespace = 'annals_guard'::regnamespace AND a.grantee <> c.relowner
      UNION ALL
      SELECT p.proname, a.grantee::regrole, a.privilege_type
        FROM pg_catalog.pg_proc AS p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
       WHERE p.pronamespace = 'annals_guard'::regnamespace AND a.grantee <> p.proowner$$,
    'no role but the owner (not PUBLIC either) holds a privilege in annals_guard');
SELECT is((SELECT p.state FROM annals_guard.pinned AS p), annals_guard.history_state(),
          'the pinned state is the installed one');
SELECT ok(annals_guard.history_state() @> ARRAY[
              'trigger events_append_only on annals_internal.events_p7 | enabled=O CREATE TRIGGER events_append_only BEFORE UPDATE ON annals_internal.events_p7 FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change()',
              'trigger events_delete_check on annals_internal.events_p7 | enabled=O CREATE TRIGGER events_delete_check AFTER DELETE ON annals_internal.events_p7 REFERENCING OLD TABLE AS deleted_events FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.check_history_delete()',
              'relation annals_internal.lifecycle_log | kind=r owner=annals_owner persistence=p rls=f force_rls=f partition_key=- partition_of=- bound=-'],
          'the state pins each partition''s trigger and its enabled state, and every history table');
SELECT is((SELECT count(*) FROM annals_guard.guarded_relations()), 14::bigint,
          'guarded: events, its 8 partitions, streams, lifecycle_log, cold_segments, cold_batches, cold_tags');

-- A member of annals_owner who is no superuser: SET SESSION AUTHORIZATION makes it the session
-- user, which is what the guard checks. The role is rolled back with the test.
SELECT 'annals_t_pgtap_' || pg_catalog.md5(pg_catalog.random()::text) AS member \gset
CREATE ROLE :"member" LOGIN;
GRANT annals_owner TO :"member";
SET SESSION AUTHORIZATION :"member";
SELECT throws_ok('ALTER TABLE annals_internal.events_p0 DISABLE TRIGGER events_append_only', 'ST401', NULL,
                 'a member may not disable a partition''s append-only trigger');
-- PostgreSQL refuses any column type change of events while functions take its row type
-- (functions/004_as_event.sql and the reads built on it); the member drops them first, as its
-- role allows.
SELECT throws_ok($$DO 'BEGIN
                     DROP FUNCTION annals_internal.as_event(annals_internal.events) CASCADE;
                     ALTER TABLE annals_internal.events ALTER COLUMN data TYPE jsonb USING ''{}'';
                   END'$$, 'ST401', NULL,
                 'a member may not rewrite events');
SELECT throws_ok($$CREATE OR REPLACE FUNCTION annals_internal.reject_history_change() RETURNS trigger LANGUAGE plpgsql
                   AS 'BEGIN RETURN NEW; END'$$, 'ST401', NULL, 'a member may not replace the append-only function');
SELECT throws_ok('DROP SCHEMA annals_internal CASCADE', 'ST401', NULL, 'a member may not drop annals_internal');
SELECT lives_ok('ALTER TABLE annals_internal.events DISABLE TRIGGER events_dispatch_inline',
                'a member may switch the inline dispatch trigger, as the projection functions do');
RESET SESSION AUTHORIZATION;
SELECT lives_ok('ALTER TABLE annals_internal.events_p0 DISABLE TRIGGER events_append_only; ALTER TABLE annals_internal.events_p0 ENABLE TRIGGER events_append_only',
                'a superuser may');
SELECT is((SELECT p.state FROM annals_guard.pinned AS p), annals_guard.history_state(),
          'and its DDL pins the state it leaves');

SELECT * FROM finish();
ROLLBACK;
