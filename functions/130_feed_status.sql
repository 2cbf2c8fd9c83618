-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Why the feed paused: the oldest running (or prepared) transaction holds the barrier below its
-- own id until it ends. Query text of other roles' sessions needs pg_read_all_stats.
CREATE OR REPLACE VIEW annals.feed_blocker AS
SELECT b.kind, b.pid, b.transaction_id, b.started_at, clock_timestamp() - b.started_at AS age,
       b.state, b.username, b.application_name, b.query
  FROM (SELECT 'backend'::text AS kind, a.pid, a.backend_xid::text::xid8 AS transaction_id_raw,
               a.xact_start AS started_at, a.state, a.usename::text AS username, a.application_name,
               a.query, age(a.backend_xid) AS xid_age, a.backend_xid::text AS transaction_id
          FROM pg_stat_activity AS a
         WHERE a.backend_xid IS NOT NULL
        UNION ALL
        SELECT 'prepared transaction', NULL, p.transaction::text::xid8, p.prepared, 'prepared',
               p.owner::text, NULL, p.gid, age(p.transaction), p.transaction::text
          FROM pg_prepared_xacts AS p) AS b
 ORDER BY b.xid_age DESC
 LIMIT 1;
COMMENT ON VIEW annals.feed_blocker IS
$$The transaction holding the gap-free feed's barrier: the oldest running or prepared transaction with an
id (kind, pid, age, state, query). While it runs, events of younger transactions wait. Empty when idle.$$;
REVOKE ALL ON annals.feed_blocker FROM PUBLIC;
GRANT SELECT ON annals.feed_blocker TO annals_writer, annals_reader, annals_bi;

-- The feed's head and barrier, for lag arithmetic.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.feed_head(
    OUT barrier_transaction xid8,
    OUT last_position bigint,
    OUT last_recorded_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT pg_snapshot_xmin(pg_current_snapshot()),
           (SELECT e.global_position FROM annals_internal.events AS e
             WHERE e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1),
           (SELECT e.recorded_at FROM annals_internal.events AS e
             WHERE e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.feed_head() IS
    'The feed barrier (events of transactions below it are readable) and the newest readable event''s position and time.';
REVOKE ALL ON FUNCTION annals.feed_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.feed_head() TO annals_writer, annals_reader, annals_bi;

-- Per subscription member: checkpoint, how far behind (events, capped at 100000 so the view stays
-- cheap on a huge backlog, and time since the oldest pending event), lease and parked events.
CREATE OR REPLACE VIEW annals.subscription_status AS
SELECT c.subscription_name, c.member, s.group_size, s.event_types, s.categories,
       c.checkpoint_transaction, c.checkpoint_position,
       pending.events_behind,
       pending.events_behind >= 100000 AS events_behind_capped,
       coalesce(clock_timestamp() - pending.oldest_recorded_at, interval '0') AS time_behind,
       c.lease_holder, c.lease_expires_at,
       c.lease_holder IS NOT NULL AND c.lease_expires_at > clock_timestamp() AS lease_active,
       (SELECT count(*) FROM annals_internal.dead_letters AS d
         WHERE d.subscription_name = c.subscription_name AND d.member = c.member AND d.status <> 'resolved') AS dead_letters,
       c.updated_at AS acknowledged_at
  FROM annals_internal.subscription_checkpoints AS c
  JOIN annals_internal.subscriptions AS s USING (subscription_name)
  CROSS JOIN LATERAL (
        SELECT count(*) AS events_behind, min(p.recorded_at) AS oldest_recorded_at
          FROM (SELECT e.recorded_at
                  FROM annals_internal.events AS e
                 WHERE (e.transaction_id, e.global_position) > (c.checkpoint_transaction, c.checkpoint_position)
                   AND (s.event_types IS NULL OR coalesce((SELECT a.event_type FROM annals_internal.event_type_aliases AS a WHERE a.alias = e.event_type), e.event_type) = ANY (s.event_types))
                   AND (s.categories IS NULL OR e.category = ANY (s.categories))
                   AND (s.group_size = 1
                        OR ((hashtextextended(e.stream_id, 0) & 9223372036854775807) % s.group_size) = c.member)
                 LIMIT 100000) AS p) AS pending;
COMMENT ON VIEW annals.subscription_status IS
$$Per subscription member: its checkpoint, events behind (counted up to 100000; events_behind_capped says
when there are more), time behind (age of the oldest unacknowledged event, 0 when caught up), lease and open dead letters.$$;
REVOKE ALL ON annals.subscription_status FROM PUBLIC;
GRANT SELECT ON annals.subscription_status TO annals_writer, annals_reader, annals_bi;
