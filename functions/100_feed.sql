-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Which consumer-group member owns a stream: a stable hash, so a stream always goes to the same
-- member and its events stay in order.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.member_of(stream_id text, group_size integer)
RETURNS integer
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN ((hashtextextended(stream_id, 0) & 9223372036854775807) % group_size)::integer;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.member_of(text, integer) IS
    'The consumer-group member (0..group_size-1) that owns a stream.';
REVOKE ALL ON FUNCTION annals_internal.member_of(text, integer) FROM PUBLIC;

-- The feed barrier: the oldest transaction still running in this statement's snapshot. The
-- gap-free feed returns only events of transactions below it, in (transaction_id,
-- global_position) order: an event that commits late can never be skipped, because until it
-- commits its transaction holds the barrier below it. Inlined by the planner (a SQL-standard
-- body, STABLE), so a feed query compares with the expression itself and keeps its index.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.feed_barrier()
RETURNS xid8
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN pg_snapshot_xmin(pg_current_snapshot());
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.feed_barrier() IS
    'The gap-free feed''s barrier: the oldest transaction id still running in this snapshot; the feed returns only events below it.';
REVOKE ALL ON FUNCTION annals_internal.feed_barrier() FROM PUBLIC;

-- A logical restore (pg_dump into a younger cluster) stores transaction ids this cluster has not
-- assigned yet: those events would sit above the feed barrier for a very long time. A visible row
-- with an id at or past the snapshot's xmax can only come from such a restore.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_restored_ids()
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_max xid8;
BEGIN
    -- The caller's own appends are visible to it and may be at or above its snapshot's xmax (a
    -- REPEATABLE READ snapshot taken before the transaction had an id): they are not restored.
    SELECT e.transaction_id INTO v_max
      FROM annals_internal.events AS e
     WHERE e.transaction_id IS DISTINCT FROM pg_current_xact_id_if_assigned()
     ORDER BY e.transaction_id DESC
     LIMIT 1;
    IF v_max >= pg_snapshot_xmax(pg_current_snapshot()) THEN
        IF annals_internal.raise_error('ST503',
            format('stored transaction id %s is ahead of this cluster (next id %s): the events were restored from another cluster and the feed cannot order them; run annals.rebase_transaction_ids() as a superuser',
                   v_max, pg_snapshot_xmax(pg_current_snapshot())),
            jsonb_build_object('max_stored_transaction_id', v_max::text,
                               'next_transaction_id', pg_snapshot_xmax(pg_current_snapshot())::text),
            'As a superuser (or annals_owner where the history guard is not installed), run SELECT annals.rebase_transaction_ids(); then reset subscriptions (annals.reset_subscription).') IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_restored_ids() IS
    'Raises ST503 when stored transaction ids are ahead of this cluster (a logical restore), naming the remedy.';
REVOKE ALL ON FUNCTION annals_internal.check_restored_ids() FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_feed_args(after_transaction xid8, after_position bigint, max_count integer)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF check_feed_args.after_transaction IS NULL THEN
        IF annals_internal.raise_invalid('after_transaction', 'must not be null; use ''0'' to start at the beginning') IS NULL THEN END IF;
    END IF;
    IF check_feed_args.after_position IS NULL OR check_feed_args.after_position < 0 THEN
        IF annals_internal.raise_invalid('after_position', 'must be >= 0; use 0 to start at the beginning') IS NULL THEN END IF;
    END IF;
    IF check_feed_args.max_count IS NULL OR check_feed_args.max_count < 1 THEN
        IF annals_internal.raise_invalid('max_count', 'must be >= 1, got ' || coalesce(check_feed_args.max_count::text, 'NULL')) IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_feed_args(xid8, bigint, integer) IS
    'Raises ST422 for a NULL checkpoint half or a non-positive page size.';
REVOKE ALL ON FUNCTION annals_internal.check_feed_args(xid8, bigint, integer) FROM PUBLIC;

