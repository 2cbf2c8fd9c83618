-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- A subscription member's checkpoint: read it, move it (ack, with the expected position as an
-- optimistic check) and reset it.
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
