-- Behaviour: argument validation of annals.append_events. ST422 for every malformed argument,
-- ST403 for reserved names; the boundaries that are still valid.
BEGIN;
SELECT plan(59);

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

-- The name rule: no control, format, line/paragraph separator or noncharacter code point
-- anywhere; no White_Space at either end (whitespace inside is fine). Each once alone, first,
-- inside and last, as a stream id and as an event type, with the reason.
CREATE TEMP TABLE name_chars (cp integer, forbidden boolean) ON COMMIT DROP;
INSERT INTO name_chars VALUES
    (x'0009'::int, true), (x'0085'::int, true), (x'00AD'::int, true), (x'200B'::int, true), (x'200D'::int, true),
    (x'2028'::int, true), (x'2029'::int, true), (x'202E'::int, true), (x'2060'::int, true), (x'2066'::int, true),
    (x'FDD0'::int, true), (x'FEFF'::int, true), (x'FFFE'::int, true), (x'FFFF'::int, true), (x'E0001'::int, true),
    (x'10FFFF'::int, true),
    (x'0020'::int, false), (x'00A0'::int, false), (x'1680'::int, false), (x'2000'::int, false), (x'200A'::int, false),
    (x'202F'::int, false), (x'205F'::int, false), (x'3000'::int, false);
CREATE TEMP VIEW name_cases AS
SELECT c.cp, p.pos, p.name,
       CASE WHEN c.forbidden
            THEN 'must not contain ' || c.label || ' (control, format, line/paragraph separator or noncharacter)'
            WHEN p.pos <> 'inside'
            THEN 'must not start or end with whitespace (found ' || c.label || ')'
       END AS reason
  FROM (SELECT n.cp, n.forbidden, 'U+' || right('000' || upper(to_hex(n.cp)), greatest(4, length(to_hex(n.cp)))) AS label
          FROM name_chars AS n) AS c
 CROSS JOIN LATERAL (VALUES ('alone', chr(c.cp)), ('first', chr(c.cp) || 'nm-1'),
                            ('inside', 'nm-1' || chr(c.cp) || 'z'), ('last', 'nm-1' || chr(c.cp))) AS p(pos, name);
-- What a call raised: SQLSTATE and DETAIL, or 'ok'.
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    v_state  text;
    v_detail text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
    RETURN v_state || ' ' || v_detail;
END
$fn$;
SELECT is_empty(
    $$SELECT n.cp, n.pos, pg_temp.outcome(format('SELECT * FROM annals.append_events(%L, NULL, %L)', n.name, '[{"type": "T"}]'))
        FROM name_cases AS n
      EXCEPT
      SELECT n.cp, n.pos, CASE WHEN n.reason IS NULL THEN 'ok'
                               ELSE 'ST422 ' || jsonb_build_object('argument', 'stream_id', 'reason', n.reason)::text END
        FROM name_cases AS n$$,
    'stream ids: the name rule for every listed code point alone, first, inside and last (ST422 and its reason)');
SELECT is_empty(
    $$SELECT n.cp, n.pos, pg_temp.outcome(format('SELECT * FROM annals.append_events(%L, NULL, %L)', 'nm-types',
                                                  jsonb_build_array(jsonb_build_object('type', n.name))))
        FROM name_cases AS n
      EXCEPT
      SELECT n.cp, n.pos, CASE WHEN n.reason IS NULL THEN 'ok'
                               ELSE 'ST422 ' || jsonb_build_object('argument', 'events[0].type', 'reason', n.reason)::text END
        FROM name_cases AS n$$,
    'event types: the name rule for every listed code point alone, first, inside and last (ST422 and its reason)');
SELECT is((SELECT count(*) FROM name_cases WHERE reason IS NULL), 8::bigint,
          'whitespace inside a name is valid (8 of the cases above)');
SELECT throws_ok($$SELECT * FROM annals.append_events(E'val-1\u00a0', NULL, '[{"type": "T"}]')$$, 'ST422',
                 'invalid argument stream_id: must not start or end with whitespace (found U+00A0)', 'stream id ending in NBSP: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events(E'\u200B', NULL, '[{"type": "T"}]')$$, 'ST422',
                 'invalid argument stream_id: must not contain U+200B (control, format, line/paragraph separator or noncharacter)',
                 'stream id that is only U+200B: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "T\ufeff"}]')$$, 'ST422',
                 'invalid argument events[0].type: must not contain U+FEFF (control, format, line/paragraph separator or noncharacter)',
                 'event type ending in U+FEFF: ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val-1', NULL, '[{"type": "\u3000"}]')$$, 'ST422',
                 'invalid argument events[0].type: must not start or end with whitespace (found U+3000)',
                 'event type that is only U+3000: ST422');

-- A stream id's category (before the first '-') is not empty and does not end with whitespace.
SELECT throws_ok($$SELECT * FROM annals.append_events('-', NULL, '[{"type": "T"}]')$$, 'ST422',
                 'invalid argument stream_id: the category (the part before the first ''-'') must not be empty', 'stream id ''-'': ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('-a', NULL, '[{"type": "T"}]')$$, 'ST422',
                 'invalid argument stream_id: the category (the part before the first ''-'') must not be empty', 'stream id ''-a'': ST422');
SELECT throws_ok($$SELECT * FROM annals.append_events('val -1', NULL, '[{"type": "T"}]')$$, 'ST422',
                 'invalid argument stream_id: the category (the part before the first ''-'') must not end with whitespace (found U+0020)',
                 'stream id with whitespace before its first ''-'': ST422');
SELECT lives_ok($$SELECT * FROM annals.append_events('val- 1 -2', NULL, '[{"type": "T"}]')$$,
                'whitespace after the first ''-'' is valid');
SELECT lives_ok($$SELECT * FROM annals.append_events('val-', NULL, '[{"type": "T"}]')$$, 'a stream id ending in ''-'' is valid');

-- read_category's category: the name rule, without '-'.
SELECT throws_ok($$SELECT * FROM annals.read_category('', '0', 0)$$, 'ST422', 'invalid argument category: must not be empty',
                 'read_category(''''): ST422');
SELECT throws_ok($$SELECT * FROM annals.read_category(E'val\u00a0', '0', 0)$$, 'ST422',
                 'invalid argument category: must not start or end with whitespace (found U+00A0)', 'read_category of a category ending in NBSP: ST422');
SELECT throws_ok($$SELECT * FROM annals.read_category('val-1', '0', 0)$$, 'ST422',
                 'invalid argument category: must not contain ''-'': a category is the part of a stream id before its first ''-''',
                 'read_category of a category with ''-'': ST422');
-- Not lives_ok: inside this transaction, which has appended, the feed's restore guard can raise
-- ST503 when no younger transaction has finished on the server (its own id is not below the
-- snapshot's xmax). The point here is only that the name passes.
SELECT unalike(pg_temp.outcome($$SELECT * FROM annals.read_category('val', '0', 0)$$), 'ST422%',
               'read_category of a valid category: no ST422');
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
SELECT ok(NOT EXISTS (SELECT FROM annals_internal.streams WHERE stream_id IN ('$all', '', '-', '-a', 'val -1')),
          'invalid appends created no stream');
SELECT is((SELECT stream_version FROM annals_internal.streams WHERE stream_id = 'val-1'), 1::bigint,
          'only the valid append to val-1 was stored');

SELECT * FROM finish();
ROLLBACK;
