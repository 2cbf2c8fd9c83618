-- The stream calls of a sharded store: the single-node signatures, each run on the shard that owns
-- the stream. Two layers per call. annals_proxy.<name> is the PL/Proxy function: CLUSTER
-- 'annals_shards', RUN ON the stream's hash, TARGET the shard's annals.<name>. annals.<name> is
-- the public wrapper with the shard's defaults: it calls the first and re-raises a failure through
-- annals_proxy.reraise, so a shard's error reaches the caller with its own SQLSTATE, message, JSON
-- DETAIL and HINT (PL/Proxy would prefix them), and an unreachable shard is ST502 naming it.
--
-- Not SECURITY DEFINER, unlike the shards' API: PL/Proxy connects to a shard as current_user, and
-- a definer function would connect every caller as its owner. Running as the caller, each shard
-- checks the caller's own privileges again; the proxy's GRANTs repeat the shards'. All are
-- VOLATILE, reads included: PL/Proxy requires it of its functions (a remote call is not bound to
-- the proxy's snapshot). The PL/Proxy functions run with client_min_messages = warning: after a
-- shard's error PL/Proxy reconnects on the next call with a NOTICE ("dropping stale conn") that
-- says nothing to the caller.
--
-- Created as the installing superuser (plproxy is an untrusted language); 090_owner.sql hands
-- every function to annals_owner.
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION annals_proxy.append_events(
    stream_id text,
    expected_version bigint,
    events jsonb)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.append_events;
$$;
COMMENT ON FUNCTION annals_proxy.append_events(text, bigint, jsonb) IS
    'PL/Proxy call of annals.append_events on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.append_events(text, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.append_events(text, bigint, jsonb) TO annals_writer;

CREATE OR REPLACE FUNCTION annals.append_events(
    stream_id text,
    expected_version bigint,
    events jsonb)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT * FROM annals_proxy.append_events(append_events.stream_id, append_events.expected_version, append_events.events);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(append_events.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.append_events(text, bigint, jsonb) IS
    'Appends events to a stream on the shard that owns it; as the single-node annals.append_events.';
REVOKE ALL ON FUNCTION annals.append_events(text, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.append_events(text, bigint, jsonb) TO annals_writer;

CREATE OR REPLACE FUNCTION annals_proxy.append_event(
    stream_id text,
    expected_version bigint,
    event_type text,
    data jsonb,
    metadata jsonb,
    event_id uuid,
    schema_version integer)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.append_event;
$$;
COMMENT ON FUNCTION annals_proxy.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) IS
    'PL/Proxy call of annals.append_event on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) TO annals_writer;

CREATE OR REPLACE FUNCTION annals.append_event(
    stream_id text,
    expected_version bigint,
    event_type text,
    data jsonb,
    metadata jsonb DEFAULT NULL,
    event_id uuid DEFAULT NULL,
    schema_version integer DEFAULT NULL)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT * FROM annals_proxy.append_event(append_event.stream_id, append_event.expected_version, append_event.event_type, append_event.data, append_event.metadata, append_event.event_id, append_event.schema_version);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(append_event.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) IS
    'Appends one event to a stream on the shard that owns it; as the single-node annals.append_event.';
REVOKE ALL ON FUNCTION annals.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.append_event(text, bigint, text, jsonb, jsonb, uuid, integer) TO annals_writer;

CREATE OR REPLACE FUNCTION annals_proxy.read_stream(
    stream_id text,
    from_version bigint,
    max_count integer,
    backwards boolean,
    raw boolean)
RETURNS SETOF annals.event
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.read_stream;
$$;
COMMENT ON FUNCTION annals_proxy.read_stream(text, bigint, integer, boolean, boolean) IS
    'PL/Proxy call of annals.read_stream on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.read_stream(text, bigint, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.read_stream(text, bigint, integer, boolean, boolean) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.read_stream(
    stream_id text,
    from_version bigint DEFAULT NULL,
    max_count integer DEFAULT 1000,
    backwards boolean DEFAULT false,
    raw boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT * FROM annals_proxy.read_stream(read_stream.stream_id, read_stream.from_version, read_stream.max_count, read_stream.backwards, read_stream.raw);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(read_stream.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.read_stream(text, bigint, integer, boolean, boolean) IS
    'Reads a stream from the shard that owns it; as the single-node annals.read_stream.';
REVOKE ALL ON FUNCTION annals.read_stream(text, bigint, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_stream(text, bigint, integer, boolean, boolean) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals_proxy.read_stream_as_of(
    stream_id text,
    as_of_version bigint,
    as_of_time timestamptz,
    from_version bigint,
    max_count integer,
    raw boolean)
RETURNS SETOF annals.event
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.read_stream_as_of;
$$;
COMMENT ON FUNCTION annals_proxy.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) IS
    'PL/Proxy call of annals.read_stream_as_of on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.read_stream_as_of(
    stream_id text,
    as_of_version bigint DEFAULT NULL,
    as_of_time timestamptz DEFAULT NULL,
    from_version bigint DEFAULT NULL,
    max_count integer DEFAULT 1000,
    raw boolean DEFAULT false)
RETURNS SETOF annals.event
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT * FROM annals_proxy.read_stream_as_of(read_stream_as_of.stream_id, read_stream_as_of.as_of_version, read_stream_as_of.as_of_time, read_stream_as_of.from_version, read_stream_as_of.max_count, read_stream_as_of.raw);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(read_stream_as_of.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) IS
    'Reads a stream as it was, from the shard that owns it; as the single-node annals.read_stream_as_of.';
REVOKE ALL ON FUNCTION annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer, boolean) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals_proxy.stream_info(
    stream_id text)
RETURNS SETOF annals.stream
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.stream_info;
$$;
COMMENT ON FUNCTION annals_proxy.stream_info(text) IS
    'PL/Proxy call of annals.stream_info on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.stream_info(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.stream_info(text) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.stream_info(
    stream_id text)
