-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The last step of an inline projection's rebuild needs SHARE on the events table: once it has
-- it, every transaction that appended (and so may have skipped the projection) has ended and no
-- new one can start, so the rebuild can apply the rest and swap in. But a lock request that waits
-- sits in the lock's queue, and every later request that conflicts with it queues behind it: an
-- append's ROW EXCLUSIVE does. Asked for plainly, SHARE made the whole store's appends wait for
-- whatever the rebuild waited for: an append left idle in transaction in any category, an
-- autovacuum or ANALYZE of one partition (SHARE UPDATE EXCLUSIVE, and LOCK TABLE takes the parent
-- first, then waits for the partition holding the parent), a DDL.
--
-- So the rebuild waits for those without asking (annals_internal.lock_events_for_rebuild):
--   1. it lists the transactions that hold (or wait for) a lock conflicting with SHARE on the
--      events table or any partition, by virtual transaction id, so ones that start later are
--      not waited for (annals_internal.events_lock_conflicts);
--   2. until each of them has ended it sleeps 10 ms at a time, and meanwhile replays what is
--      appended (live passes), so the locked tail stays short; it shows 'wait <pid>' in its
--      application_name;
--   3. then it asks for SHARE with lock_timeout 50 ms; if that runs out it lets go of everything
--      the attempt took (a subtransaction) and goes back to 1.
-- An append therefore waits for the rebuild at most one attempt (50 ms, 100 ms if a partition
-- turned up held in the middle of one) or, once the rebuild has the lock, the apply of the short
-- tail and the commit; never for a third transaction.
--
-- An attempt succeeds when the appends running as it starts end within 50 ms. An append holds
-- the table only from its INSERT, its last statement, to its commit: with four writers of
-- 1000-event appends (75 ms each) running flat out, no attempt ran out. A store whose
-- transactions hold it longer (an append, then other work in the same transaction, all the time)
-- could make every attempt fail: the rebuild keeps replaying but does not finish. For that,
-- the setting annals.rebuild_lock_timeout (SET in the rebuilding session) lengthens the attempt:
-- appends may then wait that long.
--
-- Waiting by polling is invisible to the deadlock detector. If a transaction the rebuild waits
-- for is itself waiting, directly or through others, for something the rebuild holds (its
-- projection's registry row, its tables' rows, its advisory lock), that is a deadlock: the rebuild
-- then asks for SHARE plainly, without its short timeout, and PostgreSQL's detector ends one side
-- (after deadlock_timeout, appends queued meanwhile), as before. An autovacuum that holds a
-- partition is waited for until it ends: a rebuild never queues behind it, so autovacuum never
-- sees a blocked request and never cancels itself.

-- The lock_timeout of one attempt: annals.rebuild_lock_timeout, a duration such as '50ms' or
-- '0.2s' (a bare number would be seconds: an interval), default 50 ms.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.rebuild_lock_timeout()
RETURNS interval
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_text text := nullif(btrim(current_setting('annals.rebuild_lock_timeout', true)), '');
    v_attempt interval;
BEGIN
    IF v_text IS NULL THEN
        RETURN interval '50 milliseconds';
    END IF;
    BEGIN
        v_attempt := v_text::interval;
    EXCEPTION WHEN data_exception THEN
        v_attempt := NULL;
    END;
    IF v_attempt IS NULL OR v_attempt < interval '1 millisecond' OR v_attempt > interval '1 hour' THEN
        IF annals_internal.raise_invalid('annals.rebuild_lock_timeout',
            format('%L is not a duration from 1ms to 1h, such as 50ms', v_text)) IS NULL THEN END IF;
    END IF;
    RETURN v_attempt;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.rebuild_lock_timeout() IS
    'How long a rebuild''s last step asks for SHARE on the events table at a time: the setting annals.rebuild_lock_timeout (1ms..1h), default 50ms; ST422 when invalid.';
REVOKE ALL ON FUNCTION annals_internal.rebuild_lock_timeout() FROM PUBLIC;

