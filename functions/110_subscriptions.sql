-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Raises ST422 for a NULL subscription name and ST403 for a reserved one: '$' names belong to
-- Annals (an async projection's checkpoint is the subscription '$projection:<name>'), and only
-- the projection functions, as annals_owner, may touch them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_subscription_name(subscription text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF check_subscription_name.subscription IS NULL THEN
        IF annals_internal.raise_invalid('subscription', 'must not be null') IS NULL THEN END IF;
    END IF;
    IF left(check_subscription_name.subscription, 1) = '$' THEN
        IF annals_internal.raise_error('ST403',
            'subscription ' || quote_literal(check_subscription_name.subscription) || ' is reserved: names starting with $ belong to Annals',
            jsonb_build_object('argument', 'subscription'),
            'An async projection''s checkpoint is managed by its projection: annals.rebuild_projection, annals.drop_projection.') IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_subscription_name(text) IS
    'Raises ST422 for a NULL subscription name and ST403 for a reserved one ($...).';
REVOKE ALL ON FUNCTION annals_internal.check_subscription_name(text) FROM PUBLIC;

-- Raises ST404 unless the subscription exists and member is in range; returns its group size.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_subscription(subscription text, member integer)
RETURNS integer
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_size integer;
BEGIN
    IF annals_internal.check_subscription_name(check_subscription.subscription) IS NULL THEN END IF;
    SELECT s.group_size INTO v_size
      FROM annals_internal.subscriptions AS s
     WHERE s.subscription_name = check_subscription.subscription;
    IF v_size IS NULL THEN
        IF annals_internal.raise_error('ST404', format('subscription %L does not exist', check_subscription.subscription),
            jsonb_build_object('subscription', check_subscription.subscription),
            'Create it with annals.create_subscription.') IS NULL THEN END IF;
    END IF;
    IF check_subscription.member IS NULL OR check_subscription.member NOT BETWEEN 0 AND v_size - 1 THEN
        IF annals_internal.raise_invalid('member', format('must be between 0 and %s for subscription %L', v_size - 1, check_subscription.subscription)) IS NULL THEN END IF;
    END IF;
    RETURN v_size;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_subscription(text, integer) IS
    'Raises ST403 for a reserved name, ST404 for an unknown subscription and ST422 for a member out of range; returns the group size.';
REVOKE ALL ON FUNCTION annals_internal.check_subscription(text, integer) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.create_subscription(
    subscription text,
    start_from   text    DEFAULT 'beginning',
    event_types  text[]  DEFAULT NULL,
    categories   text[]  DEFAULT NULL,
    group_size   integer DEFAULT 1)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_existing annals_internal.subscriptions%ROWTYPE;
    v_from     xid8;
    v_now      timestamptz := clock_timestamp();
BEGIN
    IF annals_internal.name_problem(create_subscription.subscription, 256) IS NOT NULL THEN
        IF annals_internal.raise_invalid('subscription', annals_internal.name_problem(create_subscription.subscription, 256)) IS NULL THEN END IF;
    END IF;
    IF annals_internal.check_subscription_name(create_subscription.subscription) IS NULL THEN END IF;
    IF create_subscription.start_from IS NULL OR create_subscription.start_from NOT IN ('beginning', 'now') THEN
        IF annals_internal.raise_invalid('start_from', 'must be ''beginning'' or ''now''') IS NULL THEN END IF;
    END IF;
    IF create_subscription.group_size IS NULL OR create_subscription.group_size NOT BETWEEN 1 AND 1024 THEN
        IF annals_internal.raise_invalid('group_size', 'must be between 1 and 1024') IS NULL THEN END IF;
    END IF;
    IF cardinality(create_subscription.event_types) = 0 OR cardinality(create_subscription.categories) = 0 THEN
        IF annals_internal.raise_invalid('event_types', 'filters must be NULL (everything) or non-empty arrays') IS NULL THEN END IF;
    END IF;

    SELECT * INTO v_existing FROM annals_internal.subscriptions AS s
     WHERE s.subscription_name = create_subscription.subscription;
    IF FOUND THEN
        IF v_existing.event_types IS NOT DISTINCT FROM create_subscription.event_types
           AND v_existing.categories IS NOT DISTINCT FROM create_subscription.categories
           AND v_existing.group_size = create_subscription.group_size THEN
            RETURN false;  -- already there, same settings: creating is idempotent
        END IF;
        IF annals_internal.raise_invalid('subscription',
            format('subscription %L exists with other filters or group size; drop it first', create_subscription.subscription)) IS NULL THEN END IF;
    END IF;

    -- 'now' starts at the feed barrier: everything already below it is skipped.
    v_from := CASE create_subscription.start_from
                  WHEN 'now' THEN pg_snapshot_xmin(pg_current_snapshot())
                  ELSE '0' END;
    INSERT INTO annals_internal.subscriptions (subscription_name, event_types, categories, group_size, created_at)
    VALUES (create_subscription.subscription, create_subscription.event_types, create_subscription.categories,
            create_subscription.group_size, v_now);
    INSERT INTO annals_internal.subscription_checkpoints
           (subscription_name, member, checkpoint_transaction, checkpoint_position, updated_at)
    SELECT create_subscription.subscription, m, v_from, 0, v_now
      FROM generate_series(0, create_subscription.group_size - 1) AS m;
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.create_subscription(text, text, text[], text[], integer) IS
$$Creates a named subscription to the gap-free feed, from the 'beginning' or from 'now', optionally
filtered by event_types and categories, split into group_size members (each stream always goes to the
same member). Returns true when created, false when it already existed with the same settings.$$;
REVOKE ALL ON FUNCTION annals.create_subscription(text, text, text[], text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.create_subscription(text, text, text[], text[], integer) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.drop_subscription(subscription text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF annals_internal.check_subscription_name(drop_subscription.subscription) IS NULL THEN END IF;
    DELETE FROM annals_internal.subscriptions AS s WHERE s.subscription_name = drop_subscription.subscription;
    IF NOT FOUND THEN
        IF annals_internal.raise_error('ST404', format('subscription %L does not exist', drop_subscription.subscription),
            jsonb_build_object('subscription', drop_subscription.subscription),
            'Check the name: annals.subscription_status lists the subscriptions.') IS NULL THEN END IF;
    END IF;
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.drop_subscription(text) IS
$$Drops a subscription with its checkpoints and dead letters; returns true. Errors: ST404 when it does not
exist (DETAIL {"subscription"}), ST403 for a reserved name.$$;
REVOKE ALL ON FUNCTION annals.drop_subscription(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.drop_subscription(text) TO annals_writer;

-- The next batch for one member. It locks the member's checkpoint row until the caller's
-- transaction ends: a competing consumer waits, then reads the checkpoint the first one
-- committed, so within transactions two consumers never get the same events. Call it before any
-- other write in the transaction.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_subscription(
    subscription text,
    member       integer DEFAULT 0,
    max_count    integer DEFAULT 100)
RETURNS SETOF annals.event
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_sort = off
ROWS 100
AS $$
DECLARE
    v_size  integer;
    v_cp    record;
    v_sub   annals_internal.subscriptions%ROWTYPE;
    v_rows  bigint;
    v_up    text[] := annals_internal.types_to_upcast();
BEGIN
    v_size := annals_internal.check_subscription(read_subscription.subscription, read_subscription.member);
    IF read_subscription.max_count IS NULL OR read_subscription.max_count < 1 THEN
        IF annals_internal.raise_invalid('max_count', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    SELECT * INTO v_sub FROM annals_internal.subscriptions AS s
     WHERE s.subscription_name = read_subscription.subscription;
    SELECT c.*, pg_snapshot_xmin(pg_current_snapshot()) AS barrier INTO v_cp
      FROM annals_internal.subscription_checkpoints AS c
     WHERE c.subscription_name = read_subscription.subscription AND c.member = read_subscription.member
       FOR UPDATE OF c;

    -- Cold storage (400_cold_storage.sql): a page that may reach cold events is read hot and cold
    -- merged. One statement (this function is VOLATILE): the check and the read share a snapshot.
    RETURN QUERY
        (SELECT (annals_internal.as_read(e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type,
                   e.schema_version, e.data, e.metadata, e.transaction_id, e.recorded_at, v_up)).*
          FROM annals_internal.events AS e
         WHERE (e.transaction_id, e.global_position) > (v_cp.checkpoint_transaction, v_cp.checkpoint_position)
           AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
           AND (v_sub.event_types IS NULL OR annals_internal.read_type(e.event_type, v_up) = ANY (v_sub.event_types))
           AND (v_sub.categories IS NULL OR e.category = ANY (v_sub.categories))
           AND (v_size = 1 OR annals_internal.member_of(e.stream_id, v_size) = read_subscription.member)
           AND NOT annals_internal.cold_after(v_cp.checkpoint_transaction, v_cp.checkpoint_position)
         ORDER BY e.transaction_id, e.global_position
         LIMIT read_subscription.max_count)
        UNION ALL
        SELECT (annals_internal.as_read(e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type,
                   e.schema_version, e.data, e.metadata, e.transaction_id, e.recorded_at, v_up)).*
          FROM annals_internal.feed_page(v_cp.checkpoint_transaction, v_cp.checkpoint_position,
                   read_subscription.max_count, pg_snapshot_xmin(pg_current_snapshot()), v_sub.event_types,
                   v_sub.categories, read_subscription.member, v_size, v_up) AS e
         WHERE annals_internal.cold_after(v_cp.checkpoint_transaction, v_cp.checkpoint_position);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < read_subscription.max_count THEN
        PERFORM annals_internal.check_restored_ids();
    END IF;
    -- Nothing matched below the barrier (taken before the read, so the read covered it): move an
    -- idle member up to the barrier, or a rarely matching filter would rescan the same stretch of
    -- the feed on every poll. Events of the barrier transaction itself still come later.
    IF v_rows = 0 AND (v_cp.barrier, 0::bigint) > (v_cp.checkpoint_transaction, v_cp.checkpoint_position) THEN
        UPDATE annals_internal.subscription_checkpoints AS c
           SET checkpoint_transaction = v_cp.barrier, checkpoint_position = 0, updated_at = clock_timestamp()
         WHERE c.subscription_name = read_subscription.subscription AND c.member = read_subscription.member;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_subscription(text, integer, integer) IS
$$The next events (at most max_count) for one member of a subscription, after its checkpoint, from the
gap-free feed with the subscription's filters. Locks the member's checkpoint until the transaction ends,
so process the batch and call annals.ack_subscription in the same transaction for exactly-once effects.
When nothing matches, the member's checkpoint moves up to the feed barrier (nothing below it can still
arrive), so a rarely matching filter does not rescan the same events on every call.$$;
REVOKE ALL ON FUNCTION annals.read_subscription(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_subscription(text, integer, integer) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.subscription_checkpoint(
    subscription text,
    member       integer DEFAULT 0,
    OUT transaction_id  xid8,
    OUT global_position bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    PERFORM annals_internal.check_subscription(subscription_checkpoint.subscription, subscription_checkpoint.member);
    SELECT c.checkpoint_transaction, c.checkpoint_position
      INTO subscription_checkpoint.transaction_id, subscription_checkpoint.global_position
      FROM annals_internal.subscription_checkpoints AS c
     WHERE c.subscription_name = subscription_checkpoint.subscription AND c.member = subscription_checkpoint.member;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.subscription_checkpoint(text, integer) IS
    'The feed position (transaction_id, global_position) a subscription member has acknowledged.';
REVOKE ALL ON FUNCTION annals.subscription_checkpoint(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.subscription_checkpoint(text, integer) TO annals_writer, annals_reader;

-- Compare-and-set: moves the checkpoint from exactly (expected_*) forward to (new_*). A consumer
-- that lost a race gets ST411 (one that would move backwards ST422) and changes nothing; a member leased to
-- another consumer gets ST423.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.ack_subscription(
    subscription         text,
    member               integer,
    expected_transaction xid8,
    expected_position    bigint,
    new_transaction      xid8,
    new_position         bigint,
    consumer             text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_cp annals_internal.subscription_checkpoints%ROWTYPE;
BEGIN
    PERFORM annals_internal.check_subscription(ack_subscription.subscription, ack_subscription.member);
    IF ack_subscription.expected_transaction IS NULL OR ack_subscription.expected_position IS NULL
       OR ack_subscription.new_transaction IS NULL OR ack_subscription.new_position IS NULL THEN
        IF annals_internal.raise_invalid('new_transaction', 'checkpoints must not be null') IS NULL THEN END IF;
    END IF;
    IF (ack_subscription.new_transaction, ack_subscription.new_position)
       <= (ack_subscription.expected_transaction, ack_subscription.expected_position) THEN
        IF annals_internal.raise_invalid('new_position', 'a checkpoint only moves forward; use annals.reset_subscription to move it back') IS NULL THEN END IF;
    END IF;

    SELECT * INTO v_cp FROM annals_internal.subscription_checkpoints AS c
     WHERE c.subscription_name = ack_subscription.subscription AND c.member = ack_subscription.member
       FOR UPDATE;
    IF v_cp.lease_holder IS NOT NULL AND v_cp.lease_expires_at > clock_timestamp()
       AND v_cp.lease_holder IS DISTINCT FROM ack_subscription.consumer THEN
        IF annals_internal.raise_error('ST423',
            format('subscription %L member %s is leased to %L until %s', ack_subscription.subscription,
                   ack_subscription.member, v_cp.lease_holder, v_cp.lease_expires_at),
            jsonb_build_object('subscription', ack_subscription.subscription, 'member', ack_subscription.member,
                               'lease_holder', v_cp.lease_holder, 'lease_expires_at', v_cp.lease_expires_at)) IS NULL THEN END IF;
    END IF;
    IF (v_cp.checkpoint_transaction, v_cp.checkpoint_position)
       IS DISTINCT FROM (ack_subscription.expected_transaction, ack_subscription.expected_position) THEN
        IF annals_internal.raise_error('ST411',
            format('subscription %L member %s is at (%s, %s), not at the expected (%s, %s)',
                   ack_subscription.subscription, ack_subscription.member,
                   v_cp.checkpoint_transaction, v_cp.checkpoint_position,
                   ack_subscription.expected_transaction, ack_subscription.expected_position),
            jsonb_build_object('subscription', ack_subscription.subscription, 'member', ack_subscription.member,
                               'expected', jsonb_build_array(ack_subscription.expected_transaction::text, ack_subscription.expected_position),
                               'actual', jsonb_build_array(v_cp.checkpoint_transaction::text, v_cp.checkpoint_position)),
            'Another consumer acknowledged first: drop this batch''s work and read again.') IS NULL THEN END IF;
    END IF;
    UPDATE annals_internal.subscription_checkpoints AS c
       SET checkpoint_transaction = ack_subscription.new_transaction,
           checkpoint_position = ack_subscription.new_position,
           updated_at = clock_timestamp()
     WHERE c.subscription_name = ack_subscription.subscription AND c.member = ack_subscription.member;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.ack_subscription(text, integer, xid8, bigint, xid8, bigint, text) IS
$$Acknowledges a batch: moves a member's checkpoint from exactly (expected_transaction, expected_position)
to the later (new_transaction, new_position), usually the last processed event's. Errors: ST411 when the
checkpoint is elsewhere (another consumer won), ST423 when another consumer holds the lease, ST422 backwards.$$;
REVOKE ALL ON FUNCTION annals.ack_subscription(text, integer, xid8, bigint, xid8, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.ack_subscription(text, integer, xid8, bigint, xid8, bigint, text) TO annals_writer;

-- Administrative move of a checkpoint, backwards too (replay) or forward (skip).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.reset_subscription(
    subscription    text,
    to_transaction  xid8   DEFAULT '0',
    to_position     bigint DEFAULT 0,
    member          integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_rows integer;
BEGIN
    PERFORM annals_internal.check_subscription(reset_subscription.subscription, coalesce(reset_subscription.member, 0));
    IF reset_subscription.to_transaction IS NULL OR reset_subscription.to_position IS NULL OR reset_subscription.to_position < 0 THEN
        IF annals_internal.raise_invalid('to_position', 'the target checkpoint must be non-null with a position >= 0') IS NULL THEN END IF;
    END IF;
    UPDATE annals_internal.subscription_checkpoints AS c
       SET checkpoint_transaction = reset_subscription.to_transaction,
           checkpoint_position = reset_subscription.to_position,
           updated_at = clock_timestamp()
     WHERE c.subscription_name = reset_subscription.subscription
       AND (reset_subscription.member IS NULL OR c.member = reset_subscription.member);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.reset_subscription(text, xid8, bigint, integer) IS
$$Moves a subscription's checkpoint (every member, or one) to (to_transaction, to_position), backwards to
replay or forwards to skip; the default ('0', 0) replays from the beginning. Returns the members moved.$$;
REVOKE ALL ON FUNCTION annals.reset_subscription(text, xid8, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.reset_subscription(text, xid8, bigint, integer) TO annals_writer;

-- Leases: one consumer instance per member at a time; a dead instance's lease expires.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.acquire_lease(
    subscription  text,
    member        integer,
    consumer      text,
    lease_seconds integer DEFAULT 30)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    PERFORM annals_internal.check_subscription(acquire_lease.subscription, acquire_lease.member);
    IF acquire_lease.consumer IS NULL OR acquire_lease.consumer = '' THEN
        IF annals_internal.raise_invalid('consumer', 'must be a non-empty consumer name') IS NULL THEN END IF;
    END IF;
    IF acquire_lease.lease_seconds IS NULL OR acquire_lease.lease_seconds NOT BETWEEN 1 AND 86400 THEN
        IF annals_internal.raise_invalid('lease_seconds', 'must be between 1 and 86400') IS NULL THEN END IF;
    END IF;
    UPDATE annals_internal.subscription_checkpoints AS c
       SET lease_holder = acquire_lease.consumer,
           lease_expires_at = v_now + make_interval(secs => acquire_lease.lease_seconds)
     WHERE c.subscription_name = acquire_lease.subscription AND c.member = acquire_lease.member
       AND (c.lease_holder IS NULL OR c.lease_expires_at <= v_now OR c.lease_holder = acquire_lease.consumer);
    RETURN FOUND;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.acquire_lease(text, integer, text, integer) IS
$$Takes or renews the lease on a subscription member for lease_seconds (default 30). True when the consumer
now holds it; false when another consumer's lease is still valid.$$;
REVOKE ALL ON FUNCTION annals.acquire_lease(text, integer, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.acquire_lease(text, integer, text, integer) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.release_lease(subscription text, member integer, consumer text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    PERFORM annals_internal.check_subscription(release_lease.subscription, release_lease.member);
    UPDATE annals_internal.subscription_checkpoints AS c
       SET lease_holder = NULL, lease_expires_at = NULL
     WHERE c.subscription_name = release_lease.subscription AND c.member = release_lease.member
       AND c.lease_holder = release_lease.consumer;
    RETURN FOUND;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.release_lease(text, integer, text) IS
    'Gives up a lease the consumer holds (on clean shutdown); false when it did not hold it.';
REVOKE ALL ON FUNCTION annals.release_lease(text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.release_lease(text, integer, text) TO annals_writer;
