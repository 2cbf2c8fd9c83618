-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The remedy for a logical restore into a younger cluster. Restored events carry transaction ids
-- this cluster has not reached, so the feed would hold them back and every append to a restored
-- stream would look older than its last appender (40001 forever). Within a stream, global
-- positions grow with versions, and the restored sequence puts every new append above the restored
-- ones, so ordering the restored prefix by global position alone keeps every stream in order: the
-- restored events all get one small transaction id, below any this cluster will assign.
-- Append-only is suspended for this one statement per partition by the owner, and audited. That
-- disables a guard trigger, so where the history guard (011_history_guard.sql) is installed only a
-- superuser may run it; anyone else is refused before an event changes.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.rebase_transaction_ids(reason text DEFAULT 'logical restore')
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_next     xid8 := pg_snapshot_xmax(pg_current_snapshot());
    v_base     xid8 := '3'::xid8;  -- FirstNormalTransactionId: below every id this cluster assigns
    v_max_pos  bigint;
    v_rows     bigint := 0;
    v_part_rows bigint;
    part       regclass;
BEGIN
    -- Nobody appends while history is rewritten.
    LOCK TABLE annals_internal.streams IN EXCLUSIVE MODE;
    LOCK TABLE annals_internal.events IN EXCLUSIVE MODE;

    SELECT max(e.global_position) INTO v_max_pos
      FROM annals_internal.events AS e
     WHERE e.transaction_id >= v_next;
    IF v_max_pos IS NULL THEN
        RETURN 0;  -- nothing is ahead of this cluster
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger AS g
                WHERE g.evtname = 'annals_history_guard' AND g.evtenabled <> 'D')
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user) THEN
        IF annals_internal.raise_error('ST401',
            'annals.rebase_transaction_ids refused: it re-stamps stored events with their append-only trigger disabled, which only a superuser may do where the history guard is installed',
            jsonb_build_object('operation', 'rebase_transaction_ids',
                               'objects', jsonb_build_array('trigger events_append_only on annals_internal.events'), 'changed', 1),
            'Run SELECT annals.rebase_transaction_ids() as a superuser.') IS NULL THEN END IF;
    END IF;

    FOR part IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits AS i
                 WHERE i.inhparent = 'annals_internal.events'::regclass LOOP
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER events_append_only', part);
        EXECUTE format('UPDATE %s SET transaction_id = $1 WHERE global_position <= $2 AND transaction_id <> $1', part)
          USING v_base, v_max_pos;
        GET DIAGNOSTICS v_part_rows = ROW_COUNT;
        v_rows := v_rows + v_part_rows;
        EXECUTE format('ALTER TABLE %s ENABLE TRIGGER events_append_only', part);
    END LOOP;

    UPDATE annals_internal.streams AS s SET last_transaction_id = v_base WHERE s.last_transaction_id >= v_next;
    UPDATE annals_internal.subscription_checkpoints AS c
       SET checkpoint_transaction = v_base WHERE c.checkpoint_transaction >= v_next;
    UPDATE annals_internal.dead_letters AS d SET transaction_id = v_base WHERE d.transaction_id >= v_next;

    INSERT INTO annals_internal.lifecycle_log (stream_id, operation, stream_version, performed_by, performed_at, reason)
    VALUES ('$all', 'rebase_transaction_ids', v_rows, session_user, clock_timestamp(), rebase_transaction_ids.reason);
    RETURN v_rows;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.rebase_transaction_ids(text) IS
$$Repairs the store after a logical restore (pg_dump into another cluster): restored events whose
transaction ids are ahead of this cluster are re-stamped so the feed orders them by global position,
before every new append. Owner only, and a superuser where the history guard is installed; audited in the lifecycle log. Returns the number of events re-stamped.
Afterwards reset subscriptions whose checkpoints predate the restore (annals.reset_subscription).$$;
REVOKE ALL ON FUNCTION annals.rebase_transaction_ids(text) FROM PUBLIC;
