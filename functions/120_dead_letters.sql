-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Parks an event a consumer gave up on. Call it in the transaction that acknowledges past the
-- event, so parking and moving on commit together.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.park_event(
    subscription   text,
    member         integer,
    stream_id      text,
    stream_version bigint,
    attempts       integer,
    last_error     text)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_event annals.event;
    v_id    bigint;
BEGIN
    PERFORM annals_internal.check_subscription(park_event.subscription, park_event.member);
    park_event.stream_id := annals_internal.qualify(park_event.stream_id);  -- M15: the tenant's stored id
    -- Hot or cold (400_cold_storage.sql).
    SELECT * INTO v_event FROM annals_internal.event_at(park_event.stream_id, park_event.stream_version) AS e;
    IF NOT FOUND THEN
        IF annals_internal.raise_invalid('stream_version',
            format('stream %L has no event at version %s', park_event.stream_id, park_event.stream_version)) IS NULL THEN END IF;
    END IF;
    INSERT INTO annals_internal.dead_letters AS d
           (subscription_name, member, stream_id, stream_version, global_position, transaction_id,
            attempts, last_error, parked_at)
    VALUES (park_event.subscription, park_event.member, v_event.stream_id, v_event.stream_version,
            v_event.global_position, v_event.transaction_id, greatest(park_event.attempts, 1),
            coalesce(park_event.last_error, ''), clock_timestamp())
    ON CONFLICT ON CONSTRAINT dead_letters_event_key DO UPDATE
       SET attempts = d.attempts + excluded.attempts, last_error = excluded.last_error,
           status = 'parked', parked_at = excluded.parked_at, resolved_at = NULL
    RETURNING d.dead_letter_id INTO v_id;
    RETURN v_id;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.park_event(text, integer, text, bigint, integer, text) IS
