-- Behaviour: argument validation of annals.append_events. ST422 for every malformed argument,
-- ST403 for reserved names; the boundaries that are still valid.
BEGIN;
SELECT plan(43);

-- Stream id.
SELECT throws_ok($$SELECT * FROM annals.append_events(NULL, NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'NULL stream id: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'empty stream id: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(' val-1', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id with leading space: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1 ', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id with trailing space: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(E'val-1\n', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id with trailing newline: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(' ', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id that is a single space: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(E'val\t1', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id with a tab (control character): ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(E'val\x011', NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id with U+0001 (control character): ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(repeat('x', 513), NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id of 513 bytes: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(repeat('é', 257), NULL, '[{"type": "T"}]')$$, 'ST422', NULL, 'stream id of 257 characters but 514 bytes: ST422');
SELECT lives_ok($$SELECT * FROM annals.append_events(repeat('x', 512), NULL, '[{"type": "T"}]')$$, 'stream id of exactly 512 bytes is valid');
SELECT lives_ok($$SELECT * FROM annals.append_events('val-ü-雪 inner space', NULL, '[{"type": "T"}]')$$, 'stream id with non-ASCII letters and an inner space is valid');
SELECT throws_ok($$SELECT * FROM annals.append_events('$all', NULL, '[{"type": "T"}]')$$, 'ST403', NULL, 'stream id starting with $: ST403');
SELECT lives_ok($$SELECT * FROM annals.append_events('val-$1', NULL, '[{"type": "T"}]')$$, 'a $ inside a stream id is valid');

-- Expected version.
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', -2, '[{"type": "T"}]')$$, 'ST422', NULL, 'expected_version -2: ST422');

-- The events argument.
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, NULL)$$, 'ST422', NULL, 'NULL events: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '{"type": "T"}')$$, 'ST422', NULL, 'events not an array (object): ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '"T"')$$, 'ST422', NULL, 'events not an array (string): ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, 'null')$$, 'ST422', NULL, 'events JSON null: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[1]')$$, 'ST422', NULL, 'an element that is not an object (number): ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T"}, null]')$$, 'ST422', NULL, 'an element that is JSON null: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "data": {}, "payload": {}}]')$$, 'ST422', NULL, 'an unknown key in an event: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"data": {}}]')$$, 'ST422', NULL, 'an event without type: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": 7}]')$$, 'ST422', NULL, 'a type that is not a string: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": ""}]')$$, 'ST422', NULL, 'an empty type: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": " T"}]')$$, 'ST422', NULL, 'a type with leading whitespace: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T\u0007"}]')$$, 'ST422', NULL, 'a type with a control character: ST422');
SELECT throws_ok(format($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "%s"}]')$$, repeat('t', 257)), 'ST422', NULL, 'a type of 257 bytes: ST422');
SELECT lives_ok(format($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "%s"}]')$$, repeat('t', 256)), 'a type of exactly 256 bytes is valid');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "$Deleted"}]')$$, 'ST403', NULL, 'a type starting with $: ST403');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "data": [1, 2]}]')$$, 'ST422', NULL, 'data that is an array: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "data": "text"}]')$$, 'ST422', NULL, 'data that is a string: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "data": {}, "metadata": 1}]')$$, 'ST422', NULL, 'metadata that is not an object: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "id": "not-a-uuid"}]')$$, 'ST422', NULL, 'an id that is not a UUID: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "id": 12}]')$$, 'ST422', NULL, 'an id that is a number: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "schema_version": 0}]')$$, 'ST422', NULL, 'schema_version 0: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "schema_version": -1}]')$$, 'ST422', NULL, 'schema_version -1: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "schema_version": 1.5}]')$$, 'ST422', NULL, 'schema_version 1.5: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "schema_version": "2"}]')$$, 'ST422', NULL, 'schema_version as a string: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "schema_version": 99999999999}]')$$, 'ST422', NULL, 'schema_version beyond integer: ST422');
SELECT throws_ok(
    $$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T", "id": "6f1c1f30-3a3c-4c3e-9a0e-0f6f3f7b1a11"},
                                                        {"type": "U", "id": "6F1C1F30-3A3C-4C3E-9A0E-0F6F3F7B1A11"}]')$$,
    'ST422', NULL, 'the same id twice in one batch (other spelling): ST422');

-- A rejected batch wrote nothing, valid ones did.
SELECT ok(NOT EXISTS (SELECT FROM annals_internal.streams WHERE stream_id IN ('$all', '')),
          'invalid appends created no stream');
SELECT is((SELECT stream_version FROM annals_internal.streams WHERE stream_id = 'val-1'), 1::bigint,
          'only the valid append to val-1 was stored');

SELECT * FROM finish();
ROLLBACK;