-- Who holds or waits for a lock on the events table or one of its partitions in a mode that
-- conflicts with SHARE (ROW EXCLUSIVE from appends, SHARE UPDATE EXCLUSIVE from (auto)vacuum and
-- ANALYZE, SHARE ROW EXCLUSIVE from registry changes, EXCLUSIVE, ACCESS EXCLUSIVE from DDL), one row
-- per virtual transaction: its backend (NULL for a prepared transaction) and whether that backend
-- waits for any lock now. This backend is left out: its own locks never conflict with its request.
-- pg_locks is readable by every role, unlike other roles' rows in pg_stat_activity.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.events_lock_conflicts()
RETURNS TABLE (virtualtransaction text, pid integer, waiting boolean)
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH l AS MATERIALIZED (
        SELECT k.locktype, k.database, k.relation, k.mode, k.granted, k.virtualtransaction, k.pid
          FROM pg_catalog.pg_locks AS k)
    SELECT l.virtualtransaction, min(l.pid) AS pid,
           EXISTS (SELECT FROM l AS w WHERE w.pid = min(l.pid) AND NOT w.granted) AS waiting
      FROM l
     WHERE l.locktype = 'relation'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
       AND l.relation IN (SELECT t.relid FROM pg_catalog.pg_partition_tree('annals_internal.events'::regclass) AS t)
       AND l.mode IN ('RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
       AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
     GROUP BY l.virtualtransaction;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.events_lock_conflicts() IS
    'The transactions (virtual id, backend, waiting now?) holding or awaiting a lock that conflicts with SHARE on annals_internal.events or a partition, this backend excepted.';
REVOKE ALL ON FUNCTION annals_internal.events_lock_conflicts() FROM PUBLIC;

-- Whether one of the given backends waits, directly or through a chain of others, for a lock
-- this backend holds.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.waits_for_me(pids integer[])
RETURNS boolean
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH RECURSIVE chain(pid) AS (
        SELECT p FROM pg_catalog.unnest(waits_for_me.pids) AS p WHERE p IS NOT NULL
        UNION
        SELECT b FROM chain AS c, pg_catalog.unnest(pg_catalog.pg_blocking_pids(c.pid)) AS b)
    SELECT EXISTS (SELECT FROM chain AS c
                    WHERE pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(c.pid)));
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.waits_for_me(integer[]) IS
    'True when one of the backends waits, directly or through others, for a lock this backend holds: waiting for it would be a deadlock.';
REVOKE ALL ON FUNCTION annals_internal.waits_for_me(integer[]) FROM PUBLIC;

-- Progress while the last step waits: 'annals rebuild <key> <done>/<total> wait <pid> <name>'.
-- annals.projections reads the counts with '^annals rebuild [0-9a-f]+ (\d+)/(\d+)', which this
-- keeps; the rest is for people (pg_stat_activity), clipped at 63 bytes with the name last.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.report_rebuild_wait(projection text, done bigint, total bigint, waiting_for text)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT set_config('application_name',
        left(format('annals rebuild %s %s/%s wait %s %s', to_hex(annals_internal.projection_lock_key(report_rebuild_wait.projection)),
                    report_rebuild_wait.done, report_rebuild_wait.total, report_rebuild_wait.waiting_for,
                    regexp_replace(report_rebuild_wait.projection, '[^ -~]', '?', 'g')), 63),
        true);
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.report_rebuild_wait(text, bigint, bigint, text) IS
    'Sets application_name to ''annals rebuild <lock key hex> <done>/<total> wait <pid> <name>'' while a rebuild''s last step waits for that backend.';
REVOKE ALL ON FUNCTION annals_internal.report_rebuild_wait(text, bigint, bigint, text) FROM PUBLIC;