RETURNS SETOF annals.stream
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT * FROM annals_proxy.stream_info(stream_info.stream_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(stream_info.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.stream_info(text) IS
    'A stream''s version, times and state, from the shard that owns it; as the single-node annals.stream_info.';
REVOKE ALL ON FUNCTION annals.stream_info(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.stream_info(text) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals_proxy.stream_version_at(
    stream_id text,
    as_of timestamptz)
RETURNS bigint
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.stream_version_at;
$$;
COMMENT ON FUNCTION annals_proxy.stream_version_at(text, timestamptz) IS
    'PL/Proxy call of annals.stream_version_at on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.stream_version_at(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.stream_version_at(text, timestamptz) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.stream_version_at(
    stream_id text,
    as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN annals_proxy.stream_version_at(stream_version_at.stream_id, stream_version_at.as_of);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(stream_version_at.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.stream_version_at(text, timestamptz) IS
    'A stream''s version at a time, from the shard that owns it; as the single-node annals.stream_version_at.';
REVOKE ALL ON FUNCTION annals.stream_version_at(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.stream_version_at(text, timestamptz) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals_proxy.stream_stats(
    stream_id text,
    OUT event_count bigint,
    OUT size_bytes bigint)
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.stream_stats;
$$;
COMMENT ON FUNCTION annals_proxy.stream_stats(text) IS
    'PL/Proxy call of annals.stream_stats on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.stream_stats(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.stream_stats(text) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.stream_stats(
    stream_id text,
    OUT event_count bigint,
    OUT size_bytes bigint)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    SELECT * INTO stream_stats.event_count, stream_stats.size_bytes FROM annals_proxy.stream_stats(stream_stats.stream_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(stream_stats.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.stream_stats(text) IS
    'A stream''s event count and stored size, from the shard that owns it; as the single-node annals.stream_stats.';
REVOKE ALL ON FUNCTION annals.stream_stats(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.stream_stats(text) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals_proxy.delete_stream(
    stream_id text,
    expected_version bigint,
    reason text)
RETURNS bigint
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.delete_stream;
$$;
COMMENT ON FUNCTION annals_proxy.delete_stream(text, bigint, text) IS
    'PL/Proxy call of annals.delete_stream on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.delete_stream(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.delete_stream(text, bigint, text) TO annals_writer;

CREATE OR REPLACE FUNCTION annals.delete_stream(
    stream_id text,
    expected_version bigint DEFAULT NULL,
    reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN annals_proxy.delete_stream(delete_stream.stream_id, delete_stream.expected_version, delete_stream.reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(delete_stream.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.delete_stream(text, bigint, text) IS
    'Deletes a stream on the shard that owns it; as the single-node annals.delete_stream.';
REVOKE ALL ON FUNCTION annals.delete_stream(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.delete_stream(text, bigint, text) TO annals_writer;

CREATE OR REPLACE FUNCTION annals_proxy.save_snapshot(
    stream_id text,
    snapshot_type text,
    schema_version integer,
    stream_version bigint,
    state jsonb)
RETURNS boolean
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.save_snapshot;
$$;
COMMENT ON FUNCTION annals_proxy.save_snapshot(text, text, integer, bigint, jsonb) IS
    'PL/Proxy call of annals.save_snapshot on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.save_snapshot(text, text, integer, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.save_snapshot(text, text, integer, bigint, jsonb) TO annals_writer;

CREATE OR REPLACE FUNCTION annals.save_snapshot(
    stream_id text,
    snapshot_type text,
    schema_version integer,
    stream_version bigint,
    state jsonb)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN annals_proxy.save_snapshot(save_snapshot.stream_id, save_snapshot.snapshot_type, save_snapshot.schema_version, save_snapshot.stream_version, save_snapshot.state);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(save_snapshot.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.save_snapshot(text, text, integer, bigint, jsonb) IS
    'Saves a snapshot on the shard that owns the stream; as the single-node annals.save_snapshot.';
REVOKE ALL ON FUNCTION annals.save_snapshot(text, text, integer, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.save_snapshot(text, text, integer, bigint, jsonb) TO annals_writer;

CREATE OR REPLACE FUNCTION annals_proxy.load_snapshot(
    stream_id text,
    snapshot_type text,
    schema_version integer)
RETURNS TABLE (stream_version bigint, state jsonb)
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.stream_hash(stream_id);
    TARGET annals.load_snapshot;
$$;
COMMENT ON FUNCTION annals_proxy.load_snapshot(text, text, integer) IS
    'PL/Proxy call of annals.load_snapshot on the shard owning stream_id; called by the public wrapper.';
REVOKE ALL ON FUNCTION annals_proxy.load_snapshot(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.load_snapshot(text, text, integer) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.load_snapshot(
    stream_id text,
    snapshot_type text,
    schema_version integer)
RETURNS TABLE (stream_version bigint, state jsonb)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT * FROM annals_proxy.load_snapshot(load_snapshot.stream_id, load_snapshot.snapshot_type, load_snapshot.schema_version);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(annals.shard_of(load_snapshot.stream_id), v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.load_snapshot(text, text, integer) IS
    'Loads a snapshot from the shard that owns the stream; as the single-node annals.load_snapshot.';
REVOKE ALL ON FUNCTION annals.load_snapshot(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.load_snapshot(text, text, integer) TO annals_writer, annals_reader;
