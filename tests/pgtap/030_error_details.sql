-- Behaviour: every Annals error carries a DETAIL that is a JSON object with the documented keys
-- (clients parse DETAIL, never the message). pg_temp.error_of catches the error and parses it.
BEGIN;
\ir lib/001_helpers.sql
SELECT plan(18);

\o /dev/null
SELECT * FROM annals.append_events('det-1', 0, '[{"id": "5a0f0c8e-1f0b-4d7e-9a53-5b8f3f6f0001", "type": "A", "data": {}}]');
SELECT * FROM annals.append_events('det-gone', 0, '[{"type": "A"}]');
SELECT annals.delete_stream('det-gone');
SELECT annals.configure(max_event_bytes => 10, max_batch_events => 3);
\o

-- ST409 {"stream_id", "expected", "actual"}
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', 0, '[{"type": "B"}]')$$) - 'detail_text',
          '{"sqlstate": "ST409", "detail": {"stream_id": "det-1", "expected": 0, "actual": 1}}'::jsonb,
          'ST409 DETAIL: {"stream_id", "expected", "actual"} for expected 0');
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', 5, '[{"type": "B"}]')$$) - 'detail_text',
          '{"sqlstate": "ST409", "detail": {"stream_id": "det-1", "expected": 5, "actual": 1}}'::jsonb,
          'ST409 DETAIL for a wrong exact version');
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-missing', -1, '[{"type": "B"}]')$$) - 'detail_text',
          '{"sqlstate": "ST409", "detail": {"stream_id": "det-missing", "expected": -1, "actual": 0}}'::jsonb,
          'ST409 DETAIL for expected -1 on a missing stream (actual 0)');
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', NULL,
              '[{"id": "5a0f0c8e-1f0b-4d7e-9a53-5b8f3f6f0001", "type": "A", "data": {}}, {"type": "B"}]')$$) -> 'detail' ?& ARRAY['stream_id', 'expected', 'actual'],
          true, 'ST409 DETAIL for a partial overlap has stream_id, expected, actual');
-- ST412 {"stream_id", "event_id"}
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', 0, '[{"id": "5a0f0c8e-1f0b-4d7e-9a53-5b8f3f6f0001", "type": "A", "data": {"x": 1}}]')$$) - 'detail_text',
          '{"sqlstate": "ST412", "detail": {"stream_id": "det-1", "event_id": "5a0f0c8e-1f0b-4d7e-9a53-5b8f3f6f0001"}}'::jsonb,
          'ST412 DETAIL (other content): {"stream_id", "event_id"}');
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', 1, '[{"id": "5a0f0c8e-1f0b-4d7e-9a53-5b8f3f6f0001", "type": "A", "data": {}}]')$$) - 'detail_text',
          '{"sqlstate": "ST412", "detail": {"stream_id": "det-1", "event_id": "5a0f0c8e-1f0b-4d7e-9a53-5b8f3f6f0001"}}'::jsonb,
          'ST412 DETAIL (other position): {"stream_id", "event_id"}');
-- ST410 {"stream_id"}
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-gone', NULL, '[{"type": "B"}]')$$) - 'detail_text',
          '{"sqlstate": "ST410", "detail": {"stream_id": "det-gone"}}'::jsonb,
          'ST410 DETAIL: {"stream_id"}');
-- ST413 {"limit", "actual"}
SELECT is(e ->> 'sqlstate', 'ST413', 'event over max_event_bytes: ST413') FROM (SELECT pg_temp.error_of(
          $$SELECT * FROM annals.append_events('det-1', NULL, '[{"type": "B", "data": {"k": "0123456789"}}]')$$) AS e) AS x;
SELECT ok(e -> 'detail' @> '{"limit": 10, "actual": 19}', 'ST413 DETAIL (event): {"limit": 10, "actual": 19}') FROM (SELECT pg_temp.error_of(
          $$SELECT * FROM annals.append_events('det-1', NULL, '[{"type": "B", "data": {"k": "0123456789"}}]')$$) AS e) AS x;
