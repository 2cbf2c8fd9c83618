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
                  WHEN 'now' THEN annals_internal.feed_barrier()
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
-- One generic plan per session, as annals.read_all (which says why).
SET plan_cache_mode = force_generic_plan
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
    SELECT c.*, annals_internal.feed_barrier() AS barrier INTO v_cp
      FROM annals_internal.subscription_checkpoints AS c
     WHERE c.subscription_name = read_subscription.subscription AND c.member = read_subscription.member
       FOR UPDATE OF c;

    -- Cold storage (400_cold_storage.sql): a page that may reach cold events is read hot and cold
    -- merged. One statement (this function is VOLATILE): the check and the read share a snapshot.
    RETURN QUERY
        (SELECT (annals_internal.as_read(e, v_up)).*
          FROM annals_internal.events AS e
         WHERE (e.transaction_id, e.global_position) > (v_cp.checkpoint_transaction, v_cp.checkpoint_position)
           AND e.transaction_id < annals_internal.feed_barrier()
           AND (v_sub.event_types IS NULL OR annals_internal.read_type(e.event_type, v_up) = ANY (v_sub.event_types))
           AND (v_sub.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (v_sub.categories))
           AND (v_size = 1 OR annals_internal.member_of(e.stream_id, v_size) = read_subscription.member)
           AND NOT annals_internal.cold_after(v_cp.checkpoint_transaction, v_cp.checkpoint_position)
         ORDER BY e.transaction_id, e.global_position
         LIMIT read_subscription.max_count)
        UNION ALL
        SELECT (annals_internal.as_read(e, v_up)).*
          FROM annals_internal.feed_page(v_cp.checkpoint_transaction, v_cp.checkpoint_position,
                   read_subscription.max_count, annals_internal.feed_barrier(), v_sub.event_types,
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
