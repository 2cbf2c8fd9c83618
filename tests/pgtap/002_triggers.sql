-- Structure: the append-only triggers on events (and every partition), streams and lifecycle_log.
-- Each trigger is pinned by name, function, timing, level, events and enabled state; other
-- triggers may exist beside them (the notify trigger, projections).
BEGIN;
SELECT plan(14);

-- tgtype bits: 1 ROW, 2 BEFORE, 4 INSERT, 8 DELETE, 16 UPDATE, 32 TRUNCATE.
CREATE TEMP VIEW annals_triggers AS
SELECT t.tgrelid::regclass::text AS table_name, t.tgname::text COLLATE "default" AS trigger_name,
       t.tgfoid::regproc::text AS function_name,
       concat_ws(' ',
           CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' WHEN t.tgtype & 64 <> 0 THEN 'INSTEAD OF' ELSE 'AFTER' END,
           CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END,
           CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END,
           CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
           CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END,
           CASE WHEN t.tgtype & 1 <> 0 THEN 'ROW' ELSE 'STATEMENT' END) AS fires,
       t.tgenabled IN ('O', 'A') AS enabled
  FROM pg_catalog.pg_trigger AS t
 WHERE NOT t.tgisinternal;

SELECT has_trigger('annals_internal', 'events', 'events_append_only', 'events has trigger events_append_only');
SELECT has_trigger('annals_internal', 'events', 'events_no_truncate', 'events has trigger events_no_truncate');
SELECT trigger_is('annals_internal', 'events', 'events_append_only', 'annals_internal', 'reject_history_change',
                  'events_append_only calls annals_internal.reject_history_change()');

SELECT results_eq(
    $$SELECT table_name, trigger_name, function_name, fires, enabled
        FROM pg_temp.annals_triggers
       WHERE table_name IN ('annals_internal.events', 'annals_internal.streams', 'annals_internal.lifecycle_log')
         AND function_name = 'annals_internal.reject_history_change'
       ORDER BY 1, 2$$,
    $$VALUES
        ('annals_internal.events', 'events_append_only', 'annals_internal.reject_history_change', 'BEFORE UPDATE ROW', true),
        ('annals_internal.events', 'events_no_truncate', 'annals_internal.reject_history_change', 'BEFORE TRUNCATE STATEMENT', true),
        ('annals_internal.lifecycle_log', 'lifecycle_log_append_only', 'annals_internal.reject_history_change', 'BEFORE DELETE UPDATE ROW', true),
        ('annals_internal.lifecycle_log', 'lifecycle_log_no_truncate', 'annals_internal.reject_history_change', 'BEFORE TRUNCATE STATEMENT', true),
        ('annals_internal.streams', 'streams_no_delete', 'annals_internal.reject_history_change', 'BEFORE DELETE ROW', true),
        ('annals_internal.streams', 'streams_no_truncate', 'annals_internal.reject_history_change', 'BEFORE TRUNCATE STATEMENT', true)$$,
    'events, streams and lifecycle_log carry the enabled append-only triggers (UPDATE/DELETE per row, TRUNCATE per statement; DELETE on events: below)');
SELECT results_eq(
    $$SELECT table_name, trigger_name, function_name, fires, enabled
        FROM pg_temp.annals_triggers
       WHERE table_name = 'annals_internal.events' AND function_name = 'annals_internal.check_history_delete'$$,
    $$VALUES ('annals_internal.events', 'events_delete_check', 'annals_internal.check_history_delete', 'AFTER DELETE STATEMENT', true)$$,
    'DELETE on events is checked once per statement, over its deleted rows (check_history_delete)');

-- Every partition, present and future: TRUNCATE or DELETE on a partition does not fire the
-- parent's statement triggers, so each needs its own; the row trigger is cloned from the parent.
SELECT is((SELECT count(*) FROM pg_catalog.pg_inherits WHERE inhparent = 'annals_internal.events'::regclass),
          8::bigint, 'events has 8 partitions to check');
SELECT is_empty(
    $$SELECT p.inhrelid::regclass AS partition
        FROM pg_catalog.pg_inherits AS p
       WHERE p.inhparent = 'annals_internal.events'::regclass
         AND NOT EXISTS (SELECT FROM pg_temp.annals_triggers AS t
                          WHERE t.table_name = p.inhrelid::regclass::text
                            AND t.function_name = 'annals_internal.reject_history_change'
                            AND t.fires = 'BEFORE TRUNCATE STATEMENT' AND t.enabled)$$,
    'every partition of events has an enabled BEFORE TRUNCATE trigger calling reject_history_change');
SELECT is_empty(
    $$SELECT p.inhrelid::regclass AS partition
        FROM pg_catalog.pg_inherits AS p
       WHERE p.inhparent = 'annals_internal.events'::regclass
         AND NOT EXISTS (SELECT FROM pg_temp.annals_triggers AS t
                          WHERE t.table_name = p.inhrelid::regclass::text
                            AND t.function_name = 'annals_internal.reject_history_change'
                            AND t.fires = 'BEFORE UPDATE ROW' AND t.enabled)$$,
    'every partition of events has an enabled BEFORE UPDATE row trigger calling reject_history_change');
SELECT is_empty(
    $$SELECT p.inhrelid::regclass AS partition
        FROM pg_catalog.pg_inherits AS p
       WHERE p.inhparent = 'annals_internal.events'::regclass
         AND NOT EXISTS (SELECT FROM pg_temp.annals_triggers AS t
                          WHERE t.table_name = p.inhrelid::regclass::text
                            AND t.function_name = 'annals_internal.check_history_delete'
                            AND t.fires = 'AFTER DELETE STATEMENT' AND t.enabled)$$,
    'every partition of events has an enabled AFTER DELETE statement trigger calling check_history_delete (a DELETE naming a partition fires only its own)');
SELECT is_empty(
    $$SELECT table_name, trigger_name
        FROM pg_temp.annals_triggers
       WHERE function_name IN ('annals_internal.reject_history_change', 'annals_internal.check_history_delete') AND NOT enabled$$,
    'no append-only trigger is disabled anywhere');

-- Nothing else may sneak an UPDATE/DELETE/TRUNCATE path past the triggers: no rules on the tables.
SELECT is_empty(
    $$SELECT r.ev_class::regclass, r.rulename
        FROM pg_catalog.pg_rewrite AS r
        JOIN pg_catalog.pg_class AS c ON c.oid = r.ev_class
       WHERE c.relnamespace = 'annals_internal'::regnamespace AND c.relkind IN ('r', 'p')$$,
    'no rewrite rules on annals_internal tables');

SELECT has_function('annals_internal', 'reject_history_change', ARRAY[]::name[],
                    'trigger function annals_internal.reject_history_change() exists');
SELECT function_returns('annals_internal', 'reject_history_change', ARRAY[]::name[], 'trigger',
                        'reject_history_change() is a trigger function');
SELECT function_lang_is('annals_internal', 'reject_history_change', ARRAY[]::name[], 'plpgsql',
                        'reject_history_change() is written in PL/pgSQL (checked by plpgsql_check)');

SELECT * FROM finish();
ROLLBACK;
