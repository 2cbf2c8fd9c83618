-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Why the feed paused: the oldest running (or prepared) transaction holds the barrier below its
-- own id until it ends. Query text of other roles' sessions needs pg_read_all_stats.
-- Read through a function planned with JIT off, like the other status views. The invoker's rights,
-- not the owner's: pg_stat_activity shows other roles' query text to those who may see it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.feed_blocker_rows()
RETURNS TABLE (
    kind text,
    pid integer,
    transaction_id text,
    started_at timestamp with time zone,
    age interval,
    state text,
    username text,
    application_name text,
    query text)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 1
BEGIN ATOMIC
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
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.feed_blocker_rows() IS 'The row of annals.feed_blocker, computed with JIT off and the invoker''s rights.';
REVOKE ALL ON FUNCTION annals_internal.feed_blocker_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_internal.feed_blocker_rows() TO annals_writer, annals_reader, annals_bi;

CREATE OR REPLACE VIEW annals.feed_blocker AS
SELECT * FROM annals_internal.feed_blocker_rows();
COMMENT ON VIEW annals.feed_blocker IS
$$The transaction holding the gap-free feed's barrier: the oldest running or prepared transaction with an
id (kind, pid, age, state, query). While it runs, events of younger transactions wait. Empty when idle.$$;
REVOKE ALL ON annals.feed_blocker FROM PUBLIC;
GRANT SELECT ON annals.feed_blocker TO annals_writer, annals_reader, annals_bi;

-- The cold part of a consumer's lag (migrations/013_cold_storage.sql): the cold events after its
-- checkpoint that its filters take, counted up to cap, and the oldest one's recording time. One index
-- probe when the checkpoint is past every cold batch (the common case: nothing to add). A batch that
-- lies wholly after the checkpoint adds its recorded count when nothing filters; otherwise its
-- segments are unpacked and filtered, as annals_internal.feed_page reads them. A plain-string body:
-- defined here, before the status functions below bind to it at creation.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.cold_pending(
    after_transaction xid8,
    after_position    bigint,
    event_types       text[],
    categories        text[],
    consumer_member   integer,
    consumer_size     integer,
    cap               bigint,
    OUT events        bigint,
    OUT oldest_recorded_at timestamptz)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_batch record;
    v_up    text[];
    v_n     bigint;
    v_old   timestamptz;
BEGIN
    events := 0;
    IF cold_pending.after_transaction IS NULL OR cold_pending.after_position IS NULL
       OR NOT annals_internal.cold_after(cold_pending.after_transaction, cold_pending.after_position) THEN
        RETURN;
    END IF;
    v_up := annals_internal.types_to_upcast();
    FOR v_batch IN
        SELECT b.batch_id, b.events AS n,
               (b.lo_tx, b.lo_pos) > (cold_pending.after_transaction, cold_pending.after_position) AS whole
          FROM annals_internal.cold_batches AS b
         WHERE (b.hi_tx, b.hi_pos) > (cold_pending.after_transaction, cold_pending.after_position)
         ORDER BY b.hi_tx, b.hi_pos LOOP
        IF v_batch.whole AND cold_pending.event_types IS NULL AND cold_pending.categories IS NULL
           AND cold_pending.consumer_size = 1 THEN
            v_n := v_batch.n;
            -- A segment's first element is its stream's oldest event in it.
            v_old := CASE WHEN oldest_recorded_at IS NULL THEN
                         (SELECT min((s.events[1]).recorded_at) FROM annals_internal.cold_segments AS s
                           WHERE s.batch_id = v_batch.batch_id) END;
        ELSE
            SELECT count(*), min(c.recorded_at) INTO v_n, v_old
              FROM annals_internal.cold_segments AS s
             CROSS JOIN LATERAL unnest(s.events) AS c
             WHERE s.batch_id = v_batch.batch_id
               AND (cold_pending.categories IS NULL OR annals_internal.unqualify(s.category) = ANY (cold_pending.categories))
               AND (cold_pending.consumer_size = 1
                    OR annals_internal.member_of(s.stream_id, cold_pending.consumer_size) = cold_pending.consumer_member)
               AND (c.transaction_id, c.global_position) > (cold_pending.after_transaction, cold_pending.after_position)
               AND (cold_pending.event_types IS NULL
                    OR annals_internal.read_type(c.event_type, v_up) = ANY (cold_pending.event_types));
        END IF;
        events := events + v_n;
        oldest_recorded_at := least(oldest_recorded_at, v_old);
        EXIT WHEN events >= cold_pending.cap;
    END LOOP;
    events := least(events, cold_pending.cap);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.cold_pending(xid8, bigint, text[], text[], integer, integer, bigint) IS
    'The cold events after a feed checkpoint that a consumer''s filters take (counted up to cap) and the oldest one''s time, for the lag figures.';
