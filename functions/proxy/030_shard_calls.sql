-- The reads that fan out over every shard, and the store's health. A sharded store's feed is one
-- gap-free feed per shard (events of one stream never span shards), so its checkpoint is one
-- (transaction_id, global_position) per shard: annals.read_all(shard, ...) and
-- annals.read_category(shard, category, ...) read one shard's feed (020_routed_calls.sql, generated,
-- as are the per-shard calls annals_proxy.list_streams_on and read_event_on used here).
-- list_streams and read_event ask every shard in turn, so a failure names the shard it came from.
-- Created as the installing superuser (plproxy is an untrusted language); 090_owner.sql hands
-- every function to annals_owner.
SET LOCAL search_path = pg_catalog, pg_temp;

-- Each shard's first max_count streams after after_stream_id, merged in stream id order: the
-- same keyset paging as on one node.
CREATE OR REPLACE FUNCTION annals.list_streams(
    category        text    DEFAULT NULL,
    after_stream_id text    DEFAULT NULL,
    max_count       integer DEFAULT 100)
RETURNS SETOF annals.stream
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_shard integer;
    v_rows  annals.stream[] := '{}';
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    FOR v_shard IN SELECT s.shard FROM annals.shards() AS s LOOP
        BEGIN
            v_rows := v_rows || ARRAY(SELECT l FROM annals_proxy.list_streams_on(v_shard, list_streams.category,
                list_streams.after_stream_id, list_streams.max_count) AS l);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            IF annals_proxy.reraise(v_shard, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
        END;
    END LOOP;
    RETURN QUERY SELECT u.* FROM unnest(v_rows) AS u ORDER BY u.stream_id LIMIT list_streams.max_count;
END
$$;
COMMENT ON FUNCTION annals.list_streams(text, text, integer) IS
$$Streams of every shard in stream id order, optionally of one category: at most max_count after
after_stream_id (keyset paging), as the single-node annals.list_streams. Asks each shard in turn.$$;
REVOKE ALL ON FUNCTION annals.list_streams(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.list_streams(text, text, integer) TO annals_writer, annals_reader;

-- An event id carries no stream, so every shard is asked until one has it.
CREATE OR REPLACE FUNCTION annals.read_event(event_id uuid, raw boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_shard integer;
    v_found boolean;
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    FOR v_shard IN SELECT s.shard FROM annals.shards() AS s LOOP
        BEGIN
            RETURN QUERY SELECT * FROM annals_proxy.read_event_on(v_shard, read_event.event_id, read_event.raw);
            GET DIAGNOSTICS v_found = ROW_COUNT;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            IF annals_proxy.reraise(v_shard, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
        END;
        IF v_found THEN
            RETURN;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION annals.read_event(uuid, boolean) IS
    'One event by its id, from whichever shard stores it (asked in turn); as the single-node annals.read_event.';
REVOKE ALL ON FUNCTION annals.read_event(uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_event(uuid, boolean) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals_proxy.shard_head_on(shard integer,
    OUT schema_version bigint, OUT barrier_transaction xid8, OUT last_position bigint)
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.shard_partition(shard);
    SELECT annals.schema_version() AS schema_version, h.barrier_transaction, h.last_position
      FROM annals.feed_head() AS h;
$$;
COMMENT ON FUNCTION annals_proxy.shard_head_on(integer) IS
    'PL/Proxy call asking one shard its schema version and feed head; called by annals.shard_health().';
REVOKE ALL ON FUNCTION annals_proxy.shard_head_on(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.shard_head_on(integer) TO annals_writer, annals_reader;

-- Each shard's health as the proxy sees it: reachable through PL/Proxy, its schema version and
-- feed head, or why not. Never raises for a shard that is down: that is what it reports.
CREATE OR REPLACE FUNCTION annals.shard_health()
RETURNS TABLE (shard integer, name text, partitions integer[], available boolean,
               schema_version bigint, last_position bigint, problem text)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_shard record;
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    FOR v_shard IN SELECT s.shard, s.name, s.partitions FROM annals.shards() AS s LOOP
        shard := v_shard.shard;
        name := v_shard.name;
        partitions := v_shard.partitions;
        available := true;
        problem := NULL;
        BEGIN
            SELECT h.schema_version, h.last_position INTO schema_version, last_position
              FROM annals_proxy.shard_head_on(v_shard.shard) AS h;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            available := false;
            schema_version := NULL;
            last_position := NULL;
            BEGIN
                IF annals_proxy.reraise(v_shard.shard, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
                problem := v_message;
            END;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION annals.shard_health() IS
    'Each shard: number, name, partitions, whether the proxy reaches it, its schema version and last feed position, or the problem.';
REVOKE ALL ON FUNCTION annals.shard_health() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.shard_health() TO annals_writer, annals_reader;

-- The schema version of a sharded store: the lowest of its shards' (each asked through PL/Proxy),
-- so a client's schema check on the proxy (annals.Client.CheckSchema, `annals migrate --check`)
-- passes only when every shard is at the version it expects. ST502 names a shard that is down.
CREATE OR REPLACE FUNCTION annals.schema_version()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_shard   integer;
    v_version bigint;
    v_lowest  bigint;
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    FOR v_shard IN SELECT s.shard FROM annals.shards() AS s LOOP
        BEGIN
            SELECT h.schema_version INTO v_version FROM annals_proxy.shard_head_on(v_shard) AS h;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            IF annals_proxy.reraise(v_shard, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
        END;
        v_lowest := least(v_lowest, v_version);
    END LOOP;
    RETURN v_lowest;
END
$$;
COMMENT ON FUNCTION annals.schema_version() IS
    'The lowest schema version among the shards (asked through PL/Proxy): what a schema check on the proxy compares.';
REVOKE ALL ON FUNCTION annals.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.schema_version() TO annals_writer, annals_reader;
