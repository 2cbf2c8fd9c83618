-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Read-your-writes across servers. The consistency token is the transaction_id an append returns;
-- these functions wait, on whichever server they run (primary or hot standby), until that
-- transaction is visible there, or until an async projection has processed it.
--
-- How they wait. Both are VOLATILE plpgsql: in READ COMMITTED every check below is evaluated
-- under a snapshot taken for that check, so a commit (or, on a standby, the replay of a commit)
-- that happens while they wait is seen at the next check. Between checks they sleep 1 ms, doubling
-- to 8 ms. What they cannot do, being functions, is release the snapshot of the statement that
-- called them: a backend's xmin stays where that statement's snapshot put it until the statement
-- ends (PostgreSQL keeps a backend's xmin while any snapshot is active, and the caller's is). On a
-- primary that holds back vacuum for at most the timeout. On a hot standby it can also delay the
-- replay of a cleanup record that conflicts with it (up to max_standby_streaming_delay), and the
-- replay is what the wait is for: so a client that waits long on a standby should call them with a
-- short timeout (or '0', one check) in a loop of its own statements, as the Go client does; then
-- nothing is held between checks. In REPEATABLE READ or SERIALIZABLE the transaction's snapshot is
-- fixed: they check once and do not wait.

-- Validates the common arguments; on a primary also rejects an id no transaction has had yet.
-- Returns nothing; raises ST422.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_wait_args(transaction_id xid8, timeout interval)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF check_wait_args.transaction_id IS NULL THEN
        IF annals_internal.raise_invalid('transaction_id', 'must not be null; pass the transaction_id an append returned') IS NULL THEN END IF;
    END IF;
    IF check_wait_args.timeout IS NULL OR check_wait_args.timeout < interval '0' THEN
        IF annals_internal.raise_invalid('timeout', 'must be >= 0, got ' || coalesce(check_wait_args.timeout::text, 'NULL')) IS NULL THEN END IF;
    END IF;
    -- Below the snapshot's xmax an id has been assigned; at or above it, only pg_xact_status knows
    -- (it raises 22023 for an id past the next one). A standby cannot tell an id it has not
    -- replayed yet from one that will never exist: there it simply waits.
    IF check_wait_args.transaction_id >= pg_snapshot_xmax(pg_current_snapshot()) AND NOT pg_is_in_recovery() THEN
        BEGIN
            PERFORM pg_xact_status(check_wait_args.transaction_id);
        EXCEPTION WHEN invalid_parameter_value THEN
            IF annals_internal.raise_invalid('transaction_id',
                format('%s is in the future: no transaction has had this id on this server', check_wait_args.transaction_id)) IS NULL THEN END IF;
        END;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_wait_args(xid8, interval) IS
    'Raises ST422 for a NULL transaction id, a NULL or negative timeout, or (on a primary) an id in the future.';
REVOKE ALL ON FUNCTION annals_internal.check_wait_args(xid8, interval) FROM PUBLIC;

-- Whether a transaction's effects are visible to a snapshot taken now. Not
-- pg_visible_in_snapshot(id, pg_current_snapshot()): on a hot standby a snapshot keeps the running
-- transactions in its subxip array, which pg_current_snapshot() leaves out, so every id between
-- its xmin and xmax would look finished. Below xmin it is finished; at or above xmax it is not;
-- in between, pg_xact_status asks the procarray (on a standby: the transactions replay knows to
-- be running) before the commit log, as a new snapshot would.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.xact_visible(transaction_id xid8)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_snap pg_snapshot := pg_current_snapshot();
BEGIN
    RETURN xact_visible.transaction_id < pg_snapshot_xmin(v_snap)
        OR (xact_visible.transaction_id < pg_snapshot_xmax(v_snap)
            AND pg_xact_status(xact_visible.transaction_id) IS DISTINCT FROM 'in progress');
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.xact_visible(xid8) IS
    'True when a transaction has finished for a snapshot taken now (committed or aborted), on a primary or a hot standby.';
REVOKE ALL ON FUNCTION annals_internal.xact_visible(xid8) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.wait_for(transaction_id xid8, timeout interval DEFAULT '5 seconds')
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_deadline timestamptz;
    v_sleep    double precision := 0.001;
BEGIN
    IF annals_internal.check_wait_args(wait_for.transaction_id, wait_for.timeout) IS NULL THEN END IF;
    v_deadline := clock_timestamp() + wait_for.timeout;
    LOOP
        -- A fresh snapshot per check (VOLATILE, READ COMMITTED): finished transactions are
        -- visible in it. An aborted one counts too: it has no effects left to wait for. So does
        -- the caller's own transaction: its writes are visible to it.
        IF annals_internal.xact_visible(wait_for.transaction_id)
           OR wait_for.transaction_id = pg_current_xact_id_if_assigned() THEN
            RETURN true;
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline
               OR current_setting('transaction_isolation') <> 'read committed';
        PERFORM pg_sleep(least(v_sleep, extract(epoch FROM v_deadline - clock_timestamp())::double precision));
        v_sleep := least(v_sleep * 2, 0.008);
    END LOOP;
    RETURN false;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.wait_for(xid8, interval) IS
