-- Behaviour: annals.append_events and its four expected-version modes; what an append stores;
-- ST409 for every way the expected version can be wrong.
BEGIN;
SELECT plan(33);

-- 0: the stream must have no events.
SELECT results_eq(
    $$SELECT stream_version FROM annals.append_events('ev-1', 0,
        '[{"type": "Opened", "data": {"n": 1}}, {"type": "Credited", "data": {"n": 2}, "metadata": {"actor": "me"}}]')$$,
    ARRAY[2::bigint], 'expected 0 on a new stream appends; the result describes the last event (version 2)');
-- NULL: any.
SELECT results_eq($$SELECT stream_version FROM annals.append_events('ev-1', NULL, '[{"type": "Credited", "data": {}}]')$$,
                  ARRAY[3::bigint], 'expected NULL (any) appends to an existing stream');
SELECT results_eq($$SELECT stream_version FROM annals.append_events('ev-new-any', NULL, '[{"type": "Opened", "data": {}}]')$$,
                  ARRAY[1::bigint], 'expected NULL (any) appends to a new stream');
-- -1: the stream must exist.
SELECT results_eq($$SELECT stream_version FROM annals.append_events('ev-1', -1, '[{"type": "Credited", "data": {}}]')$$,
                  ARRAY[4::bigint], 'expected -1 appends to an existing stream');
-- n: exactly at version n.
SELECT results_eq($$SELECT stream_version FROM annals.append_events('ev-1', 4, '[{"type": "Credited", "data": {}}]')$$,
                  ARRAY[5::bigint], 'expected 4 appends to a stream at version 4');

-- The result row is the last stored event.
CREATE TEMP TABLE ev_result AS
SELECT * FROM annals.append_events('ev-1', 5, '[{"type": "A", "data": {}}, {"type": "B", "data": {}}]');
SELECT results_eq(
    $$SELECT stream_version, global_position, transaction_id FROM pg_temp.ev_result$$,
    $$SELECT e.stream_version, e.global_position, e.transaction_id
        FROM annals_internal.events AS e WHERE e.stream_id = 'ev-1' AND e.stream_version = 7$$,
    'append_events returns the last event''s stream_version, global_position and transaction_id');

-- What was stored.
SELECT results_eq(
    $$SELECT stream_version FROM annals_internal.events WHERE stream_id = 'ev-1' ORDER BY stream_version$$,
    $$SELECT generate_series(1, 7)::bigint$$,
    'versions are contiguous from 1');
SELECT ok((SELECT bool_and(d.ok) FROM (
              SELECT e.global_position > lag(e.global_position) OVER (ORDER BY e.stream_version) AS ok
                FROM annals_internal.events AS e WHERE e.stream_id = 'ev-1') AS d WHERE d.ok IS NOT NULL),
          'global positions increase with versions');
SELECT is((SELECT count(DISTINCT e.global_position) FROM annals_internal.events AS e WHERE e.stream_id = 'ev-1'),
          7::bigint, 'global positions are unique');
SELECT is((SELECT array_agg(DISTINCT e.transaction_id::text) FROM annals_internal.events AS e WHERE e.stream_id = 'ev-1'),
          ARRAY[pg_current_xact_id()::text], 'events carry the appending transaction''s id');
SELECT is((SELECT count(DISTINCT e.recorded_at) FROM annals_internal.events AS e
            WHERE e.stream_id = 'ev-1' AND e.stream_version IN (1, 2)),
          1::bigint, 'events of one append share recorded_at');
SELECT results_eq(
    $$SELECT event_type, data, metadata, schema_version, category
        FROM annals_internal.events WHERE stream_id = 'ev-1' AND stream_version <= 2 ORDER BY stream_version$$,
    $$VALUES ('Opened', '{"n": 1}'::jsonb, '{}'::jsonb, 1, 'ev'),
             ('Credited', '{"n": 2}'::jsonb, '{"actor": "me"}'::jsonb, 1, 'ev')$$,
    'type, data, metadata (default {}), schema_version (default 1) and category are stored');
SELECT is((SELECT count(*) FROM annals_internal.events WHERE stream_id = 'ev-1' AND event_id IS NOT NULL),
          7::bigint, 'an event without "id" gets a generated UUID');
SELECT lives_ok(
    $$SELECT * FROM annals.append_events('ev-2', 0, '[{"type": "T", "id": "7d1bb4a4-16d1-4a61-9a73-1c1ba7a4d3e5",
        "data": {}, "schema_version": 3}, {"type": "T"}, {"type": "T", "data": null, "metadata": null}]')$$,
    'a client-supplied id, a schema_version and a missing or null data/metadata are accepted');
