-- Behaviour: annals.delete_stream closes a stream (ST410 for later appends and deletes), keeps
-- its events readable and audits the operation in lifecycle_log.
BEGIN;
SELECT plan(17);

SELECT lives_ok($$SELECT * FROM annals.append_events('del-1', 0, '[{"type": "Opened"}, {"type": "Closed"}]')$$,
                'append two events to del-1');

-- Refusals before anything happens.
SELECT throws_ok($$SELECT annals.delete_stream('del-missing')$$, 'ST409', NULL, 'deleting a missing stream: ST409');
SELECT throws_ok($$SELECT annals.delete_stream('del-1', 1)$$, 'ST409', NULL, 'deleting with a wrong expected version: ST409');
SELECT throws_ok($$SELECT annals.delete_stream('del-1', 0)$$, 'ST409', NULL, 'deleting with expected 0 (no stream): ST409');
SELECT throws_ok($$SELECT annals.delete_stream('del-1', -2)$$, 'ST422', NULL, 'deleting with expected -2: ST422');
SELECT throws_ok($$SELECT annals.delete_stream('$del')$$, 'ST403', NULL, 'deleting a reserved stream id: ST403');
SELECT throws_ok($$SELECT annals.delete_stream(NULL)$$, 'ST422', NULL, 'deleting a NULL stream id: ST422');

SELECT is(annals.delete_stream('del-1', 2, 'test: closing the stream'), 2::bigint,
          'delete_stream returns the final version');
SELECT results_eq(
    $$SELECT stream_id, operation, stream_version, performed_by, reason FROM annals_internal.lifecycle_log WHERE stream_id = 'del-1'$$,
    $$VALUES ('del-1', 'delete', 2::bigint, session_user::text COLLATE "default", 'test: closing the stream')$$,
    'the deletion is audited: who, what, at which version, why');
SELECT is((SELECT state FROM annals.stream_info('del-1')), 'deleted', 'stream_info reports the stream as deleted');

-- ST410 from now on.
SELECT throws_ok($$SELECT * FROM annals.append_events('del-1', NULL, '[{"type": "Reopened"}]')$$,
                 'ST410', NULL, 'appending to a deleted stream: ST410');
SELECT throws_ok($$SELECT * FROM annals.append_events('del-1', 2, '[{"type": "Reopened"}]')$$,
                 'ST410', NULL, 'appending to a deleted stream at its exact version: ST410');
SELECT throws_ok($$SELECT * FROM annals.append_events('del-1', 0, '[{"type": "Reopened"}]')$$,
                 'ST410', NULL, 'appending to a deleted stream as if it were new: ST410');
SELECT throws_ok($$SELECT * FROM annals.append_events('del-1', NULL, '[]')$$,
                 'ST410', NULL, 'an empty batch to a deleted stream: ST410');
SELECT throws_ok($$SELECT annals.delete_stream('del-1')$$, 'ST410', NULL, 'deleting a deleted stream again: ST410');

-- History stays.
SELECT results_eq($$SELECT event_type FROM annals.read_stream('del-1')$$, ARRAY['Opened', 'Closed'],
                  'a deleted stream''s events stay readable');
SELECT is((SELECT stream_version FROM annals_internal.streams WHERE stream_id = 'del-1'), 2::bigint,
          'the deleted stream keeps its version');

SELECT * FROM finish();
ROLLBACK;