$$Read-your-writes: true as soon as the transaction whose transaction_id an append returned is visible to
new snapshots on this server (primary or hot standby), false when timeout passes first ('0': check once).
Checks every 1..8 ms, each under a fresh snapshot; the calling statement's own snapshot stays held while it
waits, so on a standby prefer short timeouts in a loop. Checks once in REPEATABLE READ. Errors: ST422 for a
NULL id, a negative timeout or, on a primary, an id in the future.$$;
REVOKE ALL ON FUNCTION annals.wait_for(xid8, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.wait_for(xid8, interval) TO annals_writer, annals_reader;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.wait_for_projection(name text, transaction_id xid8, timeout interval DEFAULT '5 seconds')
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    p          annals_internal.projections%ROWTYPE;
    v_sub      text;
    v_cp_xid   xid8;
    v_cp_pos   bigint;
    v_up       text[];
    v_deadline timestamptz;
    v_sleep    double precision := 0.001;
BEGIN
    IF wait_for_projection.name IS NULL THEN
        IF annals_internal.raise_invalid('name', 'must not be null') IS NULL THEN END IF;
    END IF;
    SELECT * INTO p FROM annals_internal.projections AS pr WHERE pr.projection_name = wait_for_projection.name;
    IF NOT FOUND THEN
        IF annals_internal.raise_error('ST404', format('projection %L does not exist', wait_for_projection.name),
            jsonb_build_object('projection', wait_for_projection.name),
            'Check the name: annals.projections lists the registered projections.') IS NULL THEN END IF;
    END IF;
    IF annals_internal.check_wait_args(wait_for_projection.transaction_id, wait_for_projection.timeout) IS NULL THEN END IF;
    v_deadline := clock_timestamp() + wait_for_projection.timeout;
    v_sub := annals_internal.projection_subscription(p.projection_name);
    v_up := annals_internal.types_to_upcast();
    LOOP
        -- The caller's own transaction: an inline projection's rows are visible to it, an async
        -- one cannot pass it before it commits.
        IF wait_for_projection.transaction_id = pg_current_xact_id_if_assigned() THEN
            RETURN p.mode = 'inline';
        END IF;
        IF annals_internal.xact_visible(wait_for_projection.transaction_id) THEN
            -- An inline projection wrote its rows in the appending transaction itself.
            IF p.mode = 'inline' THEN
                RETURN true;
            END IF;
            SELECT c.checkpoint_transaction, c.checkpoint_position INTO v_cp_xid, v_cp_pos
              FROM annals_internal.subscription_checkpoints AS c
             WHERE c.subscription_name = v_sub AND c.member = 0;
            IF NOT FOUND THEN
                IF annals_internal.raise_error('ST404', format('projection %L was dropped while waiting', wait_for_projection.name),
                    jsonb_build_object('projection', wait_for_projection.name)) IS NULL THEN END IF;
            END IF;
            -- Passed: no event of the transaction that the projection selects lies beyond its
            -- checkpoint (an event parked as a dead letter has been passed too).
            IF v_cp_xid > wait_for_projection.transaction_id OR NOT EXISTS (
                   SELECT FROM annals_internal.events AS e
                    WHERE e.transaction_id = wait_for_projection.transaction_id
                      AND (e.transaction_id, e.global_position) > (v_cp_xid, v_cp_pos)
                      AND (p.event_types IS NULL OR annals_internal.read_type(e.event_type, v_up) = ANY (p.event_types))
                      AND (p.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (p.categories))) THEN
                RETURN true;
            END IF;
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline
               OR current_setting('transaction_isolation') <> 'read committed';
        PERFORM pg_sleep(least(v_sleep, extract(epoch FROM v_deadline - clock_timestamp())::double precision));
        v_sleep := least(v_sleep * 2, 0.008);
    END LOOP;
    RETURN false;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.wait_for_projection(text, xid8, interval) IS
$$True once projection name's tables include every event of the transaction transaction_id that it selects:
an inline projection as soon as the transaction is visible on this server, an async one once its checkpoint
has passed those events (applied, or parked as dead letters); false when timeout passes first ('0': check
once). Works on a primary or a hot standby; waits like annals.wait_for. Errors: ST404 for an unknown
projection, ST422 as annals.wait_for.$$;
REVOKE ALL ON FUNCTION annals.wait_for_projection(text, xid8, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.wait_for_projection(text, xid8, interval) TO annals_writer, annals_reader;