SELECT ok(e -> 'detail' @> '{"limit": 3, "actual": 4}' AND e ->> 'sqlstate' = 'ST413',
          'ST413 DETAIL (batch): {"limit": 3, "actual": 4}') FROM (SELECT pg_temp.error_of(
          $$SELECT * FROM annals.append_events('det-1', NULL, '[{"type": "B"}, {"type": "B"}, {"type": "B"}, {"type": "B"}]')$$) AS e) AS x;
-- ST422 {"argument", "reason"}
SELECT is(jsonb_build_object('sqlstate', e -> 'sqlstate', 'argument', e -> 'detail' -> 'argument', 'has_reason', jsonb_typeof(e -> 'detail' -> 'reason')),
          '{"sqlstate": "ST422", "argument": "stream_id", "has_reason": "string"}'::jsonb,
          'ST422 DETAIL: {"argument": "stream_id", "reason": "..."}')
  FROM (SELECT pg_temp.error_of($$SELECT * FROM annals.append_events(NULL, NULL, '[]')$$) AS e) AS x;
SELECT is(jsonb_build_object('sqlstate', e -> 'sqlstate', 'argument', e -> 'detail' -> 'argument', 'has_reason', jsonb_typeof(e -> 'detail' -> 'reason')),
          '{"sqlstate": "ST422", "argument": "events[1].data", "has_reason": "string"}'::jsonb,
          'ST422 DETAIL names the offending element: events[1].data (0-based index)')
  FROM (SELECT pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', NULL, '[{"type": "A"}, {"type": "B", "data": []}]')$$) AS e) AS x;
SELECT is(jsonb_build_object('sqlstate', e -> 'sqlstate', 'argument', e -> 'detail' -> 'argument'),
          '{"sqlstate": "ST422", "argument": "max_count"}'::jsonb,
          'ST422 DETAIL from a read: {"argument": "max_count"}')
  FROM (SELECT pg_temp.error_of($$SELECT * FROM annals.read_stream('det-1', NULL, 0)$$) AS e) AS x;
-- ST403 {"argument"}
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('$det', NULL, '[{"type": "B"}]')$$) -> 'detail' ->> 'argument',
          'stream_id', 'ST403 DETAIL: {"argument": "stream_id"}');
SELECT is(pg_temp.error_of($$SELECT * FROM annals.append_events('det-1', NULL, '[{"type": "$B"}]')$$) -> 'detail' ->> 'argument',
          'events[0].type', 'ST403 DETAIL: {"argument": "events[0].type"}');
-- ST405 {"table", "operation"}: the table the statement named (a DELETE is checked once per
-- statement; an UPDATE per row, on the partition holding it).
SELECT is(pg_temp.error_of($$DELETE FROM annals_internal.events WHERE stream_id = 'det-1'$$) - 'detail_text',
          jsonb_build_object('sqlstate', 'ST405', 'detail', jsonb_build_object(
              'table', 'annals_internal.events',
              'operation', 'DELETE')),
          'ST405 DETAIL: {"table" (the one the DELETE named), "operation"}');
SELECT is(pg_temp.error_of($$UPDATE annals_internal.events SET data = '{}' WHERE stream_id = 'det-1'$$) - 'detail_text',
          jsonb_build_object('sqlstate', 'ST405', 'detail', jsonb_build_object(
              'table', (SELECT tableoid::regclass::text FROM annals_internal.events WHERE stream_id = 'det-1' LIMIT 1),
              'operation', 'UPDATE')),
          'ST405 DETAIL: {"table" (the partition), "operation"} for an UPDATE');

-- The helper itself reports success as a null sqlstate, so the tests above cannot pass vacuously.
SELECT is(pg_temp.error_of($$SELECT 1$$), '{"sqlstate": null}'::jsonb, 'error_of reports a statement that succeeds');

SELECT * FROM finish();
ROLLBACK;
