-- Structure: schemas, tables, the hash-partitioned events table, keys, indexes, row types and
-- the public functions' signatures.
BEGIN;
SELECT plan(30);

SELECT has_schema('annals', 'schema annals (public API) exists');
SELECT has_schema('annals_internal', 'schema annals_internal (storage) exists');
SELECT tables_are('annals', ARRAY[]::name[], 'annals holds no tables: storage lives in annals_internal');

SELECT has_table('annals_internal', 'streams', 'annals_internal.streams exists');
SELECT has_table('annals_internal', 'events', 'annals_internal.events exists');
SELECT has_table('annals_internal', 'settings', 'annals_internal.settings exists');
SELECT has_table('annals_internal', 'lifecycle_log', 'annals_internal.lifecycle_log exists');
SELECT has_table('annals_internal', 'schema_info', 'annals_internal.schema_info exists');
SELECT has_sequence('annals_internal', 'global_position_seq', 'annals_internal.global_position_seq exists');
SELECT has_sequence('annals_internal', 'notify_clock', 'annals_internal.notify_clock (the NOTIFY gate) exists');

-- events: hash-partitioned by stream id into 8 partitions.
SELECT is_partitioned('annals_internal', 'events', 'events is partitioned');
SELECT is(pg_catalog.pg_get_partkeydef('annals_internal.events'::regclass), 'HASH (stream_id)',
          'events is partitioned by hash of stream_id');
SELECT partitions_are('annals_internal', 'events',
    ARRAY['annals_internal.events_p0', 'annals_internal.events_p1', 'annals_internal.events_p2',
          'annals_internal.events_p3', 'annals_internal.events_p4', 'annals_internal.events_p5',
          'annals_internal.events_p6', 'annals_internal.events_p7'],
    'events has exactly the partitions events_p0..events_p7');
SELECT results_eq(
    $$SELECT c.relname::text COLLATE "default", pg_catalog.pg_get_expr(c.relpartbound, c.oid) COLLATE "default"
        FROM pg_catalog.pg_inherits AS i
        JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'annals_internal.events'::regclass
       ORDER BY 1$$,
    $$SELECT 'events_p' || r, 'FOR VALUES WITH (modulus 8, remainder ' || r || ')'
        FROM generate_series(0, 7) AS r ORDER BY 1$$,
    'the 8 partitions cover hash remainders 0..7 of modulus 8');

SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
        FROM pg_catalog.pg_attribute AS a
       WHERE a.attrelid = 'annals_internal.events'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attnum$$,
    $$VALUES ('global_position', 'bigint', true), ('stream_id', 'text', true),
             ('stream_version', 'bigint', true), ('event_id', 'uuid', true),
             ('event_type', 'text', true), ('schema_version', 'integer', true),
             ('data', 'jsonb', true), ('metadata', 'jsonb', true),
             ('transaction_id', 'xid8', true), ('recorded_at', 'timestamp with time zone', true),
             ('category', 'text', true), ('tags', 'text[]', false)$$,
    'events has the documented columns, types and NOT NULLs');
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
        FROM pg_catalog.pg_attribute AS a
       WHERE a.attrelid = 'annals_internal.streams'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attnum$$,
    $$VALUES ('stream_id', 'text', true), ('category', 'text', true),
             ('stream_version', 'bigint', true), ('last_transaction_id', 'xid8', true),
             ('state', 'text', true), ('created_at', 'timestamp with time zone', true),
             ('updated_at', 'timestamp with time zone', true)$$,
    'streams has one row per stream: version, last appending transaction id, state, times');

-- Keys, by name: clients and the Go error mapping classify by constraint name.
SELECT results_eq(
    $$SELECT c.conname::text COLLATE "default", c.contype::text COLLATE "default",
             ARRAY(SELECT a.attname::text COLLATE "default"
                     FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_catalog.pg_attribute AS a
                       ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                    ORDER BY k.ord)
        FROM pg_catalog.pg_constraint AS c
       WHERE c.conrelid = 'annals_internal.events'::regclass AND c.contype IN ('p', 'u')
       ORDER BY 1$$,
    $$VALUES ('events_event_id_key', 'u', ARRAY['stream_id', 'event_id']),
             ('events_pkey', 'p', ARRAY['stream_id', 'stream_version'])$$,
    'events has primary key events_pkey (stream_id, stream_version) and unique events_event_id_key (stream_id, event_id)');
SELECT col_is_pk('annals_internal', 'streams', ARRAY['stream_id'], 'streams is keyed by stream_id');

-- Indexes for the gap-free feed.
SELECT has_index('annals_internal', 'events', 'events_feed_idx', ARRAY['transaction_id', 'global_position'],
                 'events_feed_idx indexes (transaction_id, global_position)');
SELECT has_index('annals_internal', 'events', 'events_category_feed_idx',
                 ARRAY['category', 'transaction_id', 'global_position'],
                 'events_category_feed_idx indexes (category, transaction_id, global_position)');
-- annals.read_event finds an event by id without its stream id (migration 011).
SELECT has_index('annals_internal', 'events', 'events_event_id_idx', ARRAY['event_id'],
                 'events_event_id_idx indexes (event_id)');