REVOKE ALL ON FUNCTION annals_internal.cold_pending(xid8, bigint, text[], text[], integer, integer, bigint) FROM PUBLIC;

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
SET jit = off
BEGIN ATOMIC
    -- The newest readable event, hot or cold: cold batches are below every barrier, and the
    -- newest batch's end is one index probe away.
    SELECT annals_internal.feed_barrier(),
           CASE WHEN cold.hi_tx IS NULL OR (hot.transaction_id, hot.global_position) > (cold.hi_tx, cold.hi_pos)
                THEN hot.global_position ELSE cold.hi_pos END,
           CASE WHEN cold.hi_tx IS NULL OR (hot.transaction_id, hot.global_position) > (cold.hi_tx, cold.hi_pos)
                THEN hot.recorded_at
                ELSE (SELECT c.recorded_at FROM annals_internal.cold_segments AS s
                       CROSS JOIN LATERAL unnest(s.events) AS c
                       WHERE s.batch_id = cold.batch_id AND c.global_position = cold.hi_pos
                       LIMIT 1) END
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
            SELECT e.transaction_id, e.global_position, e.recorded_at FROM annals_internal.events AS e
             WHERE e.transaction_id < annals_internal.feed_barrier()
             ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1) AS hot ON true
      LEFT JOIN LATERAL (
            SELECT b.batch_id, b.hi_tx, b.hi_pos FROM annals_internal.cold_batches AS b
             ORDER BY b.hi_tx DESC, b.hi_pos DESC LIMIT 1) AS cold ON true;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.feed_head() IS
    'The feed barrier (events of transactions below it are readable) and the newest readable event''s position and time.';
REVOKE ALL ON FUNCTION annals.feed_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.feed_head() TO annals_writer, annals_reader, annals_bi;

-- Per subscription member: checkpoint, how far behind (events, capped at 100000 so the view stays
-- cheap on a huge backlog, and time since the oldest pending event), lease and parked events.
-- The view reads a function so that its query is planned with JIT off: the lag counts are
-- estimated far above jit_above_cost, and compiling them took seconds on a store of a few events.
-- Definer's rights, as the view had for the tables it summarizes; the view's readers execute it.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.subscription_status_rows()
RETURNS TABLE (
    subscription_name text,
    member integer,
    group_size integer,
    event_types text[],
    categories text[],
    checkpoint_transaction xid8,
    checkpoint_position bigint,
    events_behind bigint,
    events_behind_capped boolean,
    time_behind interval,
    lease_holder text,
    lease_expires_at timestamp with time zone,
    lease_active boolean,
    dead_letters bigint,
    acknowledged_at timestamp with time zone)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 10
BEGIN ATOMIC
SELECT c.subscription_name, c.member, s.group_size, s.event_types, s.categories,
       c.checkpoint_transaction, c.checkpoint_position,
       least(pending.events_behind + cold.events, 100000) AS events_behind,
       pending.events_behind + cold.events >= 100000 AS events_behind_capped,
       coalesce(clock_timestamp() - least(pending.oldest_recorded_at, cold.oldest_recorded_at), interval '0') AS time_behind,
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
                   AND (s.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (s.categories))
                   AND (s.group_size = 1
                        OR ((hashtextextended(e.stream_id, 0) & 9223372036854775807) % s.group_size) = c.member)
                 LIMIT 100000) AS p) AS pending
  -- Cold history after the checkpoint (one index probe when there is none).
  CROSS JOIN LATERAL annals_internal.cold_pending(c.checkpoint_transaction, c.checkpoint_position,
        s.event_types, s.categories, c.member, s.group_size, 100000) AS cold;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.subscription_status_rows() IS 'The rows of annals.subscription_status, computed with JIT off.';
REVOKE ALL ON FUNCTION annals_internal.subscription_status_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_internal.subscription_status_rows() TO annals_writer, annals_reader, annals_bi;

CREATE OR REPLACE VIEW annals.subscription_status AS
SELECT * FROM annals_internal.subscription_status_rows();
COMMENT ON VIEW annals.subscription_status IS
$$Per subscription member: its checkpoint, events behind (counted up to 100000; events_behind_capped says
when there are more), time behind (age of the oldest unacknowledged event, 0 when caught up), lease and open dead letters.$$;
REVOKE ALL ON annals.subscription_status FROM PUBLIC;
GRANT SELECT ON annals.subscription_status TO annals_writer, annals_reader, annals_bi;
