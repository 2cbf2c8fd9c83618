-- Behaviour: history is append-only for everyone, the owner included. UPDATE, DELETE and TRUNCATE
-- on events (the parent and each partition directly), DELETE/TRUNCATE on streams and any change
-- to lifecycle_log fail with ST405.
BEGIN;
\ir lib/001_helpers.sql
SELECT plan(25);

SELECT lives_ok($$SELECT * FROM annals.append_events('ao-1', 0, '[{"type": "A"}, {"type": "B"}]')$$, 'append to ao-1');
SELECT lives_ok($$SELECT annals.delete_stream('ao-closed', NULL) FROM annals.append_events('ao-closed', 0, '[{"type": "A"}]')$$,
                'close ao-closed so lifecycle_log has a row');
SELECT tableoid::regclass AS ao_partition FROM annals_internal.events WHERE stream_id = 'ao-1' LIMIT 1 \gset

SELECT throws_ok($$UPDATE annals_internal.events SET data = '{"tampered": true}' WHERE stream_id = 'ao-1'$$,
                 'ST405', NULL, 'UPDATE on events: ST405');
SELECT throws_ok($$DELETE FROM annals_internal.events WHERE stream_id = 'ao-1'$$,
                 'ST405', NULL, 'DELETE on events: ST405');
SELECT throws_ok($$TRUNCATE annals_internal.events$$, 'ST405', NULL, 'TRUNCATE on events: ST405');
SELECT throws_ok(format('UPDATE %s SET event_type = %L', :'ao_partition', 'Tampered'),
                 'ST405', NULL, 'UPDATE directly on the partition holding the rows: ST405');
SELECT throws_ok(format('DELETE FROM %s', :'ao_partition'),
                 'ST405', NULL, 'DELETE directly on the partition holding the rows: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p0', 'ST405', NULL, 'TRUNCATE on partition events_p0: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p1', 'ST405', NULL, 'TRUNCATE on partition events_p1: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p2', 'ST405', NULL, 'TRUNCATE on partition events_p2: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p3', 'ST405', NULL, 'TRUNCATE on partition events_p3: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p4', 'ST405', NULL, 'TRUNCATE on partition events_p4: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p5', 'ST405', NULL, 'TRUNCATE on partition events_p5: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p6', 'ST405', NULL, 'TRUNCATE on partition events_p6: ST405');
SELECT throws_ok('TRUNCATE annals_internal.events_p7', 'ST405', NULL, 'TRUNCATE on partition events_p7: ST405');

SELECT throws_ok($$DELETE FROM annals_internal.streams WHERE stream_id = 'ao-1'$$, 'ST405', NULL, 'DELETE on streams: ST405');
SELECT throws_ok($$TRUNCATE annals_internal.streams CASCADE$$, 'ST405', NULL, 'TRUNCATE on streams: ST405');
SELECT throws_ok($$UPDATE annals_internal.lifecycle_log SET reason = 'rewritten'$$, 'ST405', NULL, 'UPDATE on lifecycle_log: ST405');
SELECT throws_ok($$DELETE FROM annals_internal.lifecycle_log$$, 'ST405', NULL, 'DELETE on lifecycle_log: ST405');
SELECT throws_ok($$TRUNCATE annals_internal.lifecycle_log$$, 'ST405', NULL, 'TRUNCATE on lifecycle_log: ST405');

-- The owner of the tables is refused too.
SELECT is(pg_temp.sqlstate_as('annals_owner', $$DELETE FROM annals_internal.events WHERE stream_id = 'ao-1'$$),
          'ST405', 'annals_owner cannot DELETE events either');
SELECT is(pg_temp.sqlstate_as('annals_owner', $$UPDATE annals_internal.events SET data = '{}' WHERE stream_id = 'ao-1'$$),
          'ST405', 'annals_owner cannot UPDATE events either');
SELECT is(pg_temp.sqlstate_as('annals_owner', $$TRUNCATE annals_internal.events$$),
          'ST405', 'annals_owner cannot TRUNCATE events either');

-- Everything is still there.
SELECT results_eq($$SELECT event_type, data FROM annals_internal.events WHERE stream_id = 'ao-1' ORDER BY stream_version$$,
                  $$VALUES ('A', '{}'::jsonb), ('B', '{}'::jsonb)$$, 'the events are unchanged');
SELECT is((SELECT count(*) FROM annals_internal.lifecycle_log WHERE stream_id = 'ao-closed'), 1::bigint,
          'the audit row is unchanged');

SELECT * FROM finish();
ROLLBACK;