-- The wait described at the top of this file. Takes and returns the rebuild's replay state (how
-- many events applied, the feed position reached, the transactions skipped behind it); returns
-- holding SHARE on annals_internal.events. The caller holds its projection's advisory lock and
-- registry row.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.lock_events_for_rebuild(
    projection      annals_internal.projections,
    batch_size      integer,
    total           bigint,
    INOUT done      bigint,
    INOUT after_xid      xid8,
    INOUT after_position bigint,
    INOUT skipped   xid8[])
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_attempt  CONSTANT text :=             -- lock_timeout of one attempt
        greatest(1, round(extract(epoch FROM annals_internal.rebuild_lock_timeout()) * 1000))::text || 'ms';
    c_poll     CONSTANT float8 := 0.01;     -- seconds between looks at pg_locks
    v_saved    text := current_setting('lock_timeout');
    v_awaited  text[];                      -- virtual transaction ids still to end
    v_pids     integer[];
    v_waiting  boolean;
    v_step     record;
    v_locked   boolean := false;
BEGIN
    LOOP
        SELECT coalesce(array_agg(c.virtualtransaction), '{}') INTO v_awaited
          FROM annals_internal.events_lock_conflicts() AS c;
        WHILE cardinality(v_awaited) > 0 LOOP
            -- Replay what was appended meanwhile, and what the skipped transactions that have
            -- ended since left behind: the locked step only gets the rest.
            v_step := annals_internal.replay_projection(lock_events_for_rebuild.projection, after_xid, after_position,
                lock_events_for_rebuild.batch_size, 'live', pg_snapshot_xmax(pg_current_snapshot()),
                lock_events_for_rebuild.total, done, skipped);
            done := done + v_step.applied;
            after_xid := v_step.last_xid;
            after_position := v_step.last_position;
            skipped := v_step.skipped;

            SELECT coalesce(array_agg(c.virtualtransaction), '{}'), array_agg(c.pid ORDER BY c.pid), bool_or(c.waiting)
              INTO v_awaited, v_pids, v_waiting
              FROM annals_internal.events_lock_conflicts() AS c
             WHERE c.virtualtransaction = ANY (v_awaited);
            EXIT WHEN cardinality(v_awaited) = 0;
            PERFORM annals_internal.report_rebuild_wait((lock_events_for_rebuild.projection).projection_name, done,
                greatest(lock_events_for_rebuild.total, done), coalesce(v_pids[1]::text, 'prepared'));
            IF v_waiting AND annals_internal.waits_for_me(v_pids) THEN
                -- A deadlock: queue for the lock, so that PostgreSQL's detector sees it and ends
                -- one side. Appends queue too until it has.
                LOCK TABLE annals_internal.events IN SHARE MODE;
                v_locked := true;
                EXIT;
            END IF;
            PERFORM pg_sleep(c_poll);
        END LOOP;
        EXIT WHEN v_locked;

        PERFORM annals_internal.report_rebuild_progress((lock_events_for_rebuild.projection).projection_name, done,
            greatest(lock_events_for_rebuild.total, done));
        PERFORM set_config('lock_timeout', c_attempt, true);
        BEGIN
            LOCK TABLE annals_internal.events IN SHARE MODE;
            v_locked := true;
        EXCEPTION WHEN lock_not_available THEN
            -- Rolling back the attempt's subtransaction released what it took (the parent
            -- table, when a partition was the one held).
            v_locked := false;
        END;
        PERFORM set_config('lock_timeout', v_saved, true);
        EXIT WHEN v_locked;
    END LOOP;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.lock_events_for_rebuild(annals_internal.projections, integer, bigint, bigint, xid8, bigint, xid8[]) IS
$$Takes SHARE on annals_internal.events for a rebuild's last step without making appends queue behind a
third transaction: waits (polling pg_locks, replaying meanwhile) until the transactions holding a
conflicting lock have ended, then asks with a 50 ms lock_timeout (annals.rebuild_lock_timeout), and
waits again if that runs out.
Falls back to a plain LOCK, for the deadlock detector, when a waited-for transaction waits for this one.
Returns the replay state (events applied, feed position, skipped transactions) it advanced.$$;
REVOKE ALL ON FUNCTION annals_internal.lock_events_for_rebuild(annals_internal.projections, integer, bigint, bigint, xid8, bigint, xid8[]) FROM PUBLIC;