-- The gap-free global feed: the events below the feed barrier (annals_internal.feed_barrier), in
-- one statement.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_all(
    after_transaction xid8    DEFAULT '0',
    after_position    bigint  DEFAULT 0,
    max_count         integer DEFAULT 1000,
    event_types       text[]  DEFAULT NULL,
    categories        text[]  DEFAULT NULL,
    raw               boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- The feed must come off the (transaction_id, global_position) indexes in order. Filters such as
-- the consumer-group hash have no statistics and their default selectivity can make a Sort look
-- cheap; an ordered index path always exists, so rule the Sort out.
SET enable_sort = off
-- One generic plan per session: with a custom plan per call the planner prices a small page
-- (LIMIT 10) so far below the generic plan (which guesses 10% of the table) that it plans every
-- call again, ~1 ms over the partitions against a 0.1 ms read (BENCHMARKS.md, "M10").
SET plan_cache_mode = force_generic_plan
ROWS 1000
AS $$
DECLARE
    v_rows bigint;
    v_up   text[] := CASE WHEN read_all.raw THEN NULL ELSE annals_internal.types_to_upcast() END;
BEGIN
    PERFORM annals_internal.check_feed_args(read_all.after_transaction, read_all.after_position, read_all.max_count);
    -- Cold storage (400_cold_storage.sql): a page that may reach cold events is read hot and cold merged.
    IF annals_internal.cold_after(read_all.after_transaction, read_all.after_position) THEN
        RETURN QUERY
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.feed_page(read_all.after_transaction, read_all.after_position, read_all.max_count,
                       annals_internal.feed_barrier(), read_all.event_types, read_all.categories, 0, 1, v_up) AS e;
    ELSE
    RETURN QUERY
        SELECT (annals_internal.as_read(e, v_up)).*
          FROM annals_internal.events AS e
         WHERE (e.transaction_id, e.global_position) > (read_all.after_transaction, read_all.after_position)
           AND e.transaction_id < annals_internal.feed_barrier()
           AND (read_all.event_types IS NULL OR annals_internal.read_type(e.event_type, v_up) = ANY (read_all.event_types))
           AND (read_all.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (read_all.categories))
         ORDER BY e.transaction_id, e.global_position
         LIMIT read_all.max_count;
    END IF;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < read_all.max_count THEN
        PERFORM annals_internal.check_restored_ids();
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_all(xid8, bigint, integer, text[], text[], boolean) IS
$$The gap-free global feed: up to max_count events after the checkpoint (after_transaction, after_position),
in (transaction_id, global_position) order, only from transactions older than every running one, so no
event is ever skipped. Optional filters: event_types, categories. Store the last event's
(transaction_id, global_position) as the next checkpoint. Type filters match the names readers see (aliases followed). Events come
upcast (raw => true: as stored). Errors: ST422, ST503 after a logical restore.$$;
REVOKE ALL ON FUNCTION annals.read_all(xid8, bigint, integer, text[], text[], boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_all(xid8, bigint, integer, text[], text[], boolean) TO annals_writer, annals_reader;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.read_category(
    category          text,
    after_transaction xid8    DEFAULT '0',
    after_position    bigint  DEFAULT 0,
    max_count         integer DEFAULT 1000,
    consumer_member   integer DEFAULT 0,
    consumer_size     integer DEFAULT 1,
    raw               boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
-- The feed must come off the (transaction_id, global_position) indexes in order. Filters such as
-- the consumer-group hash have no statistics and their default selectivity can make a Sort look
-- cheap; an ordered index path always exists, so rule the Sort out.
SET enable_sort = off
-- One generic plan per session, as annals.read_all (which says why).
SET plan_cache_mode = force_generic_plan
ROWS 1000
AS $$
DECLARE
    v_rows bigint;
    v_up   text[] := CASE WHEN read_category.raw THEN NULL ELSE annals_internal.types_to_upcast() END;
    v_category text := annals_internal.qualify(read_category.category);  -- M15: as stored for the tenant
BEGIN
    IF annals_internal.category_problem(read_category.category) IS NOT NULL THEN
        IF annals_internal.raise_invalid('category', annals_internal.category_problem(read_category.category)) IS NULL THEN END IF;
    END IF;
    PERFORM annals_internal.check_feed_args(read_category.after_transaction, read_category.after_position, read_category.max_count);
    IF read_category.consumer_size IS NULL OR read_category.consumer_size NOT BETWEEN 1 AND 1024 THEN
        IF annals_internal.raise_invalid('consumer_size', 'must be between 1 and 1024') IS NULL THEN END IF;
    END IF;
    IF read_category.consumer_member IS NULL OR read_category.consumer_member NOT BETWEEN 0 AND read_category.consumer_size - 1 THEN
        IF annals_internal.raise_invalid('consumer_member', 'must be between 0 and consumer_size - 1') IS NULL THEN END IF;
    END IF;
    -- Cold storage (400_cold_storage.sql): a page that may reach cold events is read hot and cold merged.
    -- M15: under '*' (all tenants) the category is every tenant's: feed_page compares it unqualified.
    IF annals_internal.cold_after(read_category.after_transaction, read_category.after_position)
       OR annals_internal.session_tenant() IS NOT DISTINCT FROM '*' THEN
        RETURN QUERY
            SELECT (annals_internal.as_read(e, v_up)).*
              FROM annals_internal.feed_page(read_category.after_transaction, read_category.after_position,
                       read_category.max_count, annals_internal.feed_barrier(), NULL, ARRAY[read_category.category],
                       read_category.consumer_member, read_category.consumer_size, v_up) AS e;
    ELSE
    RETURN QUERY
        SELECT (annals_internal.as_read(e, v_up)).*
          FROM annals_internal.events AS e
         WHERE e.category = v_category
           AND (e.transaction_id, e.global_position) > (read_category.after_transaction, read_category.after_position)
           AND e.transaction_id < annals_internal.feed_barrier()
           AND (read_category.consumer_size = 1
                OR annals_internal.member_of(e.stream_id, read_category.consumer_size) = read_category.consumer_member)
         ORDER BY e.transaction_id, e.global_position
         LIMIT read_category.max_count;
    END IF;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < read_category.max_count THEN
        PERFORM annals_internal.check_restored_ids();
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.read_category(text, xid8, bigint, integer, integer, integer, boolean) IS
$$The gap-free feed of one category (streams named '<category>-...'), same order and guarantees as
annals.read_all. A consumer group of consumer_size members splits it: member m gets exactly the streams
that hash to m, so the members' shares are disjoint and together complete, and each stream stays in order.$$;
REVOKE ALL ON FUNCTION annals.read_category(text, xid8, bigint, integer, integer, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_category(text, xid8, bigint, integer, integer, integer, boolean) TO annals_writer, annals_reader;
