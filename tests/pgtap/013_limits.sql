-- Behaviour: size and count limits (ST413) and annals.configure, all inside the test transaction
-- so the settings row is back to its defaults afterwards.
BEGIN;
SELECT plan(16);

-- Default: 1 MiB of JSON text per event's data.
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('lim-1', NULL,
        jsonb_build_array(jsonb_build_object('type', 'Big', 'data', jsonb_build_object('blob', repeat('x', 1048576)))))$$,
    'ST413', NULL, 'data over the default max_event_bytes (1 MiB): ST413');

SELECT is(annals.configure(max_event_bytes => 20) ->> 'max_event_bytes', '20',
          'configure(max_event_bytes => 20) returns the limits now in force');
SELECT is((SELECT max_event_bytes FROM annals_internal.settings), 20, 'the new limit is stored');
-- {"k": "<n x>"} is n + 9 bytes of JSON text.
SELECT lives_ok(
    $$SELECT * FROM annals.append_events('lim-1', NULL,
        jsonb_build_array(jsonb_build_object('type', 'T', 'data', jsonb_build_object('k', repeat('x', 11)))))$$,
    'data of exactly max_event_bytes (20) is accepted');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('lim-1', NULL,
        jsonb_build_array(jsonb_build_object('type', 'T', 'data', jsonb_build_object('k', repeat('x', 12)))))$$,
    'ST413', NULL, 'data one byte over max_event_bytes: ST413');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('lim-1', NULL,
        jsonb_build_array(jsonb_build_object('type', 'T', 'data', '{}'::jsonb),
                          jsonb_build_object('type', 'T', 'data', jsonb_build_object('k', repeat('é', 6)))))$$,
    'ST413', NULL, 'the limit counts bytes, not characters, and applies to every event of the batch: ST413');
SELECT is(annals.configure(max_event_bytes => 1048576) ->> 'max_event_bytes', '1048576', 'max_event_bytes restored');

SELECT is(annals.configure(max_batch_events => 2) ->> 'max_batch_events', '2', 'configure(max_batch_events => 2)');
SELECT lives_ok($$SELECT * FROM annals.append_events('lim-2', NULL, '[{"type": "T"}, {"type": "T"}]')$$,
                'a batch of exactly max_batch_events is accepted');
SELECT throws_ok($$SELECT * FROM annals.append_events('lim-2', NULL, '[{"type": "T"}, {"type": "T"}, {"type": "T"}]')$$,
                 'ST413', NULL, 'a batch over max_batch_events: ST413');

SELECT is(annals.configure(max_batch_events => 10000, max_batch_bytes => 200) ->> 'max_batch_bytes', '200',
          'configure(max_batch_bytes => 200)');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('lim-3', NULL,
        jsonb_build_array(jsonb_build_object('type', 'T', 'data', jsonb_build_object('k', repeat('x', 300)))))$$,
    'ST413', NULL, 'a batch over max_batch_bytes: ST413');

-- configure validates its arguments and keeps what it is not given.
SELECT throws_ok($$SELECT annals.configure(max_event_bytes => 0)$$, 'ST422', NULL, 'configure(max_event_bytes => 0): ST422');
SELECT throws_ok($$SELECT annals.configure(max_batch_events => -1)$$, 'ST422', NULL, 'configure(max_batch_events => -1): ST422');
SELECT throws_ok($$SELECT annals.configure(max_batch_bytes => 0)$$, 'ST422', NULL, 'configure(max_batch_bytes => 0): ST422');
SELECT results_eq(
    $$SELECT (s ->> 'max_event_bytes')::int, (s ->> 'max_batch_events')::int, (s ->> 'max_batch_bytes')::int
        FROM annals.configure() AS s$$,
    $$VALUES (1048576, 10000, 200)$$,
    'configure() without arguments changes nothing and reports the limits in force');

SELECT * FROM finish();
ROLLBACK;
