-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

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