SELECT results_eq(
    $$SELECT event_id, schema_version, data, metadata FROM annals_internal.events WHERE stream_id = 'ev-2' ORDER BY stream_version LIMIT 1$$,
    $$VALUES ('7d1bb4a4-16d1-4a61-9a73-1c1ba7a4d3e5'::uuid, 3, '{}'::jsonb, '{}'::jsonb)$$,
    'the client-supplied id and schema_version are stored');
SELECT is((SELECT array_agg(data || metadata) FROM annals_internal.events WHERE stream_id = 'ev-2' AND stream_version > 1),
          ARRAY['{}'::jsonb, '{}'::jsonb], 'missing or null data and metadata are stored as {}');
SELECT results_eq(
    $$SELECT stream_id, category, stream_version, state FROM annals_internal.streams WHERE stream_id IN ('ev-1', 'ev-new-any') ORDER BY 1$$,
    $$VALUES ('ev-1', 'ev', 7::bigint, 'active'), ('ev-new-any', 'ev', 1::bigint, 'active')$$,
    'the streams table holds one row per stream with its current version');
SELECT lives_ok($$SELECT * FROM annals.append_events('solo', 0, '[{"type": "T"}]')$$, 'append to a stream id without -');
SELECT is((SELECT category FROM annals_internal.events WHERE stream_id = 'solo'), 'solo',
          'a stream id without - is its own category');
SELECT lives_ok($$SELECT * FROM annals.append_events('inventory-42-a', 0, '[{"type": "T"}]')$$, 'append to inventory-42-a');
SELECT is((SELECT category FROM annals_internal.streams WHERE stream_id = 'inventory-42-a'), 'inventory',
          'the category is the part before the first -');

-- ST409: wrong expected version, in every mode.
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-1', 0, '[{"type": "T"}]')$$,
                 'ST409', NULL, 'expected 0 (no stream) on an existing stream: ST409');
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-missing', -1, '[{"type": "T"}]')$$,
                 'ST409', NULL, 'expected -1 (stream exists) on a missing stream: ST409');
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-1', 3, '[{"type": "T"}]')$$,
                 'ST409', NULL, 'expected 3 on a stream at 7: ST409');
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-1', 8, '[{"type": "T"}]')$$,
                 'ST409', NULL, 'expected 8 (ahead) on a stream at 7: ST409');
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-missing', 1, '[{"type": "T"}]')$$,
                 'ST409', NULL, 'expected 1 on a missing stream: ST409');
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-1', 3, '[]')$$,
                 'ST409', NULL, 'an empty batch still checks the expected version: ST409');
SELECT throws_ok($$SELECT * FROM annals.append_events('ev-missing', -1, '[]')$$,
                 'ST409', NULL, 'an empty batch with expected -1 on a missing stream: ST409');
-- Partial overlap: part of the batch is stored, part is new.
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('ev-2', NULL,
        '[{"type": "T", "id": "7d1bb4a4-16d1-4a61-9a73-1c1ba7a4d3e5", "data": {}, "schema_version": 3},
          {"type": "T", "id": "0b7f4c1e-95a3-4f57-8d42-3f86f1a3c001"}]')$$,
    'ST409', NULL, 'a batch that partly overlaps stored events (expected any): ST409');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('ev-2', 0,
        '[{"type": "T", "id": "7d1bb4a4-16d1-4a61-9a73-1c1ba7a4d3e5", "data": {}, "schema_version": 3},
          {"type": "T", "id": "0b7f4c1e-95a3-4f57-8d42-3f86f1a3c002"}]')$$,
    'ST409', NULL, 'a batch that partly overlaps stored events (expected 0): ST409');

-- Nothing of a failed append is visible afterwards, and the stream moves on normally.
SELECT is((SELECT stream_version FROM annals_internal.streams WHERE stream_id = 'ev-1'), 7::bigint,
          'failed appends left the stream at version 7');
SELECT ok(NOT EXISTS (SELECT FROM annals_internal.events WHERE event_id IN
             ('0b7f4c1e-95a3-4f57-8d42-3f86f1a3c001', '0b7f4c1e-95a3-4f57-8d42-3f86f1a3c002')),
          'the new half of a partly overlapping batch is not stored');
SELECT results_eq($$SELECT stream_version FROM annals.append_events('ev-1', 7, '[{"type": "T"}]')$$,
                  ARRAY[8::bigint], 'the stream accepts the right expected version after conflicts');

SELECT * FROM finish();
ROLLBACK;
