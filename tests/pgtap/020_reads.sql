-- Behaviour: annals.read_stream (forwards, backwards, paging), annals.read_stream_as_of (by
-- version and by time), annals.stream_version_at, annals.stream_info and annals.read_event, with
-- their ST422/ST403.
BEGIN;
SELECT plan(47);

-- rd-1: versions 1-2 in one append, 3 in a second, 4-5 in a third, a little time apart.
\o /dev/null
CREATE TEMP TABLE rd_marks (label text PRIMARY KEY, at timestamptz);
INSERT INTO rd_marks VALUES ('before', clock_timestamp());
SELECT pg_sleep(0.005);
SELECT * FROM annals.append_events('rd-1', 0, '[{"type": "E1", "data": {"i": 1}}, {"type": "E2", "data": {"i": 2}}]');
SELECT pg_sleep(0.005);
INSERT INTO rd_marks VALUES ('after_2', clock_timestamp());
SELECT pg_sleep(0.005);
SELECT * FROM annals.append_events('rd-1', 2, '[{"type": "E3", "data": {"i": 3}, "metadata": {"actor": "t"}}]');
SELECT pg_sleep(0.005);
SELECT * FROM annals.append_events('rd-1', 3, '[{"type": "E4", "data": {"i": 4}}, {"type": "E5", "data": {"i": 5}, "schema_version": 2}]');
SELECT * FROM annals.append_events('rd-other', 0, '[{"type": "X"}]');
\o

-- read_stream: every column of annals.event, in version order.
SELECT results_eq(
    $$SELECT * FROM annals.read_stream('rd-1')$$,
    $$SELECT e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type, e.schema_version,
             e.data, e.metadata, e.transaction_id, e.recorded_at
        FROM annals_internal.events AS e WHERE e.stream_id = 'rd-1' ORDER BY e.stream_version$$,
    'read_stream returns every event of the stream as annals.event rows, in version order');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', 3)$$, ARRAY[3, 4, 5]::bigint[],
                  'from_version 3 starts at version 3 (inclusive)');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', NULL, 2)$$, ARRAY[1, 2]::bigint[],
                  'max_count 2 reads the first two events');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', 3, 2)$$, ARRAY[3, 4]::bigint[],
                  'paging: from_version 3, max_count 2');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', 5, 2)$$, ARRAY[5]::bigint[],
                  'paging: the last page is short');
SELECT is_empty($$SELECT * FROM annals.read_stream('rd-1', 6)$$, 'paging: from_version past the end reads nothing');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', backwards => true)$$, ARRAY[5, 4, 3, 2, 1]::bigint[],
                  'backwards from the end');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', 3, 2, true)$$, ARRAY[3, 2]::bigint[],
                  'backwards from version 3, two events');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', 99, 2, true)$$, ARRAY[5, 4]::bigint[],
                  'backwards from beyond the end starts at the last event');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream('rd-1', 1, 10, true)$$, ARRAY[1]::bigint[],
                  'backwards from version 1 reads one event');
SELECT is_empty($$SELECT * FROM annals.read_stream('rd-missing')$$, 'a missing stream reads as empty');
SELECT results_eq($$SELECT stream_id, stream_version FROM annals.read_stream('rd-other')$$,
                  $$VALUES ('rd-other', 1::bigint)$$, 'read_stream reads only the given stream');
SELECT is((SELECT count(*) FROM annals.read_stream('rd-1', max_count => 1000)), 5::bigint, 'default paging reads everything here');

SELECT throws_ok($$SELECT * FROM annals.read_stream('rd-1', NULL, 0)$$, 'ST422', NULL, 'read_stream max_count 0: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream('rd-1', NULL, NULL)$$, 'ST422', NULL, 'read_stream max_count NULL: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream('rd-1', 0)$$, 'ST422', NULL, 'read_stream from_version 0: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream('rd-1', NULL, 10, NULL)$$, 'ST422', NULL, 'read_stream backwards NULL: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream(NULL)$$, 'ST422', NULL, 'read_stream NULL stream id: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream('$all')$$, 'ST403', NULL, 'read_stream reserved stream id: ST403');

-- read_stream_as_of, by version.
SELECT results_eq($$SELECT stream_version FROM annals.read_stream_as_of('rd-1', as_of_version => 3)$$, ARRAY[1, 2, 3]::bigint[],
                  'as of version 3: versions 1-3');
SELECT is_empty($$SELECT * FROM annals.read_stream_as_of('rd-1', as_of_version => 0)$$, 'as of version 0: nothing');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream_as_of('rd-1', as_of_version => 50)$$, ARRAY[1, 2, 3, 4, 5]::bigint[],
                  'as of a version beyond the end: the whole stream');
SELECT results_eq($$SELECT stream_version FROM annals.read_stream_as_of('rd-1', as_of_version => 4, from_version => 2, max_count => 2)$$,
                  ARRAY[2, 3]::bigint[], 'as of version 4, paged from version 2, two events');
SELECT results_eq($$SELECT * FROM annals.read_stream_as_of('rd-1', as_of_version => 5)$$,
                  $$SELECT * FROM annals.read_stream('rd-1')$$, 'as of the current version equals read_stream');

-- read_stream_as_of, by time: the events recorded at or before it.
SELECT results_eq(
    $$SELECT stream_version FROM annals.read_stream_as_of('rd-1', as_of_time => (SELECT at FROM pg_temp.rd_marks WHERE label = 'after_2'))$$,
    ARRAY[1, 2]::bigint[], 'as of a time between the first and second append: versions 1-2');