SELECT is_empty(
    $$SELECT parent_idx.relname AS index_name, part.relname AS partition
        FROM pg_catalog.pg_index AS pi
        JOIN pg_catalog.pg_class AS parent_idx ON parent_idx.oid = pi.indexrelid
        JOIN pg_catalog.pg_inherits AS ph ON ph.inhparent = pi.indrelid
        JOIN pg_catalog.pg_class AS part ON part.oid = ph.inhrelid
       WHERE pi.indrelid = 'annals_internal.events'::regclass
         AND NOT EXISTS (
               SELECT FROM pg_catalog.pg_inherits AS ih
                 JOIN pg_catalog.pg_index AS ci ON ci.indexrelid = ih.inhrelid
                WHERE ih.inhparent = pi.indexrelid AND ci.indrelid = part.oid AND ci.indisvalid)$$,
    'every partition has a valid child of every index on events');
SELECT is((SELECT count(*) FROM pg_catalog.pg_index WHERE indrelid = 'annals_internal.events'::regclass),
          6::bigint, 'events has exactly 6 indexes (pkey, event id key, feed, category feed, event id, tags partial GIN): each extra one costs every append');
SELECT is((SELECT pg_catalog.pg_get_expr(i.indpred, i.indrelid) FROM pg_catalog.pg_index AS i
            WHERE i.indexrelid = 'annals_internal.events_tags_idx'::regclass),
          '(tags IS NOT NULL)', 'the tags index is partial: an untagged event is not entered in it');

-- The category is the part of the stream id before the first '-'.
SELECT is(pg_catalog.pg_get_expr(d.adbin, d.adrelid), 'split_part(stream_id, ''-''::text, 1)',
          'events.category is generated as split_part(stream_id, ''-'', 1)')
  FROM pg_catalog.pg_attrdef AS d
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
 WHERE d.adrelid = 'annals_internal.events'::regclass AND a.attname = 'category';

SELECT results_eq(
    $$SELECT max_event_bytes, max_batch_events, max_batch_bytes FROM annals_internal.settings$$,
    $$VALUES (1048576, 10000, 67108864)$$,
    'settings holds one row with the default limits (1 MiB per event, 10000 events, 64 MiB per batch)');

-- The shared row types.
SELECT has_composite('annals', 'event', 'composite type annals.event exists');
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute AS a
       WHERE a.attrelid = 'annals.event'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attnum$$,
    $$VALUES ('stream_id', 'text'), ('stream_version', 'bigint'), ('global_position', 'bigint'),
             ('event_id', 'uuid'), ('event_type', 'text'), ('schema_version', 'integer'),
             ('data', 'jsonb'), ('metadata', 'jsonb'), ('transaction_id', 'xid8'),
             ('recorded_at', 'timestamp with time zone')$$,
    'annals.event has the documented attributes in order');
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod)
        FROM pg_catalog.pg_attribute AS a
       WHERE a.attrelid = 'annals.stream'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attnum$$,
    $$VALUES ('stream_id', 'text'), ('stream_version', 'bigint'),
             ('created_at', 'timestamp with time zone'), ('updated_at', 'timestamp with time zone'),
             ('state', 'text')$$,
    'annals.stream has the documented attributes in order');

-- The public contract's call forms. Later milestones may add trailing parameters with defaults, so
-- this pins what callers rely on: the documented leading arguments, which of them have defaults,
-- and the result type. (annals.configure is an administrator's tool, checked in 005_privileges.sql.)
SELECT is_empty(
    $$SELECT d.name, d.args, d.result,
             (SELECT string_agg(p.oid::regprocedure::text || ' -> ' || pg_catalog.pg_get_function_result(p.oid), '; ')
                FROM pg_catalog.pg_proc AS p
               WHERE p.pronamespace = 'annals'::regnamespace AND p.proname = d.name) AS actual
        FROM (VALUES
                ('append_events', ARRAY['text', 'bigint', 'jsonb'], 0,
                 'TABLE(stream_version bigint, global_position bigint, transaction_id xid8)'),
                ('append_event', ARRAY['text', 'bigint', 'text', 'jsonb', 'jsonb', 'uuid', 'integer'], 3,
                 'TABLE(stream_version bigint, global_position bigint, transaction_id xid8)'),
                ('read_stream', ARRAY['text', 'bigint', 'integer', 'boolean'], 3, 'SETOF annals.event'),
                ('read_stream_as_of', ARRAY['text', 'bigint', 'timestamp with time zone', 'bigint', 'integer'], 4,
                 'SETOF annals.event'),
                ('stream_version_at', ARRAY['text', 'timestamp with time zone'], 0, 'bigint'),
                ('stream_info', ARRAY['text'], 0, 'SETOF annals.stream'),
                ('read_event', ARRAY['uuid', 'boolean'], 1, 'SETOF annals.event'),
                ('delete_stream', ARRAY['text', 'bigint', 'text'], 2, 'bigint'),
                ('schema_version', ARRAY[]::text[], 0, 'bigint')) AS d(name, args, defaults, result)
       WHERE NOT EXISTS (
               SELECT FROM pg_catalog.pg_proc AS p
                WHERE p.pronamespace = 'annals'::regnamespace AND p.proname = d.name
                  AND coalesce((SELECT array_agg(pg_catalog.format_type(a.t, NULL) ORDER BY a.i)
                                  FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)
                                 WHERE a.i <= cardinality(d.args)), '{}') = d.args
                  AND p.pronargdefaults >= p.pronargs - cardinality(d.args) + d.defaults
                  AND pg_catalog.pg_get_function_result(p.oid) = d.result)$$,
    'the public functions take the documented leading arguments (later ones have defaults) and return the documented types');

SELECT * FROM finish();
ROLLBACK;