$$Parks an event in the subscription's dead letters with the attempts made and the last error, so the
feed moves on without it. Returns the dead letter's id. Inspect with annals.dead_letters.$$;
REVOKE ALL ON FUNCTION annals.park_event(text, integer, text, bigint, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.park_event(text, integer, text, bigint, integer, text) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.retry_dead_letters(subscription text, dead_letter_ids bigint[] DEFAULT NULL)
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
    PERFORM annals_internal.check_subscription(retry_dead_letters.subscription, 0);
    UPDATE annals_internal.dead_letters AS d
       SET status = 'retry'
     WHERE d.subscription_name = retry_dead_letters.subscription
       AND d.status = 'parked'
       AND (retry_dead_letters.dead_letter_ids IS NULL OR d.dead_letter_id = ANY (retry_dead_letters.dead_letter_ids));
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.retry_dead_letters(text, bigint[]) IS
$$Asks consumers to process parked events again (all of a subscription's, or the given ids); the consumer
picks them up with annals.read_dead_letters. Returns how many were queued.$$;
REVOKE ALL ON FUNCTION annals.retry_dead_letters(text, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.retry_dead_letters(text, bigint[]) TO annals_writer;

-- Dead letters queued for retry, with their events; the rows are locked (SKIP LOCKED) so
-- concurrent consumers split them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_dead_letters(subscription text, member integer DEFAULT 0, max_count integer DEFAULT 100)
RETURNS TABLE (dead_letter_id bigint, attempts integer, event annals.event)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_up text[] := annals_internal.types_to_upcast();
BEGIN
    PERFORM annals_internal.check_subscription(read_dead_letters.subscription, read_dead_letters.member);
    RETURN QUERY
        SELECT d.dead_letter_id, d.attempts,
               annals_internal.as_read(e, v_up)
          FROM annals_internal.dead_letters AS d
         -- Hot or cold (400_cold_storage.sql).
         CROSS JOIN LATERAL annals_internal.event_at(d.stream_id, d.stream_version) AS e
         WHERE d.subscription_name = read_dead_letters.subscription
           AND d.member = read_dead_letters.member
           AND d.status = 'retry'
         ORDER BY d.dead_letter_id
         LIMIT read_dead_letters.max_count
           FOR UPDATE OF d SKIP LOCKED;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_dead_letters(text, integer, integer) IS
    'Dead letters of a subscription member queued for retry, with their events, locked for this transaction.';
REVOKE ALL ON FUNCTION annals.read_dead_letters(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_dead_letters(text, integer, integer) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.resolve_dead_letter(dead_letter_id bigint, succeeded boolean, last_error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
    IF resolve_dead_letter.succeeded IS NULL THEN
        IF annals_internal.raise_invalid('succeeded', 'must not be null') IS NULL THEN END IF;
    END IF;
    -- An async projection's dead letters are the projection's: a rebuild clears them.
    PERFORM annals_internal.check_subscription_name(d.subscription_name)
       FROM annals_internal.dead_letters AS d WHERE d.dead_letter_id = resolve_dead_letter.dead_letter_id;
    UPDATE annals_internal.dead_letters AS d
       SET status = CASE WHEN resolve_dead_letter.succeeded THEN 'resolved' ELSE 'parked' END,
           resolved_at = CASE WHEN resolve_dead_letter.succeeded THEN clock_timestamp() END,
           attempts = d.attempts + 1,
           last_error = CASE WHEN resolve_dead_letter.succeeded THEN d.last_error
                             ELSE coalesce(resolve_dead_letter.last_error, d.last_error) END
     WHERE d.dead_letter_id = resolve_dead_letter.dead_letter_id;
    IF NOT FOUND THEN
        IF annals_internal.raise_error('ST404', format('dead letter %s does not exist', resolve_dead_letter.dead_letter_id),
            jsonb_build_object('dead_letter_id', resolve_dead_letter.dead_letter_id)) IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.resolve_dead_letter(bigint, boolean, text) IS
    'Records the outcome of retrying a dead letter: resolved, or parked again with the new error.';
REVOKE ALL ON FUNCTION annals.resolve_dead_letter(bigint, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.resolve_dead_letter(bigint, boolean, text) TO annals_writer;

-- Rows from a function with JIT off, as annals.subscription_status (130_feed_status.sql) explains.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.dead_letters_rows()
RETURNS TABLE (
    dead_letter_id bigint,
    subscription_name text,
    member integer,
    stream_id text,
    stream_version bigint,
    global_position bigint,
    transaction_id xid8,
    event_type text,
    attempts integer,
    last_error text,
    status text,
    parked_at timestamp with time zone,
    resolved_at timestamp with time zone)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 10
BEGIN ATOMIC
SELECT d.dead_letter_id, d.subscription_name, d.member, annals_internal.unqualify(d.stream_id), d.stream_version, d.global_position,
       d.transaction_id, e.event_type, d.attempts, d.last_error, d.status, d.parked_at, d.resolved_at
  FROM annals_internal.dead_letters AS d
  -- Hot or cold (400_cold_storage.sql; the tables, since this body binds at creation).
  JOIN LATERAL (SELECT h.event_type FROM annals_internal.events AS h
                 WHERE h.stream_id = d.stream_id AND h.stream_version = d.stream_version
                UNION ALL
                SELECT c.event_type FROM annals_internal.cold_segments AS s CROSS JOIN LATERAL unnest(s.events) AS c
                 WHERE s.stream_id = d.stream_id AND s.first_version <= d.stream_version
                   AND s.last_version >= d.stream_version AND c.stream_version = d.stream_version) AS e ON true;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.dead_letters_rows() IS 'The rows of annals.dead_letters, computed with JIT off.';
REVOKE ALL ON FUNCTION annals_internal.dead_letters_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_internal.dead_letters_rows() TO annals_writer, annals_reader, annals_bi;

CREATE OR REPLACE VIEW annals.dead_letters AS
SELECT * FROM annals_internal.dead_letters_rows();
COMMENT ON VIEW annals.dead_letters IS
    'Events subscription consumers parked after exhausting their retries, with the last error and status.';
REVOKE ALL ON annals.dead_letters FROM PUBLIC;
GRANT SELECT ON annals.dead_letters TO annals_writer, annals_reader, annals_bi;