SELECT is_empty(
    $$SELECT * FROM annals.read_stream_as_of('rd-1', as_of_time => (SELECT at FROM pg_temp.rd_marks WHERE label = 'before'))$$,
    'as of a time before the first append: nothing');
SELECT results_eq(
    $$SELECT stream_version FROM annals.read_stream_as_of('rd-1', as_of_time => (SELECT recorded_at FROM annals_internal.events WHERE stream_id = 'rd-1' AND stream_version = 3))$$,
    ARRAY[1, 2, 3]::bigint[], 'as of exactly an event''s recorded_at includes that event');
SELECT results_eq(
    $$SELECT stream_version FROM annals.read_stream_as_of('rd-1', as_of_time => 'infinity')$$,
    ARRAY[1, 2, 3, 4, 5]::bigint[], 'as of infinity: the whole stream');

SELECT throws_ok($$SELECT * FROM annals.read_stream_as_of('rd-1')$$, 'ST422', NULL, 'read_stream_as_of with neither version nor time: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream_as_of('rd-1', as_of_version => 1, as_of_time => now())$$,
                 'ST422', NULL, 'read_stream_as_of with both version and time: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream_as_of('rd-1', as_of_version => -1)$$, 'ST422', NULL, 'read_stream_as_of version -1: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream_as_of('rd-1', as_of_version => 1, max_count => 0)$$, 'ST422', NULL, 'read_stream_as_of max_count 0: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_stream_as_of('$rd', as_of_version => 1)$$, 'ST403', NULL, 'read_stream_as_of reserved stream id: ST403');

-- stream_version_at.
SELECT is(annals.stream_version_at('rd-1', (SELECT at FROM pg_temp.rd_marks WHERE label = 'after_2')), 2::bigint,
          'stream_version_at between the first and second append: 2');
SELECT is(annals.stream_version_at('rd-1', (SELECT at FROM pg_temp.rd_marks WHERE label = 'before')), 0::bigint,
          'stream_version_at before the first append: 0');
SELECT is(annals.stream_version_at('rd-1', 'infinity'), 5::bigint, 'stream_version_at now: 5');
SELECT throws_ok($$SELECT annals.stream_version_at('rd-1', NULL)$$, 'ST422', NULL, 'stream_version_at NULL time: ST422');

-- stream_info.
SELECT results_eq(
    $$SELECT * FROM annals.stream_info('rd-1')$$,
    $$SELECT 'rd-1'::text, 5::bigint,
             (SELECT recorded_at FROM annals_internal.events WHERE stream_id = 'rd-1' AND stream_version = 1),
             (SELECT recorded_at FROM annals_internal.events WHERE stream_id = 'rd-1' AND stream_version = 5),
             'active'::text$$,
    'stream_info: id, current version, created at the first event, updated at the last, active');
SELECT is_empty($$SELECT * FROM annals.stream_info('rd-missing')$$, 'stream_info of a stream without events: no row');
SELECT throws_ok($$SELECT * FROM annals.stream_info(' rd-1')$$, 'ST422', NULL, 'stream_info malformed stream id: ST422');
SELECT throws_ok($$SELECT * FROM annals.stream_info('$rd')$$, 'ST403', NULL, 'stream_info reserved stream id: ST403');

-- read_event: one event by id, upcast like every read; ids are unique per stream only.
\o /dev/null
SELECT * FROM annals.append_events('rd-copy', 0,
    (SELECT jsonb_build_array(jsonb_build_object('id', e.event_id, 'type', 'Copied'))
       FROM annals_internal.events AS e WHERE e.stream_id = 'rd-1' AND e.stream_version = 3));
\o
SELECT results_eq(
    $$SELECT * FROM annals.read_event((SELECT event_id FROM annals_internal.events WHERE stream_id = 'rd-1' AND stream_version = 2))$$,
    $$SELECT * FROM annals.read_stream('rd-1', 2, 1)$$,
    'read_event returns the event with that id, as read_stream does');
SELECT results_eq(
    $$SELECT stream_id, stream_version, event_type FROM annals.read_event((SELECT event_id FROM annals_internal.events WHERE stream_id = 'rd-1' AND stream_version = 3))$$,
    $$VALUES ('rd-1'::text, 3::bigint, 'E3'::text), ('rd-copy', 1, 'Copied')$$,
    'an id stored in two streams returns both events, oldest first');
SELECT is_empty($$SELECT * FROM annals.read_event('00000000-0000-0000-0000-000000000000')$$, 'read_event of an unknown id: no row');
SELECT results_eq(
    $$SELECT * FROM annals.read_event((SELECT event_id FROM annals_internal.events WHERE stream_id = 'rd-1' AND stream_version = 5), raw => true)$$,
    $$SELECT * FROM annals.read_stream('rd-1', 5, 1, raw => true)$$,
    'read_event raw => true returns the stored bytes, as read_stream raw does');
SELECT throws_ok($$SELECT * FROM annals.read_event(NULL)$$, 'ST422', NULL, 'read_event NULL id: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_event('00000000-0000-0000-0000-000000000000', NULL)$$, 'ST422', NULL, 'read_event raw NULL: ST422');

SELECT * FROM finish();
ROLLBACK;
