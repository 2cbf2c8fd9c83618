-- Behaviour: idempotent replays (the original result, nothing written), ST412 for an event id
-- reused with other content or at another position, and the empty batch.
BEGIN;
SELECT plan(28);

-- Stream idem-1: [a, b] by one append, then [c].
CREATE TEMP TABLE first_result AS
SELECT * FROM annals.append_events('idem-1', 0, '[
    {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}},
    {"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2}]');
CREATE TEMP TABLE second_result AS
SELECT * FROM annals.append_events('idem-1', 2, '[{"id": "00000000-0000-4000-8000-00000000000c", "type": "C", "data": {}}]');
CREATE TEMP TABLE before_replays AS
SELECT (SELECT count(*) FROM annals_internal.events) AS events,
       (SELECT s FROM annals_internal.streams AS s WHERE s.stream_id = 'idem-1') AS stream_row,
       (SELECT count(*) FROM annals_internal.lifecycle_log) AS log_rows;

SELECT results_eq(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[
        {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}},
        {"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2}]')$$,
    $$SELECT * FROM pg_temp.first_result$$,
    'replaying the first batch (expected 0) returns its original result, not the stream''s current version');
SELECT results_eq(
    $$SELECT * FROM annals.append_events('idem-1', NULL, '[
        {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}},
        {"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2}]')$$,
    $$SELECT * FROM pg_temp.first_result$$,
    'replaying the first batch with expected any returns its original result');
SELECT results_eq(
    $$SELECT * FROM annals.append_events('idem-1', 2, '[{"id": "00000000-0000-4000-8000-00000000000c", "type": "C", "data": {}}]')$$,
    $$SELECT * FROM pg_temp.second_result$$,
    'replaying the last batch (expected 2) returns its original result');
SELECT results_eq(
    $$SELECT * FROM annals.append_events('idem-1', -1, '[{"id": "00000000-0000-4000-8000-00000000000c", "type": "C", "data": {}}]')$$,
    $$SELECT * FROM pg_temp.second_result$$,
    'replaying the last batch with expected -1 returns its original result');
SELECT results_eq(
    $$SELECT r.stream_version FROM annals.append_events('idem-1', NULL, '[
        {"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2},
        {"id": "00000000-0000-4000-8000-00000000000c", "type": "C", "data": {}}]') AS r$$,
    ARRAY[3::bigint],
    'with expected any, stored ids in the same order and contiguous are a replay (returns version 3)');
SELECT results_eq(
    $$SELECT r.stream_version FROM annals.append_events('idem-1', NULL, '[
        {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}}]') AS r$$,
    ARRAY[1::bigint],
    'with expected any, a single stored id replays to its own version');
SELECT results_eq(
    $$SELECT r.stream_version FROM annals.append_events('idem-1', 0, '[{"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}}]') AS r$$,
    ARRAY[1::bigint],
    'replaying a prefix of the first batch at its position (expected 0) returns version 1');
SELECT lives_ok(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[
        {"id": "00000000-0000-4000-8000-00000000000A", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}},
        {"id": "0000000000004000800000000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2}]')$$,
    'ids compare as UUIDs: other spellings of the same ids replay too');

-- Replays wrote nothing.
SELECT is((SELECT count(*) FROM annals_internal.events), (SELECT events FROM pg_temp.before_replays),
          'replays stored no event');
SELECT is((SELECT s FROM annals_internal.streams AS s WHERE s.stream_id = 'idem-1')::text,
          (SELECT stream_row FROM pg_temp.before_replays)::text,
          'replays left the stream row untouched (version, last transaction id, updated_at)');

-- Event ids are unique per stream, not globally.
SELECT results_eq(
    $$SELECT stream_version FROM annals.append_events('idem-2', 0, '[{"id": "00000000-0000-4000-8000-00000000000a", "type": "Other", "data": {"k": 9}}]')$$,
    ARRAY[1::bigint], 'the same event id may be used in another stream');

-- ST412: same id, other content.
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[
        {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 999}, "metadata": {"actor": "x"}},
        {"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2}]')$$,
    'ST412', NULL, 'a stored id re-sent with other data: ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[{"id": "00000000-0000-4000-8000-00000000000a", "type": "Renamed", "data": {"k": 1}, "metadata": {"actor": "x"}}]')$$,
    'ST412', NULL, 'a stored id re-sent with another type: ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[{"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}}]')$$,
    'ST412', NULL, 'a stored id re-sent with other metadata: ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[{"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}, "schema_version": 5}]')$$,
    'ST412', NULL, 'a stored id re-sent with another schema_version: ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', NULL, '[{"id": "00000000-0000-4000-8000-00000000000c", "type": "C", "data": {"changed": true}}]')$$,
    'ST412', NULL, 'a stored id re-sent with other data and expected any: ST412');
-- ST412: same id, another position.
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', 0, '[{"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2}]')$$,
    'ST412', NULL, 'a stored id re-sent at another position (expected 0, stored at 2): ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', 1, '[{"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}}]')$$,
    'ST412', NULL, 'a stored id re-sent at another position (expected 1, stored at 1): ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', NULL, '[
        {"id": "00000000-0000-4000-8000-00000000000b", "type": "B", "data": {"k": 2}, "schema_version": 2},
        {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}}]')$$,
    'ST412', NULL, 'stored ids re-sent in another order (expected any): ST412');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('idem-1', NULL, '[
        {"id": "00000000-0000-4000-8000-00000000000a", "type": "A", "data": {"k": 1}, "metadata": {"actor": "x"}},
        {"id": "00000000-0000-4000-8000-00000000000c", "type": "C", "data": {}}]')$$,
    'ST412', NULL, 'stored ids re-sent with a gap between them (expected any): ST412');
SELECT is((SELECT count(*) FROM annals_internal.events), (SELECT events FROM pg_temp.before_replays) + 1,
          'the rejected batches stored nothing (only idem-2''s event was added)');

-- The empty batch: a no-op that returns the current version.
SELECT results_eq($$SELECT * FROM annals.append_events('idem-1', NULL, '[]')$$,
                  $$SELECT * FROM pg_temp.second_result$$,
                  'an empty batch returns the stream''s current version, last position and transaction id');
SELECT results_eq($$SELECT * FROM annals.append_events('idem-1', 3, '[]')$$,
                  $$SELECT * FROM pg_temp.second_result$$,
                  'an empty batch with the right expected version returns the current version');
SELECT results_eq($$SELECT * FROM annals.append_events('idem-1', -1, '[]')$$,
                  $$SELECT * FROM pg_temp.second_result$$,
                  'an empty batch with expected -1 on an existing stream returns the current version');
SELECT results_eq($$SELECT r.stream_version, r.global_position, r.transaction_id FROM annals.append_events('idem-missing', NULL, '[]') AS r$$,
                  $$VALUES (0::bigint, NULL::bigint, NULL::xid8)$$,
                  'an empty batch on a missing stream returns version 0');
SELECT results_eq($$SELECT r.stream_version FROM annals.append_events('idem-missing', 0, '[]') AS r$$,
                  ARRAY[0::bigint], 'an empty batch with expected 0 on a missing stream returns version 0');
SELECT ok(NOT EXISTS (SELECT FROM annals_internal.streams WHERE stream_id = 'idem-missing'),
          'an empty batch creates no stream');
SELECT throws_ok($$SELECT * FROM annals.append_events('idem-1', 0, '[]')$$,
                 'ST409', NULL, 'an empty batch with expected 0 on an existing stream: ST409');

SELECT * FROM finish();
ROLLBACK;
